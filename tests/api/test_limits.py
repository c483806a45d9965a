"""Issue 10: request bodies are bounded before they are parsed or stored: JSON bodies by
FLEETCAM_MAX_JSON_BODY, uploads by what the device may still store, both from the declared
length and while the body streams in (413 with the reason)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.runtime.local import build_local
from tests.api import error, list_media, stored_objects
from tests.conftest import TOKEN

LIMIT = 4096


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, max_json_body=LIMIT,
                        public_url="http://fleetcam.test", default_media_ttl=0)
    c = TestClient(create_app(build_local(settings)))
    c.headers["Authorization"] = f"FlespiToken {TOKEN}"
    yield c, settings


def chunks(data: bytes, size: int, sent: list[int]) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        sent.append(size)
        yield data[i:i + size]


def asgi_post(client: TestClient, path: str, content_type: str, parts: Iterator[bytes]
              ) -> tuple[int, dict[str, Any]]:
    """POST ``parts`` without a Content-Length straight to the ASGI app, one receive() per
    part, so what the app reads is exactly what it pulled (TestClient reads bodies whole)."""
    app = client.app
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("fleetcam.test", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"fleetcam.test"), (b"content-type", content_type.encode()),
                         (b"authorization", f"FlespiToken {TOKEN}".encode()),
                         (b"transfer-encoding", b"chunked")]}
    sent: list[dict[str, Any]] = []
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        chunk = next(parts, None) if not done else None
        if chunk is None:
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_a_json_body_over_the_limit_is_413_before_parsing(
        small: tuple[TestClient, Settings]) -> None:
    client, _ = small
    many = json.dumps([{"ident": f"0139{i:08d}", "name": "x" * 40} for i in range(200)])
    assert len(many) > LIMIT
    err = error(client.post("/gw/devices", content=many,
                            headers={"content-type": "application/json"}), 413)
    assert err["reason"] == (f"JSON request body of {len(many)} bytes exceeds the limit of "
                             f"{LIMIT} bytes")
    # no Content-Length (chunked): refused while it streams in, before it is all read
    sent: list[int] = []
    status, err = asgi_post(client, "/gw/devices", "application/json",
                            chunks(many.encode(), 1024, sent))
    assert status == 413 and "exceeds the limit" in err["errors"][0]["reason"]
    assert sum(sent) <= LIMIT + 1024 < len(many)
    assert client.get("/gw/devices/all").json()["result"] == []  # nothing was created
    # under the limit it works as before
    r = client.post("/gw/devices", json=[{"ident": "013900000001"}])
    assert r.status_code == 200, r.text


def _multipart(content: bytes, boundary: str = "fleetcamboundary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()


def test_an_upload_over_the_storage_cap_is_refused_as_it_streams_in(
        small: tuple[TestClient, Settings]) -> None:
    client, settings = small
    [dev] = client.post("/gw/devices", json=[{"ident": "013900000001",
                                              "media_rotate": 200_000}]).json()["result"]
    body = _multipart(b"\0" * 1_000_000)
    headers = {"content-type": "multipart/form-data; boundary=fleetcamboundary"}
    # declared: refused before anything is read
    err = error(client.post(f"/gw/devices/{dev['id']}/media", content=body, headers=headers),
                413)
    assert "exceeds" in err["reason"] and "200000" in err["reason"]
    # undeclared (chunked): refused once the streamed bytes pass what the device may store
    sent: list[int] = []
    status, err = asgi_post(client, f"/gw/devices/{dev['id']}/media", headers["content-type"],
                            chunks(body, 16384, sent))
    assert status == 413 and "exceeds" in err["errors"][0]["reason"], err
    assert sum(sent) <= 200_000 + 64 * 1024 + 16384 < len(body)
    assert list_media(client, dev["id"]).json()["result"] == []
    assert stored_objects(settings.data_dir) == []


def test_error_bodies_name_the_reason(small: tuple[TestClient, Settings]) -> None:
    client, _ = small
    r = client.post("/gw/devices", content=b"x" * (LIMIT + 1),
                    headers={"content-type": "application/json"})
    body: Any = r.json()
    assert r.status_code == 413 and body["errors"][0]["field"] == "body"
