"""/platform/customer/tokens in flespi's shape; revocation; the access service contract."""
from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.api import error

ACL = {"type": 2, "acl": [{"uri": "gw/devices", "ids": [1], "methods": ["GET"],
                           "submodules": [{"name": "media", "methods": ["GET"]}]}]}


def make(client: TestClient, **fields: Any) -> dict[str, Any]:
    r = client.post("/platform/customer/tokens", json=[{"info": "t", "ttl": 600, **fields}])
    assert r.status_code == 200, r.text
    return r.json()["result"][0]


def test_create_shows_key_once_then_only_its_object(client: TestClient,
                                                    container: Container) -> None:
    tok = make(client, access=ACL)
    assert len(tok["key"]) == 64 and tok["key"].isalnum()
    assert tok["access"] == {"type": 2, "acl": [
        {"uri": "gw/devices", "ids": [1], "methods": ["GET"],
         "submodules": [{"name": "media", "methods": ["GET"]}]}]}
    assert tok["ttl"] == 600 and tok["enabled"] is True and tok["info"] == "t"
    listed = client.get("/platform/customer/tokens/all").json()["result"]
    assert [t["id"] for t in listed] == [tok["id"]]
    assert "key" not in listed[0]
    p = container.access.authenticate(f"FlespiToken {tok['key']}")
    assert p is not None and p.token_id == tok["id"] and p.kind == "acl"
    assert container.access.token_json(p)["access"] == tok["access"]
    assert container.access.authenticate(tok["key"]) == p
    assert container.access.authenticate(f"Bearer {tok['key']}") == p


def test_flespi_data_query_form(client: TestClient) -> None:
    r = client.post("/platform/customer/tokens", params={
        "data": '[{"info":"q","expire":2000000000,"access":{"type":0}}]', "fields": "id,key"})
    assert r.status_code == 200, r.text
    assert set(r.json()["result"][0]) == {"id", "key"}


def test_scoped_token_sees_only_its_devices(client: TestClient, container: Container) -> None:
    for n in range(3):
        client.post("/gw/devices", json={"name": f"d{n}", "ident": f"01391234567{n}"})
    key = make(client, access=ACL)["key"]
    scoped = TestClient(create_app(container), headers={"Authorization": f"FlespiToken {key}"})
    assert [d["id"] for d in scoped.get("/gw/devices/all").json()["result"]] == [1]
    assert [d["id"] for d in scoped.get("/gw/devices/name=d*").json()["result"]] == [1]
    assert "gw/devices/2" in error(scoped.get("/gw/devices/1,2"), 403)["reason"]
    error(scoped.get("/gw/devices/2"), 403)
    error(scoped.put("/gw/devices/1", json={"name": "x"}), 403)
    error(scoped.post("/gw/devices", json={"ident": "1"}), 403)
    error(scoped.get("/platform/customer/tokens/all"), 403)
    assert scoped.get("/gw/devices/1/media").status_code == 200
    error(scoped.get("/gw/devices/1/logs"), 403)


def test_revocation_is_immediate_here(client: TestClient, container: Container) -> None:
    tok = make(client, access={"type": 0})
    scoped = TestClient(create_app(container), headers={"Authorization": tok["key"]})
    assert scoped.get("/gw/devices/all").status_code == 200
    told: list[int] = []
    container.access.on_revoke(told.append)
    p = container.access.authenticate(tok["key"])
    assert p is not None and container.access.recheck(p) == p
    assert client.delete(f"/platform/customer/tokens/{tok['id']}").json() == \
        {"result": [{"id": tok["id"]}]}
    assert told == [tok["id"]]
    assert container.access.recheck(p) is None
    error(scoped.get("/gw/devices/all"), 401)
    assert container.access.authenticate(tok["key"]) is None


def test_disable_and_change_scope(client: TestClient, container: Container) -> None:
    tok = make(client, access={"type": 0})
    r = client.put(f"/platform/customer/tokens/{tok['id']}", json={"enabled": False})
    assert r.json()["result"][0]["enabled"] is False
    assert container.access.authenticate(tok["key"]) is None
    client.put(f"/platform/customer/tokens/{tok['id']}", json={"enabled": True, "access": ACL})
    p = container.access.authenticate(tok["key"])
    assert p is not None and p.kind == "acl" and p.device_ids("gw/devices") == {1}


def test_expiry_by_expire_and_ttl(client: TestClient, container: Container,
                                  clock: ManualClock) -> None:
    now = int(clock.now())
    by_expire = make(client, ttl=0, expire=now + 10, access={"type": 0})
    by_ttl = make(client, ttl=100, access={"type": 0})
    clock.advance(90)
    assert container.access.authenticate(by_ttl["key"]) is not None  # use prolongs a ttl
    clock.advance(90)
    assert container.access.authenticate(by_expire["key"]) is None
    assert container.access.authenticate(by_ttl["key"]) is not None
    clock.advance(101)
    assert container.access.authenticate(by_ttl["key"]) is None


def test_bad_requests(client: TestClient) -> None:
    assert error(client.post("/platform/customer/tokens", json=[{"info": "x"}]), 400)["field"] \
        == "ttl"
    error(client.post("/platform/customer/tokens", json=[{"ttl": 5, "access": {"type": 9}}]),
          400)
    error(client.post("/platform/customer/tokens",
                      json=[{"ttl": 5, "access": {"type": 2, "acl": [{"uri": "platform/x"}]}}]),
          400)
    error(client.post("/platform/customer/tokens", json=[{"ttl": 5, "secret": 1}]), 400)
    error(client.get("/platform/customer/tokens/99"), 404)


def test_rules_listing_is_narrowed_to_the_tokens_ids(client: TestClient,
                                                     container: Container) -> None:
    rule = {"name": "r", "condition": "alarm.collision", "devices": "all", "channels": [1],
            "before": 5, "after": 5}
    ids = [client.post("/gw/video-rules", json=rule).json()["result"][0]["id"] for _ in range(3)]
    key = make(client, access={"type": 2, "acl": [
        {"uri": "gw/video-rules", "ids": [ids[1]], "methods": ["GET", "DELETE"]}]})["key"]
    scoped = TestClient(create_app(container), headers={"Authorization": key})
    assert [r["id"] for r in scoped.get("/gw/video-rules/all").json()["result"]] == [ids[1]]
    error(scoped.get(f"/gw/video-rules/{ids[0]}"), 403)
    assert scoped.delete("/gw/video-rules/all").json()["result"] == [{"id": ids[1]}]
    assert len(client.get("/gw/video-rules/all").json()["result"]) == 2
