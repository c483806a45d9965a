"""One SQLite database (WAL) shared by the local adapters; a connection per thread."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ident TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    protocol TEXT NOT NULL,
    media_ttl INTEGER NOT NULL DEFAULT 0,
    media_rotate INTEGER NOT NULL DEFAULT 0,
    messages_ttl INTEGER NOT NULL DEFAULT 31536000,
    metadata TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    auth_code TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS media (
    uuid TEXT PRIMARY KEY,
    device_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime TEXT NOT NULL,
    created REAL NOT NULL,
    uploaded REAL NOT NULL,
    modified REAL NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0,
    shared INTEGER NOT NULL DEFAULT 0,
    channel_id INTEGER,
    preview_jpeg TEXT NOT NULL DEFAULT '',
    preview_meta TEXT NOT NULL DEFAULT '{}',
    attributes TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_by_created ON media (device_id, created, uuid);
CREATE INDEX IF NOT EXISTS media_rotation ON media (device_id, protected, created, uuid);
CREATE INDEX IF NOT EXISTS media_ttl ON media (device_id, protected, uploaded);
CREATE TABLE IF NOT EXISTS media_usage (
    device_id INTEGER PRIMARY KEY,
    total INTEGER NOT NULL DEFAULT 0,
    protected_total INTEGER NOT NULL DEFAULT 0,
    files INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS media_ins AFTER INSERT ON media BEGIN
    INSERT INTO media_usage (device_id) VALUES (NEW.device_id) ON CONFLICT DO NOTHING;
    UPDATE media_usage SET total = total + NEW.size, files = files + 1,
        protected_total = protected_total + NEW.size * NEW.protected
    WHERE device_id = NEW.device_id;
END;
CREATE TRIGGER IF NOT EXISTS media_del AFTER DELETE ON media BEGIN
    UPDATE media_usage SET total = total - OLD.size, files = files - 1,
        protected_total = protected_total - OLD.size * OLD.protected
    WHERE device_id = OLD.device_id;
END;
CREATE TRIGGER IF NOT EXISTS media_upd AFTER UPDATE OF size, protected ON media BEGIN
    UPDATE media_usage SET total = total - OLD.size + NEW.size,
        protected_total = protected_total - OLD.size * OLD.protected + NEW.size * NEW.protected
    WHERE device_id = NEW.device_id;
END;
CREATE TABLE IF NOT EXISTS gc (key TEXT PRIMARY KEY, queued REAL NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (device_id, timestamp, id);
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    tmp TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    visible_after REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_ready ON events (state, visible_after, id);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (device_id, timestamp, id);
CREATE TABLE IF NOT EXISTS connections (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL,
    gateway_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS connections_by_device ON connections (device_id);
CREATE INDEX IF NOT EXISTS connections_by_gateway ON connections (gateway_id);
CREATE TABLE IF NOT EXISTS gateway_leases (
    gateway_id TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    gateway_id TEXT NOT NULL DEFAULT '',
    expires REAL NOT NULL,
    finished REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_device ON commands (device_id, status, id);
CREATE INDEX IF NOT EXISTS commands_by_gateway ON commands (gateway_id, status, id);
CREATE INDEX IF NOT EXISTS commands_by_expiry ON commands (status, expires);
CREATE INDEX IF NOT EXISTS commands_results ON commands (device_id, finished);
CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS media_requests (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS media_requests_by_holder ON media_requests (holder);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    expire INTEGER NOT NULL,
    created REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shares_by_file ON shares (uuid);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
"""


def placeholders(values: tuple[Any, ...] | list[Any]) -> str:
    """``?,?,?``: one SQL parameter per value, for ``IN (...)``."""
    return ",".join("?" * len(values))


def add_range(where: list[str], params: list[Any], column: str, lo: float | None,
              hi: float | None) -> None:
    """Append ``column`` between ``lo`` and ``hi`` (inclusive; None = open) to a WHERE list."""
    if lo is not None:
        where.append(f"{column} >= ?")
        params.append(lo)
    if hi is not None:
        where.append(f"{column} <= ?")
        params.append(hi)


class Database:
    """Opens ``path`` once per thread, in WAL mode, with the schema in place."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._opened: set[sqlite3.Connection] = set()
        """Every thread's connection, so that ``close_all`` can release them (three file
        descriptors each: the database, its WAL and its shared memory)."""
        self._opened_lock = threading.Lock()
        self.conn().executescript(SCHEMA)  # executescript manages its own transaction

    def conn(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                check_same_thread=False)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
            with self._opened_lock:
                self._opened.add(c)
        return c

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE), committed on success, rolled back on error."""
        c = self.conn()
        if c.in_transaction:  # nested use joins the outer transaction
            yield c
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
            with self._opened_lock:
                self._opened.discard(c)

    def close_all(self) -> None:
        """Close every thread's connection (at shutdown; a thread that uses the database
        afterwards gets a closed connection's error)."""
        with self._opened_lock:
            opened, self._opened = self._opened, set()
        for c in opened:
            c.close()
