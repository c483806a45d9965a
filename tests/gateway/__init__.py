"""Tests of the MDVR gateway over real sockets, with their helpers (simulated and raw devices)."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from fleetcam.domain.models import Device
from fleetcam.gateway.jt808 import Jt808Session
from fleetcam.gateway.server import Gateway
from fleetcam.ports import Clock
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import NEED_DATA, Jt808Connection, Message
from fleetcam.protocol.jt808.ids import MsgId
from fleetcam.runtime.dev import LocalServer
from fleetcam.simulator.device import DeviceConfig
from fleetcam.simulator.run import Simulation
from tests.e2e_local import make_settings, poll, serving

__all__ = ["RawDevice", "RecordingSink", "api_ok", "collect_any", "data", "device_of",
           "open_media_request",
           "gateway_server", "matching", "poll", "session_of", "simulate", "wait_for"]


@asynccontextmanager
async def gateway_server(data_dir: Path, clock: Clock | None = None,
                         **overrides: Any) -> AsyncIterator[LocalServer]:
    """A started LocalServer with its gateway on ephemeral ports of 127.0.0.1."""
    async with serving(make_settings(data_dir, **overrides), clock=clock) as server:
        assert server.gateway is not None
        yield server


async def simulate(server: LocalServer, count: int, *, mixed_editions: bool = False,
                   version2019: bool = False, report_interval: float = 0.2,
                   port: int | None = None, create: bool = True, start: bool = True,
                   **cfg: Any) -> Simulation:
    """``count`` simulated MDVRs (created in fleetcam first unless ``create`` is False)."""
    gw = server.gateway
    assert gw is not None
    template = DeviceConfig(phone="", host="127.0.0.1", port=port or gw.port_808,
                            media_host="127.0.0.1", version2019=version2019,
                            report_interval=report_interval, **cfg)
    sim = Simulation(count, template, mixed_editions=mixed_editions)
    if create:
        for i, ident in enumerate(sim.idents, start=1):
            await asyncio.to_thread(server.container.devices.create,
                                    [{"ident": ident, "name": f"sim {i}"}])
    if start:
        await sim.start()
    return sim


def device_of(server: LocalServer, ident: str) -> Device:
    device = server.container.device_repo.find_by_ident(ident)
    assert device is not None, ident
    return device


async def wait_for(predicate: Any, timeout: float = 5.0, every: float = 0.02) -> Any:
    """Poll a cheap synchronous ``predicate`` on the loop (no thread) until truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value or loop.time() >= deadline:
            return value
        await asyncio.sleep(every)


def api_ok(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


def data(**options: Any) -> dict[str, str]:
    """flespi's ``data`` query parameter."""
    return {"data": json.dumps(options)}


def session_of(gw: Gateway, local_port: int) -> Jt808Session | None:
    """The gateway's session of the client socket bound to ``local_port``."""
    return next((s for s in gw.sessions_808 if s.source.endswith(f":{local_port}")), None)


class RecordingSink:
    """A MediaSink that keeps every frame and close it is given."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, MediaFrame]] = []
        self.closed: list[tuple[int, int, str]] = []
        self.attached: list[tuple[int, int, Any]] = []

    def attach(self, request: Any, device: Device, connection_id: int) -> bool:
        self.attached.append((device.id, connection_id, request))
        return True

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None:
        self.frames.append((device.id, connection_id, frame))

    def on_close(self, device: Device, connection_id: int, reason: str) -> None:
        self.closed.append((device.id, connection_id, reason))


CODES: dict[tuple[int, str], str] = {}
"""Authentication codes RawDevice terminals were given, by (gateway port, phone)."""


async def open_media_request(gw: Gateway, device: Device, channel: int = 1, *,
                             kind: str = "test", ttl: float = 300.0,
                             source: str = "127.0.0.1:0", sink: Any = None) -> Any:
    """An outstanding media request for the device channel, served by ``sink`` (registered
    for ``kind``), as the gateway opens one before it asks a device for media."""
    if sink is not None:
        gw.register_media_kind(kind, sink)
    return await gw.call(gw.media_admission.request, kind=kind, device_id=device.id, channel=channel,
                         ref=f"{kind}:{device.id}:{channel}", holder=gw.gateway_id,
                         source=source, expires=gw.clock.now() + ttl)


class RawDevice:
    """A hand-driven JT/T 808 terminal over a plain asyncio stream (for hostile input)."""

    def __init__(self, port: int, phone: str, version2019: bool = False) -> None:
        self.port = port
        self.phone = phone
        self.version2019 = version2019
        self.codec = Jt808Connection()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.inbox: list[Message] = []
        self.eof = False

    async def connect(self) -> RawDevice:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    @property
    def local_port(self) -> int:
        assert self.writer is not None
        return int(self.writer.get_extra_info("sockname")[1])

    def frame(self, body: Any, msg_id: int | None = None) -> bytes:
        return self.codec.send(body, phone=self.phone, version2019=self.version2019,
                               msg_id=msg_id)

    async def write(self, raw: bytes) -> None:
        assert self.writer is not None
        self.writer.write(raw)
        await self.writer.drain()

    async def send(self, body: Any, msg_id: int | None = None) -> int:
        await self.write(self.frame(body, msg_id))
        return self.codec.last_serial or 0

    async def recv(self, timeout: float = 5.0) -> Message | None:
        """The next platform message, or None at EOF or after ``timeout``."""
        assert self.reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.inbox:
            if self.eof:
                return None
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), left)
            except asyncio.TimeoutError:
                return None
            except ConnectionError:  # reset by the gateway: closed as well
                chunk = b""
            if not chunk:
                self.eof = True
                continue
            self.codec.receive_data(chunk)
            while (ev := self.codec.next_event()) is not NEED_DATA:
                if isinstance(ev, Message):
                    self.inbox.append(ev)
        return self.inbox.pop(0)

    async def expect(self, body_type: type, timeout: float = 5.0) -> Any:
        """The next message of ``body_type`` (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (msg := await self.recv(max(0.01, deadline - loop.time()))) is not None:
            if isinstance(msg.body, body_type):
                return msg
        raise AssertionError(f"no {body_type.__name__} within {timeout} s (eof={self.eof})")

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the gateway closed the connection (reads until EOF)."""
        while await self.recv(timeout) is not None:
            pass
        return self.eof

    async def login(self) -> str:
        """Register (the first time) and authenticate; returns the auth code. Like a real
        terminal it keeps its code (in ``CODES``, by gateway port and phone) and only
        authenticates when it reconnects."""
        code = CODES.get((self.port, self.phone))
        if code is None:
            await self.send(m.Register(province=31, city=100, manufacturer="RAW",
                                       model="RAW-1", terminal_id="RAW0001", plate_color=1,
                                       plate="RAW1"))
            reg = await self.expect(m.RegisterResponse)
            assert reg.body.result == 0, reg
            code = CODES[(self.port, self.phone)] = str(reg.body.auth_code)
        serial = await self.send(m.Authenticate(auth_code=code, imei="860000000000001",
                                                software_version="raw"))
        ack = await self.expect(m.GeneralResponse)
        assert (ack.body.reply_serial, ack.body.reply_id, ack.body.result) == (
            serial, MsgId.AUTHENTICATE, 0), ack
        return code

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


async def collect_any(client: aiomqtt.Client, wanted: tuple[str, ...], n: int,
                      timeout: float = 10.0) -> list[tuple[str, Any]]:
    """The next ``n`` messages whose topic matches any of ``wanted`` (others are skipped),
    as (topic, JSON payload or None for an empty one), in arrival order."""
    out: list[tuple[str, Any]] = []

    async def gather() -> None:
        async for msg in client.messages:
            if not any(msg.topic.matches(w) for w in wanted):
                continue
            raw = msg.payload if isinstance(msg.payload, (bytes, bytearray)) else \
                str(msg.payload).encode()
            out.append((msg.topic.value, json.loads(raw) if raw else None))
            if len(out) == n:
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(gather(), timeout)
    return out


def matching(got: list[tuple[str, Any]], wanted: str) -> list[tuple[str, Any]]:
    """The (topic, payload) pairs of ``got`` whose topic matches the MQTT filter ``wanted``."""
    return [(t, p) for t, p in got if aiomqtt.Topic(t).matches(wanted)]
