"""End-to-end tests of the all-in-one local server (real HTTP, real MQTT), with their helpers."""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx

from fleetcam.config import Settings
from fleetcam.ports import Clock
from fleetcam.runtime.dev import LocalServer

TOKEN = "T" * 64
TEST_TIMEOUT = 60.0
"""No end-to-end test may hang: each coroutine is cancelled after this many seconds."""
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run one test coroutine in a fresh event loop (pytest-asyncio is not used)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for one server on free ports; the sweeper's periodic pass is kept out of the way."""
    values: dict[str, Any] = {"data_dir": data_dir, "http_port": free_port(),
                              "mqtt_port": free_port(), "admin_token": TOKEN,
                              "sweep_interval": 3600, "default_media_ttl": 0,
                              "gateway_host": "127.0.0.1", "jt808_port": 0, "jt1078_port": 0,
                              "attachment_port": 0, "teltonika_port": 0,
                              "teltonika_camera_port": 0}
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def serving(settings: Settings, clock: Clock | None = None) -> AsyncIterator[LocalServer]:
    """A started LocalServer, stopped on the way out whatever happened."""
    server = LocalServer(settings, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def http(settings: Settings, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"FlespiToken {token}"} if token else {}
    return httpx.AsyncClient(base_url=settings.base_url, headers=headers, timeout=10.0)


async def create_device(client: httpx.AsyncClient, ident: str = "013912345678") -> dict[str, Any]:
    r = await client.post("/gw/devices", json=[{"name": f"cam-{ident}", "ident": ident}])
    assert r.status_code == 200, r.text
    return r.json()["result"][0]  # type: ignore[no-any-return]


async def upload(client: httpx.AsyncClient, device_id: int, content: bytes,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post(f"/gw/devices/{device_id}/media",
                          files={"file": ("snap.jpg", content, "image/jpeg")},
                          data={"data": json.dumps(options or {})})
    assert r.status_code == 200, r.text
    return r.json()["result"][0]  # type: ignore[no-any-return]


async def poll(probe: Callable[[], Any], timeout: float = 5.0, every: float = 0.05) -> Any:
    """Call ``probe()`` (sync) until it returns something truthy or ``timeout`` passes.

    For asynchronous work only (the ingest worker), never to wait for expiry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if value or loop.time() >= deadline:
            return value
        await asyncio.sleep(every)


async def drained(server: LocalServer, timeout: float = 10.0) -> None:
    """Wait until the ingest worker has handled every queued object-created event.

    A REST upload is ingested inline *and* queued; the worker's later pass runs retention
    again, so a test that moves a ManualClock must let the worker finish first."""
    queue = server.container.extras["queue"]
    assert await poll(lambda: queue.pending() == 0, timeout), "ingest queue did not drain"


def mqtt_client(port: int, token: str = TOKEN) -> aiomqtt.Client:
    """An aiomqtt client of the broker on ``port``, authenticated with ``token`` (use it with
    ``async with``)."""
    return aiomqtt.Client("127.0.0.1", port, identifier=f"e2e-{free_port()}",
                          username=f"FlespiToken {token}")


async def collect(client: aiomqtt.Client, wanted: str, n: int,
                  timeout: float = 10.0) -> list[tuple[str, Any]]:
    """The next ``n`` messages whose topic matches ``wanted``, as (topic, JSON payload).

    Others are skipped: amqtt may hand a new subscriber retained messages of other topics."""
    out: list[tuple[str, Any]] = []

    async def gather() -> None:
        async for msg in client.messages:
            if not msg.topic.matches(wanted):
                continue
            body = msg.payload
            raw = body if isinstance(body, (bytes, bytearray)) else str(body).encode()
            out.append((msg.topic.value, json.loads(raw) if raw else None))
            if len(out) == n:
                return

    try:
        await asyncio.wait_for(gather(), timeout)
    except TimeoutError:
        pass
    return out
