"""The gateway service: JT/T 808 and JT/T 1078 listeners over asyncio, and their housekeeping."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fleetcam.config import Settings
from fleetcam.domain.admission import MEDIA_KINDS
from fleetcam.domain.gateway import Command, Connection
from fleetcam.domain.models import Device
from fleetcam.errors import TooLarge
from fleetcam.gateway.dvr import DvrRecorder
from fleetcam.gateway.attachments import Attachments, AttachmentSession
from fleetcam.gateway.jt808 import Jt808Session
from fleetcam.gateway.limits import (Admission, QuietLog, RateLimiter, quiet_accept_errors,
                                     raise_nofile)
from fleetcam.gateway.teltonika import CameraSession, TeltonikaSession
from fleetcam.gateway.jt1078 import Jt1078Session, MediaSink
from fleetcam.gateway.live import LiveManager
from fleetcam.gateway.recorder import Recorder
from fleetcam.gateway.refusals import RefusalLog
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import ReassemblyBudget
from fleetcam.runtime.container import Container
from fleetcam.services.admission import MediaAdmission
from fleetcam.services.gateway import CommandService, ConnectionService, MessageService
from fleetcam.services.identity import IdentityService
from fleetcam.services.media import storage_full, upload_options

log = logging.getLogger(__name__)
T = TypeVar("T")
HOUSEKEEPING_EVERY = 1.0
FULL_SYNC_EVERY = 120.0
"""Seconds between two full reads of this copy's connections and assigned commands when its
change marker (``ConnectionRegistry.inbox``) says nothing changed: a safety net."""
DVR_SYNC_EVERY = 300.0
"""Seconds between two reads of the DVR streams when the fleet's marker says nothing changed
(without markers: gateway/dvr.py REFRESH_EVERY)."""
FLEET_MARKER_EVERY = 5
"""Ticks between two reads of the fleet's marker (the DVR streams) with the copy's own."""
SETTLE_TICKS = 3
"""Ticks that read in full after the marker changed (the lists are read from indexes that
may lag the marker by a moment)."""
METRICS_EVERY = 60
RENEW_EVERY = 10
"""Housekeeping ticks between two renewals of media bindings (BINDING_LEASE is 30 s)."""
"""Housekeeping ticks between two connection-count metrics."""


class Gateway:
    """Terminates device connections; state that must survive lives in the shared stores, so
    several copies can run behind one load balancer."""

    def __init__(self, container: Container, settings: Settings | None = None) -> None:
        self.c = container
        self.settings = settings or container.settings
        self.clock = container.clock
        self.messages: MessageService = container.messages
        self.connections: ConnectionService = container.connections
        self.commands: CommandService = container.commands
        self.gateway_id = f"gw-{socket.gethostname()}-{secrets.token_hex(4)}"
        self.media_host = self.settings.media_host or _own_address()
        self.sessions_808: set[Jt808Session] = set()
        self.sessions_by_device: dict[int, Jt808Session] = {}
        self.sessions_1078: set[Jt1078Session] = set()
        self.sessions_attachment: set[AttachmentSession] = set()
        self.sessions_teltonika: set[TeltonikaSession] = set()
        self.sessions_camera: set[CameraSession] = set()
        self.media_admission = MediaAdmission(container.media_requests, container.clock)
        self.recorder = Recorder(self)
        self.attachments = Attachments(self)
        self.live = LiveManager(self)
        self.dvr = DvrRecorder(self)
        self.media_sinks: dict[str, MediaSink] = {}
        """Who serves each kind of media request (domain/admission.py MEDIA_KINDS)."""
        self.register_media_kind("clip", self.recorder)
        self.register_media_kind("live", self.live)
        self.register_media_kind("playback", self.live)
        self.register_media_kind("dvr", self.dvr, "a recorded channel's continuous stream "
                                                  "(0x9101, cloud DVR)")
        self.taps: list[MediaSink] = []
        """Observers of every admitted media frame, whatever its request (tests, benchmarks)."""
        self.stats = {"frames": 0, "frame_bytes": 0, "dropped_frames": 0, "auth_failures": 0,
                      "refused_connections": 0}
        s = self.settings
        self.identity = IdentityService(container.device_repo, container.devices.create,
                                        container.connections.journal, self.clock)
        self.admission = Admission(s.max_connections, s.max_connections_per_address,
                                   limit=raise_nofile())
        self.reassembly_budget = ReassemblyBudget(s.reassembly_memory)
        self.auth_failures = RateLimiter(s.auth_failure_limit)
        self._auto_total = RateLimiter(s.auto_register_limit)
        self._auto_per_address = RateLimiter(max(1, s.auto_register_limit // 10))
        self._auto_lock = threading.Lock()
        self.quiet = QuietLog(log)
        self.refusals = RefusalLog(self.quiet)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gw-store")
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lease_task: asyncio.Task[None] | None = None
        self._lease_renewed = float("-inf")
        self._wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.full_sync_every = FULL_SYNC_EVERY
        """Seconds between full reads without a marker change (HOUSEKEEPING_EVERY: every
        tick, marker unread: the gateway before markers, the benchmark's reference)."""
        self._inbox_seen: object = object()
        self._fleet_seen: object = object()
        self._marker_reads = 0
        self._dvr_settle = 0
        self._synced_at = float("-inf")
        self._settle = 0
        self._next_due = float("inf")
        """When the earliest command seen assigned but not yet due (not_before) is due."""
        self.commands.wake.append(self._wake_threadsafe)
        self._flush_command_metrics: Callable[[], bool] | None = None
        if self.settings.emf_metrics:  # commands by outcome, as the functions count them
            from aws_lambda_powertools import Metrics

            from fleetcam.adapters.aws.metrics import count_commands

            self._flush_command_metrics = count_commands(
                self.commands, Metrics(namespace=METRICS_NAMESPACE, service="gateway"))
        self.connections.drop_listeners.append(self._dropped_threadsafe)
        if container.dvr is not None:
            container.dvr_tail = self.dvr
            container.dvr.changed.append(self._dvr_changed_threadsafe)

    def register_media_kind(self, kind: str, sink: MediaSink, description: str = "") -> None:
        """Let media connections feed requests of ``kind`` (a feature asking devices for
        media registers its kind and sink here)."""
        MEDIA_KINDS.setdefault(kind, description or kind)
        self.media_sinks[kind] = sink

    @property
    def media_port(self) -> int:
        """The media port devices are told: the load balancer's, else this copy's."""
        return self.settings.media_port or self.port_1078

    # -- plumbing ---------------------------------------------------------------------
    def loop_time(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) store call off the event loop."""
        assert self.loop is not None
        return await self.loop.run_in_executor(self._executor,
                                               functools.partial(fn, *args, **kwargs))

    async def session_closed(self, session: Any) -> None:
        """A signalling session (JT/T 808 or Teltonika) ended: it no longer holds its device
        here, and its connection row is closed with the session's reason."""
        device = session.device
        if device is not None and self.sessions_by_device.get(device.id) is session:
            del self.sessions_by_device[device.id]
        if session.connection is not None:
            await self.call(self.connections.closed, session.conn_id, session.closing_reason,
                            self.gateway_id)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake_threadsafe(self, gateway_id: str) -> None:
        if gateway_id == self.gateway_id and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._wake.set)

    def _dropped_threadsafe(self, conn: Any) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._close_conn, conn.id, "user")

    def _dvr_changed_threadsafe(self, stream: Any) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._dvr_changed)

    def _dvr_changed(self) -> None:
        self.dvr._refreshed = float("-inf")
        self._wake.set()

    # -- admission ----------------------------------------------------------------------
    def admit(self, session: Any) -> bool:
        """Count a new device connection in, or close it at once (one quiet log line)."""
        reason = self.admission.admit(session.ip)
        if reason is not None:
            self.stats["refused_connections"] += 1
            self.quiet.warning(("admission", reason.split(" ", 1)[0]),
                               "device connection from %s refused: %s", session.source, reason)
            session.transport.abort()  # no FIN handshake to wait for: the descriptor goes now
            return False
        session.admitted = True
        return True

    def release(self, session: Any) -> None:
        if session.admitted:
            session.admitted = False
            self.admission.release(session.ip)

    def may_auto_register(self, ip: str) -> bool:
        """One more auto-registration from ``ip`` within FLEETCAM_AUTO_REGISTER_LIMIT (a
        minute, in total; a tenth of it per address)? Called from store threads."""
        with self._auto_lock:
            if self._auto_per_address.exhausted(ip) or self._auto_total.exhausted():
                return False
            return self._auto_per_address.allow(ip) and self._auto_total.allow()

    def device_online(self, device_id: int) -> bool:
        """Whether the device has a live signalling connection here or on another copy."""
        return (device_id in self.sessions_by_device
                or self.connections.online(device_id) is not None)

    def connection_authenticated(self, conn: Connection, replaced: Connection | None) -> None:
        """Store call: record the new connection; an older one of the same device (here or on
        another copy) is dropped from the registry and the take-over is published."""
        old = replaced or self.connections.online(conn.device_id)
        if old is not None and old.id != conn.id:
            if replaced is None:  # held by another copy: it closes what the registry drops
                self.connections.closed(old.id, f"replaced by a new connection from "
                                                f"{conn.source}")
            log.warning("device %s (%s): connection %s from %s replaced by %s from %s",
                        conn.device_id, conn.ident, old.id, old.source, conn.id, conn.source)
            self.identity.replaced(self.c.device_repo.get(conn.device_id), old.source,
                                   conn.source, old.id, conn.id)
        self.connections.opened(conn)

    def _close_conn(self, conn_id: int, reason: str) -> None:
        for s in [*self.sessions_808, *self.sessions_1078, *self.sessions_teltonika]:
            if s.conn_id == conn_id:
                s.close(reason)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        quiet_accept_errors(self.loop, self.quiet)
        await self._renew_lease()
        host = self.settings.gateway_host
        self._servers.append(await self.loop.create_server(
            lambda: Jt808Session(self), host, self.settings.jt808_port, reuse_address=True))
        self._servers.append(await self.loop.create_server(
            lambda: Jt1078Session(self), host, self.settings.jt1078_port, reuse_address=True))
        self._servers.append(await self.loop.create_server(
            lambda: AttachmentSession(self), host, self.settings.attachment_port,
            reuse_address=True))
        self._servers.append(await self.loop.create_server(
            lambda: TeltonikaSession(self), host, self.settings.teltonika_port,
            reuse_address=True))
        self._servers.append(await self.loop.create_server(
            lambda: CameraSession(self), host, self.settings.teltonika_camera_port,
            reuse_address=True))
        self.spawn(self._housekeeping())
        self._lease_task = self.loop.create_task(self._leases())
        log.info("gateway %s: JT/T 808 on %s:%d, JT/T 1078 on %s:%d", self.gateway_id, host,
                 self.port_808, host, self.port_1078)

    @property
    def port_808(self) -> int:
        return int(self._servers[0].sockets[0].getsockname()[1])

    @property
    def port_1078(self) -> int:
        return int(self._servers[1].sockets[0].getsockname()[1])

    @property
    def port_attachment(self) -> int:
        return int(self._servers[2].sockets[0].getsockname()[1])

    @property
    def port_teltonika(self) -> int:
        return int(self._servers[3].sockets[0].getsockname()[1])

    @property
    def port_teltonika_camera(self) -> int:
        return int(self._servers[4].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """SIGTERM (a deploy, a scale-in, stopping ``fleetcam serve``): stop accepting, remove
        this copy's leases, close the device connections so the devices reconnect to another
        copy (which sends their queued and unanswered commands)."""
        for srv in self._servers:
            srv.close()
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lease_task
        await self.dvr.close()
        await self.live.close()
        try:
            await self.call(self.connections.drop_gateway, self.gateway_id, "gateway stopping")
            for media in list(self.sessions_1078):
                if media.request is not None:
                    await self.call(self.media_admission.release, media.request, media.conn_id)
                    media.request = None
        except Exception:
            log.exception("gateway %s: removing its leases failed", self.gateway_id)
        for s in [*self.sessions_808, *self.sessions_1078, *self.sessions_attachment,
                  *self.sessions_teltonika, *self.sessions_camera]:
            s.connection = None  # already dropped and published
            s.close("gateway stopping")
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 5)
        await asyncio.sleep(0)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._executor.shutdown(wait=True)

    async def _leases(self) -> None:
        """Renew this copy's lease on time even while housekeeping is slow."""
        while True:
            await asyncio.sleep(min(1.0, self.settings.gateway_lease / 3))
            await self._renew_lease()

    async def _renew_lease(self) -> None:
        """Renew this copy's lease when a third of it passed (by the container's clock); drop
        the connections of copies whose lease passed (any live copy does it; dropping twice
        is harmless)."""
        now = self.clock.now()
        if now < self._lease_renewed + self.settings.gateway_lease / 3:
            return
        self._lease_renewed = now
        try:
            await self.call(self.connections.registry.heartbeat, self.gateway_id,
                            now + self.settings.gateway_lease)
            for dead in await self.call(self.connections.registry.expired_gateways, now):
                if dead != self.gateway_id:
                    gone = await self.call(self.connections.drop_gateway, dead,
                                           "gateway lease expired")
                    log.warning("gateway %s: lease expired; dropped its %d connections",
                                dead, len(gone))
        except Exception:
            self._lease_renewed = float("-inf")
            log.exception("gateway %s: lease renewal failed", self.gateway_id)

    async def _housekeeping(self) -> None:
        """Deliver commands routed here, close idle or dropped connections, ask for missing
        sub-packages."""
        ticks = 0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), HOUSEKEEPING_EVERY)
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                await self._renew_lease()
                if await self._sync_due(woken):
                    await self._deliver_assigned()
                    await self._reconcile()
                self._expire_idle()
                self.admission.measure()
                await self.recorder.watch_remote()
                self.recorder.tick()
                await self.live.tick()
                await self.dvr.tick()
                ticks += 1
                if ticks % 5 == 0:  # any copy may expire commands; updates are conditional
                    await self.call(self.commands.expire)
                if ticks % RENEW_EVERY == 0:
                    await self._renew_bindings()
                if self.settings.emf_metrics and ticks % METRICS_EVERY == 0:
                    print(json.dumps(connection_metrics(self, time.time())), flush=True)
                    if self._flush_command_metrics is not None:
                        self._flush_command_metrics()
            except Exception:
                log.exception("gateway housekeeping failed")

    async def _sync_due(self, woken: bool) -> bool:
        """Whether this tick reads the connection list and the assigned commands in full:
        when the copy's change marker moved (and SETTLE_TICKS after), when woken in this
        process, when a command seen earlier falls due, and every ``full_sync_every``."""
        now = self.loop_time()
        if self.full_sync_every <= HOUSEKEEPING_EVERY:
            return True
        self._marker_reads += 1
        markers = await self.call(self.connections.registry.inbox, self.gateway_id,
                                  self._marker_reads % FLEET_MARKER_EVERY == 1)
        if markers is None:
            return True  # a store without markers (local): its reads cost nothing
        marker, fleet = markers
        self.dvr.refresh_every = DVR_SYNC_EVERY
        if fleet is not None and fleet != self._fleet_seen:  # DVR streams changed: read them now (and again)
            self._fleet_seen = fleet
            self._dvr_settle = SETTLE_TICKS
        if self._dvr_settle > 0:
            self._dvr_settle -= 1
            self.dvr._refreshed = float("-inf")
        if marker != self._inbox_seen:
            self._inbox_seen = marker
            self._settle = SETTLE_TICKS
        due = (woken or self._settle > 0 or now - self._synced_at >= self.full_sync_every
               or self.clock.now() >= self._next_due)
        if due:
            self._settle = max(0, self._settle - 1)
            self._synced_at = now
        return due

    async def _deliver_assigned(self) -> None:
        pending = await self.call(self.commands.store.assigned, self.gateway_id)
        now = self.clock.now()
        self._next_due = min((c.not_before for c in pending if c.not_before > now),
                             default=float("inf"))
        for device_id in dict.fromkeys(c.device_id for c in pending):
            session = self.sessions_by_device.get(device_id)
            if session is not None:
                await session.deliver()

    async def _reconcile(self) -> None:
        """Close connections the shared store no longer lists (dropped through another copy)."""
        # Only sessions registered before the query: one whose registry write is still in
        # flight is missing from the answer without having been dropped.
        candidates = [s for s in [*self.sessions_808, *self.sessions_teltonika] if s.registered]
        known = {c.id for c in await self.call(self.connections.registry.of_gateway,
                                               self.gateway_id)}
        for s in candidates:
            if s.connection is not None and s.conn_id not in known:
                s.connection = None  # already forgotten; do not announce twice
                s.close("dropped by user")

    async def _renew_bindings(self) -> None:
        """Media requests bound to this copy's live media connections stay bound."""
        for s in list(self.sessions_1078):
            if s.request is not None and s.transport is not None and \
                    not s.transport.is_closing():
                await self.call(self.media_admission.renew, s.request, s.conn_id, self.gateway_id)
        await self.call(self.c.media_requests.purge, self.clock.now() - 3600)

    def _expire_idle(self) -> None:
        now = self.loop_time()
        for s in [*self.sessions_808, *self.sessions_1078, *self.sessions_attachment,
                  *self.sessions_teltonika, *self.sessions_camera]:
            if now - s.last_rx > self.settings.idle_timeout:
                s.close("idle timeout")
        preauth = self.settings.preauth_timeout
        for s in list(self.sessions_808):
            if s.device is None and now - s.opened > preauth:
                s.preauth_expired()
        wall = self.clock.now()
        for s in list(self.sessions_808):
            for need in s.codec.expired(wall):
                s.send(m.ResendRequest(original_serial=need.header.serial,
                                       packet_ids=tuple(need.missing)))

    # -- device-facing use cases (run in the store executor) ---------------------------
    def store_photo(self, device: Device, channel: int, created: float, media_id: int,
                    data: bytes, cmd: Command | None = None) -> None:
        """Write a pushed photo as a raw media object; the ingest handler makes the file.

        A photo the device's storage cannot hold is logged as rejected and fails the
        take_photo command it answers, with the reason."""
        options = upload_options({"name": f"photo-ch{channel}-{int(created)}-{media_id}.jpg",
                                  "channel": channel, "created": created}, None)
        if cmd is not None:
            options["command_id"] = cmd.id
        try:
            self.c.media.write_object(device, io.BytesIO(data), content_type="image/jpeg",
                                      options=options, size_hint=len(data))
        except TooLarge as e:
            self.c.journal.record(device.id, "media_file_rejected",
                                  {"size": len(data), "reason": e.reason, "channel": channel,
                                   "command_id": cmd.id if cmd else None})
            if cmd is not None:
                self.c.commands.finish(cmd, False, {"reason": storage_full(e.reason)})
            log.warning("photo %d of device %d rejected: %s", media_id, device.id, e.reason)


def connection_metrics(gw: Gateway, now: float) -> dict[str, Any]:
    """This copy's connection counts in CloudWatch's embedded metric format: printed to the
    container's log, CloudWatch turns them into metrics, and the ECS service scales on the
    average signalling connections per task (template.yaml, GatewayConnectionScaling)."""
    return {
        "_aws": {"Timestamp": int(now * 1000), "CloudWatchMetrics": [{
            "Namespace": METRICS_NAMESPACE, "Dimensions": [["Service"]],
            "Metrics": [{"Name": "Connections", "Unit": "Count"},
                        {"Name": "MediaConnections", "Unit": "Count"}]}]},
        "Service": "gateway",
        "Connections": sum(1 for s in gw.sessions_808 if s.device is not None),
        "MediaConnections": len(gw.sessions_1078),
    }


METRICS_NAMESPACE = "fleetcam"


def _own_address() -> str:
    """This host's address as its own name resolves (set FLEETCAM_MEDIA_HOST in production)."""
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


__all__ = ["Gateway", "Awaitable"]
