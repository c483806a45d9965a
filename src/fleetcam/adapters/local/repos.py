"""SQLite implementations of DeviceRepo, MediaIndex and LogStore."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from fleetcam.adapters.local.db import Database, add_range, placeholders
from fleetcam.adapters.local.sqlfilter import to_sql
from fleetcam.domain.identity import Identity
from fleetcam.domain.models import Device, LogEntry, MediaFile, Preview
from fleetcam.domain.retention import file_expiry
from fleetcam.errors import Conflict, NotFound
from fleetcam.ports import MediaQuery

_DEVICE_COLS = ("name", "ident", "protocol", "media_ttl", "media_rotate", "messages_ttl",
                "metadata", "enabled", "identity")


def _device(row: sqlite3.Row) -> Device:
    # the ``auth_code`` column holds the stored form of the identity (domain.identity)
    return Device(id=row["id"], name=row["name"], ident=row["ident"], protocol=row["protocol"],
                  media_ttl=row["media_ttl"], media_rotate=row["media_rotate"],
                  messages_ttl=row["messages_ttl"], metadata=json.loads(row["metadata"]),
                  enabled=bool(row["enabled"]), identity=Identity.from_stored(row["auth_code"]))


class SqliteDeviceRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, fields: dict[str, Any]) -> Device:
        d = Device(id=0, **{k: v for k, v in fields.items() if k in _DEVICE_COLS})
        try:
            with self.db.tx() as c:
                cur = c.execute(
                    "INSERT INTO devices (name, ident, protocol, media_ttl, media_rotate,"
                    " messages_ttl, metadata, enabled, auth_code) VALUES (?,?,?,?,?,?,?,?,?)",
                    (d.name, d.ident, d.protocol, d.media_ttl, d.media_rotate, d.messages_ttl,
                     json.dumps(d.metadata), int(d.enabled), d.identity.to_stored()))
        except sqlite3.IntegrityError as e:
            raise Conflict(f"a device with ident {d.ident!r} exists already", field="ident") from e
        return d.with_changes(id=cur.lastrowid)

    def get(self, device_id: int) -> Device:
        row = self.db.conn().execute("SELECT * FROM devices WHERE id=?", (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"device {device_id} not found")
        return _device(row)

    def find_by_ident(self, ident: str) -> Device | None:
        row = self.db.conn().execute("SELECT * FROM devices WHERE ident=?", (ident,)).fetchone()
        return _device(row) if row else None

    def list(self) -> list[Device]:
        return [_device(r) for r in self.db.conn().execute("SELECT * FROM devices ORDER BY id")]

    def update(self, device: Device) -> Device:
        try:
            with self.db.tx() as c:
                cur = c.execute(
                    "UPDATE devices SET name=?, ident=?, protocol=?, media_ttl=?, media_rotate=?,"
                    " messages_ttl=?, metadata=?, enabled=? WHERE id=?",
                    (device.name, device.ident, device.protocol, device.media_ttl,
                     device.media_rotate, device.messages_ttl, json.dumps(device.metadata),
                     int(device.enabled), device.id))
        except sqlite3.IntegrityError as e:
            raise Conflict(f"a device with ident {device.ident!r} exists already",
                           field="ident") from e
        if cur.rowcount == 0:
            raise NotFound(f"device {device.id} not found")
        return self.get(device.id)

    def swap_identity(self, device_id: int, expect: Identity, new: Identity) -> bool:
        with self.db.tx() as c:
            cur = c.execute("UPDATE devices SET auth_code=? WHERE id=? AND auth_code=?",
                            (new.to_stored(), device_id, expect.to_stored()))
        return cur.rowcount == 1

    def delete(self, device_id: int) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM devices WHERE id=?", (device_id,))


def _media(row: sqlite3.Row) -> MediaFile:
    return MediaFile(
        uuid=row["uuid"], device_id=row["device_id"], key=row["key"], name=row["name"],
        size=row["size"], mime=row["mime"], created=row["created"], uploaded=row["uploaded"],
        modified=row["modified"], protected=bool(row["protected"]), shared=bool(row["shared"]),
        channel_id=row["channel_id"],
        preview=Preview(jpeg=row["preview_jpeg"], meta=json.loads(row["preview_meta"])),
        attributes=json.loads(row["attributes"]))


def _media_values(f: MediaFile) -> tuple[Any, ...]:
    return (f.device_id, f.key, f.name, f.size, f.mime, f.created, f.uploaded, f.modified,
            int(f.protected), int(f.shared), f.channel_id, f.preview.jpeg,
            json.dumps(f.preview.meta), json.dumps(f.attributes), f.uuid)


class SqliteMediaIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, file: MediaFile) -> bool:
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM devices WHERE id=?", (file.device_id,)).fetchone() is None:
                raise NotFound(f"device {file.device_id} not found")
            cur = c.execute(
                "INSERT INTO media (device_id, key, name, size, mime, created, uploaded, modified,"
                " protected, shared, channel_id, preview_jpeg, preview_meta, attributes, uuid)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (uuid) DO NOTHING",
                _media_values(file))
            return cur.rowcount == 1

    def add_many(self, files: Iterable[MediaFile]) -> None:
        """Bulk insert (benchmarks and imports)."""
        with self.db.tx() as c:
            c.executemany(
                "INSERT INTO media (device_id, key, name, size, mime, created, uploaded, modified,"
                " protected, shared, channel_id, preview_jpeg, preview_meta, attributes, uuid)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (_media_values(f) for f in files))

    def get(self, uuid: str) -> MediaFile | None:
        row = self.db.conn().execute("SELECT * FROM media WHERE uuid=?", (uuid,)).fetchone()
        return _media(row) if row else None

    def update(self, file: MediaFile) -> None:
        with self.db.tx() as c:
            c.execute(
                "UPDATE media SET device_id=?, key=?, name=?, size=?, mime=?, created=?,"
                " uploaded=?, modified=?, protected=?, shared=?, channel_id=?, preview_jpeg=?,"
                " preview_meta=?, attributes=? WHERE uuid=?", _media_values(file))

    def remove(self, files: Iterable[MediaFile]) -> list[MediaFile]:
        removed = []
        with self.db.tx() as c:
            for f in files:
                if c.execute("DELETE FROM media WHERE uuid=?", (f.uuid,)).rowcount:
                    c.execute("INSERT OR IGNORE INTO gc (key, queued) VALUES (?, 0)", (f.key,))
                    removed.append(f)
        return removed

    def pending_deletions(self, limit: int = 1000) -> list[str]:
        rows = self.db.conn().execute("SELECT key FROM gc LIMIT ?", (limit,))
        return [r["key"] for r in rows]

    def deletion_done(self, keys: Iterable[str]) -> None:
        with self.db.tx() as c:
            c.executemany("DELETE FROM gc WHERE key=?", ((k,) for k in keys))

    def deletion_pending(self, key: str) -> bool:
        return self.db.conn().execute("SELECT 1 FROM gc WHERE key=?", (key,)).fetchone() is not None

    def query(self, q: MediaQuery) -> list[MediaFile]:
        if not q.device_ids:
            return []
        params: list[Any] = list(q.device_ids)
        where = [f"device_id IN ({placeholders(q.device_ids)})"]
        add_range(where, params, "created", q.time_from, q.time_to)
        if q.cursor is not None:
            where.append(f"(created, uuid) {'<' if q.reverse else '>'} (?, ?)")
            params += list(q.cursor)
        if q.filter is not None:
            where.append(to_sql(q.filter, params))
        order = "DESC" if q.reverse else "ASC"
        sql = (f"SELECT * FROM media WHERE {' AND '.join(where)}"
               f" ORDER BY created {order}, uuid {order} LIMIT ?")
        params.append(q.count)
        return [_media(r) for r in self.db.conn().execute(sql, params)]

    def usage(self, device_id: int) -> tuple[int, int, int]:
        row = self.db.conn().execute(
            "SELECT total, protected_total, files FROM media_usage WHERE device_id=?",
            (device_id,)).fetchone()
        return (row[0], row[1], row[2]) if row else (0, 0, 0)

    def oldest_unprotected(self, device_id: int) -> Iterator[MediaFile]:
        cursor: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self.db.conn().execute(
                "SELECT * FROM media WHERE device_id=? AND protected=0 AND (created, uuid) > (?, ?)"
                " ORDER BY created, uuid LIMIT 500", (device_id, *cursor)).fetchall()
            if not rows:
                return
            for r in rows:
                yield _media(r)
            cursor = (rows[-1]["created"], rows[-1]["uuid"])

    def uploaded_before(self, device_id: int, cutoff: float, limit: int) -> list[MediaFile]:
        rows = self.db.conn().execute(
            "SELECT * FROM media WHERE device_id=? AND protected=0 AND uploaded < ?"
            " ORDER BY uploaded LIMIT ?", (device_id, cutoff, limit))
        return [_media(r) for r in rows]

    def expiring_before(self, now: float, limit: int) -> list[MediaFile]:
        rows = self.db.conn().execute(
            "SELECT m.* FROM devices d JOIN media m ON m.device_id = d.id AND m.protected = 0"
            " AND m.uploaded < ? - d.media_ttl WHERE d.media_ttl > 0 LIMIT ?", (now, limit))
        return [_media(r) for r in rows]

    def over_limit(self) -> list[int]:
        rows = self.db.conn().execute(
            "SELECT d.id FROM devices d JOIN media_usage u ON u.device_id = d.id"
            " WHERE d.media_rotate > 0 AND u.total > d.media_rotate ORDER BY d.id")
        return [r[0] for r in rows]

    # SQLite keeps no per-file expiry: the sweeper alone expires files, from each device's
    # media_ttl as it is at the sweep, so a change of media_ttl applies to every file at
    # once and there is never a job to run.
    def expiry(self, uuid: str) -> float | None:
        row = self.db.conn().execute(
            "SELECT m.uploaded, m.protected, d.media_ttl FROM media m JOIN devices d"
            " ON d.id = m.device_id WHERE m.uuid=?", (uuid,)).fetchone()
        return None if row is None else file_expiry(row[0], bool(row[1]), row[2])

    def retime_jobs(self, limit: int = 100) -> list[tuple[int, str]]:
        return []

    def retime(self, device_id: int, media_ttl: int, cursor: str, limit: int) -> str | None:
        return None


class SqliteLogStore:
    def __init__(self, db: Database, retention: int = 30 * 86400) -> None:
        self.db = db
        self.retention = retention

    def expire(self, now: float) -> int:
        from fleetcam.adapters.local.gateway_repos import expire_rows

        return expire_rows(self.db, "logs", now, self.retention)

    def append(self, entry: LogEntry) -> LogEntry:
        with self.db.tx() as c:
            cur = c.execute("INSERT INTO logs (device_id, timestamp, event, data) VALUES (?,?,?,?)",
                            (entry.device_id, entry.timestamp, entry.event, json.dumps(entry.data)))
        return LogEntry(device_id=entry.device_id, timestamp=entry.timestamp, event=entry.event,
                        data=entry.data, id=cur.lastrowid)

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, events: tuple[str, ...] = (), count: int = 1000,
              reverse: bool = False) -> list[LogEntry]:
        if not device_ids:
            return []
        params: list[Any] = list(device_ids)
        where = [f"device_id IN ({placeholders(device_ids)})"]
        add_range(where, params, "timestamp", time_from, time_to)
        if events:
            where.append(f"event IN ({placeholders(events)})")
            params += list(events)
        order = "DESC" if reverse else "ASC"
        params.append(count)
        rows = self.db.conn().execute(
            f"SELECT * FROM logs WHERE {' AND '.join(where)} ORDER BY timestamp {order},"
            f" id {order} LIMIT ?", params)
        return [LogEntry(device_id=r["device_id"], timestamp=r["timestamp"], event=r["event"],
                         data=json.loads(r["data"]), id=r["id"]) for r in rows]
