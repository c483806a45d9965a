"""The functions count commands by outcome as powertools metrics (CloudWatch's embedded
metric format in their logs), the gateway the same (tests/gateway/test_metrics.py)."""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fleetcam.domain.gateway import Command
from tests.aws.conftest import Aws, LambdaContext, load_event
from tests.gateway.test_metrics import _emf

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]


def _call(api: ModuleType, context: LambdaContext, method: str, path: str,
          body: Any = None) -> Any:
    event = copy.deepcopy(load_event("api-get-media.json"))
    event.update({"httpMethod": method, "path": path,
                  "pathParameters": {"proxy": path.removeprefix("/gw/")},
                  "body": None if body is None else json.dumps(body)})
    event["headers"]["content-type"] = "application/json"
    r = api.handler(event, context)
    assert r["statusCode"] == 200, r["body"]
    return json.loads(r["body"])["result"]


def test_the_api_counts_queued_and_canceled_commands(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        capsys: pytest.CaptureFixture[str]) -> None:
    api = load_handler("api")
    (d,) = api.CONTAINER.devices.create([{"ident": "013912340001"}])
    capsys.readouterr()
    queued = _call(api, context, "POST", f"/gw/devices/{d.id}/commands-queue",
                   [{"name": "take_photo", "properties": {"channel": 1}, "ttl": 60}] * 2)
    assert _emf(capsys.readouterr().out) == {"CommandsQueued": 2}
    _call(api, context, "DELETE", f"/gw/devices/{d.id}/commands-queue/{queued[0]['id']}")
    assert _emf(capsys.readouterr().out) == {"CommandsCanceled": 1}


def test_the_sweeper_counts_expired_commands(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        capsys: pytest.CaptureFixture[str]) -> None:
    sweeper = load_handler("sweeper")
    (d,) = sweeper.CONTAINER.devices.create([{"ident": "013912340002"}])
    old = time.time() - 3600
    for _ in range(3):
        sweeper.CONTAINER.commands.store.add(Command(
            id=0, device_id=d.id, name="take_photo", properties={"channel": 1},
            queued=old, expires=old + 60))
    capsys.readouterr()
    assert sweeper.handler(load_event("schedule-sweeper.json"), context)["commands_expired"] == 3
    totals = _emf(capsys.readouterr().out)
    assert totals["CommandsExpired"] == 3
