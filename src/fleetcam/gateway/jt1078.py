"""One JT/T 1078 media connection: packets in, whole frames out to the media sinks."""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Protocol

from fleetcam.domain.gateway import Connection
from fleetcam.domain.models import Device
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078.packet import sim_key
from fleetcam.protocol.jt1078.reassembly import FrameAssembler, FrameDropped, MediaFrame
from fleetcam.protocol.jt1078.stream import Jt1078Decoder

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
BOGUS_BUDGET = 100


class MediaSink(Protocol):
    """Receives whole frames of a device's media connection (live HLS, clip recording)."""

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None: ...

    def on_close(self, device: Device, connection_id: int, reason: str) -> None: ...


class Jt1078Session(asyncio.Protocol):
    """Frames are parsed inline in ``data_received`` (no task, no store call per packet): the
    hot path of the gateway."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.decoder = Jt1078Decoder()
        self.assembler = FrameAssembler()
        self.transport: asyncio.Transport | None = None
        self.conn_id = secrets.randbits(52)
        self.source = ""
        self.ip = ""
        self.admitted = False
        self.device: Device | None = None
        self.sim = ""
        self.connection: Connection | None = None
        self.looking_up = False
        self.held: list[MediaFrame] = []
        self.bogus = 0
        self.last_rx = 0.0
        self.frames = 0
        self.bytes = 0
        self.closing_reason = "device closed"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.source, self.ip = f"{peer[0]}:{peer[1]}", str(peer[0])
        if not self.gw.admit(self):  # caps on device connections (gateway.limits)
            return
        self.last_rx = self.gw.loop_time()
        self.gw.sessions_1078.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self.last_rx = self.gw.loop_time()
        self.bytes += len(data)
        stats = self.gw.stats
        frames = frame_bytes = dropped = 0
        device, conn_id, sinks = self.device, self.conn_id, self.gw.sinks
        try:
            for out in self.decoder.frames(data, self.assembler):
                if isinstance(out, MediaFrame):
                    frames += 1
                    frame_bytes += len(out.data)
                    if device is None:  # set only by _identify, which runs between calls
                        self._hold(out)
                    else:
                        for sink in sinks:
                            sink.on_frame(device, conn_id, out)
                elif isinstance(out, FrameDropped):
                    dropped += 1
                else:
                    self._bogus(out.reason)
        except ProtocolError as e:
            self.close(f"protocol error: {e}")
        finally:
            self.frames += frames
            stats["frames"] += frames
            stats["frame_bytes"] += frame_bytes
            stats["dropped_frames"] += dropped

    def _hold(self, frame: MediaFrame) -> None:
        """A frame before the SIM lookup finished: kept (bounded) for when it has."""
        if len(self.held) < 64:
            self.held.append(frame)
        if not self.looking_up:
            self.looking_up = True
            self.sim = frame.sim
            self.gw.spawn(self._identify(frame.sim, frame.channel))

    async def _identify(self, sim: str, channel: int) -> None:
        device = None
        key = sim_key(sim)  # 6-byte SIMs of 2019 terminals whose ident is the 20-digit phone
        for ident in dict.fromkeys((sim, key, key.zfill(12), key.zfill(20))):
            device = await self.gw.call(self.gw.c.device_repo.find_by_ident, ident)
            if device is not None:
                break
        if device is None:
            self.close(f"media from unknown SIM {sim}")
            return
        self.device = device
        self.connection = Connection(
            id=self.conn_id, device_id=device.id, ident=device.ident,
            established=self.gw.clock.now(), source=self.source, secondary=True,
            gateway_id=self.gw.gateway_id, meta={"protocol": "jt1078", "channel": channel})
        await self.gw.call(self.gw.connections.opened, self.connection)
        held, self.held = self.held, []
        for frame in held:
            for sink in self.gw.sinks:
                sink.on_frame(device, self.conn_id, frame)

    def _bogus(self, reason: str) -> None:
        self.bogus += 1
        log.warning("jt1078 conn %s (%s): %s", self.conn_id, self.source, reason)
        if self.bogus > BOGUS_BUDGET:
            self.close("too many bad packets")

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            log.info("jt1078 conn %s (%s): closing: %s", self.conn_id, self.source, reason)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        self.gw.release(self)
        self.gw.sessions_1078.discard(self)
        self.assembler = FrameAssembler()  # partial frames are never handed on
        if self.device is not None:
            for sink in self.gw.sinks:
                sink.on_close(self.device, self.conn_id, self.closing_reason)
        if self.connection is not None:
            self.gw.spawn(self.gw.call(self.gw.connections.closed, self.conn_id,
                                       self.closing_reason))
