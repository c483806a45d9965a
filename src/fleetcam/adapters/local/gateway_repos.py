"""SQLite implementations of MessageStore, ConnectionRegistry, CommandStore and
MediaRequestStore."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fleetcam.adapters.local.db import Database, add_range, placeholders
from fleetcam.domain.admission import MediaRequest
from fleetcam.domain.gateway import FINAL_STATES, QUEUED, SENT, Command, Connection
from fleetcam.domain.rules import VideoRule


DEFAULT_RETENTION = 30 * 86400
"""Seconds messages and log entries are kept unless the settings say otherwise."""


def expire_rows(db: Database, table: str, now: float, retention: int) -> int:
    """Delete ``table``'s rows older than ``retention`` seconds, device by device (each a
    range of its ``(device_id, timestamp)`` index)."""
    if retention <= 0:
        return 0
    cutoff = now - retention
    with db.tx() as c:
        devices = [r[0] for r in c.execute(f"SELECT DISTINCT device_id FROM {table}")]
        return sum(c.execute(f"DELETE FROM {table} WHERE device_id=? AND timestamp<?",
                             (d, cutoff)).rowcount for d in devices)


class SqliteMessageStore:
    def __init__(self, db: Database, retention: int = DEFAULT_RETENTION) -> None:
        self.db = db
        self.retention = retention

    def expire(self, now: float) -> int:
        return expire_rows(self.db, "messages", now, self.retention)

    def append(self, device_id: int, messages: list[dict[str, Any]]) -> None:
        with self.db.tx() as c:
            c.executemany("INSERT INTO messages (device_id, timestamp, data) VALUES (?,?,?)",
                          [(device_id, float(m["timestamp"]), json.dumps(m)) for m in messages])

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, count: int = 1000,
              reverse: bool = False) -> list[dict[str, Any]]:
        if not device_ids:
            return []
        params: list[Any] = list(device_ids)
        where = [f"device_id IN ({placeholders(device_ids)})"]
        add_range(where, params, "timestamp", time_from, time_to)
        order = "DESC" if reverse else "ASC"
        params.append(count)
        rows = self.db.conn().execute(
            f"SELECT data FROM messages WHERE {' AND '.join(where)}"
            f" ORDER BY timestamp {order}, id {order} LIMIT ?", params)
        return [json.loads(r[0]) for r in rows]

    def nearest(self, device_id: int, when: float, within: float) -> dict[str, Any] | None:
        rows = self.db.conn().execute(
            "SELECT data FROM messages WHERE device_id=? AND timestamp BETWEEN ? AND ?"
            " ORDER BY abs(timestamp - ?) LIMIT 1",
            (device_id, when - within, when + within, when)).fetchall()
        return json.loads(rows[0][0]) if rows else None


def _conn(row: Any) -> Connection:
    return Connection(**json.loads(row["data"]))


_LIVE = ("NOT EXISTS (SELECT 1 FROM gateway_leases g WHERE g.gateway_id = connections.gateway_id"
         " AND g.until <= ?)")
"""A connection is live unless its gateway copy's lease passed."""


class SqliteConnectionRegistry:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def open(self, conn: Connection) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO connections (id, device_id, gateway_id, data)"
                      " VALUES (?,?,?,?)",
                      (conn.id, conn.device_id, conn.gateway_id, json.dumps(asdict(conn))))

    def close(self, conn_id: int, by_gateway: str | None = None) -> Connection | None:
        with self.db.tx() as c:
            row = c.execute("SELECT data FROM connections WHERE id=?", (conn_id,)).fetchone()
            c.execute("DELETE FROM connections WHERE id=?", (conn_id,))
        return _conn(row) if row else None

    def get(self, conn_id: int) -> Connection | None:
        row = self.db.conn().execute(f"SELECT data FROM connections WHERE id=? AND {_LIVE}",
                                     (conn_id, self.clock())).fetchone()
        return _conn(row) if row else None

    def list(self, device_ids: tuple[int, ...] | None = None) -> list[Connection]:
        now = self.clock()
        if device_ids is None:
            rows = self.db.conn().execute(
                f"SELECT data FROM connections WHERE {_LIVE} ORDER BY id", (now,))
        elif not device_ids:
            return []
        else:
            rows = self.db.conn().execute(
                f"SELECT data FROM connections WHERE device_id IN ({placeholders(device_ids)})"
                f" AND {_LIVE} ORDER BY id", (*device_ids, now))
        return [_conn(r) for r in rows]

    def of_gateway(self, gateway_id: str) -> list[Connection]:
        rows = self.db.conn().execute(
            f"SELECT data FROM connections WHERE gateway_id=? AND {_LIVE}",
            (gateway_id, self.clock()))
        return [_conn(r) for r in rows]

    def touch(self, conn_id: int, when: float) -> bool:
        with self.db.tx() as c:
            return c.execute(
                "UPDATE connections SET data=json_set(data, '$.meta.last_access', ?) WHERE id=?"
                " AND coalesce(json_extract(data, '$.meta.last_access'), 0) < ?",
                (when, conn_id, when)).rowcount == 1

    def drop_gateway(self, gateway_id: str) -> list[Connection]:
        with self.db.tx() as c:
            rows = c.execute("SELECT data FROM connections WHERE gateway_id=?",
                             (gateway_id,)).fetchall()
            c.execute("DELETE FROM connections WHERE gateway_id=?", (gateway_id,))
            c.execute("DELETE FROM gateway_leases WHERE gateway_id=?", (gateway_id,))
        return [_conn(r) for r in rows]

    def heartbeat(self, gateway_id: str, until: float) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO gateway_leases (gateway_id, until) VALUES (?,?)",
                      (gateway_id, until))

    def inbox(self, gateway_id: str, fleet: bool = True) -> tuple[object, object] | None:
        return None  # a local database: reading the lists every tick costs nothing

    def expired_gateways(self, now: float) -> list[str]:
        rows = self.db.conn().execute("SELECT gateway_id FROM gateway_leases WHERE until <= ?",
                                      (now,))
        return [r[0] for r in rows]


def _cmd(row: Any) -> Command:
    return Command(**json.loads(row["data"]))


def _cmd_values(cmd: Command) -> tuple[Any, ...]:
    return (cmd.device_id, cmd.status, cmd.gateway_id, cmd.expires,
            cmd.timestamp if cmd.final else None, json.dumps(asdict(cmd)))


class SqliteCommandStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, cmd: Command) -> Command:
        with self.db.tx() as c:
            cur = c.execute("INSERT INTO commands (device_id, status, gateway_id, expires,"
                            " finished, data) VALUES (?,?,?,?,?,?)", _cmd_values(cmd))
            cmd = cmd.with_changes(id=int(cur.lastrowid or 0))
            c.execute("UPDATE commands SET data=? WHERE id=?", (json.dumps(asdict(cmd)), cmd.id))
        return cmd

    def get(self, command_id: int) -> Command | None:
        row = self.db.conn().execute("SELECT data FROM commands WHERE id=?",
                                     (command_id,)).fetchone()
        return _cmd(row) if row else None

    def update(self, cmd: Command, *, expect_status: str | None = None) -> bool:
        sql = ("UPDATE commands SET device_id=?, status=?, gateway_id=?, expires=?, finished=?,"
               " data=? WHERE id=?")
        params: list[Any] = [*_cmd_values(cmd), cmd.id]
        if expect_status is not None:
            sql += " AND status=?"
            params.append(expect_status)
        with self.db.tx() as c:
            return c.execute(sql, params).rowcount == 1

    def pending(self, device_id: int) -> list[Command]:
        rows = self.db.conn().execute(
            "SELECT data FROM commands WHERE device_id=? AND status IN (?,?) ORDER BY id",
            (device_id, QUEUED, SENT))
        return [_cmd(r) for r in rows]

    def assigned(self, gateway_id: str) -> list[Command]:
        rows = self.db.conn().execute(
            "SELECT data FROM commands WHERE gateway_id=? AND status=? ORDER BY id",
            (gateway_id, QUEUED))
        return [_cmd(r) for r in rows]

    def expiring(self, now: float, limit: int = 500) -> list[Command]:
        rows = self.db.conn().execute(
            "SELECT data FROM commands WHERE status IN (?,?) AND expires < ? ORDER BY expires"
            " LIMIT ?", (QUEUED, SENT, now, limit))
        return [_cmd(r) for r in rows]

    def results(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
                time_to: float | None = None, count: int = 1000) -> list[Command]:
        if not device_ids:
            return []
        params: list[Any] = [*device_ids, *FINAL_STATES]
        where = [f"device_id IN ({placeholders(device_ids)})",
                 f"status IN ({placeholders(FINAL_STATES)})"]
        add_range(where, params, "finished", time_from, time_to)
        params.append(count)
        rows = self.db.conn().execute(
            f"SELECT data FROM commands WHERE {' AND '.join(where)} ORDER BY finished, id"
            " LIMIT ?", params)
        return [_cmd(r) for r in rows]


def _rule(data: str) -> VideoRule:
    d = json.loads(data)
    d["channels"] = tuple(d["channels"])
    return VideoRule(**d)


class SqliteRuleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rule: VideoRule) -> VideoRule:
        with self.db.tx() as c:
            cur = c.execute("INSERT INTO rules (data) VALUES ('{}')")
            rule = VideoRule(**{**asdict(rule), "id": int(cur.lastrowid or 0)})
            c.execute("UPDATE rules SET data=? WHERE id=?", (json.dumps(rule.as_json()), rule.id))
        return rule

    def get(self, rule_id: int) -> VideoRule | None:
        row = self.db.conn().execute("SELECT data FROM rules WHERE id=?", (rule_id,)).fetchone()
        return _rule(row[0]) if row else None

    def list(self) -> list[VideoRule]:
        return [_rule(r[0]) for r in self.db.conn().execute("SELECT data FROM rules ORDER BY id")]

    def update(self, rule: VideoRule) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE rules SET data=? WHERE id=?", (json.dumps(rule.as_json()), rule.id))

    def delete(self, rule_id: int) -> bool:
        with self.db.tx() as c:
            return c.execute("DELETE FROM rules WHERE id=?", (rule_id,)).rowcount == 1


def _req_key(device_id: int, channel: int) -> str:
    return f"{device_id}:{channel}"


class SqliteMediaRequestStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _write(self, c: Any, req: MediaRequest) -> None:
        c.execute("INSERT OR REPLACE INTO media_requests (key, holder, expires, version, data)"
                  " VALUES (?,?,?,?,?)", (_req_key(req.device_id, req.channel), req.holder,
                                          req.expires, req.version, json.dumps(req.as_json())))

    def open(self, req: MediaRequest) -> MediaRequest:
        req = req.with_changes(version=0)
        with self.db.tx() as c:
            self._write(c, req)
        return req

    def get(self, device_id: int, channel: int) -> MediaRequest | None:
        row = self.db.conn().execute("SELECT data FROM media_requests WHERE key=?",
                                     (_req_key(device_id, channel),)).fetchone()
        return MediaRequest.from_json(json.loads(row[0])) if row else None

    def swap(self, req: MediaRequest) -> MediaRequest | None:
        new = req.with_changes(version=req.version + 1)
        with self.db.tx() as c:
            row = c.execute("SELECT version FROM media_requests WHERE key=?",
                            (_req_key(req.device_id, req.channel),)).fetchone()
            if row is None or row[0] != req.version:
                return None
            self._write(c, new)
        return new

    def close(self, device_id: int, channel: int, ref: str) -> bool:
        key = _req_key(device_id, channel)
        with self.db.tx() as c:
            return c.execute("DELETE FROM media_requests WHERE key=? AND"
                             " json_extract(data, '$.ref')=?", (key, ref)).rowcount == 1

    def of_holder(self, gateway_id: str) -> list[MediaRequest]:
        rows = self.db.conn().execute("SELECT data FROM media_requests WHERE holder=?",
                                      (gateway_id,))
        return [MediaRequest.from_json(json.loads(r[0])) for r in rows]

    def purge(self, before: float) -> int:
        with self.db.tx() as c:
            return c.execute("DELETE FROM media_requests WHERE expires < ?",
                             (before,)).rowcount
