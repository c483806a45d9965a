"""flespi's own Python clients (PyPI ``flespi`` and ``flespi_gateway``), unchanged, against a
real fleetcam server: the compatibility promise of the REST layout."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import flespi_gateway.gateway
import pytest
import requests
from flespi.rest import FlespiClient
from flespi_gateway.gateway import Device

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.conftest import TOKEN, RecordingBus
from tests.integration.httpserver import ServerThread
from tests.mediagen import make_image

T0 = 1_700_000_000


@pytest.fixture
def base(container: Container) -> Iterator[str]:
    with ServerThread(create_app(container)) as url:
        yield url


@pytest.fixture
def flespi(base: str) -> FlespiClient:
    client = FlespiClient(TOKEN)
    client._url = base  # the documented way to aim it elsewhere than https://flespi.io
    return client


def upload(base: str, device_id: int, **data: Any) -> dict[str, Any]:
    """Upload through plain requests (FlespiClient only sends JSON bodies)."""
    r = requests.post(f"{base}/gw/devices/{device_id}/media",
                      headers={"Authorization": f"FlespiToken {TOKEN}"},
                      files={"file": ("cam.jpg", make_image(64, 48), "image/jpeg")},
                      data={"data": json.dumps(data)}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["result"][0]  # type: ignore[no-any-return]


def ok(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """FlespiClient's reply: {'error': bool, 'code': status, 'message': JSON body}."""
    assert reply["error"] is False and reply["code"] == 200, reply
    return reply["message"]["result"]  # type: ignore[no-any-return]


def test_server_thread_serves_and_stops(container: Container) -> None:
    server = ServerThread(create_app(container))
    with server as url:
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    assert not server.thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)


def test_flespi_client_devices(flespi: FlespiClient) -> None:
    made = ok(flespi.post("/gw/devices", [{"name": "cam-1", "configuration": {"ident": "0139"}},
                                          {"name": "cam-2", "ident": "0140"}]))
    assert [(d["name"], d["ident"]) for d in made] == [("cam-1", "0139"), ("cam-2", "0140")]
    a, b = (d["id"] for d in made)

    assert [d["id"] for d in ok(flespi.get("/gw/devices/all"))] == [a, b]
    assert ok(flespi.get("/gw/devices/name=cam-2")) == [made[1]]

    (changed,) = ok(flespi.put(f"/gw/devices/{a}", {"media_ttl": 3600, "media_rotate": 10**6}))
    assert changed["media_ttl"] == 3600 and changed["media_rotate"] == 10**6

    bad = flespi.put(f"/gw/devices/{a}", {"media_ttl": "soon"})
    assert bad["error"] is True and bad["code"] == 400
    assert bad["message"]["errors"][0]["field"] == "media_ttl"

    dup = flespi.post("/gw/devices", {"ident": "0139"})
    assert dup["error"] is True and dup["code"] == 409

    assert ok(flespi.delete(f"/gw/devices/{a}")) == [{"id": a}]
    assert [d["id"] for d in ok(flespi.get("/gw/devices/all"))] == [b]


def test_flespi_client_media(flespi: FlespiClient, base: str) -> None:
    (dev,) = ok(flespi.post("/gw/devices", {"ident": "0139"}))
    files = [upload(base, dev["id"], meta={"channel": ch, "created": T0 + ch})
             for ch in (1, 2, 3)]

    listed = ok(flespi.get(f"/gw/devices/{dev['id']}/media"))
    assert [f["uuid"] for f in listed] == [f["uuid"] for f in files]
    query = json.dumps({"filter": "channel_id>=2", "fields": "uuid,channel_id"})
    assert ok(flespi.get(f"/gw/devices/{dev['id']}/media?data={requests.utils.quote(query)}")) \
        == [{"uuid": f["uuid"], "channel_id": f["channel_id"]} for f in files[1:]]

    (upd,) = ok(flespi.put(f"/gw/devices/{dev['id']}/media",
                           {"uuid": files[0]["uuid"], "shared": True, "note": "kept"}))
    assert upd["shared"] is True and upd["note"] == "kept"
    assert requests.get(upd["url"].replace("http://fleetcam.test", base), timeout=5) \
        .status_code == 200  # shared: no token

    # a JSON POST is not an upload: flespi's client gets the error envelope
    bad = flespi.post(f"/gw/devices/{dev['id']}/media", {"file": "x"})
    assert bad["error"] is True and bad["code"] == 400
    assert bad["message"]["errors"][0]["field"] == "file"

    # FlespiClient.delete sends no body, which means every file of the device
    gone = ok(flespi.delete(f"/gw/devices/{dev['id']}/media"))
    assert sorted(g["uuid"] for g in gone) == sorted(f["uuid"] for f in files)
    assert ok(flespi.get(f"/gw/devices/{dev['id']}/media")) == []


def test_flespi_client_wrong_token(base: str) -> None:
    client = FlespiClient("x" * 64)
    client._url = base
    reply = client.get("/gw/devices/all")
    assert reply["error"] is True and reply["code"] == 401
    assert reply["message"]["errors"][0]["reason"] == "invalid, expired or revoked token"


class _FlespiIoRewrite:
    """Stands in for the ``requests`` module inside flespi_gateway.gateway: it sends calls
    aimed at https://flespi.io to the test server instead. Device.get_devices() hard-codes
    that host (it ignores ``base_url``), so this monkeypatched wrapper is the only way to
    run the package unchanged against fleetcam."""

    exceptions = requests.exceptions

    def __init__(self, base: str) -> None:
        self.base = base
        self.urls: list[str] = []

    def _url(self, url: str) -> str:
        if url.startswith("https://flespi.io"):
            url = self.base + url.removeprefix("https://flespi.io")
        self.urls.append(url)
        return url

    def get(self, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.get(self._url(url), **kw)


@pytest.fixture
def gateway_requests(base: str, monkeypatch: pytest.MonkeyPatch) -> _FlespiIoRewrite:
    shim = _FlespiIoRewrite(base)
    monkeypatch.setattr(flespi_gateway.gateway, "requests", shim)
    return shim


def test_gateway_device_get_devices(flespi: FlespiClient, base: str,
                                    gateway_requests: _FlespiIoRewrite) -> None:
    made = ok(flespi.post("/gw/devices", [{"ident": "0139"}, {"ident": "0140"}]))
    dev = Device(made[0]["id"], TOKEN)
    dev.base_url = f"{base}/gw/devices/"

    assert dev.get_devices(all=True) == {"result": made}
    assert dev.get_devices() == {"result": made[:1]}
    assert gateway_requests.urls == [f"{base}/gw/devices/all", f"{base}/gw/devices/{made[0]['id']}"]


def test_gateway_device_get_logs(flespi: FlespiClient, base: str, clock: ManualClock,
                                 bus: RecordingBus, gateway_requests: _FlespiIoRewrite) -> None:
    (made,) = ok(flespi.post("/gw/devices", {"ident": "0139"}))
    dev = Device(made["id"], TOKEN)
    dev.base_url = f"{base}/gw/devices/"
    clock.set(T0)
    first = upload(base, made["id"])
    clock.set(T0 + 100)
    ok(flespi.put(f"/gw/devices/{made['id']}/media", {"uuid": first["uuid"], "protected": True}))
    clock.set(T0 + 200)
    second = upload(base, made["id"])

    every = dev.get_logs(params={"data": json.dumps({"from": T0, "to": T0 + 200})})["result"]
    assert [(e["timestamp"], e["event_text"], e["uuid"]) for e in every] == [
        (T0, "media_file_uploaded", first["uuid"]),
        (T0 + 100, "media_file_updated", first["uuid"]),
        (T0 + 200, "media_file_uploaded", second["uuid"])]
    assert [e["event_code"] for e in every] == [24, 25, 24]

    window = dev.get_logs(params={"data": json.dumps({"from": T0 + 50, "to": T0 + 150})})
    assert [e["event_text"] for e in window["result"]] == ["media_file_updated"]
    latest = dev.get_logs(params={"data": json.dumps({"reverse": True, "count": 1})})
    assert [e["uuid"] for e in latest["result"]] == [second["uuid"]]
    # the default params of get_logs are a 2023 window: nothing of ours in it
    assert dev.get_logs() == {"result": []}
    # three log events; each uploaded file is also a media=true device message
    assert len([m for m in bus.messages if m[0].startswith("fleetcam/log/")]) == 3
    assert len([m for m in bus.messages if m[0].endswith("/messages")]) == 2
    assert all(url.startswith(base) for url in gateway_requests.urls)
