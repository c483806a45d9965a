"""EventBridge schedule → retention sweep (TTL and rotation), unfinished object deletions,
commands whose ttl passed, and DVR retention (expiration, storage limit, episodes)."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from fleetcam.config import Settings
from fleetcam.adapters.aws.metrics import count_commands
from fleetcam.runtime.aws import build_aws

logger, tracer, metrics = Logger(), Tracer(), Metrics()
CONTAINER = build_aws(Settings.from_env())  # cold start, once
count_commands(CONTAINER.commands, metrics)  # CommandsQueued, ...Answered, ...TimedOut
RETIME_BUDGET = 60.0
"""Seconds of each run spent moving files' expiry after media_ttl changes (the rest resumes
at the next run, five minutes later; the reaper restores any file TTL takes meanwhile)."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    retimed = CONTAINER.retention.retime(budget=RETIME_BUDGET)
    expired = CONTAINER.retention.sweep()
    deleted = CONTAINER.media.finish_deletions()
    commands = CONTAINER.commands.expire()
    dvr_segments = CONTAINER.dvr.sweep() if CONTAINER.dvr is not None else 0
    metrics.add_metric(name="MediaExpired", unit=MetricUnit.Count, value=expired)
    logger.info("sweep done", extra={"expired": expired, "objects_deleted": deleted,
                                     "commands_expired": commands, "retime_batches": retimed,
                                     "dvr_segments_deleted": dvr_segments})
    return {"expired": expired, "objects_deleted": deleted, "commands_expired": commands,
            "retime_batches": retimed, "dvr_segments_deleted": dvr_segments}
