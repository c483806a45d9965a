"""Expiring, revocable share links: POST/DELETE /gw/devices/{id}/media/share."""
from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.api import error, uploaded


@pytest.fixture
def anon(container: Container) -> TestClient:
    return TestClient(create_app(container))


@pytest.fixture
def private(client: TestClient, device: dict[str, Any]) -> dict[str, Any]:
    return uploaded(client, device["id"], data={"shared": False})


def share(client: TestClient, device_id: int, body: Any) -> Any:
    return client.post(f"/gw/devices/{device_id}/media/share", json=body)


def path(url: str) -> str:
    assert url.startswith("http://fleetcam.test/media/")
    return url.removeprefix("http://fleetcam.test")


def test_a_share_link_opens_a_private_file_until_it_expires(
        client: TestClient, anon: TestClient, device: dict[str, Any],
        private: dict[str, Any], clock: ManualClock) -> None:
    assert anon.get(f"/media/{private['uuid']}").status_code == 401
    r = share(client, device["id"], {"uuid": private["uuid"], "expire": int(clock.now()) + 60})
    assert r.status_code == 200, r.text
    (s,) = r.json()["result"]
    assert s["uuid"] == private["uuid"] and s["expire"] == int(clock.now()) + 60
    url = path(s["url"])
    got = anon.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == private["mime"]
    assert anon.get(url + "&preview=jpeg").headers["content-type"] == "image/jpeg"
    assert anon.get(url + "&preview=json").json()["uuid"] == private["uuid"]
    clock.advance(61)
    err = error(anon.get(url), 410)
    assert "expired" in err["reason"]


def test_revoked_tampered_and_foreign_links(client: TestClient, anon: TestClient,
                                            device: dict[str, Any], private: dict[str, Any],
                                            clock: ManualClock) -> None:
    other = uploaded(client, device["id"], data={"shared": False})
    s = share(client, device["id"], {"uuid": private["uuid"],
                                     "expire": int(clock.now()) + 600}).json()["result"][0]
    url = path(s["url"])
    sid = s["id"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert "altered" in error(anon.get(tampered), 403)["reason"]
    error(anon.get(f"/media/{other['uuid']}?share={sid}"), 403)  # a link for another file
    error(anon.get(f"/media/{private['uuid']}?share=nothex"), 403)
    r = client.request("DELETE", f"/gw/devices/{device['id']}/media/share",
                       json={"uuid": private["uuid"]})
    assert r.json() == {"result": [{"id": sid, "uuid": private["uuid"]}]}
    assert "revoked" in error(anon.get(url), 410)["reason"]
    s2 = share(client, device["id"], {"uuid": private["uuid"],
                                      "expire": int(clock.now()) + 600}).json()["result"][0]
    r = client.request("DELETE", f"/gw/devices/{device['id']}/media/share", json={"id": s2["id"]})
    assert r.json()["result"] == [{"id": s2["id"], "uuid": private["uuid"]}]
    error(anon.get(path(s2["url"])), 410)


@pytest.mark.parametrize("body,field", [
    ({"uuid": "x", "expire": 2_000_000_000}, "uuid"),
    ({"uuid": "a" * 32, "expire": 2_000_000_000}, "uuid"),  # no such file on this device
    ({"expire": 2_000_000_000}, "uuid"),
    (None, "body"), ("[]x", "body")])
def test_bad_share_requests(client: TestClient, device: dict[str, Any], body: Any,
                            field: str) -> None:
    r = client.post(f"/gw/devices/{device['id']}/media/share",
                    content=body if isinstance(body, str) else None,
                    json=None if isinstance(body, str) else body)
    assert r.status_code in (400, 404), r.text


def test_expire_must_be_ahead(client: TestClient, device: dict[str, Any],
                              private: dict[str, Any], clock: ManualClock) -> None:
    for expire in (int(clock.now()) - 1, "soon", True, int(clock.now()) + 10 ** 9):
        r = share(client, device["id"], {"uuid": private["uuid"], "expire": expire})
        assert error(r, 400)["field"] == "expire"


def test_a_file_of_another_device_cannot_be_shared(client: TestClient,
                                                   device: dict[str, Any],
                                                   private: dict[str, Any],
                                                   clock: ManualClock) -> None:
    other = client.post("/gw/devices", json={"ident": "99"}).json()["result"][0]
    r = share(client, other["id"], {"uuid": private["uuid"], "expire": int(clock.now()) + 9})
    error(r, 404)
    error(share(client, 0, {"uuid": private["uuid"], "expire": 1}), 404)
    r = client.post("/gw/devices/all/media/share",
                    json={"uuid": private["uuid"], "expire": int(clock.now()) + 9})
    error(r, 400)
