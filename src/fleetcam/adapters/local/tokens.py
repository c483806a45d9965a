"""SQLite TokenStore (one row per token, unique on the key's hash) and ShareStore."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fleetcam.adapters.local.db import Database
from fleetcam.domain.access import TokenRecord
from fleetcam.domain.shares import REVOKED_KEPT, ShareLink


class SqliteTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, record: TokenRecord) -> TokenRecord:
        with self.db.tx() as c:
            cur = c.execute("INSERT INTO tokens (key_hash, data) VALUES (?, '{}')",
                            (record.key_hash,))
            stored = replace(record, id=int(cur.lastrowid or 0))
            c.execute("UPDATE tokens SET data=? WHERE id=?",
                      (json.dumps(stored.to_row()), stored.id))
        return stored

    def get(self, token_id: int) -> TokenRecord | None:
        row = self.db.conn().execute("SELECT data FROM tokens WHERE id=?",
                                     (token_id,)).fetchone()
        return TokenRecord.from_row(json.loads(row[0])) if row else None

    def by_hash(self, key_hash: str) -> TokenRecord | None:
        row = self.db.conn().execute("SELECT data FROM tokens WHERE key_hash=?",
                                     (key_hash,)).fetchone()
        return TokenRecord.from_row(json.loads(row[0])) if row else None

    def list(self) -> list[TokenRecord]:
        rows = self.db.conn().execute("SELECT data FROM tokens ORDER BY id")
        return [TokenRecord.from_row(json.loads(r[0])) for r in rows]

    def update(self, record: TokenRecord) -> bool:
        with self.db.tx() as c:
            cur = c.execute("UPDATE tokens SET data=? WHERE id=? AND key_hash=?",
                            (json.dumps(record.to_row()), record.id, record.key_hash))
        return cur.rowcount > 0

    def touch(self, token_id: int, accessed: float) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE tokens SET data=json_set(data, '$.accessed', ?) WHERE id=?",
                      (accessed, token_id))

    def delete(self, token_id: int) -> bool:
        with self.db.tx() as c:
            cur = c.execute("DELETE FROM tokens WHERE id=?", (token_id,))
        return cur.rowcount > 0


class SqliteShareStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _link(row: Any) -> ShareLink:
        return ShareLink(id=row["id"], uuid=row["uuid"], device_id=row["device_id"],
                         expire=row["expire"], created=row["created"],
                         revoked=bool(row["revoked"]))

    def add(self, link: ShareLink) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM shares WHERE expire < ?", (link.created - REVOKED_KEPT,))
            c.execute("INSERT INTO shares (id, uuid, device_id, expire, created, revoked)"
                      " VALUES (?,?,?,?,?,?)", (link.id, link.uuid, link.device_id,
                                                link.expire, link.created, int(link.revoked)))

    def get(self, share_id: str) -> ShareLink | None:
        row = self.db.conn().execute("SELECT * FROM shares WHERE id=?", (share_id,)).fetchone()
        return self._link(row) if row else None

    def of_file(self, uuid: str) -> list[ShareLink]:
        rows = self.db.conn().execute("SELECT * FROM shares WHERE uuid=? ORDER BY created, id",
                                      (uuid,))
        return [self._link(r) for r in rows]

    def revoke(self, share_id: str) -> bool:
        with self.db.tx() as c:
            cur = c.execute("UPDATE shares SET revoked=1 WHERE id=? AND revoked=0", (share_id,))
        return cur.rowcount > 0
