"""Tests of the embedded MQTT broker, with their helpers.

``FakeAccess`` is a test double of the token service (container.access): it knows a few
tokens and what each may read, with flespi's rules for the cases the broker relies on."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from fleetcam.broker.server import Broker, Limits
from fleetcam.broker.transports import TcpListener, websocket_endpoint
from tests.e2e_local import free_port


@dataclass(frozen=True)
class FakePrincipal:
    token_id: int
    kind: str  # "master", "standard" or "acl"
    devices: frozenset[int] = frozenset()
    submodules: frozenset[str] = frozenset()
    acl: tuple[Any, ...] = ()

    def allows(self, uri: str, method: str, device_id: int | None = None,
               submodule: str | None = None) -> bool:
        if self.kind != "acl":
            return True
        if uri != "gw/devices" or method != "GET":
            return False
        if device_id is not None and device_id not in self.devices:
            return False
        return submodule is None or submodule in self.submodules


@dataclass
class FakeAccess:
    tokens: dict[str, FakePrincipal] = field(default_factory=dict)

    def authenticate(self, raw: str) -> FakePrincipal | None:
        text = raw.strip()
        scheme, _, rest = text.partition(" ")
        if scheme.lower() in ("flespitoken", "bearer"):
            text = rest.strip()
        return self.tokens.get(text)

    def token_json(self, p: FakePrincipal) -> dict[str, Any]:
        return {"id": p.token_id, "access": {"type": {"standard": 0, "master": 1,
                                                      "acl": 2}[p.kind]}}


MASTER = "M" * 64
READER = "R" * 64  # devices 7 and 8: media and logs
OTHER = "O" * 64  # device 9: media only


def default_access() -> FakeAccess:
    return FakeAccess({
        MASTER: FakePrincipal(1, "master"),
        READER: FakePrincipal(2, "acl", frozenset({7, 8}), frozenset({"media", "logs"})),
        OTHER: FakePrincipal(3, "acl", frozenset({9}), frozenset({"media"})),
    })


@dataclass
class Running:
    broker: Broker
    tcp_port: int
    http_port: int
    access: FakeAccess
    internal_password: str

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/mqtt"


@contextlib.asynccontextmanager
async def running_broker(access: FakeAccess | None = None, prefix: str = "fleetcam",
                         limits: Limits | None = None) -> AsyncIterator[Running]:
    """A broker with a TCP listener and ``/mqtt`` on a uvicorn app, on free ports."""
    access = access or default_access()
    broker = Broker(prefix, access.authenticate, access.token_json,
                    internal_password="internal-secret", limits=limits)
    await broker.start()
    tcp = TcpListener(broker, "127.0.0.1", 0)
    await tcp.start()
    app = FastAPI()
    app.add_api_websocket_route("/mqtt", websocket_endpoint(broker))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.02)
    try:
        yield Running(broker, tcp.port, port, access, "internal-secret")
    finally:
        await broker.stop()
        await tcp.stop()
        server.should_exit = True
        await task
