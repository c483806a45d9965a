"""Every REST route for every kind of token, with the expected status.

Routes come from the OpenAPI description, so a new route is in the matrix the day it lands;
one under /gw or /platform that answers without a valid token fails it."""
from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.conftest import TOKEN

OWN, FOREIGN = 1, 2
READ_SUBS = ("media", "logs", "messages", "connections", "commands-queue", "commands-result")
READER = {"type": 2, "acl": [{"uri": "gw/devices", "ids": [OWN], "methods": ["GET"],
                              "submodules": [{"name": s, "methods": ["GET"]}
                                             for s in READ_SUBS]}]}
MEDIA_WRITER = {"type": 2, "acl": [{"uri": "gw/devices", "ids": [OWN], "methods": ["GET"],
                                    "submodules": [{"name": "media", "methods": [
                                        "GET", "POST", "PUT", "DELETE"]}]}]}
PARAMS = {"conn_id": "5", "cmd_sel": "all", "type_sel": "all", "name": "x", "file": "x"}


def routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        if path.startswith(("/gw", "/platform")):
            out += [(m.upper(), path) for m in ops if m in ("get", "post", "put", "delete")]
    return sorted(out)


def concrete(path: str, sel: int) -> str:
    if path.startswith("/platform"):
        sel += 1000  # tokens that do not exist: the admin must not revoke the others
    path = path.replace("{sel}", str(sel), 1)
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m[1], "1"), path)


def submodule(path: str) -> str | None:
    parts = path.strip("/").split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "{sel}" else None


def expected_allowed(kind: str, method: str, path: str, sel: int) -> bool:
    """The ground truth, written out by hand (not Principal.allows)."""
    if kind == "admin":
        return True
    if kind in ("expired", "revoked"):
        return False
    if path.startswith("/gw/channel-protocols"):
        return method == "GET"
    if not path.startswith("/gw/devices/{sel}") or sel != OWN:
        return False
    sub = submodule(path)
    if kind == "reader":
        return method == "GET" and (sub is None or sub in READ_SUBS)
    return (sub is None and method == "GET") or sub == "media"


@pytest.fixture
def tokens(client: TestClient, container: Container, clock: ManualClock) -> dict[str, str]:
    for n in (OWN, FOREIGN):
        r = client.post("/gw/devices", json={"name": f"d{n}", "ident": f"0139000000{n:02}"})
        assert r.json()["result"][0]["id"] == n

    def make(access: dict[str, Any], **kw: Any) -> dict[str, Any]:
        r = client.post("/platform/customer/tokens", json=[{"info": "m", "access": access, **kw}])
        assert r.status_code == 200, r.text
        return r.json()["result"][0]

    out = {"admin": TOKEN, "reader": make(READER, ttl=3600)["key"],
           "writer": make(MEDIA_WRITER, ttl=3600)["key"],
           "expired": make({"type": 0}, expire=int(clock.now()) + 5)["key"]}
    revoked = make({"type": 1}, ttl=3600)
    assert client.delete(f"/platform/customer/tokens/{revoked['id']}").status_code == 200
    out["revoked"] = revoked["key"]
    clock.advance(10)
    return out


def test_every_route_for_every_token(container: Container, tokens: dict[str, str]) -> None:
    app = create_app(container)
    table = routes(app)
    assert len(table) >= 25, table
    bad = []
    for kind in ("reader", "writer", "expired", "revoked", "admin"):  # admin deletes: last
        key = tokens[kind]
        c = TestClient(app, headers={"Authorization": f"FlespiToken {key}"})
        for method, path in table:
            for sel in (OWN, FOREIGN) if "{sel}" in path else (OWN,):
                url = concrete(path, sel)
                body = None if method in ("GET", "DELETE") else {}
                r = c.request(method, url, json=body, params={"timeout": 5})
                allowed = expected_allowed(kind, method, path, sel)
                ok = (r.status_code not in (401, 403) and r.status_code < 500) if allowed \
                    else r.status_code == (401 if kind in ("expired", "revoked") else 403)
                if not ok:
                    bad.append(f"{kind} {method} {url} -> {r.status_code} {r.text[:80]}")
                if r.status_code in (401, 403):
                    assert r.json()["errors"][0]["reason"], url
    assert not bad, "\n".join(bad)


def test_strangers_and_garbage_are_refused(container: Container) -> None:
    app = create_app(container)
    for method, path in routes(app):
        url = concrete(path, OWN)
        for header in (None, "FlespiToken " + "é" * 64, "Bearer \x7f" + "a" * 63,
                       "FlespiToken " + "a" * 5000, "FlespiToken", "Basic Zm9vOmJhcg=="):
            r = TestClient(app).request(method, url, headers={} if header is None else {
                "Authorization": header.encode("utf-8")})
            assert r.status_code == 401, (method, url, header, r.status_code)


def test_non_ascii_header_bytes_are_401(container: Container) -> None:
    import socket
    import threading

    import uvicorn

    from tests.e2e_local import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container), port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        while not server.started:
            t.join(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /gw/devices/all HTTP/1.1\r\nHost: x\r\nAuthorization: FlespiToken "
                      + bytes(range(0x80, 0xC0)) + b"\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    finally:
        server.should_exit = True
        t.join(10)


def test_listings_show_only_what_the_token_may_see(client: TestClient, container: Container,
                                                   tokens: dict[str, str]) -> None:
    from tests.api import uploaded

    for n in (OWN, FOREIGN):
        uploaded(client, n)
    reader = TestClient(create_app(container),
                        headers={"Authorization": f"FlespiToken {tokens['reader']}"})
    assert [d["id"] for d in reader.get("/gw/devices/all").json()["result"]] == [OWN]
    files = reader.get("/gw/devices/all/media").json()["result"]
    assert files and {f["device_id"] for f in files} == {OWN}
    assert reader.get("/gw/devices/id>0/logs").status_code == 200
    assert {e.get("device_id", OWN) for e in
            reader.get("/gw/devices/all/logs").json()["result"]} <= {OWN}


def test_ids_beyond_64_bits_are_400(client: TestClient, container: Container) -> None:
    app = create_app(container)
    huge = str(2**64)
    bad = []
    for method, path in routes(app):
        if "{" not in path:
            continue
        url = re.sub(r"\{(\w+)\}", huge, path)
        body = None if method in ("GET", "DELETE") else {}
        r = client.request(method, url, json=body)
        if r.status_code != 400:
            bad.append(f"{method} {url} -> {r.status_code} {r.text[:100]}")
    assert not bad, "\n".join(bad)
