"""``POST /streamer/api/v3/streams/{name}/dvr/export``: an archive range written as one MP4
to a local path or to S3, in one pass from the stored fragments (no temporary copy of the
media), never overwriting, with progress while it runs."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

from fleetcam.domain.dvrjobs import (BEAT_EVERY, DONE, FAILED, KEEP_JOBS, RUNNING, STALE_AFTER,
                                     ExportJob, new_job_id)
from fleetcam.errors import Conflict, FleetcamError, Invalid, NotFound
from fleetcam.media import archive
from fleetcam.ports import Clock, ExportJobStore
from fleetcam.services.dvrplay import DvrPlayback

log = logging.getLogger(__name__)
JOB_ID = re.compile(r"^\d{13}[0-9a-f]{16}$")

PROGRESS_EVERY = 0.5
"""Seconds between progress reports."""


@dataclass(frozen=True)
class Target:
    """Where an export goes.

    Attributes:
        kind: ``file`` or ``s3``.
        path: the local path (``file``).
        bucket, key: the object (``s3``).
        endpoint: ``http(s)://host[:port]`` from Flussonic's ``s3://KEY:SECRET@host/bucket/key``
            form (``s3s://`` for https); empty: AWS's own endpoint.
        access_key, secret_key: from the URL; empty: the environment's credentials.
    """

    kind: str
    path: str = ""
    bucket: str = ""
    key: str = ""
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""

    def public(self) -> str:
        return self.path if self.kind == "file" else f"s3://{self.bucket}/{self.key}"


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def parse_target(path: str, roots: list[str], default_root: str) -> Target:
    """Read ``path=``: an absolute path under one of ``roots``, a relative one (under
    ``default_root``), ``s3://bucket/key`` (the environment's credentials) or Flussonic's
    ``s3://KEY:SECRET@host[:port]/bucket/key`` (``s3s://`` for https).

    Raises:
        Invalid: malformed, not ``.mp4``, or outside the allowed roots.
    """
    if not path or len(path) > 1024 or "\x00" in path:
        raise Invalid("path is required (a file path or s3://bucket/key)", field="path")
    if path.startswith(("s3://", "s3s://")):
        u = urlsplit(path)
        if "@" in u.netloc:
            creds, _, host = u.netloc.rpartition("@")
            access, _, secret = creds.partition(":")
            bucket, _, key = u.path.lstrip("/").partition("/")
            scheme = "https" if u.scheme == "s3s" or host.endswith("amazonaws.com") else "http"
            target = Target("s3", bucket=bucket, key=unquote(key), endpoint=f"{scheme}://{host}",
                            access_key=unquote(access), secret_key=unquote(secret))
        else:
            target = Target("s3", bucket=u.netloc, key=unquote(u.path.lstrip("/")))
        if not _BUCKET.match(target.bucket) or not target.key or target.key.endswith("/"):
            raise Invalid("s3 path must be s3://bucket/key (or s3://KEY:SECRET@host/bucket/key)",
                          field="path")
        return target
    p = PurePosixPath(path)
    if ".." in p.parts:
        raise Invalid("path may not contain '..'", field="path")
    if p.suffix.lower() != ".mp4":
        raise Invalid("path must end in .mp4", field="path")
    full = p if p.is_absolute() else PurePosixPath(default_root) / p
    if not any(full.is_relative_to(PurePosixPath(r)) for r in [default_root, *roots]):
        raise Invalid("path is outside the export roots (FLEETCAM_DVR_EXPORT_ROOTS)",
                      field="path")
    return Target("file", path=str(full))


class Sink(Protocol):
    """An export's destination: bytes in order, then commit (visible whole) or abort."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Raises Conflict when the destination appeared meanwhile."""
        ...

    def abort(self) -> None: ...


SinkFactory = Callable[[Target], Sink]
"""Opens a sink; raises Conflict if the destination exists, Invalid if it cannot be used."""


@dataclass
class Progress:
    bytes: int
    total: int
    seconds: float
    duration: float

    def as_json(self) -> dict[str, object]:
        return {"bytes": self.bytes, "total": self.total, "seconds": round(self.seconds, 3),
                "duration": round(self.duration, 3)}


class Exporter:
    def __init__(self, playback: DvrPlayback, sinks: dict[str, SinkFactory], roots: list[str],
                 default_root: str) -> None:
        self.playback, self.sinks = playback, sinks
        self.roots, self.default_root = roots, default_root

    def prepare(self, name: str, start: int, duration: int, path: str, *, meta: bool,
                tracks: str | None = None) -> tuple[archive.Layout, Target, Sink, object]:
        """Everything that can fail with a 4xx, before any byte is written."""
        target = parse_target(path, self.roots, self.default_root)
        factory = self.sinks.get(target.kind)
        if factory is None:
            raise Invalid(f"export to {target.kind} is not available in this runtime",
                          field="path")
        stream = self.playback.stream(name)
        extra: dict[str, object] = {}
        if meta:
            extra = {"title": stream.title or name, "exported_at": int(time.time()),
                     "exported_to": target.public()}
        dl = self.playback.download(name, start, duration, tracks=tracks, meta=extra)
        sink = factory(target)
        return dl.layout, target, sink, dl

    def run(self, name: str, layout: archive.Layout, target: Target, sink: Sink, dl: object,
            progress: Callable[[Progress], None] | None = None) -> dict[str, object]:
        """Write the file in one pass. Raises Conflict if the destination appeared."""
        written = 0
        last = 0.0
        total = layout.total
        started = time.monotonic()
        duration = layout.duration_ms / 1000
        try:
            for chunk in archive.render(layout, dl.read, on_bad=dl.on_bad):  # type: ignore[attr-defined]
                sink.write(chunk)
                written += len(chunk)
                now = time.monotonic()
                if progress is not None and now - last >= PROGRESS_EVERY:
                    last = now
                    progress(Progress(written, total, self._covered(layout, written), duration))
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        if written != total:
            raise RuntimeError(f"export wrote {written} of {total} bytes")
        elapsed = time.monotonic() - started
        return {"path": target.public(), "bytes": written, "from": layout.start_ms / 1000,
                "duration": duration, "gaps": [g.as_json() for g in layout.gaps],
                "seconds": round(elapsed, 3),
                "mbytes_per_second": round(written / 1e6 / elapsed, 1) if elapsed else None}

    @staticmethod
    def _covered(layout: archive.Layout, written: int) -> float:
        return layout.time_at(written) / 1000


class ExportJobs:
    """Exports in the background, each with a job record whose progress (bytes written, time
    covered) is readable while it runs: the way to watch an export where a response cannot
    stream (API Gateway and Lambda buffer it), and in both runtimes with ``async=true``.

    Args:
        dispatch: ``(job, path) -> None`` starts ``run(job.media, job.job_id, path)``
            elsewhere: a thread locally, a queued message for the export function on AWS.
        inline_credentials: whether ``s3://KEY:SECRET@…`` paths may be used; False where the
            path would travel through a queue (the secret would sit in it, and its DLQ).
    """

    def __init__(self, exporter: Exporter, store: ExportJobStore, clock: Clock,
                 dispatch: Callable[[ExportJob, str], None], *,
                 inline_credentials: bool = True) -> None:
        self.exporter, self.store, self.clock, self.dispatch = exporter, store, clock, dispatch
        self.inline_credentials = inline_credentials

    def start(self, name: str, start: int, duration: int, path: str, *, meta: bool,
              tracks: str | None = None) -> ExportJob:
        """Check everything a 4xx can say now (range, path, existing file), record the job,
        hand it over. Raises Invalid, NotFound, Conflict."""
        target = parse_target(path, self.exporter.roots, self.exporter.default_root)
        if target.access_key and not self.inline_credentials:
            raise Invalid("a background export does not take credentials in its path here: "
                          "use s3://bucket/key (the export function's role) or export without "
                          "async", field="path")
        layout, target, sink, _ = self.exporter.prepare(name, start, duration, path, meta=meta,
                                                        tracks=tracks)
        sink.abort()  # opened to check the destination; the worker opens its own
        now = self.clock.now()
        options: dict[str, object] = {"meta": meta}
        if tracks:
            options["filter.tracks"] = tracks
        job = ExportJob(new_job_id(now), name, start, duration, target.public(),
                        total=layout.total, created_at=now, updated_at=now, options=options)
        self.store.purge(name, now - KEEP_JOBS)
        self.store.create(job)
        self.dispatch(job, path)
        return job

    def get(self, name: str, job_id: str) -> ExportJob:
        """Raises NotFound. A running job whose worker went silent reads as ``stalled``."""
        job = self.store.get(name, job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise NotFound(f"no export job {job_id[:40]!r} of {name[:80]!r}")
        if job.status == RUNNING and self.clock.now() - job.updated_at > STALE_AFTER:
            job = job.with_changes(status="stalled",
                                   error="its worker stopped reporting; it is retried")
        return job

    def run(self, media: str, job_id: str, path: str) -> ExportJob | None:
        """The worker's part: claim the job, export, record progress every ``BEAT_EVERY``
        seconds and the end. None when the job is not (or no longer) this worker's. Failures
        are recorded in the job (a new POST retries), not raised, except the store's own."""
        job = self.store.claim(media, job_id, self.clock.now())
        if job is None:
            return None
        last = self.clock.now()

        def progress(p: Progress) -> None:
            nonlocal job, last
            now = self.clock.now()
            if now - last >= BEAT_EVERY:
                last = now
                job = job.with_changes(bytes=p.bytes, total=p.total, seconds=p.seconds,
                                       updated_at=now)
                self.store.save(job)

        try:
            layout, target, sink, dl = self.exporter.prepare(
                media, job.start, job.duration, path, meta=bool(job.options.get("meta")),
                tracks=job.options.get("filter.tracks"))  # type: ignore[arg-type]
            result = self.exporter.run(media, layout, target, sink, dl, progress=progress)
        except FleetcamError as e:
            job = job.with_changes(status=FAILED, error=e.reason, updated_at=self.clock.now())
        except Exception as e:  # noqa: BLE001 - recorded in the job, logged here
            log.exception("dvr %s: export job %s failed", media, job_id)
            job = job.with_changes(status=FAILED, error=f"export failed: {type(e).__name__}",
                                   updated_at=self.clock.now())
        else:
            job = job.with_changes(status=DONE, bytes=int(result["bytes"]),  # type: ignore[call-overload]
                                   seconds=float(result["duration"]),  # type: ignore[arg-type]
                                   result=result, updated_at=self.clock.now())
        self.store.save(job)
        return job


__all__ = ["Conflict", "ExportJobs", "Exporter", "Progress", "Target", "parse_target"]
