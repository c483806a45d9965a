"""Live and playback streams: JT/T 1078 frames cut into HLS segments in object storage."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetcam.domain import hls
from fleetcam.domain.admission import MediaRequest
from fleetcam.domain.gateway import Command, Connection
from fleetcam.domain.models import Device, new_uuid
from fleetcam.errors import FleetcamError
from fleetcam.protocol.jt1078.packet import CODEC_NAMES
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.protocol.jt808 import messages as m

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
IDLE_STOP = 60.0
"""A stream whose playlist nobody fetched for this long is stopped."""
SEGMENT_GRACE = 120.0
"""Segments are deleted this long after their stream's last access."""
START_TIMEOUT = 20.0
"""Seconds for the device to deliver a first segment before the stream is given up."""
NO_KEYFRAME = 10.0
KEEP_EXTRA = 4
"""Segments kept in storage behind the live window (slow players)."""
STREAM_REQUEST_LIFE = 86400.0
"""A stream's media request stays open this long at most (it is closed when the stream
stops)."""
QUEUE_MAX = 250
"""Frames waiting for the segmenter at most (10 s at 25 fps); beyond, frames are dropped up
to the next keyframe, so a stalled segmenter cannot grow memory."""
AUDIO_QUEUE_MAX = 250
"""Audio frames waiting for the segmenter at most (10 s of 40 ms G.711 frames); beyond, they
are dropped (counted)."""
AUDIO = 3
"""JT/T 1078 data type of audio frames."""
WARN_EVERY = 60.0
"""Seconds between two warnings about one stream's dropped audio frames."""


@dataclass
class LiveStream:
    uuid: str
    device_id: int
    ident: str
    channel: int
    stream_type: str
    kind: str  # "live" | "playback"
    started: float
    media_conn: int | None = None
    segmenter: Any = None
    codec: str | None = None
    segments: list[hls.SegmentRef] = field(default_factory=list)
    ended: bool = False
    stop_reason: str = ""
    bytes: int = 0
    frames: int = 0
    first_frame_at: float | None = None
    last_access: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    queue: asyncio.Queue[MediaFrame | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    waiting: list[Command] = field(default_factory=list)
    dropped: int = 0
    """Frames dropped because the segmenter fell QUEUE_MAX behind."""
    queued_video: int = 0
    queued_audio: int = 0
    audio: Any = None
    """The channel's audio to AAC (media.dvraudio.AudioTranscoder), once a frame came."""
    audio_frames: int = 0
    audio_dropped: int = 0
    """Audio frames dropped: the queue was full, or they did not decode."""
    audio_warned: float = float("-inf")
    final: bool = False
    """Its playlist is final (EXT-X-ENDLIST): set once the segmenter wrote its last segment
    (or was given up on), not when the stream is told to stop, since frames still queued
    then become segments after it."""
    remote: bool = False
    """Its media reached this copy; another copy holds the device and the stream's entry."""
    served_elsewhere: bool = False
    """This copy holds the device; another copy receives the media and writes the stream."""
    skipping: bool = False
    registered: bool = False
    """True once the stream's connection is in the shared registry: until then, housekeeping
    must not read its absence there as a user's DELETE."""

    @property
    def conn_id(self) -> int:
        return hls.connection_id(self.uuid)


class LiveManager:
    """A MediaSink; one LiveStream per device channel, shared by every operator asking."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.streams: dict[tuple[int, int], LiveStream] = {}
        self.finished: list[LiveStream] = []
        self.transcoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gw-hls")

    def urls(self, s: LiveStream) -> dict[str, Any]:
        base = self.gw.settings.base_url
        playlist = f"{base}/media/{hls.stream_key(s.uuid, 'index.m3u8')}"
        # flespi's clients (MediaBox) read the answer's ``mediastream`` as the stream's format
        # and the connection's ``meta.mediastream`` as an object describing it
        return {"uuid": s.uuid, "url": playlist, "hls": playlist, "mediastream": "hls",
                "stream_type": s.stream_type, "kind": s.kind, "connection_id": s.conn_id}

    def _connection(self, s: LiveStream) -> Connection:
        described = {"uuid": s.uuid, "channel": s.channel, "mediastream": "hls",
                     "stream_type": s.stream_type, "has_audio": self.has_audio(s)}
        meta = {"mediastream": described, "hls": self.urls(s)["hls"],
                "kind": s.kind, "channel": s.channel, "started": s.started, "bytes": s.bytes,
                "segments": len(s.segments), "last_access": s.last_access or s.started}
        return Connection(id=s.conn_id, device_id=s.device_id, ident=s.ident,
                          established=s.started, source="hls", transport="hls", secondary=True,
                          gateway_id=self.gw.gateway_id, meta=meta)

    @staticmethod
    def has_audio(s: LiveStream) -> bool:
        """Whether the stream's segments carry an audio track (settled by its first one)."""
        return s.segmenter is not None and s.segmenter.audio is not None

    # -- starting -----------------------------------------------------------------------
    def existing(self, device_id: int, channel: int, kind: str) -> LiveStream | None:
        s = self.streams.get((device_id, channel))
        return s if s is not None and not s.ended and s.kind == kind else None

    async def open(self, cmd: Command, device: Device, kind: str, source: str) -> LiveStream:
        """A stream for the command's channel: the running one, or a new one (with the
        outstanding media request its connection is admitted for; ``source`` is the address
        of the device's signalling connection)."""
        channel = int(cmd.properties["channel"])
        s = self.existing(device.id, channel, kind)
        if s is None:
            old = self.streams.get((device.id, channel))
            if old is not None:
                await self.stop(old, "replaced")
            now = self.gw.clock.now()
            s = LiveStream(uuid=new_uuid(), device_id=device.id, ident=device.ident,
                           channel=channel, kind=kind, started=now, last_access=now,
                           stream_type=str(cmd.properties.get("quality", "main")))
            self.streams[(device.id, channel)] = s
            await self.gw.call(self.gw.media_admission.request, kind=kind, device_id=device.id,
                               channel=channel, ref=s.uuid, holder=self.gw.gateway_id,
                               source=source, expires=now + STREAM_REQUEST_LIFE,
                               command_id=cmd.id)
            s.task = asyncio.get_running_loop().create_task(self._run(s))
            await self.gw.call(self.gw.connections.opened, self._connection(s))
            s.registered = True
            self._log(s, "start", "")
        s.waiting.append(cmd)
        self.gw.spawn(self._answer_when_ready(s, cmd))
        return s

    async def _answer_when_ready(self, s: LiveStream, cmd: Command) -> None:
        try:
            await asyncio.wait_for(s.ready.wait(), START_TIMEOUT)
        except asyncio.TimeoutError:
            s.error = s.error or "the device sent no playable video in time"
        if s.error is not None or not (s.segments or s.served_elsewhere):
            await self.gw.call(self.gw.commands.finish, cmd, False,
                               {"reason": s.error or "stream ended before its first segment"})
            if not s.segments:
                await self.stop(s, "no video")
            return
        await self.gw.call(self.gw.commands.finish, cmd, True, self.urls(s))

    async def fail(self, cmd: Command, reason: str) -> None:
        """The device refused (or has nothing for) a stream opened for ``cmd``."""
        s = self.streams.get((cmd.device_id, int(cmd.properties["channel"])))
        if s is not None and not s.segments and any(c.id == cmd.id for c in s.waiting):
            s.error = reason
            s.ready.set()  # the waiting commands answer with the reason
            await self.stop(s, f"error: {reason}", tell_device=False)
        else:
            await self.gw.call(self.gw.commands.finish, cmd, False, {"reason": reason})

    # -- frames -------------------------------------------------------------------------
    def attach(self, request: MediaRequest, device: Device, connection_id: int) -> bool:
        s = self.streams.get((device.id, request.channel))
        if (s is None or s.ended or s.uuid != request.ref) and \
                request.holder != self.gw.gateway_id:
            s = self._remote(request, device)
        if s is None or s.ended or s.uuid != request.ref:
            return False
        if s.media_conn is not None and s.media_conn != connection_id:
            # the device reconnected its media: the old connection no longer feeds it
            s.skipping = True
        s.media_conn = connection_id
        return True

    def _remote(self, request: MediaRequest, device: Device) -> LiveStream:
        """The stream's media reached this copy while another holds the device: segment it
        here, under the request's stream uuid (the holder answers the operators)."""
        old = self.streams.get((device.id, request.channel))
        if old is not None and not old.ended:
            self.gw.spawn(self.stop(old, "replaced", tell_device=False))
        s = LiveStream(uuid=request.ref, device_id=device.id, ident=device.ident,
                       channel=request.channel, kind=request.kind, started=request.opened,
                       last_access=self.gw.clock.now(), stream_type="main", remote=True,
                       registered=True)
        self.streams[(device.id, request.channel)] = s
        s.task = asyncio.get_running_loop().create_task(self._run(s))
        log.info("stream %s of device %s: media arrived here, device held by %s", s.uuid,
                 device.id, request.holder)
        return s

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None:
        s = self.streams.get((device.id, frame.channel))
        if s is None or s.ended or frame.data_type > AUDIO or frame.timestamp is None:
            return
        if s.media_conn != connection_id:
            return  # only the connection bound to the request feeds it
        if frame.data_type == AUDIO:
            if s.queued_audio >= AUDIO_QUEUE_MAX:
                self._audio_dropped(s, "the segmenter is behind")
                return
            s.bytes += len(frame.data)
            s.queued_audio += 1
            s.queue.put_nowait(frame)
            return
        if s.skipping:
            if frame.data_type != 0:
                s.dropped += 1
                return
            s.skipping = False
        if s.queued_video >= QUEUE_MAX:
            s.dropped += 1
            s.skipping = True  # the next frame the segmenter gets is a keyframe
            return
        s.bytes += len(frame.data)
        s.frames += 1
        s.queued_video += 1
        s.queue.put_nowait(frame)

    def on_close(self, device: Device, connection_id: int, reason: str) -> None:
        for s in list(self.streams.values()):
            if s.media_conn == connection_id and not s.ended:
                gone = self.gw.sessions_by_device.get(device.id) is None
                self.gw.spawn(self.stop(s, "device gone" if gone else
                                        ("user" if reason == "user" else "device ended stream"),
                                        tell_device=False))

    async def _run(self, s: LiveStream) -> None:
        """Segment frames in order; H.265 is transcoded off the event loop."""
        from fleetcam.media.hls import HlsSegmenter

        loop = asyncio.get_running_loop()
        while (frame := await s.queue.get()) is not None:
            try:
                if frame.data_type == AUDIO:
                    s.queued_audio -= 1
                    for seg in self._audio(s, frame):
                        await self._write(s, seg)
                    continue
                s.queued_video -= 1
                if s.segmenter is None:
                    s.codec = CODEC_NAMES.get(frame.payload_type)
                    if s.codec is None:
                        raise FleetcamError(f"unsupported video payload type "
                                            f"{frame.payload_type}")
                    s.segmenter = HlsSegmenter(s.codec)
                    s.first_frame_at = loop.time()
                elif CODEC_NAMES.get(frame.payload_type) != s.codec:
                    raise FleetcamError("codec changed mid-stream")
                keyframe = frame.data_type == 0
                if s.codec == "h264":
                    segments = s.segmenter.push(frame.data, frame.timestamp, keyframe)
                else:
                    segments = await loop.run_in_executor(
                        self.transcoder, s.segmenter.push, frame.data, frame.timestamp, keyframe)
                if (not s.segments and not segments and s.first_frame_at is not None
                        and loop.time() - s.first_frame_at > NO_KEYFRAME):
                    raise FleetcamError(f"no keyframe in {NO_KEYFRAME:.0f} s")
                for seg in segments:
                    await self._write(s, seg)
            except Exception as e:
                s.error = e.reason if isinstance(e, FleetcamError) else f"{type(e).__name__}: {e}"
                log.warning("stream %s of device %s: %s", s.uuid, s.device_id, s.error)
                s.ready.set()
                self.gw.spawn(self.stop(s, f"error: {s.error}"))
                return
        if s.segmenter is not None:
            try:
                if s.audio is not None:
                    for seg in s.segmenter.push_audio(s.audio.flush()):
                        await self._write(s, seg)
                for seg in s.segmenter.flush():
                    await self._write(s, seg)
            except Exception as e:  # the stream ends either way
                log.warning("stream %s: final segment lost: %s", s.uuid, e)

    def _audio(self, s: LiveStream, frame: MediaFrame) -> list[Any]:
        """One audio frame: to AAC (media.dvraudio, as the cloud DVR does) into the stream's
        segments. A frame that cannot be used is dropped and counted (a warning a minute at
        most): the video never waits on audio and never breaks for it."""
        from fleetcam.media.dvraudio import AudioTranscoder, BadAudio

        if s.segmenter is None:
            return []  # no video yet: the segments' timeline starts with a keyframe
        assert frame.timestamp is not None
        try:
            if s.audio is None:
                s.audio = AudioTranscoder()
            packets = s.audio.push(frame.payload_type, frame.data, frame.timestamp)
            before = s.segmenter.audio_dropped
            segments = s.segmenter.push_audio(packets)
            if s.segmenter.audio_dropped > before:
                self._audio_dropped(s, "AAC out of place (late, after a video-only start, "
                                    "or not the track's configuration)", s.segmenter.audio_dropped
                                    - before)
            s.audio_frames += 1
        except BadAudio as e:
            self._audio_dropped(s, str(e))
            return []
        except Exception as e:  # noqa: BLE001 - audio never stops the stream
            log.debug("stream %s: audio frame failed", s.uuid, exc_info=True)
            self._audio_dropped(s, f"{type(e).__name__}: {e}")
            return []
        return segments

    def _audio_dropped(self, s: LiveStream, reason: str, n: int = 1) -> None:
        s.audio_dropped += n
        now = self.gw.loop_time()
        if now - s.audio_warned >= WARN_EVERY:
            s.audio_warned = now
            log.warning("stream %s of device %s: audio dropped (%d so far): %s", s.uuid,
                        s.device_id, s.audio_dropped, reason[:200])

    async def _write(self, s: LiveStream, seg: Any) -> None:
        """The segment first, then the playlist naming it: a listed segment always exists."""
        ref = hls.SegmentRef(seg.sequence, seg.duration)
        await self.gw.call(self.gw.c.store.put, hls.stream_key(s.uuid, hls.segment_name(
            seg.sequence)), seg.data, content_type="video/mp2t")
        s.segments.append(ref)
        await self._write_playlist(s)
        if s.remote and len(s.segments) == 1:  # the holder answers the operators now
            await self.gw.call(self.gw.media_admission.update, s.device_id, s.channel, s.uuid,
                               lambda r: r.with_changes(progress={**r.progress,
                                                                  "segments": 1}))
        drop = len(s.segments) - hls.LIVE_WINDOW - KEEP_EXTRA
        if s.kind == "live" and drop > 0:
            old, s.segments = s.segments[:drop], s.segments[drop:]
            for r in old:
                await self.gw.call(self.gw.c.store.delete,
                                   hls.stream_key(s.uuid, hls.segment_name(r.sequence)))
        s.ready.set()

    async def _write_playlist(self, s: LiveStream) -> None:
        window = s.segments[-hls.LIVE_WINDOW:] if s.kind == "live" else s.segments
        text = hls.render_playlist(window, ended=s.final, event=s.kind == "playback")
        await self.gw.call(self.gw.c.store.put, hls.stream_key(s.uuid, "index.m3u8"),
                           text.encode(), content_type="application/vnd.apple.mpegurl")

    # -- stopping -----------------------------------------------------------------------
    async def stop(self, s: LiveStream, reason: str, tell_device: bool = True) -> None:
        if s.ended:
            return
        s.ended = True
        s.stop_reason = reason
        if self.streams.get((s.device_id, s.channel)) is s:
            del self.streams[(s.device_id, s.channel)]
        s.queue.put_nowait(None)  # unbounded put: the end marker always fits
        self.gw.spawn(self.gw.call(self.gw.media_admission.close, s.device_id, s.channel, s.uuid))
        if s.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(s.task), 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        s.final = True
        session = self.gw.sessions_by_device.get(s.device_id)
        recorded = s.kind == "live" and self.gw.dvr.holds(s.device_id, s.channel)
        if recorded:  # the cloud DVR keeps the channel streaming: leave the device be
            tell_device = False
        if tell_device and session is not None:
            if s.kind == "live":
                session.send(m.RealtimeControl(channel=s.channel, command=0, close_type=0,
                                               stream_type=0))
            else:
                session.send(m.PlaybackControl(channel=s.channel, control=2, speed=0,
                                               position=0))
        for sess in list(self.gw.sessions_1078):
            if s.media_conn is not None and sess.conn_id == s.media_conn and not recorded:
                sess.close(f"stream stopped ({reason})")
        if not s.served_elsewhere:
            await self._write_playlist(s)  # with EXT-X-ENDLIST
        if not s.remote:  # the holder's entry and log, not the media copy's
            await self.gw.call(self.gw.connections.closed, s.conn_id, reason,
                               self.gw.gateway_id)
            self._log(s, "stop", reason)
        s.last_access = max(s.last_access, self.gw.clock.now())
        self.finished.append(s)

    def _log(self, s: LiveStream, event: str, reason: str) -> None:
        payload = {"event": event, "reason": reason, **self.urls(s)}
        self.gw.spawn(self.gw.call(self.gw.connections.journal.record, s.device_id,
                                   f"mediastream_{event}", payload, None,
                                   f"mediastream/{s.channel}"))

    async def tick(self) -> None:
        """Housekeeping: idle streams stop; segments of finished ones go after the grace."""
        now = self.gw.clock.now()
        for s in list(self.streams.values()):
            if not s.registered:
                continue
            if s.remote or s.served_elsewhere or s.media_conn is None:
                if await self._watch_elsewhere(s):
                    continue
            conn = await self.gw.call(self.gw.connections.registry.get, s.conn_id)
            if conn is None and not s.ended:  # dropped through the API (maybe another copy)
                await self.stop(s, "user")
                continue
            last = max(s.last_access, float((conn.meta if conn else {}).get("last_access", 0)))
            s.last_access = last
            if now - last > IDLE_STOP:
                await self.stop(s, "idle")
            elif conn is not None and not s.remote:
                await self.gw.call(self.gw.connections.registry.open, self._connection(s))
        for s in list(self.finished):
            if now - s.last_access > SEGMENT_GRACE:
                self.finished.remove(s)
                for r in s.segments:
                    await self.gw.call(self.gw.c.store.delete,
                                       hls.stream_key(s.uuid, hls.segment_name(r.sequence)))
                await self.gw.call(self.gw.c.store.delete, hls.stream_key(s.uuid, "index.m3u8"))

    async def _watch_elsewhere(self, s: LiveStream) -> bool:
        """Streams split over two copies learn of each other through the shared request; True
        when ``s`` was stopped."""
        req = await self.gw.call(self.gw.c.media_requests.get, s.device_id, s.channel)
        mine = req is not None and req.ref == s.uuid
        if s.remote and not mine:  # the holder stopped it (idle, user, device gone)
            await self.stop(s, "stopped by the device's gateway copy", tell_device=False)
            return True
        if not s.remote and not s.served_elsewhere and mine and req is not None \
                and req.progress.get("segments"):
            s.served_elsewhere = True  # another copy writes it: answer the operators
            s.ready.set()
        elif s.served_elsewhere and not mine:  # the media copy ended it (device gone...)
            await self.stop(s, "device ended stream", tell_device=False)
            return True
        return False

    async def close(self) -> None:
        for s in list(self.streams.values()):
            await self.stop(s, "gateway stopping")
        self.transcoder.shutdown(wait=False)
