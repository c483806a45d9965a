"""The IoT Core custom authorizer's decisions, from the sample events in events/."""
from __future__ import annotations

import base64
import copy
import json
from typing import Any

from fleetcam.services.iot_authorizer import MAX_POLICY_CHARS, authorize, presented_token
from tests.aws.conftest import TOKEN, load_event
from tests.broker import FakeAccess, FakePrincipal

ARN = "arn:aws:iot:us-east-1:123456789012"
NOW = 1_800_000_000.0


def _access() -> FakeAccess:
    return FakeAccess({TOKEN: FakePrincipal(1, "master"),
                       "R" * 64: FakePrincipal(2, "acl", frozenset({7, 8}),
                                               frozenset({"media"}))})


def _policy(answer: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in answer["policyDocuments"]:
        assert len(doc) <= MAX_POLICY_CHARS
        out += json.loads(doc)["Statement"]
    return out


def _allowed(stmts: list[dict[str, Any]], action: str) -> set[str]:
    return {r for s in stmts if s["Effect"] == "Allow" and action in s["Action"]
            for r in s["Resource"]}


def test_mqtt_username_with_the_authorizer_suffix() -> None:
    event = load_event("iot-authorizer-mqtt.json")
    assert presented_token(event) == f"FlespiToken {TOKEN}"
    answer = authorize(event, _access().authenticate, prefix="fleetcam", arn=ARN, now=NOW)
    assert answer["isAuthenticated"] is True and answer["principalId"] == "token1"
    assert answer["refreshAfterInSeconds"] == 300
    assert answer["disconnectAfterInSeconds"] == 86400
    stmts = _policy(answer)
    assert _allowed(stmts, "iot:Subscribe") == {f"{ARN}:topicfilter/*"}
    denied = {r for s in stmts if s["Effect"] == "Deny" for r in s["Resource"]}
    assert f"{ARN}:topic/fleetcam/*" in denied  # even the master token cannot forge events


def test_websocket_with_the_token_as_password_too() -> None:
    answer = authorize(load_event("iot-authorizer-wss.json"), _access().authenticate,
                       prefix="fleetcam", arn=ARN, now=NOW)
    assert answer["isAuthenticated"] is True


def test_strangers_are_refused() -> None:
    access = _access()
    assert authorize(load_event("iot-authorizer-anonymous.json"), access.authenticate,
                     prefix="fleetcam", arn=ARN, now=NOW) == {"isAuthenticated": False}
    event = load_event("iot-authorizer-mqtt.json")
    event["protocolData"]["mqtt"]["username"] = "FlespiToken " + "x" * 64
    assert authorize(event, access.authenticate, prefix="fleetcam", arn=ARN,
                     now=NOW) == {"isAuthenticated": False}
    wrong = load_event("iot-authorizer-wss.json")
    wrong["protocolData"]["mqtt"]["password"] = base64.b64encode(b"other").decode()
    assert authorize(wrong, access.authenticate, prefix="fleetcam", arn=ARN,
                     now=NOW) == {"isAuthenticated": False}
    garbage = copy.deepcopy(wrong)
    garbage["protocolData"]["mqtt"]["password"] = "%%%not base64"
    assert authorize(garbage, access.authenticate, prefix="fleetcam", arn=ARN,
                     now=NOW) == {"isAuthenticated": False}


def test_acl_token_gets_only_its_devices_topics() -> None:
    event = load_event("iot-authorizer-mqtt.json")
    event["protocolData"]["mqtt"]["username"] = "R" * 64
    answer = authorize(event, _access().authenticate, prefix="fleetcam", arn=ARN, now=NOW)
    assert answer["principalId"] == "token2"
    stmts = _policy(answer)
    assert _allowed(stmts, "iot:Subscribe") == {
        f"{ARN}:topicfilter/fleetcam/state/gw/devices/7", f"{ARN}:topicfilter/fleetcam/state/gw/devices/8",
        f"{ARN}:topicfilter/fleetcam/log/gw/devices/7/media_file_*",
        f"{ARN}:topicfilter/fleetcam/log/gw/devices/8/media_file_*"}
    assert _allowed(stmts, "iot:Receive") == {
        r.replace("topicfilter/", "topic/") for r in _allowed(stmts, "iot:Subscribe")}
    assert _allowed(stmts, "iot:Publish") == set()


def test_expiring_token_session_ends_with_it() -> None:
    access = _access()
    access.tokens["E" * 64] = FakePrincipal(3, "acl", frozenset({7}), frozenset({"logs"}),
                                            expire=int(NOW) + 3600)
    event = load_event("iot-authorizer-mqtt.json")
    event["protocolData"]["mqtt"]["username"] = "E" * 64
    answer = authorize(event, access.authenticate, prefix="fleetcam", arn=ARN, now=NOW)
    assert answer["disconnectAfterInSeconds"] == 3600


def test_too_many_devices_fail_closed() -> None:
    access = _access()
    access.tokens["B" * 64] = FakePrincipal(4, "acl", frozenset(range(1, 500)),
                                            frozenset({"media", "connections"}))
    event = load_event("iot-authorizer-mqtt.json")
    event["protocolData"]["mqtt"]["username"] = "B" * 64
    assert authorize(event, access.authenticate, prefix="fleetcam", arn=ARN,
                     now=NOW) == {"isAuthenticated": False}
