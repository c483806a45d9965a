"""Wiring of the DVR's read side (both runtimes): the playback service and export sinks."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleetcam.config import Settings
from fleetcam.domain.dvrjobs import ExportJob
from fleetcam.errors import FleetcamError, NotFound
from fleetcam.services.dvrexport import Exporter, ExportJobs, SinkFactory, Target
from fleetcam.services.dvrplay import DvrPlayback, Thumbnails

if TYPE_CHECKING:
    from fleetcam.runtime.container import Container

log = logging.getLogger(__name__)


class Busy(FleetcamError):
    """Too much background work queued here (503)."""

    http_status = 503


def playback(c: Container) -> DvrPlayback:
    """The read side over the container's DVR ports, built once per container."""
    svc = c.extras.get("dvr_playback")
    if svc is None:
        if c.dvr_streams is None or c.dvr_index is None or c.dvr_storage is None:
            raise NotFound("the cloud DVR is not configured in this runtime")
        svc = DvrPlayback(c.dvr_streams, c.dvr_index, c.dvr_storage, c.episodes, c.clock,
                          tail=lambda: c.dvr_tail)
        c.extras["dvr_playback"] = svc
    return svc  # type: ignore[no-any-return]


def thumbnails(c: Container) -> Thumbnails:
    th = c.extras.get("dvr_thumbnails")
    if th is None:
        from fleetcam.media.dvrthumb import keyframe_jpeg, keyframe_mp4

        th = Thumbnails(playback(c), keyframe_jpeg, keyframe_mp4)
        c.extras["dvr_thumbnails"] = th
    return th  # type: ignore[no-any-return]


def exporter(c: Container) -> Exporter:
    ex = c.extras.get("dvr_exporter")
    if ex is None:
        ex = Exporter(playback(c), export_sinks(c.settings),
                      [str(r) for r in c.settings.dvr_export_roots],
                      str(c.settings.data_dir / "exports"))
        c.extras["dvr_exporter"] = ex
    return ex  # type: ignore[no-any-return]


LOCAL_EXPORTS = 2
"""Background exports running at once in a local server (more wait, as queued)."""
LOCAL_QUEUED = 16
"""Background exports waiting at most in a local server (more: 503)."""


def export_jobs(c: Container) -> ExportJobs:
    """Background exports with readable progress: on AWS queued for the export function
    (``FLEETCAM_DVR_EXPORT_QUEUE_URL``), locally a thread in this process."""
    jobs = c.extras.get("dvr_export_jobs")
    if jobs is None:
        store = c.extras.get("dvr_export_store")
        if store is None:
            raise NotFound("DVR export jobs are not configured in this runtime")
        url = c.settings.dvr_export_queue_url
        if url:
            sqs = c.extras["sqs"]()

            def dispatch(job: ExportJob, path: str) -> None:
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
                    {"media": job.media, "job_id": job.job_id, "path": path}))
        else:
            dispatch = _threads(c)
        jobs = ExportJobs(exporter(c), store, c.clock, dispatch, inline_credentials=not url)
        jobs.remote = bool(url)  # type: ignore[attr-defined]
        c.extras["dvr_export_jobs"] = jobs
    return jobs  # type: ignore[no-any-return]


def _threads(c: Container) -> Callable[[ExportJob, str], None]:
    running = threading.BoundedSemaphore(LOCAL_EXPORTS)
    waiting = threading.BoundedSemaphore(LOCAL_QUEUED)

    def work(job: ExportJob, path: str) -> None:
        try:
            with running:
                export_jobs(c).run(job.media, job.job_id, path)
        except Exception:  # noqa: BLE001 - the job store itself failing
            log.exception("dvr %s: export job %s lost", job.media, job.job_id)
        finally:
            waiting.release()

    def dispatch(job: ExportJob, path: str) -> None:
        if not waiting.acquire(blocking=False):
            raise Busy("too many exports are running or waiting; try again later")
        threading.Thread(target=work, args=(job, path), name=f"dvr-export-{job.job_id}",
                         daemon=True).start()

    return dispatch


def export_sinks(settings: Settings) -> dict[str, SinkFactory]:
    """Local files always; S3 when boto3 is installed (the ``aws`` extra)."""
    from fleetcam.adapters.local.exports import FileSink

    sinks: dict[str, SinkFactory] = {"file": FileSink}
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - the aws extra is missing
        return sinks
    from fleetcam.adapters.aws.s3export import s3_sink_factory

    def client_for(t: Target) -> Any:
        kwargs: dict[str, Any] = {}
        endpoint = t.endpoint or settings.aws_endpoint_url
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if t.access_key:
            kwargs.update(aws_access_key_id=t.access_key, aws_secret_access_key=t.secret_key)
        return boto3.client("s3", region_name=settings.aws_region,
                            config=Config(signature_version="s3v4",
                                          retries={"mode": "standard"}), **kwargs)

    sinks["s3"] = s3_sink_factory(client_for)
    return sinks


STAGE_ABOVE = 4 * 1024 * 1024
"""Downloads larger than this are staged in S3 and served from there on a runtime whose store
pre-signs (AWS): a Lambda response holds at most 6 MB (about 4.5 MB of binary once
base64-encoded), and a streamed one falls to ~2 MB/s after 6 MB (docs/aws.md)."""
STAGE_PREFIX = "dvr-downloads/"


def staged_download(c: Container, name: str, layout: Any, dl: Any, etag: str,
                    disposition: str) -> str | None:
    """A pre-signed link to the download, written once to the media bucket under
    ``dvr-downloads/`` (a lifecycle rule expires it after a day); None where the store cannot
    pre-sign (local: the server streams it)."""
    from fleetcam.errors import Conflict
    from fleetcam.media import archive

    presign = getattr(c.store, "presigned_url", None)
    if presign is None or layout.total <= STAGE_ABOVE:
        return None
    key = f"{STAGE_PREFIX}{name}/{etag}.mp4"
    try:
        c.store.head(key)
    except NotFound:
        from fleetcam.adapters.aws.s3export import S3Sink

        try:
            sink = S3Sink(Target("s3", bucket=c.store.bucket, key=key),  # type: ignore[attr-defined]
                          c.store.s3)  # type: ignore[attr-defined]
            try:
                for chunk in archive.render(layout, dl.read, on_bad=dl.on_bad):
                    sink.write(chunk)
                sink.commit()
            except BaseException:
                sink.abort()
                raise
        except Conflict:
            pass  # a concurrent request staged it first: same bytes
    return presign(key, c.settings.share_link_expiry, content_type="video/mp4",  # type: ignore[no-any-return]
                   disposition=disposition)
