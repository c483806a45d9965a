"""CORS on every browser path, and /auth/regions."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.api import uploaded

PATHS = ["/gw/devices/all", "/platform/customer/tokens/all", "/auth/regions",
         "/media/" + "0" * 32, "/gw/devices/1/media"]


@pytest.mark.parametrize("path", PATHS)
def test_preflight_allows_the_flespi_headers(client: TestClient, path: str) -> None:
    r = client.options(path, headers={
        "Origin": "https://mediabox.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization,x-flespi-app,content-type"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-flespi-app" in allowed
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers


def test_answers_and_errors_carry_cors(client: TestClient, container: Container,
                                       device: dict[str, Any]) -> None:
    origin = {"Origin": "https://x.example"}
    assert client.get("/gw/devices/all", headers=origin) \
        .headers["access-control-allow-origin"] == "*"
    anon = TestClient(create_app(container))
    r = anon.get("/gw/devices/all", headers=origin)
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "*"
    f = uploaded(client, device["id"])
    r = anon.get(f"/media/{f['uuid']}", headers={**origin, "Range": "bytes=0-1"})
    assert r.status_code == 206 and r.headers["access-control-allow-origin"] == "*"
    assert "content-range" in r.headers["access-control-expose-headers"].lower()


def test_configured_origins_only(container: Container) -> None:
    container.settings = replace(container.settings, cors_origins=("https://ok.example",))
    c = TestClient(create_app(container))
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    ok = c.options("/gw/devices/all", headers={"Origin": "https://ok.example", **pre})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://ok.example"
    bad = c.options("/gw/devices/all", headers={"Origin": "https://evil.example", **pre})
    assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
    r = c.get("/auth/regions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_regions(container: Container) -> None:
    anon = TestClient(create_app(container))
    (region,) = anon.get("/auth/regions").json()["result"]
    assert region == {"name": "fleetcam", "default": True, "rest": "http://fleetcam.test",
                      "mqtt-ws": "fleetcam.test/mqtt", "media": "http://fleetcam.test/media"}
    container.settings = replace(container.settings, iot_endpoint="abc-ats.iot.eu.amazonaws.com")
    assert anon.get("/auth/regions").json()["result"][0]["mqtt-ws"] == \
        "abc-ats.iot.eu.amazonaws.com/mqtt"
    container.settings = replace(container.settings, public_mqtt_ws="wss://m.example:8443/mqtt")
    assert anon.get("/auth/regions").json()["result"][0]["mqtt-ws"] == "m.example:8443/mqtt"
