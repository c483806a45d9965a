"""Wiring of the DVR's read side (both runtimes): the playback service and export sinks."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetcam.config import Settings
from fleetcam.errors import NotFound
from fleetcam.services.dvrexport import Exporter, SinkFactory, Target
from fleetcam.services.dvrplay import DvrPlayback, Thumbnails

if TYPE_CHECKING:
    from fleetcam.runtime.container import Container


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
