"""SQS (a queued DVR export job) → ExportJobs.run: the export written in one pass, its
progress in the job record that ``GET .../dvr/export/{id}`` reads (services/dvrexport.py)."""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (BatchProcessor, EventType,
                                                   process_partial_response)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.config import Settings
from fleetcam.runtime.aws import build_aws
from fleetcam.runtime.dvrplay import export_jobs

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    """A malformed message is logged and dropped; the export's own failures are recorded in
    its job; only the job store failing fails the item (SQS retries, the job is taken over)."""
    try:
        msg = json.loads(record.body)
        media, job_id, path = str(msg["media"]), str(msg["job_id"]), str(msg["path"])
    except (ValueError, KeyError, TypeError):
        logger.warning("not an export job message: %.200s", record.body)
        return
    job = export_jobs(CONTAINER).run(media, job_id, path)
    if job is not None:
        logger.info("export job %s of %s: %s", job_id, media, job.status)
        metrics.add_metric(name=f"DvrExports{job.status.capitalize()}", unit=MetricUnit.Count,
                           value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
