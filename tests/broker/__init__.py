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
    expire: int = 0

    def allows(self, uri: str, method: str, device_id: int | None = None,
               submodule: str | None = None) -> bool:
        if self.kind != "acl":
            return True
        if uri != "gw/devices" or method != "GET":
            return False
        if device_id is not None and device_id not in self.devices:
            return False
        return submodule is None or submodule in self.submodules

    def device_ids(self, uri: str, method: str = "GET",
                   submodule: str | None = None) -> set[int] | None:
        if self.kind != "acl":
            return None
        if uri != "gw/devices" or method != "GET" or (
                submodule is not None and submodule not in self.submodules):
            return set()
        return set(self.devices)


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


# ------------------------------------------------------------------ paho-mqtt, the real client
import queue  # noqa: E402
import threading  # noqa: E402

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402


class Paho:
    """A paho-mqtt client (MQTT 5 or 3.1.1, TCP or WebSocket) with blocking helpers; use it
    from a thread (``asyncio.to_thread``) while the broker runs in the test's loop."""

    def __init__(self, port: int, token: str | None, *, ws: bool = True, v5: bool = True,
                 password: str | None = None, username: str | None = None) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"t-{free_port()}",
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                                  transport="websockets" if ws else "tcp")
        if ws:
            self.client.ws_set_options(path="/mqtt")
        if username is not None or token is not None:
            self.client.username_pw_set(username if username is not None
                                        else f"FlespiToken {token}", password)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.connack: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.disconnected = threading.Event()
        self.disconnect_reason: Any = None
        c = self.client
        c.on_message = lambda _c, _u, m: self.messages.put(m)
        c.on_connect = lambda _c, _u, _f, rc, props: self.connack.put((int(rc.value), props))
        c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(
            [int(r.value) if hasattr(r, "value") else int(r) for r in rcs])

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.disconnect_reason = rc
            self.disconnected.set()

        c.on_disconnect = on_disconnect
        self.port = port

    def connect(self, timeout: float = 5.0) -> tuple[int, Any]:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=timeout)

    def subscribe(self, filters: list[tuple[str, int]], sub_id: int | None = None,
                  timeout: float = 5.0) -> list[int]:
        props = None
        if sub_id is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        self.client.subscribe(filters, properties=props)
        return self.subacks.get(timeout=timeout)

    def collect(self, n: int, timeout: float = 5.0) -> list[paho.MQTTMessage]:
        out: list[paho.MQTTMessage] = []
        try:
            while len(out) < n:
                out.append(self.messages.get(timeout=timeout))
        except queue.Empty:
            pass
        return out

    def quiet(self, wait: float = 0.5) -> list[paho.MQTTMessage]:
        """Whatever arrives within ``wait`` seconds (expected: nothing)."""
        return self.collect(10**6, timeout=wait)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def server_publisher(run: Running) -> Paho:
    """fleetcam's own publisher, authenticated with the internal secret (MQTT 3.1.1, TCP)."""
    return Paho(run.tcp_port, None, ws=False, v5=False, username="fleetcam-server",
                password=run.internal_password)


def sub_ids(message: paho.MQTTMessage) -> list[int]:
    ids = getattr(message.properties, "SubscriptionIdentifier", None)
    return [] if ids is None else list(ids) if isinstance(ids, list) else [ids]
