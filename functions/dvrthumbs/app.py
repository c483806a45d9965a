"""SQS (S3 ObjectCreated of DVR segment objects) → ThumbnailWriter.handle: the segment's
thumbnails, one object per segment (services/dvrthumbs.py), with partial batch failures."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (BatchProcessor, EventType,
                                                   process_partial_response)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.adapters.aws.sqs import object_created_events
from fleetcam.config import Settings
from fleetcam.errors import FleetcamError
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    """A poison object (FleetcamError) is logged and done; anything else (a segment not
    indexed yet, S3 or DynamoDB failing) fails the item, which SQS retries."""
    for event in object_created_events(record.body):
        try:
            made = CONTAINER.dvr_thumbs.handle(event)  # type: ignore[union-attr]
        except FleetcamError as e:
            logger.warning("no thumbnails for %s: %s", event.key, e.reason)
            continue
        if made:
            metrics.add_metric(name="DvrThumbnails", unit=MetricUnit.Count, value=made)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
