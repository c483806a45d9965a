"""The IoT Core custom authorizer's handler with the sample events, its tokens in DynamoDB on
moto's server: the admin token, a device-scoped token, and the same token once revoked."""
from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tests.aws.conftest import LambdaContext, load_event

Loader = Callable[[str], ModuleType]


def _resources(answer: dict[str, Any], action: str) -> set[str]:
    out = set()
    for doc in answer["policyDocuments"]:
        for stmt in json.loads(doc)["Statement"]:
            if stmt["Effect"] == "Allow" and action in stmt["Action"]:
                out.update(stmt["Resource"])
    return out


def test_authorizer_with_tokens_in_dynamodb(load_handler: Loader) -> None:
    fn = load_handler("authorizer")
    context = LambdaContext()
    arn = "arn:aws:iot:us-east-1:123456789012"

    admin = fn.handler(load_event("iot-authorizer-mqtt.json"), context)
    assert admin["isAuthenticated"] is True and admin["principalId"] == "admin"
    assert _resources(admin, "iot:Subscribe") == {f"{arn}:topicfilter/*"}
    assert fn.handler(load_event("iot-authorizer-wss.json"), context)["isAuthenticated"]
    assert fn.handler(load_event("iot-authorizer-anonymous.json"), context) == {
        "isAuthenticated": False}

    [created] = fn.CONTAINER.access.create([{"info": "camera viewer", "ttl": 3600, "access": {
        "type": 2, "acl": [{"uri": "gw/devices", "ids": [7], "methods": ["GET"],
                            "submodules": [{"name": "media", "methods": ["GET"]}]}]}}])
    event = load_event("iot-authorizer-mqtt.json")
    event["protocolData"]["mqtt"]["username"] = (
        f"FlespiToken {created['key']}?x-amz-customauthorizer-name=fleetcam-tokens")
    scoped = fn.handler(event, context)
    assert scoped["isAuthenticated"] is True
    assert scoped["principalId"] == f"token{created['id']}"
    assert _resources(scoped, "iot:Subscribe") == {
        f"{arn}:topicfilter/fleetcam/state/gw/devices/7",
        f"{arn}:topicfilter/fleetcam/log/gw/devices/7/media_file_*"}
    assert _resources(scoped, "iot:Publish") == set()

    fn.CONTAINER.access.delete(str(created["id"]))
    assert fn.handler(event, context) == {"isAuthenticated": False}
