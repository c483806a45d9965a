"""ObjectStore on a directory: atomic writes, byte ranges, and S3-like notifications."""
from __future__ import annotations

import json
import logging
import os
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from fleetcam.adapters.local.db import Database
from fleetcam.adapters.local.queue import EventQueue
from fleetcam.errors import Invalid, NotFound
from fleetcam.ports import ObjectCreated, ObjectInfo

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
NOTIFY_PREFIXES = ("media/", "raw/")


class LocalObjectStore:
    """Objects are files under ``root``; their size, type and metadata rows live in SQLite.

    A put writes a temporary file, fsyncs it, records the object and stages its event in one
    transaction, renames the file into place, then releases the event. ``recover()`` finishes
    or undoes a put that a crash interrupted, so no object is half visible or unannounced.
    """

    def __init__(self, root: Path, db: Database, queue: EventQueue, bucket: str = "local",
                 on_created: Callable[[], None] | None = None) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.queue = queue
        self.bucket = bucket
        self.on_created = on_created
        self.crash_hook: Callable[[str], None] | None = None
        """Tests set this to raise at a named step of ``put`` (fault injection)."""

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/") or key.startswith(".tmp"):
            raise Invalid(f"bad object key {key!r}")
        return self.root / key

    def _step(self, name: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(name)

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        final = self._path(key)
        tmp = self.tmp / uuidlib.uuid4().hex
        size = 0
        try:
            with open(tmp, "wb") as out:
                if isinstance(data, (bytes, bytearray)):
                    out.write(data)
                    size = len(data)
                else:
                    while chunk := data.read(CHUNK):
                        out.write(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._step("written")
            notify = key.startswith(NOTIFY_PREFIXES)
            with self.db.tx() as c:
                c.execute("INSERT OR REPLACE INTO objects (key, size, content_type, metadata, tmp)"
                          " VALUES (?,?,?,?,?)", (key, size, content_type,
                                                  json.dumps(metadata or {}), tmp.name))
                event_id = self.queue.stage(c, ObjectCreated(self.bucket, key, size)) \
                    if notify else None
            self._step("recorded")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            self._step("renamed")
        except Exception:  # a crash (BaseException, process death) is left to recover()
            if tmp.exists() and not final.exists():
                self._undo(key, tmp)
            raise
        with self.db.tx() as c:
            c.execute("UPDATE objects SET tmp=NULL WHERE key=?", (key,))
        if event_id is not None:
            self.queue.release(event_id)
            if self.on_created is not None:
                self.on_created()
        return ObjectInfo(key, size, content_type, dict(metadata or {}))

    def _undo(self, key: str, tmp: Path) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM objects WHERE key=? AND tmp=?", (key, tmp.name))
            c.execute("DELETE FROM events WHERE key=? AND state='staged'", (key,))
        tmp.unlink(missing_ok=True)

    def recover(self) -> tuple[int, int]:
        """Finish puts a crash interrupted: (completed, undone)."""
        done = undone = 0
        rows = self.db.conn().execute("SELECT key, tmp FROM objects WHERE tmp IS NOT NULL")
        for key, tmp in rows.fetchall():
            if self._path(key).exists() and not (self.tmp / tmp).exists():
                with self.db.tx() as c:
                    c.execute("UPDATE objects SET tmp=NULL WHERE key=?", (key,))
                    c.execute("UPDATE events SET state='ready' WHERE key=? AND state='staged'",
                              (key,))
                done += 1
            else:
                self._undo(key, self.tmp / tmp)
                undone += 1
        with self.db.tx() as c:  # staged events whose object row was never written
            c.execute("DELETE FROM events WHERE state='staged' AND key NOT IN"
                      " (SELECT key FROM objects WHERE tmp IS NOT NULL)")
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        if done or undone:
            log.warning("object store recovery: %d puts completed, %d undone", done, undone)
        return done, undone

    def head(self, key: str) -> ObjectInfo:
        row = self.db.conn().execute(
            "SELECT size, content_type, metadata FROM objects WHERE key=? AND tmp IS NULL",
            (key,)).fetchone()
        if row is None or not self._path(key).exists():
            raise NotFound(f"object {key} not found")
        return ObjectInfo(key, row[0], row[1], json.loads(row[2]))

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            f = open(self._path(key), "rb")
        except FileNotFoundError as e:
            raise NotFound(f"object {key} not found") from e
        return self._chunks(f, start, end)

    @staticmethod
    def _chunks(f: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
        with f:
            f.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        with self.db.tx() as c:
            c.execute("DELETE FROM objects WHERE key=?", (key,))
