"""SQS (S3 ObjectCreated notifications) → IngestService.handle, with partial batch failures."""
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
from fleetcam.adapters.aws.metrics import count_commands
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
count_commands(CONTAINER.commands, metrics)  # CommandsQueued, ...Answered, ...TimedOut
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    """Poison objects (FleetcamError) are logged and done; anything else fails the item."""
    for event in object_created_events(record.body):
        try:
            f = CONTAINER.ingest.handle(event)
            metrics.add_metric(name="ObjectsIngested", unit=MetricUnit.Count, value=1)
            count_file(f, event)
        except FleetcamError as e:
            logger.warning("rejected %s: %s", event.key, e.reason)
            metrics.add_metric(name="ObjectsRejected", unit=MetricUnit.Count, value=1)


def count_file(f: Any, event: Any) -> None:
    """Photos stored, clips packaged (a raw clip handled: its MP4 arrives as a new object),
    clips stored and bytes ingested, as CloudWatch metrics."""
    if f is None:
        if event.key.startswith("raw/"):
            metrics.add_metric(name="ClipsPackaged", unit=MetricUnit.Count, value=1)
        return
    kind = "PhotosStored" if f.mime.startswith("image/") else "ClipsStored"
    metrics.add_metric(name=kind, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesIngested", unit=MetricUnit.Bytes, value=f.size)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
