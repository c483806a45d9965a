"""DynamoDB stream of the DVR index (a segment's row added) → ThumbnailWriter.indexed: the
segment's thumbnails, one object per segment (services/dvrthumbs.py), for every root. The
daily schedule → ThumbnailWriter.backfill: rows of the last day the stream missed."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (BatchProcessor, EventType,
                                                   process_partial_response)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord)
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.adapters.aws.dvr import indexed_segment
from fleetcam.config import Settings
from fleetcam.errors import FleetcamError
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
BACKFILL_SPARE_MS = 20_000
"""Milliseconds of the invocation left unused by the backfill (its last segment, the reply)."""
processor = BatchProcessor(event_type=EventType.DynamoDBStreams,
                           raise_on_entire_batch_failure=False)


def record_handler(record: DynamoDBRecord) -> None:
    """The event source passes only INSERTs; other items than segment rows are skipped. A
    poison segment (FleetcamError) is logged and done; anything else (S3 or DynamoDB failing)
    fails the record, which the stream retries."""
    ref = indexed_segment(record.raw_event)
    if ref is None:
        return
    try:
        made = CONTAINER.dvr_thumbs.indexed(*ref)  # type: ignore[union-attr]
    except FleetcamError as e:
        logger.warning("no thumbnails for %s/%s: %s", *ref, e.reason)
        return
    if made:
        metrics.add_metric(name="DvrThumbnails", unit=MetricUnit.Count, value=made)


def backfill(context: LambdaContext) -> dict[str, Any]:
    streams = [s.name for s in CONTAINER.dvr_streams.list()]  # type: ignore[union-attr]
    budget = max(0.0, (context.get_remaining_time_in_millis() - BACKFILL_SPARE_MS) / 1000)
    done, left = CONTAINER.dvr_thumbs.backfill(streams, budget=budget)  # type: ignore[union-attr]
    metrics.add_metric(name="DvrThumbnailsBackfilled", unit=MetricUnit.Count, value=done)
    logger.info("dvr thumbnails backfill", extra={"streams": len(streams), "segments": done,
                                                  "left": left})
    return {"streams": len(streams), "segments": done, "left": left}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" not in event:  # the daily schedule (EventBridge)
        return backfill(context)
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
