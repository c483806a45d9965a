"""Wiring of the DVR's read side (both runtimes): the playback service and export sinks."""
from __future__ import annotations

from typing import Any

from fleetcam.config import Settings
from fleetcam.services.dvrexport import SinkFactory, Target


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
