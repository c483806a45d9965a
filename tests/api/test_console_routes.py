"""The console's routes: its assets only (a whitelist), and ``/auth/info`` for token holders."""
from __future__ import annotations

from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.conftest import TOKEN


def test_auth_info_refuses_strangers_and_describes_the_callers_token(
        container: Container) -> None:
    c = TestClient(create_app(container))
    for headers in ({}, {"Authorization": "FlespiToken nope"}, {"Authorization": "Bearer " + "x" * 300}):
        r = c.get("/auth/info", headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["errors"][0]["reason"]
    r = c.get("/auth/info", headers={"Authorization": f"FlespiToken {TOKEN}"})
    assert r.status_code == 200
    assert r.json()["result"][0]["access"]["type"] == 1  # the admin token is a master token


def test_console_serves_its_assets_and_nothing_else(container: Container) -> None:
    c = TestClient(create_app(container))
    page = c.get("/console")
    assert page.status_code == 200 and "frame-ancestors *" in page.headers["content-security-policy"]
    assert c.get("/console/app.js").headers["content-type"].startswith("text/javascript")
    for path in ("/console/../config.py", "/console/__init__.py", "/console/vendor/README.md",
                 "/console/%2e%2e/api/app.py"):
        assert c.get(path).status_code == 404, path
    assert c.get("/console/config.json").json()["prefix"] == container.settings.topic_prefix
