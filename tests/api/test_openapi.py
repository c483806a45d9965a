"""The OpenAPI document tells the truth: token schemes, a schema and an example for every body,
every status the API answers (schemathesis checks the answers against it), Allow on 405."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (allow_header_conformance, content_type_conformance,
                                 response_headers_conformance,
                                 response_schema_conformance, status_code_conformance)

from fleetcam.api.app import create_app
from fleetcam.api.openapi import _calls, route_views
from fleetcam.api.params import json_body
from fleetcam.runtime.local import build_local
from tests.conftest import TOKEN
from tests.e2e_local import make_settings
from tests.mediagen import make_image

METHODS = ("get", "put", "post", "delete", "head", "patch")


def test_the_token_schemes_are_declared_and_used(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["FlespiToken"] == {**schemes["FlespiToken"], "type": "apiKey",
                                      "in": "header", "name": "Authorization"}
    assert (schemes["Bearer"]["type"], schemes["Bearer"]["scheme"]) == ("http", "bearer")
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    secured = [k for k, op in ops.items() if op.get("security")]
    assert len(secured) > 20
    assert ops[("get", "/gw/devices/{sel}")]["security"] == [{"FlespiToken": []},
                                                            {"Bearer": []}]
    assert {} in ops[("get", "/media/{uuid}")]["security"]  # shared files need none
    assert "security" not in ops[("get", "/health")]


def test_every_body_has_a_schema_and_an_example(client: TestClient) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    doc = client.get("/openapi.json").json()
    readers = {(m.lower(), r.path_format) for _, r in route_views(app.routes)
               if getattr(r, "dependant", None) is not None and json_body in _calls(r.dependant)
               for m in r.methods}
    assert len(readers) >= 10
    for method, path in readers:
        body = doc["paths"][path][method].get("requestBody")
        assert body, f"{method} {path} reads a body the document does not describe"
        for media_type in body["content"].values():
            assert media_type.get("schema"), (method, path)
            assert "example" in media_type or "examples" in media_type, (method, path)
    upload = doc["paths"]["/gw/devices/{sel}/media"]["post"]["requestBody"]
    assert "multipart/form-data" in upload["content"]


def test_every_error_status_is_documented_with_the_envelope(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/Errors"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "422" not in responses, (method, path)  # validation answers 400
            assert "400" in responses, (method, path)
            for status, answer in responses.items():
                if status >= "400" and status != "416":
                    assert answer["content"]["application/json"]["schema"] == envelope, (
                        method, path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_405_answers_carry_allow(client: TestClient, device: dict[str, Any]) -> None:
    r = client.patch(f"/gw/devices/{device['id']}")
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert r.json()["errors"][0]["reason"]
    r = client.post("/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


# -- schemathesis: every answer conforms to the document --------------------------------


def _api_schema(data_dir: Path) -> Any:
    container = build_local(make_settings(data_dir))
    app = create_app(container)
    seed = TestClient(app, headers={"Authorization": f"FlespiToken {TOKEN}"})
    device = seed.post("/gw/devices", json={"ident": "013912345678"}).json()["result"][0]
    seed.post(f"/gw/devices/{device['id']}/media",
              files={"file": ("a.jpg", make_image(32, 24), "image/jpeg")})
    seed.post(f"/gw/devices/{device['id']}/commands-queue",
              json=[{"name": "take_photo", "properties": {"channel": 1}}])
    return schemathesis.openapi.from_asgi("/openapi.json", app)


CHECKS = [response_schema_conformance, status_code_conformance, content_type_conformance,
          response_headers_conformance, allow_header_conformance]
EXAMPLES = 25


def test_answers_conform_to_the_document(tmp_path: Path) -> None:
    """schemathesis's response-conformance checks over every operation; zero findings.

    Driven through its Python API (its pytest plugin does not load under pytest 9)."""
    schema = _api_schema(tmp_path / "data")
    findings: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"FlespiToken {TOKEN}"},
                                   checks=CHECKS)

        try:
            check()
        except Exception as e:  # noqa: BLE001 - every finding is reported, not the first
            findings.append(f"{operation.label}: {e}")
    assert operations > 25
    assert findings == [], "\n\n".join(findings)


def test_doc_pages_load_only_from_the_server(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and "default-src 'self'" in r.headers[
            "content-security-policy"]
        assert "cdn." not in r.text and "googleapis" not in r.text
    asset = next(p for p in client.get("/docs").text.split('"')
                 if p.startswith("/docs-assets/") and p.endswith(".js"))
    r = client.get(asset)
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith("application/javascript")
    assert client.get(asset.replace("/docs-assets/", "/docs-assets/0")).status_code == 404
    assert client.get("/docs-assets/x/../../pyproject.toml").status_code == 404


def test_operation_ids_are_unique(client: TestClient) -> None:
    """OpenAPI requires unique operationIds (client generators name methods after them); a
    route serving GET and HEAD under one id made FastAPI warn and the document invalid."""
    import warnings

    app = client.app
    app.openapi_schema = None  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns "Duplicate Operation ID"
        doc = app.openapi()  # type: ignore[attr-defined]
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items()
           if m in METHODS]
    assert len(ids) > 50 and len(ids) == len(set(ids))
    assert doc["paths"]["/media/{uuid}"]["head"]["operationId"] == "media_link_head"
