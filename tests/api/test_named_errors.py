"""Errors that name the problem, and no accidental wipe (issue 13's traps, one test each)."""
from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api import error, list_media, uploaded


def test_commands_to_a_device_that_does_not_exist_are_404_naming_it(
        client: TestClient, device: dict[str, Any]) -> None:
    cmd = [{"name": "take_photo", "properties": {"channel": 1}}]
    err = error(client.post("/gw/devices/99/commands-queue", json=cmd), 404)
    assert err["ids"] == [99] and "99" in err["reason"] and err["field"] == "selector"
    err = error(client.post(f"/gw/devices/{device['id']},99,98/commands", json=cmd), 404)
    assert err["ids"] == [99, 98]
    assert client.get(f"/gw/devices/{device['id']}/commands-queue").json() == {"result": []}


def test_ids_that_do_not_exist_are_404_while_all_and_expressions_may_be_empty(
        client: TestClient, device: dict[str, Any]) -> None:
    assert error(client.get(f"/gw/devices/{device['id']},5"), 404)["ids"] == [5]
    assert error(client.put("/gw/devices/5", json={"name": "x"}), 404)["ids"] == [5]
    assert error(client.delete("/gw/devices/5"), 404)["ids"] == [5]
    assert error(client.get("/gw/devices/5/messages"), 404)["ids"] == [5]
    client.delete(f"/gw/devices/{device['id']}")
    assert client.get("/gw/devices/all").json() == {"result": []}
    assert client.get("/gw/devices/all/media").json() == {"result": []}
    assert client.get("/gw/devices/name=truck*").json() == {"result": []}


def test_a_selector_naming_an_unknown_device_field_is_400_naming_it(
        client: TestClient, device: dict[str, Any]) -> None:
    err = error(client.get("/gw/devices/abc"), 400)
    assert err["field"] == "abc" and "'abc'" in err["reason"] and "ident" in err["reason"]
    assert error(client.get("/gw/devices/{naem==\"x\"}"), 400)["field"] == "naem"
    assert client.get("/gw/devices/{metadata.fleet==\"x\"}").json() == {"result": []}
    [found] = client.get("/gw/devices/configuration.ident=0139*").json()["result"]
    assert found["id"] == device["id"]


def test_a_media_filter_on_an_unknown_field_is_400_naming_it(
        client: TestClient, device: dict[str, Any]) -> None:
    f = uploaded(client, device["id"])
    err = error(list_media(client, device["id"], filter="chanel_id==1"), 400)
    assert err["field"] == "chanel_id" and "chanel_id" in err["reason"]
    # fixed fields and attributes some file has may match nothing: an empty answer
    assert list_media(client, device["id"], filter="channel_id==7").json() == {"result": []}
    client.put(f"/gw/devices/{device['id']}/media", json={"uuid": f["uuid"], "label": "a"})
    assert list_media(client, device["id"], filter="label==\"b\"").json() == {"result": []}
    [hit] = list_media(client, device["id"], filter="label==\"a\"").json()["result"]
    assert hit["uuid"] == f["uuid"]


def test_commands_result_works_like_commands_queue(client: TestClient, container: Any,
                                                   device: dict[str, Any]) -> None:
    base = f"/gw/devices/{device['id']}"
    cmds = [{"name": "take_photo", "properties": {"channel": 1}},
            {"name": "custom", "properties": {"msg_id": 0x8300, "body": "00"}}]
    a, b = client.post(f"{base}/commands-queue", json=cmds).json()["result"]
    assert client.get(f"{base}/commands-result/all").json() == {"result": []}
    [done] = client.delete(f"{base}/commands-queue/{a['id']}").json()["result"]
    assert client.get(f"{base}/commands-result/all").json() == {"result": [done]}
    assert client.get(f"{base}/commands-result/{a['id']}").json() == {"result": [done]}
    # still queued: no result yet, but a known command
    assert client.get(f"{base}/commands-result/{b['id']}").json() == {"result": []}
    assert client.get(f"{base}/commands-queue/{b['id']}").json()["result"][0]["id"] == b["id"]
    err = error(client.get(f"{base}/commands-result/{a['id']},424242"), 404)
    assert err["ids"] == [424242]
    error(client.get(f"{base}/commands-queue/424242"), 404)
    error(client.get(f"{base}/commands-result/x"), 400)


def test_a_bulk_delete_never_removes_protected_files_without_force(
        client: TestClient, device: dict[str, Any]) -> None:
    other = client.post("/gw/devices", json={"ident": "other-cam"}).json()["result"][0]
    keep = [uploaded(client, d, data={"protected": True})["uuid"]
            for d in (device["id"], other["id"])]
    loose = [uploaded(client, d)["uuid"] for d in (device["id"], other["id"])]
    r = client.delete("/gw/devices/all/media")
    assert r.status_code == 200
    body = r.json()
    assert sorted(x["uuid"] for x in body["result"]) == sorted(loose)
    assert (body["removed"], body["kept"]) == (2, 2)
    assert sorted(x["uuid"] for x in list_media(client, "all").json()["result"]) == sorted(keep)
    # an explicit per-file delete removes a protected file
    r = client.request("DELETE", f"/gw/devices/{device['id']}/media",
                       content=json.dumps({"uuid": keep[0]}))
    assert r.json()["removed"] == 1
    r = client.delete("/gw/devices/all/media", params={"force": "true"})
    assert (r.json()["removed"], r.json()["kept"]) == (1, 0)
    assert list_media(client, "all").json() == {"result": []}


def test_a_wrong_token_answer_says_which_form_was_expected(container: Any) -> None:
    from fleetcam.api.app import create_app

    anon = TestClient(create_app(container))
    for header in ("Token abc", "FlespiToken", "FlespiToken short", "Basic dXNlcjpwYXNz"):
        err = error(anon.get("/gw/devices/all", headers={"Authorization": header}), 401)
        assert "FlespiToken <token>" in err["reason"] and "Bearer <token>" in err["reason"]
    err = error(anon.get("/gw/devices/all", headers={"Authorization": "FlespiToken " + "x" * 64}),
                401)
    assert err["reason"] == "invalid, expired or revoked token"
    err = error(anon.get("/gw/devices/all"), 401)
    assert "FlespiToken <token>" in err["reason"]
