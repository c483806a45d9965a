"""A durable queue of object-created events in SQLite: the local stand-in for S3→SQS."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fleetcam.adapters.local.db import Database
from fleetcam.ports import Clock, ObjectCreated

STAGED, READY, DEAD = "staged", "ready", "dead"


@dataclass(frozen=True)
class QueuedEvent:
    id: int
    event: ObjectCreated
    attempts: int
    last_error: str | None = None


class EventQueue:
    """At-least-once delivery with a visibility lease, bounded retries and a dead letter state.

    A put is two-phase: ``stage`` (inside the object's own transaction, before the object is
    renamed into place) then ``release``; recovery after a crash releases or drops what was
    staged, so an event is never lost and never points at a half-written object.
    """

    def __init__(self, db: Database, clock: Clock, *, lease: float = 300.0,
                 max_attempts: int = 5, backoff: float = 2.0) -> None:
        self.db = db
        self.clock = clock
        self.lease = lease
        self.max_attempts = max_attempts
        self.backoff = backoff

    def stage(self, c: sqlite3.Connection, event: ObjectCreated) -> int:
        cur = c.execute("INSERT INTO events (bucket, key, size, state) VALUES (?,?,?,?)",
                        (event.bucket, event.key, event.size, STAGED))
        return int(cur.lastrowid or 0)

    def release(self, event_id: int) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE events SET state=? WHERE id=?", (READY, event_id))

    def claim(self, limit: int = 10) -> list[QueuedEvent]:
        """Take up to ``limit`` visible events, hiding them for the lease time."""
        now = self.clock.now()
        with self.db.tx() as c:
            rows = c.execute(
                "SELECT * FROM events WHERE state=? AND visible_after<=? ORDER BY id LIMIT ?",
                (READY, now, limit)).fetchall()
            c.executemany("UPDATE events SET attempts=attempts+1, visible_after=? WHERE id=?",
                          [(now + self.lease, r["id"]) for r in rows])
        return [QueuedEvent(r["id"], ObjectCreated(r["bucket"], r["key"], r["size"]),
                            r["attempts"] + 1, r["last_error"]) for r in rows]

    def ack(self, event_id: int) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM events WHERE id=?", (event_id,))

    def fail(self, item: QueuedEvent, error: str) -> bool:
        """Record a failed attempt; returns True when the event went to the dead letters."""
        dead = item.attempts >= self.max_attempts
        delay = self.backoff * 2 ** (item.attempts - 1)
        with self.db.tx() as c:
            c.execute("UPDATE events SET state=?, visible_after=?, last_error=? WHERE id=?",
                      (DEAD if dead else READY, self.clock.now() + delay, error[:2000], item.id))
        return dead

    def dead_letters(self) -> list[QueuedEvent]:
        rows = self.db.conn().execute("SELECT * FROM events WHERE state=? ORDER BY id", (DEAD,))
        return [QueuedEvent(r["id"], ObjectCreated(r["bucket"], r["key"], r["size"]),
                            r["attempts"], r["last_error"]) for r in rows]

    def replay(self) -> int:
        """Put every dead letter back in the queue with a fresh retry budget."""
        with self.db.tx() as c:
            return c.execute("UPDATE events SET state=?, attempts=0, visible_after=0"
                             " WHERE state=?", (READY, DEAD)).rowcount

    def pending(self) -> int:
        return int(self.db.conn().execute(
            "SELECT count(*) FROM events WHERE state=?", (READY,)).fetchone()[0])
