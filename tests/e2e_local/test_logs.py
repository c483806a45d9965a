"""The server's INFO log: one access line per request, no secrets, no library chatter."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleetcam.api.access import redact_query
from fleetcam.logs import CHATTY, configure_logging
from tests.e2e_local import TOKEN, http, make_settings, mqtt_client, run, serving


@pytest.fixture()
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The levels ``fleetcam serve`` sets, restored afterwards."""
    saved = {name: logging.getLogger(name).level for name in ("", *CHATTY)}
    configure_logging("INFO")
    caplog.set_level(logging.INFO)
    yield caplog
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_one_access_line_per_request_without_tokens(
        tmp_path: Path, info_logs: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path / "data")

    async def scenario() -> None:
        async with serving(settings), http(settings) as api:
            info_logs.clear()
            assert (await api.get("/gw/devices/all")).status_code == 200
            assert (await api.get("/media/nope", params={"token": "s3cret-share"})).status_code \
                in (401, 403, 404)
            assert (await http(settings, token=None).get("/gw/devices/all")).status_code == 401

    run(scenario())
    access = [r.getMessage() for r in info_logs.records if r.name == "fleetcam.access"]
    assert len(access) == 3, access
    assert access[0].startswith("GET /gw/devices/all 200 ")
    assert access[1].startswith("GET /media/nope?token=*** ")
    assert access[2].startswith("GET /gw/devices/all 401 ")
    every = "\n".join(r.getMessage() for r in info_logs.records
                      if r.name != "httpx")  # the test's own client logs its URLs
    assert TOKEN not in every and "s3cret-share" not in every


def test_broker_and_state_machine_chatter_is_debug_only(
        tmp_path: Path, info_logs: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path / "data")

    async def scenario() -> None:
        async with serving(settings):
            for _ in range(2):
                async with mqtt_client(settings.mqtt_port) as client:
                    await client.subscribe("fleetcam/#")

    run(scenario())
    info = [r for r in info_logs.records if r.levelno >= logging.INFO]
    chatter = [f"{r.name}: {r.getMessage()}" for r in info
               if r.name.split(".")[0] in ("amqtt", "transitions", "passlib", "uvicorn")]
    assert chatter == []
    assert len(info) <= 3, [f"{r.name}: {r.getMessage()}" for r in info]


def test_query_redaction() -> None:
    assert redact_query("") == ""
    assert redact_query("token=abc&preview=jpeg") == "token=***&preview=jpeg"
    assert redact_query("X-Amz-Signature=ff&X-Amz-Credential=k") == (
        "X-Amz-Signature=***&X-Amz-Credential=***")
    assert redact_query('data={"count":3}') == 'data={"count":3}'
    assert redact_query("a=" + "x" * 1000).endswith("...")
