"""Log set-up of the long-running commands: one line per meaningful event at INFO.

The embedded broker (amqtt) and the state-machine library under it log every connection and
state change at INFO; that chatter goes to DEBUG-only unless ``FLEETCAM_LOG_LEVEL=DEBUG``.
"""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CHATTY = ("amqtt", "transitions", "passlib", "websockets", "uvicorn.error", "mqtt5")
"""Libraries whose INFO lines describe their own machinery, not something a user did."""


def configure_logging(level: str = "INFO") -> None:
    """Root handler at ``level``; the chatty libraries at WARNING unless ``level`` is DEBUG."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.basicConfig(level=numeric, format=FORMAT)
    logging.getLogger().setLevel(numeric)
    quiet = logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
