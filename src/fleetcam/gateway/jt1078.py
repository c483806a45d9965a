"""One JT/T 1078 media connection: packets in, whole frames out to the media sinks."""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Protocol

from fleetcam.domain.admission import MediaRequest
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
HELD_MAX = 64
"""Frames kept while admission is decided (a store round trip)."""


class MediaSink(Protocol):
    """Serves one kind of media request (live HLS, clip recording, ...): receives the whole
    frames of the media connection bound to a request of its kind, and only those."""

    def attach(self, request: MediaRequest, device: Device, connection_id: int) -> bool:
        """The connection was admitted and bound to ``request``: get ready for its frames
        (on any gateway copy); False if this copy cannot serve it (the connection is closed)."""
        ...

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None: ...

    def on_close(self, device: Device, connection_id: int, reason: str) -> None: ...


class Jt1078Session(asyncio.Protocol):
    """Frames are parsed inline in ``data_received`` (no task, no store call per packet): the
    hot path of the gateway. The first frame names the device channel; the connection is
    admitted only if that channel has an outstanding request it may feed (domain/admission.py),
    and from then on only frames of that SIM and channel reach the request's sink."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.decoder = Jt1078Decoder()
        self.assembler = FrameAssembler()
        self.transport: asyncio.Transport | None = None
        self.conn_id = secrets.randbits(52)
        self.source = ""
        self.admitted = False
        self.device: Device | None = None
        """Set once the connection is admitted (never for a refused one)."""
        self.sim = ""
        self.channel = 0
        self.request: MediaRequest | None = None
        self.sink: MediaSink | None = None
        self.connection: Connection | None = None
        self.looking_up = False
        self.paused = False
        self.held: list[MediaFrame] = []
        self.bogus = 0
        self.foreign = 0
        """Frames naming another SIM or channel than the admitted one (dropped)."""
        self.last_rx = 0.0
        self.frames = 0
        self.bytes = 0
        self.closing_reason = "device closed"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.source = f"{peer[0]}:{peer[1]}"
        if not self.gw.admit(self):  # caps on device connections (gateway.limits)
            return
        self.last_rx = self.gw.loop_time()
        self.gw.sessions_1078.add(self)

    @property
    def ip(self) -> str:
        return self.source.rsplit(":", 1)[0]

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self.last_rx = self.gw.loop_time()
        self.bytes += len(data)
        stats = self.gw.stats
        frames = frame_bytes = dropped = 0
        sink, device, conn_id = self.sink, self.device, self.conn_id
        sim, channel = self.sim, self.channel
        try:
            for out in self.decoder.frames(data, self.assembler):
                if isinstance(out, MediaFrame):
                    frames += 1
                    frame_bytes += len(out.data)
                    if sink is None or device is None:  # set by _identify between calls
                        if self.transport is not None and self.transport.is_closing():
                            break  # refused: nothing more is looked at
                        self._hold(out)
                    elif out.channel == channel and out.sim == sim:
                        sink.on_frame(device, conn_id, out)
                        for tap in self.gw.taps:
                            tap.on_frame(device, conn_id, out)
                    else:
                        self._foreign(out)
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
        """A frame before admission was decided: kept for when it is. Past HELD_MAX, reading
        pauses (TCP flow control holds the device back; a playback sent flat out loses
        nothing), so what is held is bounded by HELD_MAX frames plus one read."""
        self.held.append(frame)
        if len(self.held) >= HELD_MAX and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if not self.looking_up:
            self.looking_up = True
            self.sim, self.channel = frame.sim, frame.channel
            self.gw.spawn(self._identify(frame.sim, frame.channel))

    async def _find_device(self, sim: str) -> Device | None:
        key = sim_key(sim)  # 6-byte SIMs of 2019 terminals whose ident is the 20-digit phone
        for ident in dict.fromkeys((sim, key, key.zfill(12), key.zfill(20))):
            device = await self.gw.call(self.gw.c.device_repo.find_by_ident, ident)
            if device is not None:
                return device
        return None

    async def _identify(self, sim: str, channel: int) -> None:
        device = await self._find_device(sim)
        if device is None:
            self.refuse(sim, f"media from unknown SIM {sim}")
            return
        gw = self.gw
        req, decision = await gw.call(
            gw.media_admission.admit, device.id, channel, conn_id=self.conn_id, source=self.source,
            gateway_id=gw.gateway_id, same_address=gw.settings.media_same_address)
        if req is None:
            self.refuse(device.ident, f"channel {channel}: {decision.reason}")
            return
        sink = gw.media_sinks.get(req.kind)
        if sink is None or not sink.attach(req, device, self.conn_id):
            await gw.call(gw.media_admission.release, req, self.conn_id)
            self.refuse(device.ident, f"channel {channel}: the {req.kind} request cannot be "
                                      "served here")
            return
        if self.transport is None or self.transport.is_closing():  # gone meanwhile
            sink.on_close(device, self.conn_id, self.closing_reason)
            await gw.call(gw.media_admission.release, req, self.conn_id)
            return
        self.device, self.request, self.sink = device, req, sink
        self.connection = Connection(
            id=self.conn_id, device_id=device.id, ident=device.ident,
            established=gw.clock.now(), source=self.source, secondary=True,
            gateway_id=gw.gateway_id,
            meta={"protocol": "jt1078", "channel": channel, "kind": req.kind})
        held, self.held = self.held, []
        for frame in held:
            if frame.channel == channel and frame.sim == sim:
                sink.on_frame(device, self.conn_id, frame)
                for tap in gw.taps:
                    tap.on_frame(device, self.conn_id, frame)
            else:
                self._foreign(frame)
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        await gw.call(gw.connections.opened, self.connection)

    def refuse(self, device: str, reason: str) -> None:
        """Close a connection that may not feed anything; nothing about it is listed or
        published, and the refusal is logged (rate-limited)."""
        self.held = []
        self.gw.refusals.refuse("media connection", device, self.source, reason)
        if self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            self.transport.close()

    def _foreign(self, frame: MediaFrame) -> None:
        self.foreign += 1
        self.gw.refusals.refuse("media frames", self.device.ident if self.device else self.sim,
                                self.source, f"frame of SIM {frame.sim} channel "
                                f"{frame.channel} on the connection of channel {self.channel}")

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
        if self.device is not None and self.sink is not None:
            for sink in (self.sink, *self.gw.taps):
                sink.on_close(self.device, self.conn_id, self.closing_reason)
        if self.request is not None:
            self.gw.spawn(self.gw.call(self.gw.media_admission.release, self.request, self.conn_id))
        if self.connection is not None:
            self.gw.spawn(self.gw.call(self.gw.connections.closed, self.conn_id,
                                       self.closing_reason, self.gw.gateway_id))
