"""CloudWatch metrics of the commands queue, through powertools Metrics (embedded metric
format: printed to the function's or the gateway task's log, turned into metrics there)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from fleetcam.services.gateway import OUTCOMES, CommandService

COMMAND_METRICS = {o: "Commands" + o.title().replace("_", "") for o in OUTCOMES}
"""Metric name by outcome: CommandsQueued, CommandsSent, CommandsAnswered, CommandsFailed,
CommandsTimedOut, CommandsExpired, CommandsCanceled."""


def count_commands(commands: CommandService, metrics: Any) -> Callable[[], bool]:
    """Add one to the outcome's metric each time a command takes a step. ``metrics`` is a
    powertools ``Metrics``: a Lambda handler's ``log_metrics`` flushes it; the gateway calls
    the returned function, which flushes what was counted (under the lock the counting
    threads take) and says whether there was anything."""
    lock = threading.Lock()  # the gateway's store calls run in an executor's threads
    counted = [0]

    def count(outcome: str, cmd: Any) -> None:
        with lock:
            metrics.add_metric(name=COMMAND_METRICS[outcome], unit=MetricUnit.Count, value=1)
            counted[0] += 1

    def flush() -> bool:
        with lock:
            if not counted[0]:
                return False
            metrics.flush_metrics()
            counted[0] = 0
            return True

    commands.outcome_listeners.append(count)
    return flush
