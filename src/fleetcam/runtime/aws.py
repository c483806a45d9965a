"""The AWS composition root: S3, DynamoDB (PynamoDB), IoT Core. Used by every Lambda."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from fleetcam.adapters.aws import models
from fleetcam.adapters.aws.dvr import (DynamoDvrIndex, DynamoDvrStreamStore,
                                     DynamoEpisodeStore, S3DvrStorage)
from fleetcam.adapters.aws.dynamodb import DynamoDeviceRepo, DynamoLogStore, DynamoMediaIndex
from fleetcam.adapters.aws.gateway_dynamodb import (DynamoCommandStore,
                                                    DynamoConnectionRegistry,
                                                    DynamoMediaRequestStore, DynamoMessageStore,
                                                    DynamoRuleStore)
from fleetcam.adapters.aws.iot import IotEventBus
from fleetcam.adapters.aws.s3 import S3ObjectStore
from fleetcam.adapters.aws.tokens import DynamoShareStore, DynamoTokenStore
from fleetcam.adapters.local.clock import SystemClock
from fleetcam.config import Settings
from fleetcam.domain.access import token_hash
from fleetcam.ports import Clock, EventBus
from fleetcam.runtime.container import Container, attach_dvr, wire
from fleetcam.services.dvr import WatchedTail


SWEEP_WORKERS = 8
"""Threads of a sweep's removals (each removal: a transaction, a DeleteObject, a log put
and a publish, so a few round trips of some 10-30 ms on AWS)."""
THUMB_READS = 1
"""GETs of a segment object to make its thumbnails (docs/dvr.md): one ranged read from the
first keyframe it shows to the last (S3 bills requests, not bytes read in the region)."""


def client(settings: Settings, service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client; ``settings.aws_endpoint_url`` (moto's server in tests) wins."""
    from botocore.config import Config

    return boto3.client(service, region_name=settings.aws_region,
                        endpoint_url=settings.aws_endpoint_url or endpoint_url or None,
                        config=Config(signature_version="s3v4", retries={"mode": "standard"}))


def admin_token(settings: Settings) -> str:
    """FLEETCAM_ADMIN_TOKEN if set (tests, ``sam local``), else the Secrets Manager secret
    FLEETCAM_ADMIN_TOKEN_SECRET names, read once: build_aws runs once per cold start, so a
    rotated token reaches each execution environment when it is replaced (docs/aws.md)."""
    if settings.admin_token or not settings.admin_token_secret:
        return settings.admin_token
    value = client(settings, "secretsmanager").get_secret_value(
        SecretId=settings.admin_token_secret)["SecretString"]
    return str(value).strip()


def build_aws(settings: Settings, *, clock: Clock | None = None,
              bus: EventBus | None = None) -> Container:
    """Build the graph once per process (Lambda cold start, gateway start)."""
    if not settings.media_bucket:
        raise RuntimeError("FLEETCAM_MEDIA_BUCKET is not set")
    models.bind(settings.tables, region=settings.aws_region,
                host=settings.aws_endpoint_url or None)
    iot_url = f"https://{settings.iot_endpoint}" if settings.iot_endpoint else None
    clock = clock or SystemClock()
    container = wire(
        settings, clock=clock,
        store=S3ObjectStore(settings.media_bucket, client(settings, "s3")),
        index=DynamoMediaIndex(), device_repo=DynamoDeviceRepo(), logs=DynamoLogStore(settings.log_ttl),
        bus=bus or IotEventBus(client(settings, "iot-data", iot_url)),
        message_store=DynamoMessageStore(settings.messages_ttl), registry=DynamoConnectionRegistry(clock.now),
        command_store=DynamoCommandStore(), rule_store=DynamoRuleStore(),
        media_requests=DynamoMediaRequestStore(),
        token_store=DynamoTokenStore(), share_store=DynamoShareStore(),
        admin_hash=token_hash(token) if (token := admin_token(settings)) else None,
        sqs=lambda: client(settings, "sqs"))
    # TTL is the sweeper's (by-shard-expiry), not each upload's: no per-device upload-time
    # index to write for every file (docs/aws.md, "Tables")
    container.retention.per_device_ttl = False
    attach_dvr(container, streams=DynamoDvrStreamStore(), index=DynamoDvrIndex(),
               episodes=DynamoEpisodeStore(),
               storage=S3DvrStorage(settings.media_bucket, client(settings, "s3"),
                                    settings.dvr_buckets),
               thumb_reads=THUMB_READS)
    # the API cannot reach the gateway's memory: readers of the newest minutes make the
    # recorder store short objects while they watch (the gateway replaces this with itself)
    container.dvr_tail = WatchedTail(container.dvr_index, container.clock)
    # a sweep removes expired files over a bounded pool (boto3 clients are thread-safe)
    container.retention.workers = ThreadPoolExecutor(SWEEP_WORKERS,
                                                     thread_name_prefix="sweep")
    if container.dvr is not None:  # the DVR sweep's streams too (run after, same pool)
        container.dvr.workers = container.retention.workers
    from fleetcam.adapters.aws.dvrjobs import DynamoExportJobStore

    container.extras["dvr_export_store"] = DynamoExportJobStore()
    return container
