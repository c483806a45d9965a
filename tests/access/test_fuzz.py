"""schemathesis over the OpenAPI description, with the admin token and with a scoped one:
no answer is a 5xx, and the scoped token never gets a 2xx outside its scope."""
from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.access.test_scope_matrix import MEDIA_WRITER, OWN, expected_allowed
from tests.api import uploaded
from tests.conftest import TOKEN

EXAMPLES = int(os.environ.get("FLEETCAM_FUZZ_EXAMPLES", "12"))


def _world(client: TestClient) -> str:
    for n in (1, 2):
        client.post("/gw/devices", json={"name": f"d{n}", "ident": f"0139000000{n:02}"})
        uploaded(client, n)
    r = client.post("/platform/customer/tokens",
                    json=[{"info": "fuzz", "ttl": 3600, "access": MEDIA_WRITER}])
    return str(r.json()["result"][0]["key"])


def _items_outside(body: Any) -> list[Any]:
    """Result items naming a device other than OWN."""
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        return []
    out = []
    for item in body["result"]:
        if isinstance(item, dict):
            dev = item.get("device_id", item.get("id") if "ident" in item else None)
            if dev is not None and dev != OWN:
                out.append(item)
    return out


@pytest.mark.parametrize("who", ["scoped", "admin"])
def test_fuzz_the_api(client: TestClient, container: Container, who: str) -> None:
    scoped_key = _world(client)
    key = TOKEN if who == "admin" else scoped_key
    app = create_app(container)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith(("/gw", "/platform", "/media", "/auth")):
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            r = case.call(headers={"Authorization": f"FlespiToken {key}"})
            calls.append(f"{case.method} {case.path} {r.status_code}")
            where = f"{case.method} {case.formatted_path} -> {r.status_code}"
            if r.status_code >= 500:
                failures.append(f"{where} {r.text[:200]}")
            if who == "scoped" and 200 <= r.status_code < 300 and \
                    case.path.startswith(("/gw", "/platform")):
                if not expected_allowed("writer", case.method, case.path, OWN):
                    failures.append(f"{where}: 2xx outside the scope")
                elif _items_outside(r.json() if "json" in r.headers.get(
                        "content-type", "") else None):
                    failures.append(f"{where}: answered another device's items")

        run()
    assert len({c.rsplit(" ", 1)[0] for c in calls}) >= 25, calls  # every operation ran
    assert any(c.endswith(" 200") for c in calls)
    assert not failures, "\n".join(sorted(set(failures))[:40])
