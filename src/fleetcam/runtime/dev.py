"""``fleetcam serve``: API, embedded MQTT broker, ingest worker and sweeper in one process."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import uvicorn

from fleetcam.adapters.local.mqtt import EmbeddedBroker, MqttEventBus
from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.gateway.server import Gateway
from fleetcam.ports import Clock
from fleetcam.runtime.container import Container
from fleetcam.runtime.local import build_local, local_mqtt
from fleetcam.runtime.worker import IngestWorker

log = logging.getLogger("fleetcam")


def expire_history(c: Container) -> int:
    """Delete messages and log entries past FLEETCAM_MESSAGES_TTL / FLEETCAM_LOG_TTL (each
    sweep; in AWS, DynamoDB's TTL deletes them). Returns how many."""
    now = c.clock.now()
    return c.messages.store.expire(now) + c.logs.expire(now)


class LocalServer:
    """Everything ``fleetcam serve`` runs, startable and stoppable from tests too."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 gateway: bool = True) -> None:
        """``clock`` defaults to the system clock (tests pass a ManualClock); ``gateway``
        runs the JT/T 808/1078 gateway in the same process."""
        self.settings = settings
        # the embedded broker knows fleetcam's own publishers by a secret kept in the database
        mqtt_url, internal = local_mqtt(settings)
        self.bus = MqttEventBus(mqtt_url, client_id="fleetcam-server")
        self.container = build_local(settings, clock=clock, bus=self.bus)
        self.broker = None if settings.mqtt_url else EmbeddedBroker(
            "127.0.0.1" if settings.http_host in ("127.0.0.1", "localhost") else "0.0.0.0",
            settings.mqtt_port, prefix=settings.topic_prefix, access=self.container.access,
            internal_password=internal, max_sessions=settings.mqtt_max_sessions)
        queue = self.container.extras["queue"]
        self.worker = IngestWorker(queue, self.container.ingest)
        self.container.store.on_created = self.worker.notify  # type: ignore[attr-defined]
        # DVR segments indexed: their thumbnails are made by the same worker
        self.container.dvr_index.on_indexed = self.worker.notify  # type: ignore[union-attr]
        self.gateway = Gateway(self.container) if gateway else None
        self.app = create_app(self.container)
        if self.broker is not None:  # MQTT over WebSocket on the API's origin
            self.app.add_api_websocket_route("/mqtt", self.broker.websocket_route())
        self.uvicorn = uvicorn.Server(uvicorn.Config(
            self.app, host=settings.http_host, port=settings.http_port, log_level="warning",
            lifespan="off",
            # /mqtt is the only WebSocket route: a message never needs more than the broker's
            # packet limit (uvicorn would otherwise buffer up to 16 MiB per message)
            ws_max_size=256 * 1024))
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        c = self.container
        done, undone = await asyncio.to_thread(c.store.recover)  # type: ignore[attr-defined]
        await asyncio.to_thread(c.media.finish_deletions)
        if self.broker is not None:
            await self.broker.start()
        await self.bus.start()
        await self.worker.start()
        if self.gateway is not None:
            await self.gateway.start()
        self._tasks.append(asyncio.create_task(self._sweeper(), name="sweeper"))
        self._tasks.append(asyncio.create_task(self.uvicorn.serve(), name="http"))
        while not self.uvicorn.started:
            if self._tasks[-1].done():
                await self._tasks[-1]  # raises the bind error
                raise RuntimeError("HTTP server exited during start-up")
            await asyncio.sleep(0.02)
        if c.extras.get("token_generated"):
            print(f"fleetcam: generated admin token {c.extras['admin_token']} "
                  "(kept in the data directory; set FLEETCAM_ADMIN_TOKEN to choose one)",
                  flush=True)
        log.info("fleetcam on %s (data in %s, recovered %d/%d puts)", self.settings.base_url,
                 self.settings.data_dir, done, undone)

    async def _sweeper(self) -> None:
        while True:
            try:
                n = await asyncio.to_thread(self.container.retention.sweep)
                if n:
                    log.info("sweeper expired %d files", n)
                if self.container.dvr is not None:
                    n = await asyncio.to_thread(self.container.dvr.sweep)
                    if n:
                        log.info("sweeper deleted %d DVR segments", n)
                n = await asyncio.to_thread(self.container.commands.expire)
                if n:
                    log.info("sweeper expired %d commands", n)
                n = await asyncio.to_thread(expire_history, self.container)
                if n:
                    log.info("sweeper deleted %d messages and log entries past retention", n)
            except Exception:
                log.exception("sweeper pass failed")
            await asyncio.sleep(self.settings.sweep_interval)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        self.uvicorn.should_exit = True
        for t in self._tasks:
            if t.get_name() != "http":
                t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.worker.stop()
        await self.bus.stop()
        if self.broker is not None:
            await self.broker.stop()
        db = self.container.extras.get("db")
        if db is not None:  # every thread's SQLite connection (3 descriptors each)
            db.close_all()


async def until_signal() -> None:
    """Wait for SIGINT or SIGTERM (the way every long-running command ends)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


SIMULATED_ALARM_INTERVAL = 300.0
"""Seconds between the simulated MDVRs' ADAS/DSM alarms (each with a photo and a clip)."""


async def start_simulation(server: LocalServer, count: int) -> Any:
    """Register ``count`` simulated MDVRs (if new) and connect them to the built-in gateway."""
    from fleetcam.domain.identity import new_code
    from fleetcam.simulator.device import DeviceConfig
    from fleetcam.simulator.run import Simulation

    assert server.gateway is not None
    sim = Simulation(count, DeviceConfig(phone="", host="127.0.0.1",
                                         port=server.gateway.port_808, media_host="127.0.0.1",
                                         alarm_interval=SIMULATED_ALARM_INTERVAL))
    repo, devices = server.container.device_repo, server.container.devices
    for i, vdev in enumerate(sim.devices, start=1):
        # provisioned codes, as fleets do: a restarted simulation authenticates at once
        # (a code it got at an earlier registration died with the previous process)
        code = new_code()
        device = await asyncio.to_thread(repo.find_by_ident, vdev.cfg.phone)
        if device is None:
            await asyncio.to_thread(devices.create, [{
                "ident": vdev.cfg.phone, "name": f"simulated MDVR {i}",
                "configuration": {"auth_code": code}}])
        else:
            await asyncio.to_thread(devices.set_identity, device, {"auth_code": code})
        vdev.auth_code = code
    await sim.start()
    await start_teltonika(server, sim)
    return sim


SIMULATED_TELTONIKA_IMEI = "350612071913857"


async def start_teltonika(server: LocalServer, sim: Any) -> None:
    """One simulated Teltonika FMC with a DualCam beside the MDVRs (its IMEI is created as a
    device if new); it stops with the simulation."""
    from fleetcam.simulator.teltonika import TeltonikaConfig, VirtualTeltonika

    assert server.gateway is not None
    repo, devices = server.container.device_repo, server.container.devices
    if await asyncio.to_thread(repo.find_by_ident, SIMULATED_TELTONIKA_IMEI) is None:
        await asyncio.to_thread(devices.create, [{
            "ident": SIMULATED_TELTONIKA_IMEI, "name": "simulated Teltonika FMC + DualCam"}])
    tracker = VirtualTeltonika(TeltonikaConfig(
        imei=SIMULATED_TELTONIKA_IMEI, port=server.gateway.port_teltonika,
        camera_port=server.gateway.port_teltonika_camera))
    sim.tasks.append(asyncio.get_running_loop().create_task(tracker.run(sim.stop)))
    sim.teltonika = tracker


async def serve(settings: Settings, simulate: int = 0) -> None:
    server = LocalServer(settings)
    await server.start()
    print(f"fleetcam serving on {settings.base_url} (API docs at {settings.base_url}/docs); "
          f"JT/T 808 on port {server.gateway.port_808 if server.gateway else '-'}, "
          f"JT/T 1078 on port {server.gateway.port_1078 if server.gateway else '-'}; "
          + (f"MQTT on port {settings.mqtt_port} and "
             f"{settings.base_url.replace('http', 'ws', 1)}/mqtt (WebSocket), "
             "the token as username" if server.broker
             else f"MQTT on the external broker {server.bus.host}:{server.bus.port}"),
          flush=True)
    sim = await start_simulation(server, simulate) if simulate else None
    if sim is not None:
        print(f"simulating {simulate} MDVRs: {', '.join(sim.idents)}, and a Teltonika "
              f"tracker with a DualCam: {SIMULATED_TELTONIKA_IMEI}", flush=True)
    await until_signal()
    if sim is not None:
        await sim.stop_all()
    await server.stop()
