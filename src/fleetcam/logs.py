"""Log set-up of the long-running commands: one line per meaningful event at INFO.

The embedded broker (amqtt) and the state-machine library under it log every connection and
state change at INFO; that chatter goes to DEBUG-only unless ``FLEETCAM_LOG_LEVEL=DEBUG``.
"""
from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CHATTY = ("amqtt", "transitions", "passlib", "websockets", "uvicorn.error", "mqtt5")
"""Libraries whose INFO lines describe their own machinery, not something a user did."""


JSON_ENV = "FLEETCAM_LOG_JSON"
"""``1``: one JSON object per line, in the functions' shape (powertools' formatter: level,
location, message, timestamp, service, exception), as the gateway task logs on AWS."""


def configure_logging(level: str = "INFO", *, as_json: bool | None = None) -> None:
    """Root handler at ``level``; the chatty libraries at WARNING unless ``level`` is DEBUG.

    Args:
        as_json: structured lines (default: from FLEETCAM_LOG_JSON).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if as_json is None:
        as_json = os.environ.get(JSON_ENV, "").lower() in ("1", "true", "yes", "on")
    if as_json:
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        handler = logging.StreamHandler()
        handler.setFormatter(LambdaPowertoolsFormatter(service="fleetcam-gateway"))
        logging.basicConfig(level=numeric, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=numeric, format=FORMAT)
    logging.getLogger().setLevel(numeric)
    quiet = logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
