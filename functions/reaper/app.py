"""DynamoDB stream (TTL removals of media records) → delete the object, media_file_expired."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (BatchProcessor, EventType,
                                                   process_partial_response)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord)
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.adapters.aws.dynamodb import media_from_image
from fleetcam.config import Settings
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
processor = BatchProcessor(event_type=EventType.DynamoDBStreams,
                           raise_on_entire_batch_failure=False)


def record_handler(record: DynamoDBRecord) -> None:
    """The event source's filter passes only TTL removals; each is reaped once or retried,
    or put back if the device's media_ttl today keeps the file."""
    f = media_from_image(record.raw_event["dynamodb"]["OldImage"])
    index: Any = CONTAINER.index
    if CONTAINER.retention.ttl_removed(f, restore=index.restore, count_off=index.expired):
        metrics.add_metric(name="MediaExpiredByTtl", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
