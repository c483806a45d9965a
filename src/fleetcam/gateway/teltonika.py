"""Teltonika trackers (FMB/FMC/FMM): telemetry and commands on one port (Codec 8/8E/12), and
the DualCam/DashCam camera connection on another.

Telemetry: the IMEI must be a device's ``ident`` (or auto-registration creates one, under the
same rate limits as the JT/T 808 port); each AVL record becomes a device message; commands
from the queue go out as Codec 12 (``custom`` with ``text``, one in flight at a time, since
Codec 12 answers carry no serial). ``take_photo`` and ``request_video`` become the camera
request ``camreq:<type>,<camera>,<time>,<duration>`` plus an outstanding camera request in the
shared store, which the camera connection then serves.

Camera: accepted only for the IMEI of a known device that is online or has a camera request
outstanding, by default from the tracker's own address; the server asks for the requested
files (``%photof``, ``%videor``...) and for those the camera announces by itself (event
footage), takes the 1024-byte chunks checked by CRC-16/KERMIT, asks to resume from the last
good chunk after a bad one (a bounded number of times), and stores only complete files, through
the normal ingest (videos packaged to H.264 MP4).
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from typing import TYPE_CHECKING

from fleetcam.domain import keys
from fleetcam.domain.admission import MEDIA_KINDS, MediaRequest
from fleetcam.domain.gateway import SENT, Command, Connection
from fleetcam.domain.models import Device, new_uuid
from fleetcam.domain.retention import check_upload
from fleetcam.errors import TooLarge
from fleetcam.protocol.errors import BadChecksum, ProtocolError
from fleetcam.gateway.upload import UploadSession
from fleetcam.protocol.teltonika import camera as cam
from fleetcam.protocol.teltonika.codec import (Command12, Imei, Packet, TeltonikaStream,
                                               encode_command, record_message)
from fleetcam.services.media import META_KEY, storage_full, upload_options

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
KIND = "teltonika_camera"
MEDIA_KINDS.setdefault(KIND, "a file from a Teltonika DualCam/DashCam (camreq)")
SLOT_BASE = 300
"""Camera requests live in the media-request store under pseudo channels: one per camera and
file kind (front/rear photo/video), so a photo and a clip of one camera can be outstanding."""
CAMERA_TTL = 300.0
MAX_RESUMES = 5
"""Bad chunks a file may have before it is given up."""
CAMERA_COMMANDS = ("take_photo", "request_video")
MAX_BAD = 20
"""Bad packets (CRC) a telemetry connection may send before it is closed."""


def slot(kind: str, camera: int) -> int:
    return SLOT_BASE + 2 * camera + (1 if kind == "video" else 0)


def camreq(cmd: Command, now: float) -> tuple[str, str, int]:
    """(command text, file kind, camera) for a camera command."""
    p = cmd.properties
    camera = 2 if int(p.get("channel", 1)) == 2 else 1
    if cmd.name == "take_photo":
        return f"camreq:1,{camera},{int(now)},0", "photo", camera
    return f"camreq:0,{camera},{int(p['from'])},{int(p['duration'])}", "video", camera


class TeltonikaSession(asyncio.Protocol):
    """One tracker's telemetry connection (Codec 8/8E in, Codec 12 both ways)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.stream = TeltonikaStream()
        self.transport: asyncio.Transport | None = None
        self.conn_id = secrets.randbits(52)
        self.source = ""
        self.ip = ""
        self.admitted = False
        self.device: Device | None = None
        self.connection: Connection | None = None
        self.registered = False
        self.awaiting: list[Command] = []
        """Codec 12 commands sent and not answered, oldest first (answers come in order)."""
        self.inbox: asyncio.Queue[Imei | Packet | None] = asyncio.Queue(64)
        self.task: asyncio.Task[None] | None = None
        self.last_rx = 0.0
        self.bad = 0
        self.closing_reason = "device closed"
        self.phone = ""
        self._preauth: asyncio.TimerHandle | None = None
        self._paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.source, self.ip = f"{peer[0]}:{peer[1]}", str(peer[0])
        if not self.gw.admit(self):
            return
        self.last_rx = self.gw.loop_time()
        self.gw.sessions_teltonika.add(self)
        loop = asyncio.get_running_loop()
        self._preauth = loop.call_later(self.gw.settings.preauth_timeout, self._preauth_expired)
        self.task = loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if not self.admitted or self.transport is None or self.transport.is_closing():
            return
        self.last_rx = self.gw.loop_time()
        try:
            events = self.stream.feed(data)
        except BadChecksum as e:
            self.bad += 1  # no ack: the tracker sends the packet again
            self.gw.quiet.warning(("teltonika", "crc", self.ip), "teltonika %s (%s): %s",
                                  self.phone or "?", self.source, e)
            if self.bad > MAX_BAD:
                self.refuse("too many packets with a bad CRC")
            return
        except ProtocolError as e:
            self.refuse(f"protocol error: {e}")
            return
        for ev in events:
            if self.device is None and not isinstance(ev, Imei):
                self.refuse("data before the IMEI was accepted")
                return
            self.inbox.put_nowait(ev) if not self.inbox.full() else None
        if self.inbox.qsize() > 32 and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._preauth is not None:
            self._preauth.cancel()
        if not self.admitted:
            return
        self.gw.release(self)
        self.gw.sessions_teltonika.discard(self)
        if not self.inbox.full():
            self.inbox.put_nowait(None)
        elif self.task is not None:
            self.task.cancel()
        self.gw.spawn(self.gw.session_closed(self))

    # -- lifecycle ----------------------------------------------------------------------
    def refuse(self, reason: str) -> None:
        self.gw.quiet.warning(("teltonika", reason.split(":", 1)[0], self.ip),
                              "teltonika conn %s refused %s from %s: %s", self.conn_id,
                              self.phone or "?", self.source, reason)
        self.close(reason)

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            self.transport.close()

    def _preauth_expired(self) -> None:
        if self.device is None:
            self.refuse(f"no accepted IMEI within {self.gw.settings.preauth_timeout:g} s")

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _run(self) -> None:
        while (ev := await self.inbox.get()) is not None:
            try:
                if isinstance(ev, Imei):
                    await self._imei(ev.imei)
                elif isinstance(ev.body, Command12):
                    await self._answer(ev.body)
                else:
                    await self._records(ev)
            except Exception:
                log.exception("teltonika conn %s: handling failed", self.conn_id)
            if self._paused and self.inbox.qsize() < 8 and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()

    # -- telemetry ----------------------------------------------------------------------
    async def _imei(self, imei: str) -> None:
        gw = self.gw
        self.phone = imei
        if gw.auth_failures.exhausted(self.ip):
            self.write(b"\x00")
            self.refuse("IMEI refused: too many unknown IMEIs from this address")
            return
        device = await gw.call(gw.c.device_repo.find_by_ident, imei)
        if device is None and gw.settings.auto_register and gw.may_auto_register(self.ip):
            created = await gw.call(gw.c.devices.create, [{
                "ident": imei, "name": f"Teltonika {imei}",
                "metadata": {"protocol": "teltonika"}}])
            device = created[0] if created else None
            if device is not None:
                await gw.call(gw.c.journal.record, device.id, "device_registered",
                              {"ident": imei, "source": self.source, "protocol": "teltonika"})
        if device is None:
            gw.auth_failures.allow(self.ip)
            self.write(b"\x00")
            self.refuse(f"unknown IMEI {imei}")
            return
        if self._preauth is not None:
            self._preauth.cancel()
        self.device = device
        previous = gw.sessions_by_device.get(device.id)
        if previous is not None and previous is not self:
            previous.close(f"replaced by a new connection from {self.source}")
        gw.sessions_by_device[device.id] = self  # type: ignore[assignment]
        self.connection = Connection(
            id=self.conn_id, device_id=device.id, ident=device.ident,
            established=gw.clock.now(), source=self.source, gateway_id=gw.gateway_id,
            meta={"protocol": "teltonika"})
        await gw.call(gw.connection_authenticated, self.connection,
                      getattr(previous, "connection", None)
                      if previous is not None and previous is not self else None)
        self.registered = True
        self.write(b"\x01")
        await self.deliver()

    async def _records(self, packet: Packet) -> None:
        assert self.device is not None
        records = packet.body
        assert isinstance(records, list)
        now = self.gw.clock.now()
        batch = []
        for r in records:
            msg = record_message(r)
            msg.update({"server.timestamp": now, "device.id": self.device.id,
                        "ident": self.device.ident})
            batch.append(msg)
        await self.gw.call(self.gw.messages.register, self.device.id, batch)
        self.write(len(records).to_bytes(4, "big"))

    async def _answer(self, body: Command12) -> None:
        if body.type != 6 or not self.awaiting:
            return
        cmd = self.awaiting.pop(0)
        gw = self.gw
        if cmd.name in CAMERA_COMMANDS:  # the file follows on the camera connection
            await gw.call(gw.commands.progress, cmd, {"camreq": body.text})
            return
        await gw.call(gw.commands.finish, cmd, True, {"text": body.text})

    # -- commands -----------------------------------------------------------------------
    async def deliver(self) -> None:
        """Send this device's queued commands (one Codec 12 exchange at a time)."""
        if self.device is None:
            return
        gw = self.gw
        for cmd in await gw.call(gw.commands.claim, self.device.id, gw.gateway_id):
            if cmd.name == "custom" and "text" not in cmd.properties:
                await gw.call(gw.commands.finish, cmd, False, {
                    "reason": "Teltonika devices take custom commands as properties.text "
                              "(a Codec 12 GPRS command such as getinfo)"})
                continue
            if cmd.name not in ("custom", *CAMERA_COMMANDS):
                await gw.call(gw.commands.finish, cmd, False, {
                    "reason": f"{cmd.name} is not supported by Teltonika devices"})
                continue
            sent = await gw.call(gw.commands.mark_sent, cmd, None)
            if sent is None:
                continue
            if sent.name in CAMERA_COMMANDS:
                text, kind, camera = camreq(sent, gw.clock.now())
                await gw.call(gw.media_admission.request, kind=KIND, device_id=self.device.id,
                              channel=slot(kind, camera), ref=f"cmd:{sent.id}",
                              holder=gw.gateway_id, source=self.source,
                              expires=min(sent.expires, gw.clock.now() + CAMERA_TTL),
                              command_id=sent.id, progress={"file": kind, "camera": camera})
            else:
                text = str(sent.properties["text"])
            self.write(encode_command(text))
            self.awaiting.append(sent)
            del self.awaiting[:-16]
            await gw.call(gw.commands.store.update, sent, expect_status=SENT)


class CameraSession(UploadSession):
    """One DualCam/DashCam camera connection."""

    sessions = "sessions_camera"
    what = "camera connection"
    first = "camera INIT"

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.stream = cam.CameraStream()
        self.device: Device | None = None
        self.queue: asyncio.Queue[cam.Event | None] = asyncio.Queue(256)
        self.todo: list[tuple[str, int, MediaRequest | None]] = []
        self.current: tuple[str, int, MediaRequest | None] | None = None
        self.packets = 0
        self.next_index = 1
        self.buffer = bytearray()
        self.resumes = 0
        self.closing_reason = "camera closed"
        self.stored = 0
        self.reserved = 0
        """Bytes of the attachment budget held for the file being received."""

    @property
    def identified(self) -> bool:
        return self.device is not None

    @property
    def device_name(self) -> str:
        return self.device.ident if self.device else ""

    def data_received(self, data: bytes) -> None:
        if not self.admitted or self.transport is None or self.transport.is_closing():
            return
        self.last_rx = self.gw.loop_time()
        try:
            events = self.stream.feed(data)
        except ProtocolError as e:
            self.refuse(str(e))
            return
        for ev in events:
            if self.queue.full():
                self.refuse("camera sends faster than it is answered")
                return
            self.queue.put_nowait(ev)

    def _lost(self) -> None:
        self.gw.attachments.budget.give(self.reserved)
        self.reserved = 0
        self.buffer = bytearray()
        if not self.queue.full():
            self.queue.put_nowait(None)
        elif self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        try:
            while (ev := await self.queue.get()) is not None:
                if isinstance(ev, cam.Init):
                    await self._init(ev)
                elif self.device is None:
                    self.refuse(f"{type(ev).__name__} before INIT")
                elif isinstance(ev, cam.Start):
                    self._start(ev)
                elif isinstance(ev, cam.Data):
                    await self._data(ev)
                # SYNC, STATUS and metadata need no answer
        except Exception:
            log.exception("camera conn %s (%s) failed", self.conn_id, self.source)
            self.close("internal error")

    async def _init(self, ev: cam.Init) -> None:
        gw = self.gw
        if self.device is not None:
            self.refuse("a second INIT")
            return
        device = await gw.call(gw.c.device_repo.find_by_ident, ev.imei)
        if device is None:
            self.refuse(f"camera of unknown IMEI {ev.imei}")
            return
        online = await gw.call(gw.connections.online, device.id)
        outstanding: list[tuple[str, int, MediaRequest | None]] = []
        for kind in ("photo", "video"):
            for camera in (1, 2):
                req = await gw.call(gw.c.media_requests.get, device.id, slot(kind, camera))
                if req is not None and req.kind == KIND and req.state == "open" \
                        and req.expires > gw.clock.now():
                    outstanding.append((kind, camera, req))
        if online is None and not outstanding:
            self.refuse(f"camera of {ev.imei}: the device is offline and nothing is requested")
            return
        expected = online.source if online is not None else (
            outstanding[0][2].source_ip if outstanding[0][2] else "")
        host = expected.rsplit(":", 1)[0].strip("[]") if expected else ""
        if gw.settings.media_same_address and host and host != self.ip:
            self.refuse(f"camera of {ev.imei} from {self.ip}, not the tracker's address")
            return
        self.device = device
        for t in self._timers[:1]:
            t.cancel()
        wanted = [(k, c) for k, c, _ in outstanding]
        events = [(k, c, None) for k, c in ev.available() if (k, c) not in wanted]
        self.todo = outstanding + events  # type: ignore[operator]
        self._next_file()

    def _next_file(self) -> None:
        if not self.todo:
            self.write(cam.close())
            self.close("all files received")
            return
        self.current = self.todo.pop(0)
        kind, camera, _ = self.current
        self.packets, self.next_index, self.resumes = 0, 1, 0
        self.write(cam.file_request(cam.FILES[(kind, camera)]))

    def _start(self, ev: cam.Start) -> None:
        size = ev.packets * cam.CHUNK
        if self.current is None or ev.packets <= 0:
            self.refuse("START without a file request")
            return
        if size > self.gw.settings.attachment_max_file:
            self.refuse(f"camera file of {ev.packets} packets exceeds "
                        f"{self.gw.settings.attachment_max_file} bytes")
            return
        self.gw.attachments.budget.give(self.reserved)  # a START again: the file restarts
        self.reserved = 0
        if not self.gw.attachments.budget.take(size):
            self.close("camera memory of this gateway is full; the camera retries")
            return
        self.buffer = bytearray()
        self.packets = ev.packets
        self.reserved = size
        self.write(cam.resume(1))

    async def _data(self, ev: cam.Data) -> None:
        if self.current is None or self.packets == 0:
            self.refuse("DATA without START")
            return
        if self.next_index > self.packets:
            return  # extra chunks after the file: ignored
        if not ev.valid or len(ev.payload) > cam.CHUNK:
            self.resumes += 1
            if self.resumes > MAX_RESUMES:
                self.refuse(f"{self.resumes} bad chunks in one file; nothing stored")
                return
            self.write(cam.resume(self.next_index))  # from the last good chunk on
            return
        self.buffer += ev.payload
        self.next_index += 1
        if self.next_index > self.packets:
            data = bytes(self.buffer)
            self.gw.attachments.budget.give(self.reserved)
            self.reserved = 0
            self.buffer = bytearray()
            kind, camera, req = self.current
            assert self.device is not None
            await self.gw.call(store_camera_file, self.gw, self.device, kind, camera, req, data)
            self.stored += 1
            self.current = None
            self._next_file()


def store_camera_file(gw: Gateway, device: Device, kind: str, camera: int,
                      req: MediaRequest | None, data: bytes) -> str:
    """A complete camera file into the normal ingest (store call)."""
    now = gw.clock.now()
    name = f"{kind}-cam{camera}-{int(now)}." + ("jpg" if kind == "photo" else "mp4")
    options = upload_options({"name": name, "channel": camera, "created": now,
                              "attributes": {"camera.source": "front" if camera == 1 else "rear",
                                             "camera.trigger": "request" if req else "event"}},
                             None)
    if req is not None and req.command_id is not None:
        options["command_id"] = req.command_id
    try:
        if kind == "photo":
            gw.c.media.write_object(device, io.BytesIO(data), content_type="image/jpeg",
                                    options=options, size_hint=len(data))
        else:
            total, protected, _ = gw.c.index.usage(device.id)
            check_upload(device, len(data), total, protected)
            gw.c.store.put(keys.raw_file_key(device.id, new_uuid()), io.BytesIO(data),
                           content_type="application/octet-stream",
                           metadata={META_KEY: json.dumps(options, ensure_ascii=True)})
    except TooLarge as e:
        gw.c.journal.record(device.id, "media_file_rejected",
                            {"size": len(data), "reason": e.reason, "name": name})
        if req is not None and req.command_id is not None:
            cmd = gw.commands.store.get(req.command_id)
            if cmd is not None and not cmd.final:
                gw.commands.finish(cmd, False, {"reason": storage_full(e.reason)})
        return "rejected"
    finally:
        if req is not None:
            gw.media_admission.close(req.device_id, req.channel, req.ref)
    gw.attachments.stats["stored"] += 1
    return "stored"
