"""/gw/devices: create, select, update, delete, fields and the token check."""
from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.runtime.container import Container
from tests.api import error, stored_objects, uploaded
from tests.conftest import TOKEN


@pytest.fixture
def three(client: TestClient) -> list[dict[str, Any]]:
    r = client.post("/gw/devices", json=[
        {"name": "cam-front", "ident": "013900000001"},
        {"name": "cam-rear", "configuration": {"ident": "013900000002"}},
        {"name": "truck-7", "ident": "868000000003", "media_ttl": 60},
    ])
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


def names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [d["name"] for d in r.json()["result"]]


def test_post_list_returns_devices_in_order(three: list[dict[str, Any]]) -> None:
    assert [d["name"] for d in three] == ["cam-front", "cam-rear", "truck-7"]
    assert len({d["id"] for d in three}) == 3
    front = three[0]
    assert front["ident"] == "013900000001"
    assert front["configuration"] == {"ident": "013900000001", "auth_code_state": "none",
                                      "auth_code_issued": None, "registration": None,
                                      "reregister_at_boot": False}
    assert front["media_ttl"] == 0 and front["media_rotate"] == 0
    assert front["enabled"] is True and front["media_size"] == 0
    assert three[2]["media_ttl"] == 60


def test_post_single_object_and_configuration_ident(client: TestClient) -> None:
    r = client.post("/gw/devices", json={"configuration": {"ident": "42"}})
    assert r.status_code == 200, r.text
    (d,) = r.json()["result"]
    assert d["ident"] == "42" and d["configuration"]["ident"] == "42"
    assert d["name"] == "42"  # the name defaults to the ident


def test_ident_is_required(client: TestClient) -> None:
    err = error(client.post("/gw/devices", json={"name": "nameless"}), 400)
    assert err["field"] == "ident"
    err = error(client.post("/gw/devices", json={"ident": ""}), 400)
    assert err["field"] == "ident"


def test_duplicate_ident_conflicts(client: TestClient, three: list[dict[str, Any]]) -> None:
    err = error(client.post("/gw/devices", json={"ident": "013900000001"}), 409)
    assert err["field"] == "ident" and "013900000001" in err["reason"]
    assert names(client.get("/gw/devices/all")) == ["cam-front", "cam-rear", "truck-7"]


def test_bad_bodies(client: TestClient) -> None:
    error(client.post("/gw/devices"), 400)
    error(client.post("/gw/devices", content=b"{not json"), 400)
    err = error(client.post("/gw/devices", json={"ident": "1", "colour": "red"}), 400)
    assert err["field"] == "colour"


def test_get_by_all_ids_and_expressions(client: TestClient, three: list[dict[str, Any]]) -> None:
    a, b, c = (d["id"] for d in three)
    assert names(client.get("/gw/devices/all")) == ["cam-front", "cam-rear", "truck-7"]
    assert names(client.get(f"/gw/devices/{a},{c}")) == ["cam-front", "truck-7"]
    assert names(client.get(f"/gw/devices/{b}")) == ["cam-rear"]
    assert names(client.get("/gw/devices/name=cam*")) == ["cam-front", "cam-rear"]
    assert names(client.get("/gw/devices/configuration.ident=0139*")) == ["cam-front",
                                                                           "cam-rear"]
    assert names(client.get("/gw/devices/media_ttl>0")) == ["truck-7"]
    assert names(client.get("/gw/devices/{name=truck*}")) == ["truck-7"]


def test_selector_matching_nothing_is_an_empty_result(client: TestClient,
                                                     three: list[dict[str, Any]]) -> None:
    for sel in ("name=bus*", "configuration.ident=1234*", "{metadata.x==1}"):
        r = client.get(f"/gw/devices/{sel}")
        assert r.status_code == 200 and r.json() == {"result": []}, sel


def test_bad_selector_is_400(client: TestClient) -> None:
    err = error(client.get("/gw/devices/name=="), 400)
    assert err["field"] == "selector"


def test_fields_trims_output(client: TestClient, three: list[dict[str, Any]]) -> None:
    r = client.get("/gw/devices/all", params={"fields": "id,name"})
    assert r.status_code == 200
    assert r.json()["result"] == [{"id": d["id"], "name": d["name"]} for d in three]
    r = client.get(f"/gw/devices/{three[0]['id']}", params={"fields": "configuration.ident"})
    assert r.json()["result"] == [{"configuration.ident": "013900000001"}]
    r = client.post("/gw/devices", json={"ident": "77"}, params={"fields": "ident"})
    assert r.json()["result"] == [{"ident": "77"}]


def test_put_changes_media_settings(client: TestClient, three: list[dict[str, Any]]) -> None:
    a, b, _ = (d["id"] for d in three)
    r = client.put(f"/gw/devices/{a},{b}", json={"media_ttl": 3600, "media_rotate": 1 << 20})
    assert r.status_code == 200, r.text
    assert [(d["media_ttl"], d["media_rotate"]) for d in r.json()["result"]] == \
        [(3600, 1 << 20)] * 2
    (got,) = client.get(f"/gw/devices/{a}").json()["result"]
    assert got["media_ttl"] == 3600 and got["media_rotate"] == 1 << 20
    assert got["name"] == "cam-front"  # untouched


@pytest.mark.parametrize(("body", "field"), [
    ({"media_ttl": "1h"}, "media_ttl"),
    ({"media_ttl": -1}, "media_ttl"),
    ({"media_rotate": 11 * 1024**3}, "media_rotate"),
    ({"media_rotate": True}, "media_rotate"),
    ({"enabled": "yes"}, "enabled"),
    ({"name": ""}, "name"),
])
def test_put_validation_names_the_field(client: TestClient, device: dict[str, Any],
                                        body: dict[str, Any], field: str) -> None:
    err = error(client.put(f"/gw/devices/{device['id']}", json=body), 400)
    assert err["field"] == field and field in err["reason"]
    (got,) = client.get(f"/gw/devices/{device['id']}").json()["result"]
    assert got["media_ttl"] == device["media_ttl"] and got["media_rotate"] == 0


def test_put_to_a_taken_ident_conflicts(client: TestClient, three: list[dict[str, Any]]) -> None:
    err = error(client.put(f"/gw/devices/{three[0]['id']}", json={"ident": "868000000003"}), 409)
    assert err["field"] == "ident"


def test_delete_removes_device_and_its_media(client: TestClient, settings: Settings,
                                             three: list[dict[str, Any]]) -> None:
    a, b, _ = (d["id"] for d in three)
    files = [uploaded(client, a), uploaded(client, a), uploaded(client, b)]
    assert len(stored_objects(settings.data_dir)) == 3
    for f in files:
        assert client.get(f"/media/{f['uuid']}").status_code == 200

    r = client.delete(f"/gw/devices/{a}")
    assert r.status_code == 200 and r.json() == {"result": [{"id": a}]}
    assert names(client.get("/gw/devices/all")) == ["cam-rear", "truck-7"]
    for f in files[:2]:
        assert client.get(f"/media/{f['uuid']}").status_code == 404
    assert client.get(f"/media/{files[2]['uuid']}").status_code == 200
    assert [p.stem for p in stored_objects(settings.data_dir)] == [files[2]["uuid"]]
    # the ident is free again
    assert client.post("/gw/devices", json={"ident": "013900000001"}).status_code == 200


def test_delete_nothing_is_an_empty_result(client: TestClient) -> None:
    r = client.delete("/gw/devices/name=nobody*")
    assert r.status_code == 200 and r.json() == {"result": []}


def test_unknown_device(client: TestClient) -> None:
    assert error(client.get("/gw/devices/777"), 404)["ids"] == [777]
    assert error(client.get("/gw/devices/777/media"), 404)["ids"] == [777]
    error(client.post("/gw/devices/777/media", files={"file": ("a.jpg", b"x", "image/jpeg")}),
          404)


@pytest.mark.parametrize("header", [None, "FlespiToken " + "x" * 64, "FlespiToken ",
                                    "Basic " + TOKEN, "Bearer " + TOKEN[:-1]])
def test_token_required(container: Container, header: str | None) -> None:
    anon = TestClient(create_app(container))
    headers = {"Authorization": header} if header is not None else {}
    for method, url in (("GET", "/gw/devices/all"), ("POST", "/gw/devices"),
                        ("GET", "/gw/devices/all/media"), ("GET", "/gw/devices/all/logs")):
        r = anon.request(method, url, headers=headers, json={"ident": "1"})
        err = error(r, 401)
        assert r.headers["www-authenticate"] == "FlespiToken"
        assert "token" in err["reason"]
    for good in (f"FlespiToken {TOKEN}", f"Bearer {TOKEN}", TOKEN):  # flespi takes bare too
        assert anon.get("/gw/devices/all", headers={"Authorization": good}) \
            .json() == {"result": []}


def test_bearer_is_accepted(container: Container) -> None:
    anon = TestClient(create_app(container))
    r = anon.post("/gw/devices", json={"ident": "5"},
                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.json()["result"][0]["ident"] == "5"


def test_health_needs_no_token(container: Container) -> None:
    assert TestClient(create_app(container)).get("/health").json() == {"status": "ok"}
