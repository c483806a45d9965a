"""Alarm attachments of ADAS/DSM dash-cams (JT/T 808 active-safety extension, T/JSATL12-2017).

When a 0x0200 carries an alarm item (0x64-0x67) that announces files, the gateway holding the
device's signalling connection opens an outstanding media request of kind ``attachment`` in
the shared store (so any gateway copy may receive the upload) and sends 0x9208 with the
attachment server's address and a fresh, unguessable alarm number. The device then opens an
attachment connection (any copy, behind the load balancer):

    0x1210 (which alarm, which files)  ->  0x8001
    per file: 0x1211  ->  0x8001, raw file-data packets (any order), 0x1212  ->  0x8001 + 0x9212
    (0x9212 asks again for what is missing, at most ``MAX_ROUNDS`` times)

Trust, as on the media port: the connection is accepted only for an alarm number fleetcam
issued to that device and still open, by default only from the address of the device's
signalling connection, and only the first connection binds it. Size and time are bounded:
``FLEETCAM_ATTACHMENT_MAX_FILE`` per file, ``FLEETCAM_ATTACHMENT_MEMORY`` for all files being
received, ``FLEETCAM_ATTACHMENT_TIMEOUT`` for a whole connection, and the first message
must arrive within ``FLEETCAM_PREAUTH_TIMEOUT``.

Complete files go through the normal ingest: images as media files, videos as raw objects
that the packager turns into MP4 (H.265 converted to H.264). Incomplete files are never stored;
the device log and a device message at the alarm's time say what was missing.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetcam.domain import keys
from fleetcam.domain.admission import MEDIA_KINDS, MediaRequest
from fleetcam.domain.models import Device
from fleetcam.errors import TooLarge
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808 import subiao
from fleetcam.protocol.jt808.connection import NEED_DATA, Jt808Connection, Message
from fleetcam.protocol.jt808.ids import MsgId, Result
from fleetcam.protocol.jt808.subiao import (
    AlarmAttachmentInfo,
    AttachmentFileDone,
    AttachmentFileInfoMsg,
    AttachmentFileResult,
    AttachmentStream,
    AttachmentUploadRequest,
    FileAssembly,
    FileChunk,
)
from fleetcam.gateway.upload import UploadSession
from fleetcam.services.media import META_KEY, new_uuid, storage_full, upload_options

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)

KIND = "attachment"
MEDIA_KINDS.setdefault(KIND, "alarm attachments of an ADAS/DSM camera (0x9208)")
SLOT_BASE = 256
SLOTS = 32
"""Outstanding attachment requests live in the shared media-request store under pseudo
channels SLOT_BASE..SLOT_BASE+SLOTS-1 chosen by the alarm number: at most SLOTS open alarms
per device (a newer one in the same slot replaces the older, which is then refused)."""
MAX_ROUNDS = 3
"""0x9212 re-upload requests per file before it is given up as incomplete."""
MAX_FILES = 16
"""Files one alarm may announce in 0x1210."""
MAX_CHUNK = 64 * 1024
"""Largest file-data packet (devices send 1-64 KB)."""
REQUEST_TTL = 600.0
"""Seconds the device has to start the upload after 0x9208."""
_NAME = re.compile(r"^(?P<type>\d{2})_(?P<channel>\d{1,2})_(?P<alarm>\d+)_(?P<index>\d+)_")
IMAGE_EXT = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
VIDEO_EXT = {".mp4", ".h264", ".264", ".h265", ".265", ".hevc", ".avi", ".bin", ".ts"}


def slot_of(alarm_number: str) -> int:
    return SLOT_BASE + int(alarm_number[-2:], 16) % SLOTS


def new_alarm_number() -> str:
    """32 hex digits (128 random bits): the capability the device uploads under."""
    return secrets.token_hex(16)


def file_channel(name: str) -> int | None:
    """The camera channel of a T/JSATL12 file name ``{type}_{channel}_{alarm}_{n}_{number}.x``
    (0-37 are video channels; 64+ are the ADAS/DSM modules themselves: no channel)."""
    match = _NAME.match(name)
    if match is None:
        return None
    channel = int(match["channel"])
    return channel if channel <= 37 else None


def file_kind(name: str, file_type: int) -> str:
    """``image``, ``video`` or ``other`` by the file type byte, else by the extension."""
    ext = os.path.splitext(name)[1].lower()
    if file_type == 0 or ext in IMAGE_EXT:
        return "image"
    if file_type == 2 or ext in VIDEO_EXT:
        return "video"
    return "other"


class AttachmentBudget:
    """Bytes all attachment connections of a gateway copy may hold in files being received."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


class Attachments:
    """The gateway's side: asking for attachments (signalling holder) and storing them."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.budget = AttachmentBudget(gw.settings.attachment_memory)
        self.stats = {"requested": 0, "stored": 0, "incomplete": 0, "refused": 0, "bytes": 0}

    @property
    def public_port(self) -> int:
        """The attachment port devices are told: the load balancer's, else this copy's."""
        return self.gw.settings.attachment_public_port or self.gw.port_attachment

    async def on_location(self, session: Any, device: Device, loc: m.Location,
                          message: dict[str, Any]) -> None:
        """Ask for the files every alarm item of ``loc`` announces (0x9208)."""
        for item, ident in subiao.alarm_identification(loc.extras):
            if ident.attachments <= 0:
                continue
            number = new_alarm_number()
            alarm = {"alarm.id": ident.key, "alarm.source": subiao.KINDS[item],
                     "alarm.time": ident.time, "timestamp": message.get("timestamp"),
                     "files": ident.attachments}
            kind = subiao.KINDS[item]
            for name in (f"{kind}.alarm.type", f"{kind}.alarm.type.name", f"{kind}.alarm.level"):
                if name in message:
                    alarm[name.replace(f"{kind}.", "")] = message[name]
            gw = self.gw
            await gw.call(gw.media_admission.request, kind=KIND, device_id=device.id,
                          channel=slot_of(number), ref=number, holder=gw.gateway_id,
                          source=session.source, expires=gw.clock.now() + REQUEST_TTL,
                          progress={"alarm": alarm})
            session.send(AttachmentUploadRequest(ip=gw.media_host, tcp_port=self.public_port,
                                                 udp_port=0, ident=ident, alarm_number=number))
            self.stats["requested"] += 1
            await gw.call(gw.c.journal.record, device.id, "alarm_attachments_requested",
                          {"alarm_id": ident.key, "files": ident.attachments,
                           "source": subiao.KINDS[item]})

    # -- store calls (executor) --------------------------------------------------------------
    def store_file(self, device: Device, request: MediaRequest, asm: FileAssembly) -> str:
        """Write a complete file through the normal ingest; returns what became of it."""
        alarm = dict(request.progress.get("alarm") or {})
        created = alarm.get("timestamp") or alarm.get("alarm.time") or self.gw.clock.now()
        attributes = {k: v for k, v in alarm.items() if k.startswith("alarm.")}
        attributes["alarm.number"] = request.ref
        kind = file_kind(asm.name, asm.file_type)
        if kind == "other":
            self.gw.c.journal.record(device.id, "alarm_attachment_skipped",
                                     {"alarm_id": alarm.get("alarm.id"), "name": asm.name,
                                      "size": asm.size, "reason": "neither image nor video"})
            return "skipped"
        options = upload_options({"name": asm.name, "channel": file_channel(asm.name),
                                  "created": created, "attributes": attributes}, None)
        data = asm.content()
        try:
            if kind == "image":
                ctype = IMAGE_EXT.get(os.path.splitext(asm.name)[1].lower(), "image/jpeg")
                self.gw.c.media.write_object(device, io.BytesIO(data), content_type=ctype,
                                             options=options, size_hint=len(data))
            else:
                total, protected, _ = self.gw.c.index.usage(device.id)
                from fleetcam.domain.retention import check_upload
                check_upload(device, len(data), total, protected)
                options["name"] = os.path.splitext(asm.name)[0] + ".mp4"
                key = keys.raw_file_key(device.id, new_uuid())
                self.gw.c.store.put(key, io.BytesIO(data), content_type="application/octet-stream",
                                    metadata={META_KEY: json.dumps(options, ensure_ascii=True)})
        except TooLarge as e:
            self.gw.c.journal.record(device.id, "media_file_rejected",
                                     {"size": len(data), "reason": e.reason, "name": asm.name,
                                      "alarm_id": alarm.get("alarm.id")})
            return storage_full(e.reason)
        self.stats["stored"] += 1
        self.stats["bytes"] += len(data)
        return "stored"

    def finished(self, device: Device, request: MediaRequest, outcome: dict[str, Any]) -> None:
        """Say at the alarm's time what became of its files (device log and message)."""
        alarm = dict(request.progress.get("alarm") or {})
        when = alarm.get("timestamp") or alarm.get("alarm.time") or self.gw.clock.now()
        status = outcome["status"]
        self.gw.c.journal.record(device.id, f"alarm_attachments_{status}",
                                 {"alarm_id": alarm.get("alarm.id"), **outcome})
        message = {"timestamp": when, "device.id": device.id, "ident": device.ident,
                   "alarm.id": alarm.get("alarm.id"), "alarm.attachments.status": status,
                   "alarm.attachments.stored": outcome.get("stored", 0)}
        if outcome.get("reason"):
            message["alarm.attachments.reason"] = outcome["reason"]
        if outcome.get("missing"):
            message["alarm.attachments.missing"] = outcome["missing"]
        self.gw.messages.register(device.id, [message])
        self.gw.media_admission.finish(request, **{"outcome": outcome})
        self.gw.media_admission.close(request.device_id, request.channel, request.ref)


@dataclass
class _Upload:
    device: Device
    request: MediaRequest
    announced: dict[str, int]
    results: dict[str, str] = field(default_factory=dict)
    missing: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


class AttachmentSession(UploadSession):
    """One attachment connection (T/JSATL12-2017 §5.6): JT/T 808 frames and raw file data."""

    sessions = "sessions_attachment"
    what = "attachment connection"
    first = "alarm attachment info (0x1210)"

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.stream = AttachmentStream(max_chunk=MAX_CHUNK)
        self.codec = Jt808Connection(reassemble=False)
        self.upload: _Upload | None = None
        self.current: FileAssembly | None = None
        self.held = 0
        self.queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self.phone = ""
        self.version2019 = False
        self.protocol_version = 1
        self.max_file = gw.settings.attachment_max_file
        self._paused = False

    @property
    def identified(self) -> bool:
        return self.upload is not None

    @property
    def device_name(self) -> str:
        return self.upload.device.ident if self.upload else self.phone

    def data_received(self, data: bytes) -> None:
        if not self.admitted or self.transport is None or self.transport.is_closing():
            return
        self.last_rx = self.gw.loop_time()
        try:
            items = self.stream.feed(data)
        except ProtocolError as e:
            self.refuse(str(e))
            return
        for item in items:
            if item[0] == "chunk":
                self.held += len(item[1].data)
            self.queue.put_nowait(item)
        # a store call is pending (admission, writing a file): hold the device back
        if self.held > 4 * MAX_CHUNK and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _lost(self) -> None:
        self.queue.put_nowait(None)

    async def _run(self) -> None:
        try:
            while (item := await self.queue.get()) is not None:
                kind, value = item
                if kind == "chunk":
                    self.held -= len(value.data)
                    self._chunk(value)
                else:
                    await self._frame(value)
                if self._paused and self.held <= MAX_CHUNK and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
        except Exception:
            log.exception("attachment conn %s (%s) failed", self.conn_id, self.source)
            self.close("internal error")
        finally:
            await self._end()

    async def _end(self) -> None:
        """The connection is gone: free memory, and say what became of the alarm's files."""
        if self.current is not None:
            self.gw.attachments.budget.give(self.current.size)
            self.current = None
        up = self.upload
        if up is None:
            return
        self.upload = None
        gw = self.gw
        await gw.call(gw.media_admission.release, up.request, self.conn_id)
        stored = sum(1 for r in up.results.values() if r == "stored")
        unfinished = [n for n in up.announced if up.results.get(n) not in ("stored", "skipped")]
        if not unfinished:
            outcome = {"status": "complete", "stored": stored, "files": up.results}
        else:
            reason = self.closing_reason
            outcome = {"status": "incomplete", "stored": stored, "files": up.results,
                       "reason": reason, "missing": {
                           n: up.missing.get(n) or "not sent" for n in unfinished}}
            gw.attachments.stats["incomplete"] += len(unfinished)
            if self.closing_reason == "device closed" and up.request.expires > gw.clock.now():
                # the device may come back (0x1210 "re-upload") while the request lasts
                await gw.call(gw.c.journal.record, up.device.id, "alarm_attachments_interrupted",
                              {"alarm_id": up.request.progress.get("alarm", {}).get("alarm.id"),
                               **outcome})
                return
        await gw.call(gw.attachments.finished, up.device, up.request, outcome)

    # -- frames ------------------------------------------------------------------------------
    def _send(self, body: Any, msg_id: int | None = None) -> None:
        data = self.codec.send(body, phone=self.phone, version2019=self.version2019,
                               protocol_version=self.protocol_version, msg_id=msg_id)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _ack(self, msg: Message, result: int = Result.SUCCESS) -> None:
        self._send(m.GeneralResponse(reply_serial=msg.header.serial,
                                     reply_id=msg.header.msg_id, result=result),
                   msg_id=MsgId.PLATFORM_RESPONSE)

    async def _frame(self, raw: bytes) -> None:
        self.codec.receive_data(raw)
        event = self.codec.next_event()
        if event is NEED_DATA or not isinstance(event, Message):
            self.refuse(f"bad frame: {getattr(event, 'reason', 'undecodable')}")
            return
        h, body = event.header, event.body
        self.phone, self.version2019 = h.phone, h.version2019
        self.protocol_version = h.protocol_version
        if isinstance(body, AlarmAttachmentInfo):
            await self._info(event, body)
        elif self.upload is None:
            self.refuse(f"{type(body).__name__} before the alarm attachment info (0x1210)")
        elif isinstance(body, AttachmentFileInfoMsg):
            self._file_info(event, body)
        elif isinstance(body, AttachmentFileDone):
            await self._file_done(event, body)
        elif isinstance(body, (m.Heartbeat, m.GeneralResponse)):
            if isinstance(body, m.Heartbeat):
                self._ack(event)
        else:
            self._ack(event, Result.NOT_SUPPORTED)

    async def _find_device(self, phone: str) -> Device | None:
        from fleetcam.protocol.jt1078.packet import sim_key
        key = sim_key(phone)
        for ident in dict.fromkeys((phone, key, key.zfill(12), key.zfill(20))):
            device = await self.gw.call(self.gw.c.device_repo.find_by_ident, ident)
            if device is not None:
                return device
        return None

    async def _info(self, msg: Message, body: AlarmAttachmentInfo) -> None:
        gw = self.gw
        if self.upload is not None:
            if body.alarm_number != self.upload.request.ref:
                self.refuse("a second alarm on one attachment connection")
                return
            self._ack(msg)  # a repeated 0x1210 (re-upload): same alarm, carry on
            return
        number = body.alarm_number
        if not re.fullmatch(r"[0-9a-f]{32}", number):
            self.refuse(f"alarm number {number[:40]!r} was not issued by fleetcam")
            return
        if not 0 < len(body.items) <= MAX_FILES:
            self.refuse(f"{len(body.items)} files announced (1 to {MAX_FILES} accepted)")
            return
        for item in body.items:
            if not 0 < item.size <= self.max_file:
                self.refuse(f"file {item.name!r} of {item.size} bytes (at most "
                            f"{self.max_file} accepted)")
                return
        device = await self._find_device(msg.header.phone)
        if device is None:
            self.refuse(f"attachments from unknown terminal {msg.header.phone}")
            return
        req, decision = await gw.call(
            gw.media_admission.admit, device.id, slot_of(number), conn_id=self.conn_id,
            source=self.source, gateway_id=gw.gateway_id,
            same_address=gw.settings.media_same_address)
        if req is None or req.kind != KIND or req.ref != number:
            if req is not None:
                await gw.call(gw.media_admission.release, req, self.conn_id)
            reason = decision.reason if req is None else "alarm number not outstanding"
            self.refuse(f"alarm {number}: {reason}")
            return
        if self.transport is None or self.transport.is_closing():
            await gw.call(gw.media_admission.release, req, self.conn_id)
            return
        self.upload = _Upload(device, req, {i.name: i.size for i in body.items},
                              dict(req.progress.get("results") or {}))
        self._ack(msg)

    def _file_info(self, msg: Message, body: AttachmentFileInfoMsg) -> None:
        up = self.upload
        assert up is not None
        if body.name not in up.announced:
            self.refuse(f"file {body.name!r} was not announced in 0x1210")
            return
        if body.size != up.announced[body.name]:
            self.refuse(f"file {body.name!r}: size {body.size} differs from the "
                        f"{up.announced[body.name]} announced")
            return
        if self.current is not None:
            if self.current.name == body.name:
                self._ack(msg)  # announced again before a re-upload round
                return
            self.gw.attachments.budget.give(self.current.size)
            self.current = None
        if not self.gw.attachments.budget.take(body.size):
            self._ack(msg, Result.FAILURE)
            self.close("attachment memory of this gateway is full; the device retries")
            return
        self.current = FileAssembly(body.name, body.file_type, body.size, self.max_file)
        self._ack(msg)

    def _chunk(self, chunk: FileChunk) -> None:
        cur = self.current
        if self.upload is None or cur is None or chunk.name != cur.name:
            self.refuse(f"file data for {chunk.name!r}, which is not being sent")
            return
        try:
            cur.add(chunk.offset, chunk.data)
        except ProtocolError as e:
            self.refuse(f"announced size and actual data disagree: {e}")

    async def _file_done(self, msg: Message, body: AttachmentFileDone) -> None:
        up, cur = self.upload, self.current
        assert up is not None
        self._ack(msg)
        if cur is None or body.name != cur.name:
            self.refuse(f"0x1212 for {body.name!r}, which is not being sent")
            return
        if body.size != cur.size:
            self.refuse(f"file {body.name!r}: 0x1212 says {body.size} bytes, 0x1211 said "
                        f"{cur.size}")
            return
        if not cur.complete and cur.rounds < MAX_ROUNDS:
            cur.rounds += 1
            gaps = cur.missing()[:255]
            up.missing[cur.name] = gaps
            self._send(AttachmentFileResult(cur.name, cur.file_type, 1, tuple(gaps)))
            return
        self.current = None
        gw = self.gw
        try:
            if cur.complete:
                up.missing.pop(cur.name, None)
                result = await gw.call(gw.attachments.store_file, up.device, up.request, cur)
            else:
                up.missing[cur.name] = cur.missing()[:32]
                result = (f"incomplete after {MAX_ROUNDS} re-upload rounds: "
                          f"{cur.received} of {cur.size} bytes")
                log.warning("attachment %s of device %s: %s", cur.name, up.device.id, result)
        finally:
            gw.attachments.budget.give(cur.size)
        up.results[cur.name] = result
        self._send(AttachmentFileResult(cur.name, cur.file_type, 0))
        await gw.call(gw.media_admission.progress, up.request, results=up.results)
        if len(up.results) >= len(up.announced):
            self.close("all files received")
