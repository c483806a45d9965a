"""Device types with their commands' JSON Schemas; devices' connected and device_type_id."""
from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.domain.devicetypes import COMMANDS
from fleetcam.domain.gateway import COMMAND_NAMES, Connection, validate_command
from fleetcam.runtime.container import Container


def test_device_types_list_commands_with_schemas(client: TestClient) -> None:
    r = client.get("/gw/channel-protocols/all/device-types/1/", params={"fields": "id,commands"})
    assert r.status_code == 200, r.text
    (t,) = r.json()["result"]
    assert set(t) == {"id", "commands"}
    by_name = {c["name"]: c for c in t["commands"]}
    assert set(by_name) == set(COMMAND_NAMES)
    props = by_name["start_videostream"]["schema"]["properties"]
    assert props["channel"]["default"] == 1 and props["quality"]["enum"] == ["main", "sub"]
    assert client.get("/gw/channel-protocols/name=jt808").json()["result"][0]["id"] == 1
    assert client.get("/gw/channel-protocols/all/device-types/99").json() == {"result": []}


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c["name"])
def test_schema_defaults_are_what_the_gateway_assumes(cmd: dict[str, Any]) -> None:
    schema = cmd["schema"]
    example = {k: v.get("default", v.get("minimum", 0) if v["type"] == "integer" else "")
               for k, v in schema["properties"].items()}
    if "to" in example:
        example["to"] = example["from"] + 1
    _, normalised = validate_command({"name": cmd["name"], "properties": example})
    assert set(normalised) <= set(schema["properties"])
    minimal = {k: example[k] for k in schema["required"]}
    _, filled = validate_command({"name": cmd["name"], "properties": minimal})
    for k, v in schema["properties"].items():
        if "default" in v and k in filled:
            assert filled[k] == v["default"], (cmd["name"], k)


def test_devices_carry_connected_and_type(client: TestClient, container: Container,
                                          device: dict[str, Any]) -> None:
    d = client.get(f"/gw/devices/{device['id']}").json()["result"][0]
    assert d["connected"] is False and d["device_type_id"] == 1
    media = Connection(id=7, device_id=device["id"], ident=device["ident"], established=1.0,
                       source="1.2.3.4:5", secondary=True, meta={"protocol": "jt1078"})
    container.connections.registry.open(media)
    assert client.get("/gw/devices/all").json()["result"][0]["connected"] is False
    container.connections.registry.open(Connection(
        id=8, device_id=device["id"], ident=device["ident"], established=1.0,
        source="1.2.3.4:6", meta={"protocol": "jt808"}))
    got = client.get("/gw/devices/all", params={"fields": "id,connected,device_type_id"})
    assert got.json()["result"] == [{"id": device["id"], "connected": True, "device_type_id": 1}]


def test_a_scoped_token_may_read_the_device_types(client: TestClient,
                                                  container: Container) -> None:
    key = client.post("/platform/customer/tokens", json=[{"ttl": 60, "access": {
        "type": 2, "acl": [{"uri": "gw/devices", "ids": [1], "methods": ["GET"]}]}}]
    ).json()["result"][0]["key"]
    scoped = TestClient(create_app(container), headers={"Authorization": key})
    assert scoped.get("/gw/channel-protocols/all/device-types/all").status_code == 200
