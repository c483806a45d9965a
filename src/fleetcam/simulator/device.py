"""One virtual MDVR: registers, authenticates, reports, answers commands, streams video."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import NEED_DATA, FrameError, Jt808Connection, Message
from fleetcam.protocol.jt808.ids import MsgId
from fleetcam.simulator.recordings import recordings
from fleetcam.simulator.streamer import stream_video

log = logging.getLogger(__name__)


@dataclass
class DeviceConfig:
    phone: str
    host: str = "127.0.0.1"
    port: int = 6808
    version2019: bool = False
    channels: int = 2
    report_interval: float = 10.0
    heartbeat_interval: float = 30.0
    codec: str = "h264"
    width: int = 640
    height: int = 360
    fps: int = 25
    bitrate: int = 1_000_000
    audio: bool = False
    """Interleave G.711 A-law audio with the video (as many MDVRs do)."""
    playback_speed: float = 4.0
    """How much faster than real time a recording is uploaded (0 = as fast as possible)."""
    base: tuple[float, float] = (52.3676, 4.9041)
    media_host: str | None = None
    """Override the address the platform gives for media (e.g. 0.0.0.0 behind NAT)."""
    auth_code: str = ""
    """A provisioned authentication code; empty: register to get one."""
    alarm_interval: float = 0.0
    """Seconds between ADAS/DSM alarms with attachments (a photo and a clip); 0 = none."""
    attachment_loss: bool = False
    """Leave a chunk of each attachment out of the first pass (exercises 0x9212 re-uploads)."""
    stats: dict[str, int] = field(default_factory=lambda: {"locations": 0, "photos": 0,
                                                           "streams": 0, "frames": 0,
                                                           "alarms": 0, "attachments": 0})


class VirtualMdvr:
    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.codec = Jt808Connection()
        self.writer: asyncio.StreamWriter | None = None
        self.auth_code = cfg.auth_code
        """Kept across reconnects, as real terminals keep theirs."""
        self.authenticated = asyncio.Event()
        self.streams: dict[int, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.media_serial = 0
        self.alarm_serial = 0
        self.alarm_kinds: dict[str, str] = {}
        """Alarm id -> "adas"/"dsm", for the upload that 0x9208 then asks for."""
        self.started = time.time()

    # -- wire -------------------------------------------------------------------------
    def send(self, body: Any, msg_id: int | None = None) -> int:
        data = self.codec.send(body, phone=self.cfg.phone, version2019=self.cfg.version2019,
                               msg_id=msg_id)
        assert self.writer is not None
        self.writer.write(data)
        return self.codec.last_serial or 0

    def ack(self, msg: Message, result: int = 0) -> None:
        self.send(m.GeneralResponse(reply_serial=msg.header.serial, reply_id=msg.header.msg_id,
                                    result=result), msg_id=MsgId.TERMINAL_RESPONSE)

    def spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # -- life -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected (reconnecting with back-off) until ``stop`` is set."""
        delay = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 1.0
            except (OSError, asyncio.IncompleteReadError, ConnectionError) as e:
                log.info("sim %s: connection failed: %s", self.cfg.phone, e)
            if stop.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def _session(self, stop: asyncio.Event) -> None:
        reader, self.writer = await asyncio.open_connection(self.cfg.host, self.cfg.port)
        self.codec = Jt808Connection()
        self.authenticated.clear()
        if self.auth_code:
            self.authenticate()
        else:
            self.register()
        reporter = asyncio.get_running_loop().create_task(self._report(stop))
        try:
            while not stop.is_set():
                read = asyncio.get_running_loop().create_task(reader.read(65536))
                halt = asyncio.get_running_loop().create_task(stop.wait())
                done, _ = await asyncio.wait({read, halt}, return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                if read not in done:
                    read.cancel()
                    break
                data = read.result()
                if not data:
                    break
                self.codec.receive_data(data, time.time())
                while (ev := self.codec.next_event()) is not NEED_DATA:
                    if isinstance(ev, FrameError):
                        log.warning("sim %s: bad frame from platform: %s", self.cfg.phone,
                                    ev.reason)
                        continue
                    await self.handle(ev)  # type: ignore[arg-type]
                await self.writer.drain()
        finally:
            reporter.cancel()
            for t in list(self.streams.values()):
                t.cancel()
            self.streams.clear()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _report(self, stop: asyncio.Event) -> None:
        await self.authenticated.wait()
        last_beat = last_alarm = time.monotonic()
        while not stop.is_set():
            self.send(self.location(time.time()))
            self.cfg.stats["locations"] += 1
            if self.cfg.alarm_interval and \
                    time.monotonic() - last_alarm >= self.cfg.alarm_interval:
                self.raise_alarm("adas" if self.alarm_serial % 2 == 0 else "dsm")
                last_alarm = time.monotonic()
            if time.monotonic() - last_beat > self.cfg.heartbeat_interval:
                self.send(m.Heartbeat())
                last_beat = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.report_interval)

    def location(self, when: float) -> m.Location:
        """A point on a 1 km circle around the base, driven at 40 km/h."""
        t = when - self.started
        angle = (t * 40 / 3.6 / 1000) % (2 * math.pi)  # 40 km/h on a 1 km radius
        lat = self.cfg.base[0] + 0.009 * math.sin(angle)
        lon = self.cfg.base[1] + 0.0147 * math.cos(angle)
        heading = int(math.degrees(angle + math.pi / 2)) % 360
        return m.Location(alarm=0, status=0b11, latitude=round(lat, 6),
                          longitude=round(lon, 6), altitude=5, speed=40.0, direction=heading,
                          time=int(when), extras={0x01: (12345).to_bytes(4, "big"),
                                                  0x30: bytes([25]), 0x31: bytes([11])})

    def raise_alarm(self, kind: str = "adas", when: float | None = None) -> str:
        """Report an ADAS or DSM alarm announcing two files; returns its alarm id."""
        from fleetcam.protocol.jt808 import subiao
        from fleetcam.simulator.attachments import alarm_item

        when = time.time() if when is None else when
        self.alarm_serial += 1
        ident = subiao.AlarmIdentification(self.cfg.phone[-7:], int(when),
                                           self.alarm_serial % 256, 2)
        loc = self.location(when)
        item, value = alarm_item(kind, ident, int(when), loc.latitude, loc.longitude,
                                 self.alarm_serial)
        self.alarm_kinds[ident.key] = kind
        while len(self.alarm_kinds) > 64:
            self.alarm_kinds.pop(next(iter(self.alarm_kinds)))
        self.send(m.Location(alarm=loc.alarm, status=loc.status, latitude=loc.latitude,
                             longitude=loc.longitude, altitude=loc.altitude, speed=loc.speed,
                             direction=loc.direction, time=int(when),
                             extras={**loc.extras, item: value}))
        self.cfg.stats["alarms"] += 1
        return ident.key

    async def upload_attachments(self, req: Any) -> None:
        from fleetcam.simulator.attachments import make_files, upload

        kind = self.alarm_kinds.get(req.ident.key, "adas")
        host = self.cfg.media_host or req.ip
        if host in ("0.0.0.0", ""):
            host = self.cfg.host
        files = await asyncio.to_thread(make_files, self.cfg.codec, self.cfg.width,
                                        self.cfg.height, float(req.ident.time))
        try:
            done = await upload(req, phone=self.cfg.phone, host=host, files=files,
                                channel=1, alarm_type=0x64 if kind == "adas" else 0x65,
                                lose_first=self.cfg.attachment_loss,
                                version2019=self.cfg.version2019)
            self.cfg.stats["attachments"] += len(done)
        except (OSError, ConnectionError, asyncio.TimeoutError) as e:
            log.warning("sim %s: attachment upload failed: %s", self.cfg.phone, e)

    def register(self) -> None:
        self.send(m.Register(province=31, city=100, manufacturer="FLEET",
                             model="SIM-MDVR", terminal_id=self.cfg.phone[-7:],
                             plate_color=1, plate=f"SIM{self.cfg.phone[-4:]}"))

    def authenticate(self) -> None:
        self.send(m.Authenticate(auth_code=self.auth_code,
                                 imei="86" + self.cfg.phone[-13:].rjust(13, "0"),
                                 software_version="fleetcam-sim"))

    # -- platform messages ------------------------------------------------------------
    async def handle(self, msg: Message) -> None:
        body = msg.body
        if isinstance(body, m.RegisterResponse):
            if body.result == 0:
                self.auth_code = body.auth_code
                self.authenticate()
            else:
                log.warning("sim %s: registration refused (%d)", self.cfg.phone, body.result)
        elif isinstance(body, m.GeneralResponse):
            if body.reply_id == MsgId.AUTHENTICATE and body.result == 0:
                self.authenticated.set()
            elif body.reply_id == MsgId.AUTHENTICATE:
                # the code was reset by the admin (or never valid): register for a fresh one
                log.warning("sim %s: authentication refused; registering again",
                            self.cfg.phone)
                self.auth_code = ""
                self.register()
        elif isinstance(body, m.Snapshot):
            await self.on_snapshot(msg, body)
        elif isinstance(body, m.ResourceListQuery):
            self.send(self.resource_list(msg.header.serial, body.channel, body.start, body.end))
        elif isinstance(body, m.RealtimeRequest):
            self.ack(msg)
            self.start_stream(body.channel, body.ip, body.tcp_port, live=True)
        elif isinstance(body, m.RealtimeControl):
            self.ack(msg)
            if body.command == 0:
                self.stop_stream(body.channel)
        elif isinstance(body, m.PlaybackRequest):
            listing = self.resource_list(msg.header.serial, body.channel, body.start, body.end)
            self.send(listing)
            if listing.items:
                self.start_stream(body.channel, body.ip, body.tcp_port, live=False,
                                  start=body.start, end=body.end)
        elif isinstance(body, m.PlaybackControl):
            self.ack(msg)
            if body.control == 2:
                self.stop_stream(body.channel)
        elif isinstance(body, m.MultimediaUploadResponse):
            pass
        elif type(body).__name__ == "AttachmentUploadRequest":
            self.ack(msg)
            self.spawn(self.upload_attachments(body))
        else:
            self.ack(msg, 3)  # not supported

    def resource_list(self, serial: int, channel: int, start: int, end: int) -> m.ResourceList:
        recs = recordings(self.cfg.channels, start, end, int(time.time()), self.cfg.bitrate,
                          channel)
        return m.ResourceList(reply_serial=serial, items=tuple(
            m.ResourceItem(channel=r.channel, start=r.start, end=r.end, alarm=0, media_type=0,
                           stream_type=1, storage_type=1, size=r.size) for r in recs))

    async def on_snapshot(self, msg: Message, body: m.Snapshot) -> None:
        from fleetcam.media.testpattern import snapshot_jpeg

        self.media_serial += 1
        media_id = self.media_serial
        self.send(m.SnapshotResponse(reply_serial=msg.header.serial, result=0,
                                     media_ids=(media_id,)))
        size = {1: (320, 240), 2: (640, 480), 3: (800, 600), 4: (1024, 768)}.get(
            body.resolution, (640, 480))
        now = time.time()
        jpeg = await asyncio.to_thread(snapshot_jpeg, size[0], size[1], now)
        self.send(m.MultimediaData(media_id=media_id, media_type=0, media_format=0, event=0,
                                   channel=body.channel, location=self.location(now),
                                   data=jpeg))
        self.cfg.stats["photos"] += 1

    def start_stream(self, channel: int, host: str, port: int, *, live: bool,
                     start: int = 0, end: int = 0) -> None:
        self.stop_stream(channel)
        host = self.cfg.media_host or host
        if host in ("0.0.0.0", ""):
            host = self.cfg.host
        self.cfg.stats["streams"] += 1
        task = asyncio.get_running_loop().create_task(stream_video(
            host, port, sim=self.cfg.phone[-12:], channel=channel, codec=self.cfg.codec,
            width=self.cfg.width, height=self.cfg.height, fps=self.cfg.fps,
            bitrate=self.cfg.bitrate, live=live, start=start, end=end,
            speed=self.cfg.playback_speed, stats=self.cfg.stats, audio=self.cfg.audio))
        self.streams[channel] = task
        task.add_done_callback(lambda t, ch=channel: self.streams.pop(ch, None)
                               if self.streams.get(ch) is t else None)

    def stop_stream(self, channel: int) -> None:
        task = self.streams.pop(channel, None)
        if task is not None:
            task.cancel()
