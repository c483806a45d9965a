"""End-to-end tests of the media pipeline (clips, photos, rules, live HLS), with their helpers."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from fleetcam.ports import Clock
from fleetcam.protocol.jt808 import messages as m
from fleetcam.runtime.dev import LocalServer
from fleetcam.simulator.device import DeviceConfig, VirtualMdvr
from fleetcam.simulator.run import Simulation
from tests.e2e_local import TOKEN, free_port, make_settings, serving

__all__ = [
    "TOKEN",
    "Mqtt",
    "api_ok",
    "data",
    "device_messages",
    "http",
    "location",
    "log_entries",
    "media_files",
    "pipeline_server",
    "record_platform_messages",
    "simulate",
    "until",
    "wait_results",
]


@asynccontextmanager
async def pipeline_server(data_dir: Path, clock: Clock | None = None,
                          **overrides: Any) -> AsyncIterator[LocalServer]:
    """A started LocalServer (API, broker, ingest worker, gateway) on free ports of 127.0.0.1."""
    async with serving(make_settings(data_dir, **overrides), clock=clock) as server:
        assert server.gateway is not None
        yield server


@asynccontextmanager
async def simulate(server: LocalServer, count: int = 1, *, report_interval: float = 3600.0,
                   playback_speed: float = 0.0, **cfg: Any) -> AsyncIterator[Simulation]:
    """``count`` simulated MDVRs, created in fleetcam, connected and authenticated; recordings
    are uploaded as fast as possible unless ``playback_speed`` says otherwise. Periodic
    reports are rare (one at log-in), so a test controls the device's telemetry."""
    gw = server.gateway
    assert gw is not None
    template = DeviceConfig(phone="", host="127.0.0.1", port=gw.port_808,
                            media_host="127.0.0.1", report_interval=report_interval,
                            playback_speed=playback_speed, **cfg)
    sim = Simulation(count, template)
    for i, ident in enumerate(sim.idents, start=1):
        await asyncio.to_thread(server.container.devices.create,
                                [{"ident": ident, "name": f"sim {i}"}])
    await sim.start()
    try:
        await sim.wait_authenticated(10)
        yield sim
    finally:
        await sim.stop_all()


def record_platform_messages(device: VirtualMdvr) -> list[Any]:
    """Keep every platform message body the simulated device handles (in order)."""
    seen: list[Any] = []
    handle = device.handle

    async def recording(msg: Any) -> None:
        seen.append(msg.body)
        await handle(msg)

    device.handle = recording  # type: ignore[method-assign]
    return seen


def location(when: int, lat: float = 52.0, lon: float = 4.0, alarm: int = 0) -> m.Location:
    """A 0x0200 report (send it with ``VirtualMdvr.send``)."""
    return m.Location(alarm=alarm, status=0b11, latitude=lat, longitude=lon, altitude=7,
                      speed=33.0, direction=90, time=when, extras={})


def http(server: LocalServer, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"FlespiToken {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.settings.base_url, headers=headers, timeout=30.0)


def api_ok(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


def data(**options: Any) -> dict[str, str]:
    """flespi's ``data`` query parameter."""
    return {"data": json.dumps(options)}


async def until(probe: Callable[[], Awaitable[Any]], timeout: float, every: float = 0.1,
                what: str = "condition") -> Any:
    """Await ``probe()`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {value!r})")
        await asyncio.sleep(every)


async def wait_results(api: httpx.AsyncClient, device_id: int, ids: list[int],
                       timeout: float = 30.0) -> dict[int, dict[str, Any]]:
    """The results of commands ``ids`` once every one of them is final."""
    async def probe() -> dict[int, dict[str, Any]] | None:
        got = {r["id"]: r for r in api_ok(await api.get(f"/gw/devices/{device_id}/"
                                                        "commands-result"))}
        return got if all(i in got for i in ids) else None

    done = await until(probe, timeout, what=f"results of commands {ids}")
    return {i: done[i] for i in ids}


async def media_files(api: httpx.AsyncClient, device_id: int) -> list[dict[str, Any]]:
    return api_ok(await api.get(f"/gw/devices/{device_id}/media"))


async def device_messages(api: httpx.AsyncClient, device_id: int) -> list[dict[str, Any]]:
    return api_ok(await api.get(f"/gw/devices/{device_id}/messages", params=data(count=1000)))


async def log_entries(api: httpx.AsyncClient, device_id: int) -> list[dict[str, Any]]:
    return api_ok(await api.get(f"/gw/devices/{device_id}/logs", params=data(count=1000)))


class Mqtt:
    """Everything published on some topic filters, collected in the background."""

    def __init__(self, port: int, *filters: str) -> None:
        self.client = aiomqtt.Client("127.0.0.1", port, identifier=f"pipeline-{free_port()}",
                                     username=f"FlespiToken {TOKEN}")
        self.filters = filters
        self.got: list[tuple[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Mqtt:
        await self.client.__aenter__()
        for f in self.filters:
            await self.client.subscribe(f, qos=1)
        self._task = asyncio.get_running_loop().create_task(self._gather())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.client.__aexit__(None, None, None)

    async def _gather(self) -> None:
        async for msg in self.client.messages:
            body = msg.payload
            raw = body if isinstance(body, (bytes, bytearray)) else str(body).encode()
            self.got.append((msg.topic.value, json.loads(raw) if raw else None))

    def matching(self, pattern: str,
                 where: Callable[[Any], bool] = lambda p: True) -> list[tuple[str, Any]]:
        return [(t, p) for t, p in self.got if aiomqtt.Topic(t).matches(pattern) and where(p)]

    async def wait(self, pattern: str, where: Callable[[Any], bool] = lambda p: True,
                   n: int = 1, timeout: float = 10.0) -> list[tuple[str, Any]]:
        async def probe() -> list[tuple[str, Any]] | None:
            hits = self.matching(pattern, where)
            return hits if len(hits) >= n else None

        return await until(probe, timeout, every=0.05, what=f"{n} MQTT message(s) at {pattern}")
