"""One JT/T 808 signalling connection: codec in, services decide, codec out."""
from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from typing import TYPE_CHECKING, Any

from fleetcam.domain.gateway import Command, Connection
from fleetcam.domain.identity import Identity, terminal_of
from fleetcam.domain.models import Device
from fleetcam.gateway import translate
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import NEED_DATA, FrameError, Jt808Connection, Message
from fleetcam.protocol.jt808.ids import MsgId, Result
from fleetcam.services.identity import REG_ALREADY, REG_OK, REG_UNKNOWN

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
INBOX_MAX = 1000
BOGUS_BUDGET = 50
"""Undecodable frames and pre-authentication messages a connection may send before we close
it (aiosmtpd's bogus budget)."""
NO_IDENTITY = Identity()
"""Shared by every session's copy of its device (frozen, never changed)."""
PREAUTH_GARBAGE = 65536
"""Bytes outside frames a connection may send before it authenticated (afterwards they are
skipped, as Traccar does, and only counted)."""
MAX_PHOTO_WAIT = 64
"""Photos announced by take_photo answers that a session waits for at most."""
ALARM_ITEMS = frozenset((0x64, 0x65, 0x66, 0x67))
"""0x0200 items of the active-safety extension whose alarms may announce attachments."""
PRE_AUTH_ALLOWED = (m.Register, m.Authenticate, m.Heartbeat, m.GeneralResponse)


class Jt808Session(asyncio.Protocol):
    """Bytes are parsed as they come (``_pump``), never more than one read ahead: reading
    pauses while the inbox is full, and while a registration or authentication is being
    decided (so that nothing after it is decoded under the wrong rules)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.codec = Jt808Connection(reassemble=False, budget=gw.reassembly_budget)
        self.transport: asyncio.Transport | None = None
        self.conn_id = secrets.randbits(52)
        self.source = ""
        self.admitted = False
        self.device: Device | None = None
        self.phone = ""
        self.version2019 = False
        self.protocol_version = 1
        self.connection: Connection | None = None
        self.registered = False
        """True once ``connection`` is in the shared registry (not while the write is in flight)."""
        self.inbox: asyncio.Queue[Message | FrameError | None] = asyncio.Queue(INBOX_MAX)
        self.awaiting: dict[int, Command] = {}
        self.photo_cmds: dict[int, Command] = {}
        """take_photo commands by the media ids the device announced (0x0805), until the
        photos arrive (0x0801); bounded by MAX_PHOTO_WAIT."""
        self.bogus = 0
        self.last_rx = 0.0
        self.closing_reason = "device closed"
        self.task: asyncio.Task[None] | None = None
        self._deciding = False
        """A registration or authentication is queued and not yet handled."""
        self._paused = False
        self.opened = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.source = f"{peer[0]}:{peer[1]}"
        if not self.gw.admit(self):
            return
        self.last_rx = self.opened = self.gw.loop_time()  # housekeeping enforces preauth_timeout
        self.gw.sessions_808.add(self)
        self.task = asyncio.get_running_loop().create_task(self._run())

    @property
    def ip(self) -> str:
        return self.source.rsplit(":", 1)[0]

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self.last_rx = self.gw.loop_time()
        try:
            self.codec.receive_data(data, self.gw.clock.now())
        except ProtocolError as e:
            self.close(f"protocol error: {e}")
            return
        self._pump()

    def _pump(self) -> None:
        """Decode what was received into the inbox until it is full or a registration or
        authentication must be decided first; pause reading meanwhile."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            while not self._deciding and not self.inbox.full():
                event = self.codec.next_event()
                if event is NEED_DATA:
                    break
                self.inbox.put_nowait(event)  # type: ignore[arg-type]
                if (self.device is None and isinstance(event, Message)
                        and isinstance(event.body, (m.Register, m.Authenticate))):
                    self._deciding = True
        except ProtocolError as e:
            self.close(f"protocol error: {e}")
            return
        if self.device is None and self.codec.garbage_bytes > PREAUTH_GARBAGE:
            self.refuse(f"{self.codec.garbage_bytes} bytes that are not JT/T 808 frames "
                        "before authentication", close=True)
            return
        blocked = self._deciding or self.inbox.full()
        if blocked and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        elif not blocked and self._paused:
            self._paused = False
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.codec.release()
        if not self.admitted:
            return
        self.gw.release(self)
        self.gw.sessions_808.discard(self)
        self.inbox.put_nowait(None) if not self.inbox.full() else None
        if self.task is not None and self.inbox.full():
            self.task.cancel()
        self.gw.spawn(self.gw.session_closed(self))

    # -- lifecycle --------------------------------------------------------------------
    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            log.info("jt808 conn %s (%s, %s): closing: %s", self.conn_id, self.source,
                     self.phone or "?", reason)
            self.transport.close()

    def refuse(self, reason: str, *, close: bool = False) -> None:
        """A refusal: one rate-limited log line with the terminal, address and reason;
        nothing published."""
        kind = reason.split(":", 1)[0]
        # closes are keyed per terminal too (one line per offender); other refusals per kind
        # and address only, so that terminals re-registering at boot cost no log memory each
        key = ("jt808", kind, True, self.ip, self.phone) if close else ("jt808", kind, self.ip)
        self.gw.quiet.warning(key,
                              "jt808 conn %s refused %s from %s: %s%s", self.conn_id,
                              self.phone or "?", self.source, "closing: " if close else "",
                              reason)
        if close and self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            self.transport.close()

    def preauth_expired(self) -> None:
        if self.device is None:
            self.refuse(f"not authenticated within {self.gw.settings.preauth_timeout:g} s",
                        close=True)

    async def _run(self) -> None:
        while (event := await self.inbox.get()) is not None:
            try:
                if isinstance(event, FrameError):
                    await self._bogus(f"bad frame: {event.reason}", event.raw)
                else:
                    await self.handle(event)
            except Exception:  # one bad message must not kill the connection's loop
                log.exception("jt808 conn %s: handling %r failed", self.conn_id, event)
            finally:
                if isinstance(event, Message) and isinstance(event.body, (m.Register,
                                                                          m.Authenticate)):
                    self._deciding = False
                if self._paused:
                    self._pump()

    async def _bogus(self, reason: str, raw: bytes = b"") -> None:
        self.bogus += 1
        self.refuse(f"{reason} {raw[:32].hex()}".rstrip())
        if self.bogus > BOGUS_BUDGET:
            self.refuse("too many bad frames", close=True)

    def send(self, body: Any, msg_id: int | None = None) -> int:
        """Encode and write a platform message; returns the serial it went out with."""
        data = self.codec.send(body, phone=self.phone, version2019=self.version2019,
                               protocol_version=self.protocol_version, msg_id=msg_id)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        return self.codec.last_serial

    def reply(self, msg: Message, result: int = Result.SUCCESS) -> None:
        self.send(m.GeneralResponse(reply_serial=msg.header.serial, reply_id=msg.header.msg_id,
                                    result=result), msg_id=MsgId.PLATFORM_RESPONSE)

    # -- messages ---------------------------------------------------------------------
    async def handle(self, msg: Message) -> None:
        h, body = msg.header, msg.body
        self.phone, self.version2019 = h.phone, h.version2019
        self.protocol_version = h.protocol_version
        if self.device is None and not isinstance(body, PRE_AUTH_ALLOWED):
            self.reply(msg, Result.FAILURE)
            await self._bogus(f"{type(body).__name__} before authentication")
            return
        handler = getattr(self, f"on_{type(body).__name__}", None)
        if handler is None:
            if isinstance(body, m.UnknownMessage):
                log.info("jt808 conn %s (%s): message 0x%04X not supported", self.conn_id,
                         self.source, h.msg_id)
            self.reply(msg, Result.NOT_SUPPORTED if isinstance(body, m.UnknownMessage)
                       else Result.SUCCESS)
            return
        await handler(msg, body)

    async def on_Register(self, msg: Message, body: m.Register) -> None:
        gw = self.gw
        phone = msg.header.phone

        def answer(result: int, code: str = "") -> None:
            self.send(m.RegisterResponse(reply_serial=msg.header.serial, result=result,
                                         auth_code=code), msg_id=MsgId.REGISTER_RESPONSE)

        if self.device is not None:  # already authenticated on this connection
            answer(REG_ALREADY)
            return
        if gw.auth_failures.exhausted(self.ip):
            answer(REG_UNKNOWN)
            self.refuse("registration refused: too many failed attempts from this address",
                        close=True)
            return
        terminal = terminal_of(body.terminal_id, body.manufacturer, body.model)
        outcome = await gw.call(gw.identity.register, phone, terminal, body.plate,
                                online=gw.device_online,
                                auto_register=(functools.partial(gw.may_auto_register, self.ip)
                                               if gw.settings.auto_register else None))
        if outcome.result != REG_OK:
            answer(outcome.result)
            if outcome.result == REG_UNKNOWN:
                gw.auth_failures.allow(self.ip)
                gw.stats["auth_failures"] += 1
                await self._bogus(f"registration refused: {outcome.reason}")
            else:  # "terminal already registered": it should authenticate with its code
                self.refuse(f"registration refused: {outcome.reason}")
            return
        if outcome.reregistered:
            log.info("jt808 conn %s (%s): terminal %s re-registered at boot: fresh code",
                     self.conn_id, self.source, phone)
        elif outcome.created:
            log.info("jt808 conn %s (%s): terminal %s auto-registered as device %s",
                     self.conn_id, self.source, phone, outcome.device.id if outcome.device
                     else "?")
        answer(REG_OK, outcome.code)

    async def on_Authenticate(self, msg: Message, body: m.Authenticate) -> None:
        gw = self.gw
        if self.device is not None:
            self.reply(msg)  # a repeat on the same connection changes nothing
            return
        if gw.auth_failures.exhausted(self.ip):
            self.reply(msg, Result.FAILURE)
            self.refuse("authentication refused: too many failed attempts from this address",
                        close=True)
            return
        device, why = await gw.call(gw.identity.authenticate, msg.header.phone, body.auth_code)
        if device is None:
            gw.auth_failures.allow(self.ip)
            gw.stats["auth_failures"] += 1
            self.reply(msg, Result.FAILURE)
            await self._bogus(f"authentication refused: {why}")
            return
        self.device = device.with_changes(identity=NO_IDENTITY)  # the session needs no hash
        self.codec.reassemble = True
        previous = gw.sessions_by_device.get(device.id)
        if previous is not None and previous is not self:
            previous.close(f"replaced by a new connection from {self.source}")
        gw.sessions_by_device[device.id] = self
        self.connection = Connection(
            id=self.conn_id, device_id=device.id, ident=device.ident,
            established=gw.clock.now(), source=self.source, gateway_id=gw.gateway_id,
            meta={"protocol": "jt808", "version": 2019 if self.version2019 else 2013})
        await gw.call(gw.connection_authenticated, self.connection,
                      previous.connection if previous is not None and previous is not self
                      else None)
        self.registered = True
        self.reply(msg)
        await self.deliver()

    async def on_Heartbeat(self, msg: Message, body: m.Heartbeat) -> None:
        self.reply(msg)

    async def on_Unregister(self, msg: Message, body: m.Unregister) -> None:
        if self.device is not None:
            await self.gw.call(self.gw.identity.unregister, self.device)
        self.reply(msg)
        self.close("terminal unregistered")

    async def on_Location(self, msg: Message, body: m.Location) -> None:
        assert self.device is not None
        message = translate.location_message(body, self.device.id, self.device.ident,
                                             self.gw.clock.now())
        await self.gw.call(self.gw.messages.register, self.device.id, [message])
        self.reply(msg)
        if ALARM_ITEMS.intersection(body.extras):  # ADAS/DSM/TPMS/BSD: ask for its files
            await self.gw.attachments.on_location(self, self.device, body, message)

    async def on_BatchLocation(self, msg: Message, body: m.BatchLocation) -> None:
        assert self.device is not None
        now = self.gw.clock.now()
        batch = [translate.location_message(loc, self.device.id, self.device.ident, now)
                 for loc in body.locations]
        await self.gw.call(self.gw.messages.register, self.device.id, batch)
        self.reply(msg)

    async def on_MultimediaEvent(self, msg: Message, body: m.MultimediaEvent) -> None:
        self.reply(msg)

    async def on_MultimediaData(self, msg: Message, body: m.MultimediaData) -> None:
        assert self.device is not None
        if body.media_type == 0 and body.data:  # an image: store it, ingest makes the file
            created = body.location.time if body.location else self.gw.clock.now()
            cmd = self.photo_cmds.pop(body.media_id, None)
            await self.gw.call(self.gw.store_photo, self.device, body.channel, created,
                               body.media_id, body.data, cmd)
        self.send(m.MultimediaUploadResponse(media_id=body.media_id, retransmit=()),
                  msg_id=MsgId.MULTIMEDIA_UPLOAD_RESPONSE)

    async def on_GeneralResponse(self, msg: Message, body: m.GeneralResponse) -> None:
        await self._answer(body.reply_serial, msg.header.msg_id, body)

    async def on_ResourceList(self, msg: Message, body: m.ResourceList) -> None:
        await self._answer(body.reply_serial, msg.header.msg_id, body)
        self.reply(msg)

    async def on_SnapshotResponse(self, msg: Message, body: m.SnapshotResponse) -> None:
        await self._answer(body.reply_serial, msg.header.msg_id, body)
        self.reply(msg)

    async def on_FileUploadDone(self, msg: Message, body: m.FileUploadDone) -> None:
        await self._answer(body.reply_serial, msg.header.msg_id, body)
        self.reply(msg)

    async def on_AvAttributes(self, msg: Message, body: m.AvAttributes) -> None:
        self.reply(msg)

    async def _answer(self, serial: int, msg_id: int, body: Any) -> None:
        cmd = self.awaiting.get(serial)
        if cmd is None:
            return
        final_ids = translate.answer_ids(cmd)
        if msg_id not in final_ids:
            return
        if cmd.name in ("start_videostream", "playback_video"):
            del self.awaiting[serial]
            ok = getattr(body, "result", 0) == 0 and (
                not isinstance(body, m.ResourceList) or body.items)
            if not ok:  # the stream was opened when the request went out: end it
                reason = ("the device has no recording for the requested channel and time "
                          "range" if isinstance(body, m.ResourceList)
                          else f"the device refused the stream (result {body.result})")
                await self.gw.live.fail(cmd, reason)
            return
        if cmd.name == "request_video" and (isinstance(body, m.ResourceList)
                                            or getattr(body, "result", 1) == 0):
            # devices answer 0x9201 with 0x1205 (the standard) or a bare 0x0001 (seen in the
            # wild); either way the clip then arrives on a media connection
            del self.awaiting[serial]
            items = body.items if isinstance(body, m.ResourceList) else None
            if items is None or items:
                self.gw.recorder.limit(cmd, items or ())  # the job exists since the request
                return
            self.gw.recorder.cancel(cmd, "the device has no recording for the requested "
                                         "channel and time range")
            return
        if (msg_id == 0x0001 and cmd.name in ("take_photo", "video_timeline")
                and getattr(body, "result", 0) == 0):
            return  # an acknowledgement; the real answer follows
        del self.awaiting[serial]
        executed, response = translate.command_response(body)
        if isinstance(body, m.SnapshotResponse) and executed and body.media_ids:
            # the photos follow (0x0801): the command ends with their files' uuid and url
            for media_id in body.media_ids[:MAX_PHOTO_WAIT]:
                self.photo_cmds[media_id] = cmd
            while len(self.photo_cmds) > MAX_PHOTO_WAIT:
                self.photo_cmds.pop(next(iter(self.photo_cmds)))
            await self.gw.call(self.gw.commands.progress, cmd, {
                **response, "files": [],
                "progress": {"photos": 0, "of": len(body.media_ids)}})
            return
        if cmd.name == "request_video":
            self.gw.recorder.cancel(cmd, f"the device refused the playback ({response})")
            return
        await self.gw.call(self.gw.commands.finish, cmd, executed, response)

    # -- commands ---------------------------------------------------------------------
    async def deliver(self) -> None:
        """Send this device's queued commands (on connect, and when the queue grows)."""
        if self.device is None:
            return
        for cmd in await self.gw.call(self.gw.commands.claim, self.device.id, self.gw.gateway_id,
                                      self.conn_id):
            if cmd.name == "start_videostream" and self.gw.live.existing(
                    self.device.id, int(cmd.properties["channel"]), "live") is not None:
                sent = await self.gw.call(self.gw.commands.mark_sent, cmd, None, self.conn_id)
                if sent is not None:  # a second operator: share the running stream
                    await self.gw.live.open(sent, self.device, "live", self.source)
                continue
            if cmd.name == "custom" and "msg_id" not in cmd.properties:
                await self.gw.call(self.gw.commands.finish, cmd, False, {
                    "reason": "JT/T 808 devices take custom commands as properties.msg_id "
                              "and properties.body (hex)"})
                continue
            if cmd.name == "start_videostream" and self.gw.dvr.streaming(
                    self.device.id, int(cmd.properties["channel"])):
                sent = await self.gw.call(self.gw.commands.mark_sent, cmd, None)
                if sent is not None:  # recorded: the viewer shares the DVR's device stream
                    await self.gw.live.open(sent, self.device, "live", self.source)
                continue
            if cmd.name == "request_video" and await self.gw.dvr.from_archive(cmd):
                continue  # recorded in the cloud: cut from the archive, not asked again
            body = translate.command_message(cmd, self.gw.media_host, self.gw.media_port)
            msg_id = body.msg_id if isinstance(body, m.UnknownMessage) else None
            sent = await self.gw.call(self.gw.commands.mark_sent, cmd, None, self.conn_id)
            if sent is None:
                continue  # canceled meanwhile, or another copy took it
            if sent.attempts > 1:
                log.info("jt808 conn %s (%s): command %s (%s) sent again (attempt %d)",
                         self.conn_id, self.phone, sent.id, sent.name, sent.attempts)
            # the media may arrive before the device's answer is processed: be ready first
            if sent.name == "request_video":
                await self.gw.recorder.expect(sent, (), self.source)
            elif sent.name in ("start_videostream", "playback_video"):
                await self.gw.live.open(sent, self.device, "live" if sent.name ==
                                        "start_videostream" else "playback", self.source)
            serial = self.send(body, msg_id=msg_id)
            self.awaiting[serial] = sent.with_changes(serial=serial)
            # conditional: a fast answer may already have finished it or reported progress
            # (media ids, a clip's report): only the serial is written, never undoing those
            await self.gw.call(self.gw.commands.record_serial, sent, serial)
