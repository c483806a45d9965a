"""DVR export jobs: an export running in the background, its progress readable while it runs
(``GET /streamer/api/v3/streams/{name}/dvr/export/{id}``). Pure: no I/O."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)
BEAT_EVERY = 1.0
"""Seconds between two progress writes of a running job (also its heartbeat)."""
STALE_AFTER = 120.0
"""A running job silent this long lost its worker (a function timeout, a crash): its queue's
retry may take it over."""
KEEP_JOBS = 7 * 86400
"""Seconds a finished job stays readable."""


def new_job_id(now: float) -> str:
    """Sortable by creation time, unguessable: ``{ms:013d}{16 hex}``."""
    return f"{int(now * 1000):013d}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class ExportJob:
    """One ``POST .../dvr/export`` run in the background.

    Attributes:
        job_id: see ``new_job_id``.
        media: the stream name.
        start, duration: the exported range (UTC seconds, seconds), as asked.
        path: where the file goes, as shown (never credentials from the URL).
        status: queued, running, done or failed.
        bytes, total: written so far, and the file's size (known from the index at once).
        seconds: time of the range covered by the bytes written so far.
        created_at, updated_at: seconds (server time); ``updated_at`` is the heartbeat.
        result: the export's result once done; error: the reason once failed.
        options: ``meta`` and ``filter.tracks`` as asked.
    """

    job_id: str
    media: str
    start: int
    duration: int
    path: str
    status: str = QUEUED
    bytes: int = 0
    total: int = 0
    seconds: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)

    def with_changes(self, **changes: Any) -> ExportJob:
        return replace(self, **changes)

    def claimable(self, now: float) -> bool:
        """Whether a worker may (re)start it: queued, or running but silent too long."""
        return self.status == QUEUED or (self.status == RUNNING
                                         and now - self.updated_at > STALE_AFTER)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.job_id, "media": self.media, "from": self.start,
                "duration": self.duration, "path": self.path, "status": self.status,
                "bytes": self.bytes, "total": self.total, "seconds": round(self.seconds, 3),
                "progress": round(self.bytes / self.total, 4) if self.total else 0.0,
                "created_at": self.created_at, "updated_at": self.updated_at,
                "result": self.result, "error": self.error, **self.options}

    def to_store(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "media": self.media, "start": self.start,
                "duration": self.duration, "path": self.path, "status": self.status,
                "bytes": self.bytes, "total": self.total, "seconds": self.seconds,
                "created_at": self.created_at, "updated_at": self.updated_at,
                "result": self.result, "error": self.error, "options": self.options}

    @staticmethod
    def from_store(d: dict[str, Any]) -> ExportJob:
        return ExportJob(job_id=str(d["job_id"]), media=str(d["media"]), start=int(d["start"]),
                         duration=int(d["duration"]), path=str(d["path"]),
                         status=str(d["status"]), bytes=int(d["bytes"]),
                         total=int(d["total"]), seconds=float(d["seconds"]),
                         created_at=float(d["created_at"]), updated_at=float(d["updated_at"]),
                         result=d.get("result"), error=d.get("error"),
                         options=dict(d.get("options") or {}))
