"""The gateway task's logs on AWS: one JSON object per line, shaped like the functions'."""
from __future__ import annotations

import json
import logging

import pytest

from fleetcam.logs import configure_logging


def test_json_lines_carry_level_message_and_service(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", as_json=True)
        logging.getLogger("fleetcam.gateway").warning("device %s dropped", "013900000001")
        try:
            raise ValueError("bad frame")
        except ValueError:
            logging.getLogger("fleetcam.gateway").exception("session failed")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second = lines[-2:]
    assert first["level"] == "WARNING" and first["message"] == "device 013900000001 dropped"
    assert first["service"] == "fleetcam-gateway" and "timestamp" in first
    assert second["exception_name"] == "ValueError" and "bad frame" in second["exception"]
