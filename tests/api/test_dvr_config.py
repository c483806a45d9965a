"""/streamer/api/v3/streams and /episodes: configuration, validation, Flussonic's auth forms."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.runtime.container import Container
from fleetcam.runtime.local import build_local
from tests.conftest import TOKEN

API = "/streamer/api/v3"


def reason(r: Any) -> str:
    return r.json()["errors"][0]["reason"]


def test_put_get_list_delete(client: TestClient, device: dict[str, Any], container: Container):
    name = f"{device['id']}-1"
    r = client.put(f"{API}/streams/{name}", json={"dvr": {"root": "dvr", "expiration": 86400}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == name and body["dvr"]["expiration"] == 86400
    assert body["inputs"] == [{"url": f"jt1078://{device['id']}/1"}]
    assert body["stats"]["dvr_enabled"] is True
    r = client.put(f"{API}/streams/{name}", json={"dvr": {"expiration": 3600,
                                                          "storage_limit": 10**9}})
    assert r.json()["dvr"] == {"root": "dvr", "expiration": 3600, "storage_limit": 10**9,
                               "episodes_expiration": 30 * 86400}
    r = client.put(f"{API}/streams/front", json={
        "inputs": [{"url": f"jt1078://{device['id']}/2"}], "dvr": {"root": "dvr2"},
        "title": "front camera"})
    assert r.status_code == 200, r.text
    names = [s["name"] for s in client.get(f"{API}/streams").json()["streams"]]
    assert names == [name, "front"]
    assert client.get(f"{API}/streams/front").json()["title"] == "front camera"
    assert client.delete(f"{API}/streams/front").status_code == 204
    assert client.get(f"{API}/streams/front").status_code == 404
    assert container.dvr.recording_streams(device["id"])[0].name == name


@pytest.mark.parametrize("name,body,field", [
    ("1-1", {"dvr": {"root": "/etc"}}, "dvr.root"),
    ("1-1", {"dvr": {"root": "../outside"}}, "dvr.root"),
    ("1-1", {"dvr": {"root": "s3://bucket/x"}}, "dvr.root"),
    ("1-1", {"dvr": {}}, "dvr.root"),
    ("1-1", {"dvr": {"root": "d", "expiration": -1}}, "dvr.expiration"),
    ("1-1", {"dvr": {"root": "d", "expiration": "1h"}}, "dvr.expiration"),
    ("1-1", {"dvr": {"root": "d", "bogus": 1}}, "dvr"),
    ("1-1", {"dvr": "yes"}, "dvr"),
    ("1-1", [], "body"),
    ("cam", {"dvr": {"root": "d"}}, "inputs"),
    ("cam", {"inputs": [{"url": "rtsp://x"}]}, "inputs"),
    ("99-1", {"dvr": {"root": "d"}}, "inputs"),
    ("1-0", {"dvr": {"root": "d"}}, "inputs"),
    ("bad name", {"dvr": {"root": "d"}}, "name"),
    ("-x", {"dvr": {"root": "d"}}, "name"),
])
def test_bad_input_is_400_with_a_reason(client, device, name, body, field):
    r = client.put(f"{API}/streams/{name}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0].get("field") == field, r.text
    assert reason(r)


def test_one_stream_per_channel(client, device):
    assert client.put(f"{API}/streams/1-1", json={"dvr": {"root": "d"}}).status_code == 200
    r = client.put(f"{API}/streams/other", json={"inputs": [{"url": "jt1078://1/1"}]})
    assert r.status_code == 409 and "1-1" in reason(r)


def test_absolute_roots_under_the_allow_list(tmp_path: Path, clock, bus, device):
    allowed = tmp_path / "archive"
    settings = Settings(data_dir=tmp_path / "data2", admin_token=TOKEN,
                        dvr_roots=(str(allowed),))
    c = build_local(settings, clock=clock, bus=bus)
    cl = TestClient(create_app(c))
    cl.headers["Authorization"] = f"Bearer {TOKEN}"
    cl.post("/gw/devices", json=[{"name": "x", "ident": "013912345678"}])
    ok = cl.put(f"{API}/streams/1-1", json={"dvr": {"root": str(allowed / "fleet")}})
    assert ok.status_code == 200, ok.text
    bad = cl.put(f"{API}/streams/1-2", json={"dvr": {"root": str(tmp_path / "elsewhere")}})
    assert bad.status_code == 400 and "allowed" in reason(bad)


def test_strangers_are_refused(container: Container, device):
    stranger = TestClient(create_app(container))
    for method, path in [("get", "/streams"), ("get", "/streams/1-1"), ("put", "/streams/1-1"),
                         ("delete", "/streams/1-1"), ("get", "/episodes"),
                         ("put", "/episodes/1"), ("delete", "/episodes/1")]:
        r = getattr(stranger, method)(API + path)
        assert r.status_code == 401, (method, path, r.text)
        r = getattr(stranger, method)(API + path, headers={"Authorization": "Bearer " + "x" * 64})
        assert r.status_code == 401
    basic = base64.b64encode(b"admin:wrong").decode()
    assert stranger.get(f"{API}/streams",
                        headers={"Authorization": f"Basic {basic}"}).status_code == 401
    assert stranger.get(f"{API}/streams",
                        headers={"Authorization": "Basic !!!"}).status_code == 401


def test_flussonic_basic_and_bearer_forms(container: Container, device):
    c = TestClient(create_app(container))
    basic = base64.b64encode(f"flussonic:{TOKEN}".encode()).decode()
    assert c.get(f"{API}/streams", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert c.get(f"{API}/streams",
                 headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_episodes_crud_and_filters(client, device, clock):
    client.put(f"{API}/streams/1-1", json={"dvr": {"root": "d"}})
    client.put(f"{API}/streams/cam2", json={"inputs": [{"url": "jt1078://1/2"}],
                                            "dvr": {"root": "d"}})
    t = int(clock.now() * 1000)
    r = client.put(f"{API}/episodes/7", json={"media": "1-1", "opened_at": t - 60_000,
                                             "closed_at": t - 30_000, "title": "crash"})
    assert r.status_code == 200, r.text
    ep = r.json()
    assert ep == {"episode_id": 7, "media": "1-1", "opened_at": t - 60_000,
                  "closed_at": t - 30_000, "updated_at": t, "episode_type": "generic",
                  "preview": None, "title": "crash"}
    client.put(f"{API}/episodes/8", json={"media": "cam2", "opened_at": t - 10_000,
                                         "episode_type": "alarm"})
    r = client.put(f"{API}/episodes/7", json={"closed_at": t - 20_000})
    assert r.json()["closed_at"] == t - 20_000 and r.json()["title"] == "crash"
    ids = lambda q: [e["episode_id"] for e in client.get(f"{API}/episodes?{q}").json()["episodes"]]  # noqa: E731
    assert ids("") == [7, 8]
    assert ids("media=1-1") == [7]
    assert ids("episode_type=alarm") == [8]
    assert ids(f"from={t - 15_000}") == [8]
    assert ids(f"to={t - 15_000}") == [7]
    assert ids("limit=1") == [7]
    assert client.get(f"{API}/episodes?limit=1").json()["next"] == "7"
    assert ids("cursor=7") == [8]
    assert client.get(f"{API}/episodes/8").json()["closed_at"] is None
    assert client.delete(f"{API}/episodes/8").status_code == 204
    assert client.get(f"{API}/episodes/8").status_code == 404
    assert client.delete(f"{API}/episodes/8").status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"opened_at": 1}, "media"),
    ({"media": "nope", "opened_at": 1}, "media"),
    ({"media": "1-1"}, "opened_at"),
    ({"media": "1-1", "opened_at": 5000, "closed_at": 4000}, "closed_at"),
    ({"media": "1-1", "opened_at": 10**15}, "opened_at"),
    ({"media": "1-1", "opened_at": 5000, "preview": 3}, "preview"),
])
def test_bad_episodes(client, device, body, field):
    client.put(f"{API}/streams/1-1", json={"dvr": {"root": "d"}})
    r = client.put(f"{API}/episodes/1", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field, r.text
    assert client.put(f"{API}/episodes/0", json={"media": "1-1", "opened_at": 5}).status_code == 400
    assert client.get(f"{API}/episodes/x").status_code == 400
    assert client.get(f"{API}/episodes?limit=0").status_code == 400


def test_scoped_tokens_reach_only_their_devices_streams(client, container: Container):
    for n in range(2):
        client.post("/gw/devices", json={"name": f"d{n}", "ident": f"01391234567{n}"})
    client.put(f"{API}/streams/1-1", json={"dvr": {"root": "d"}})
    client.put(f"{API}/streams/2-1", json={"dvr": {"root": "d"}})
    acl = {"type": 2, "acl": [{"uri": "gw/devices", "ids": [1], "methods": ["GET"],
                               "submodules": [{"name": "dvr",
                                               "methods": ["GET", "PUT", "DELETE"]}]}]}
    r = client.post("/platform/customer/tokens", json=[{"info": "dvr", "ttl": 600, "access": acl}])
    assert r.status_code == 200, r.text
    key = r.json()["result"][0]["key"]
    basic = base64.b64encode(f"user:{key}".encode()).decode()
    scoped = TestClient(create_app(container), headers={"Authorization": f"Basic {basic}"})
    assert [s["name"] for s in scoped.get(f"{API}/streams").json()["streams"]] == ["1-1"]
    assert scoped.get(f"{API}/streams/1-1").status_code == 200
    assert scoped.get(f"{API}/streams/2-1").status_code == 403
    assert scoped.put(f"{API}/streams/1-1", json={"dvr": {"expiration": 60}}).status_code == 200
    assert scoped.put(f"{API}/streams/2-1", json={"dvr": {"expiration": 60}}).status_code == 403
    assert scoped.put(f"{API}/episodes/5", json={"media": "2-1",
                                                 "opened_at": 10**12}).status_code == 403
    assert scoped.put(f"{API}/episodes/5", json={"media": "1-1",
                                                 "opened_at": 10**12}).status_code == 200
    client.put(f"{API}/episodes/6", json={"media": "2-1", "opened_at": 10**12})
    assert [e["episode_id"] for e in scoped.get(f"{API}/episodes").json()["episodes"]] == [5]
    assert scoped.delete(f"{API}/episodes/6").status_code == 403
    assert scoped.delete(f"{API}/streams/2-1").status_code == 403
    media_only = {"type": 2, "acl": [{"uri": "gw/devices", "ids": [1], "methods": ["GET"],
                                      "submodules": [{"name": "media", "methods": ["GET"]}]}]}
    r = client.post("/platform/customer/tokens", json=[{"info": "m", "ttl": 600, "access": media_only}])
    other = TestClient(create_app(container),
                       headers={"Authorization": f"Bearer {r.json()['result'][0]['key']}"})
    assert other.put(f"{API}/streams/1-1", json={"dvr": {"expiration": 5}}).status_code == 403
