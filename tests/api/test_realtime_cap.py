"""Real-time commands capped below the API front's limit (issue 14: API Gateway cuts a
request at 29 s, and the command was neither answered nor cancelled). With
FLEETCAM_REALTIME_WAIT_MAX the request ends at the cap, the command stays queued, and the
caller gets 202 with its id; template.yaml sets the cap below the integration timeout."""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import pytest
from cfnlint.decode import decode

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.api.app import create_app
from fleetcam.config import ENV_REALTIME_WAIT_MAX, Settings
from fleetcam.domain.gateway import Connection
from fleetcam.runtime.local import build_local
from tests.conftest import TOKEN, RecordingBus

ROOT = Path(__file__).resolve().parents[2]


def _client(settings: Settings, clock: ManualClock) -> tuple[object, object]:
    from fastapi.testclient import TestClient

    c = build_local(settings, clock=clock, bus=RecordingBus())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(create_app(c))
    client.headers["Authorization"] = f"FlespiToken {TOKEN}"
    return c, client


@pytest.mark.parametrize("cap", [1.0, 0.0], ids=["capped", "uncapped"])
def test_a_capped_command_stays_queued_and_the_caller_is_told(
        settings: Settings, clock: ManualClock, cap: float) -> None:
    c, client = _client(dataclasses.replace(settings, realtime_wait_max=cap), clock)
    (d,) = c.devices.create([{"ident": "013900000001"}])
    c.connections.registry.open(Connection(id=1, device_id=d.id, ident=d.ident,
                                           established=clock.now(), source="203.0.113.7"))
    t0 = time.monotonic()
    r = client.post(f"/gw/devices/{d.id}/commands",  # nobody answers: no gateway runs
                    json=[{"name": "take_photo", "timeout": 5, "properties": {"channel": 1}}])
    waited = time.monotonic() - t0
    (err,) = r.json()["errors"]
    (cmd,) = c.commands.store.pending(d.id) or c.commands.store.results((d.id,))
    if cap:
        assert r.status_code == 202 and 1 <= waited < 4, (r.text, waited)
        assert err["ids"] == [cmd.id] and "stays queued" in err["reason"]
        assert cmd.status == "queued"  # still to be sent, its ttl running
    else:
        assert r.status_code == 504 and waited >= 5, (r.text, waited)
        assert cmd.status == "canceled"


def test_the_template_caps_commands_below_api_gateways_timeout() -> None:
    tpl, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    fn = tpl["Resources"]["ApiFunction"]["Properties"]
    cap = float(fn["Environment"]["Variables"][ENV_REALTIME_WAIT_MAX])
    assert 5 <= cap <= fn["Timeout"] - 3 and fn["Timeout"] <= 29
    assert Settings.from_env({ENV_REALTIME_WAIT_MAX: "25"}).realtime_wait_max == 25.0
