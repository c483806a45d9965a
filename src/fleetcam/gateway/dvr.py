"""Continuous recording for the cloud DVR: keep recorded channels streaming, cut fragments,
store segment objects of ``object_seconds`` and index them (docs/dvr.md).

A MediaSink (frames in) and the DvrTail (the open segment, out) of the all-in-one server.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetcam.domain.dvr import DvrStream, SegmentEntry, init_key
from fleetcam.errors import FleetcamError, NotFound
from fleetcam.media.dvr import AUDIO_LAG_MS, DvrFragmenter, Fragment, HevcToH264, OpenSegment
from fleetcam.media.dvraudio import AudioTranscoder, BadAudio
from fleetcam.media.fmp4 import init_digest
from fleetcam.protocol.jt1078.packet import CODEC_NAMES
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.protocol.jt808 import messages as m

if TYPE_CHECKING:
    from fleetcam.domain.models import Device
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
REFRESH_EVERY = 10.0
"""Seconds between two reads of the stream configuration (other copies' changes)."""
ASK_AGAIN_AFTER = 15.0
"""Seconds without a frame (device online) after which the stream is asked for again."""
MAX_OBJECT_BYTES = 64 << 20
MAX_QUEUE = 6000
"""Frames waiting to be fragmented per recording (about 2 minutes of 25 fps video with its
audio): beyond that the storage is too slow and frames are dropped (logged)."""
WARN_EVERY = 60.0
"""Seconds between two warnings about dropped audio frames of one recording."""
AUDIO = 3
"""JT/T 1078 data type of audio frames."""
STORE_TRIES = 5
UTC_PLAUSIBLE_MS = 86_400_000
"""A device timestamp within a day of the server's clock is taken as UTC milliseconds."""
REANCHOR_MS = 30_000
WATCHED_OBJECT_MS = 10_000
"""Object length while a reader that cannot reach this gateway watches the newest minutes
(services/dvr.py WatchedTail)."""
KIND = "dvr"
REQUEST_LIFE = 86400.0
"""Seconds the outstanding media request stays open; it is registered again at every ask."""


@dataclass
class Recording:
    stream: DvrStream
    root: str
    object_ms: int
    queue: asyncio.Queue[MediaFrame | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    media_conn: int | None = None
    asked_session: Any = None
    asked_at: float = float("-inf")
    last_frame: float = float("-inf")
    codec: str | None = None
    fragmenter: DvrFragmenter = field(default_factory=DvrFragmenter)
    transcoder: HevcToH264 | None = None
    audio: AudioTranscoder | None = None
    audio_frames: int = 0
    audio_dropped: int = 0
    audio_warned: float = float("-inf")
    offset_ms: int | None = None
    open: OpenSegment | None = None
    inits: set[str] = field(default_factory=set)
    frames: int = 0
    dropped: int = 0
    stored: int = 0
    error: str | None = None

    @property
    def key(self) -> tuple[int, int]:
        return self.stream.device_id, self.stream.channel

    @property
    def ref(self) -> str:
        """The outstanding media request's reference (domain/admission.py)."""
        return f"dvr:{self.stream.name}"


class DvrRecorder:
    """One Recording per recorded stream whose device this gateway copy may reach."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.recordings: dict[tuple[int, int], Recording] = {}
        self.by_name: dict[str, Recording] = {}
        self.transcoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-dvr")
        self._refreshed = float("-inf")
        self.refresh_every = REFRESH_EVERY
        """Seconds between two reads of the streams (the gateway lengthens it when its
        store tells it of changes: Gateway._sync_due)."""
        self.object_ms = max(1, gw.settings.dvr_object_seconds) * 1000

    @property
    def svc(self) -> Any:
        return self.gw.c.dvr

    # -- configuration ------------------------------------------------------------------
    async def refresh(self) -> None:
        """Start recordings for streams that record, stop those that no longer do."""
        if self.svc is None:
            return
        self._refreshed = self.gw.loop_time()
        streams = await self.gw.call(self.svc.streams.list)
        wanted = {(s.device_id, s.channel): s for s in streams if s.recording}
        for key, rec in list(self.recordings.items()):
            s = wanted.get(key)
            if s is None or s.name != rec.stream.name or s.dvr != rec.stream.dvr:
                await self.stop(rec, "configuration changed" if s else "recording turned off",
                                tell_device=s is None)
        for key, s in wanted.items():
            if key not in self.recordings:
                self._start(s)
        try:
            watched = set(await self.gw.call(self.svc.index.watched, self.gw.clock.now()))
        except Exception:
            log.warning("DVR: watched streams unreadable", exc_info=True)
            watched = set()
        for rec in self.recordings.values():
            rec.object_ms = min(self.object_ms, WATCHED_OBJECT_MS) \
                if rec.stream.name in watched else self.object_ms

    def _start(self, s: DvrStream) -> None:
        assert s.dvr is not None
        try:
            root = self.svc.storage.resolve(s.dvr.root)
        except FleetcamError as e:
            log.warning("DVR stream %s: root %r refused: %s", s.name, s.dvr.root, e.reason)
            return
        rec = Recording(stream=s, root=root, object_ms=self.object_ms)
        rec.task = asyncio.get_running_loop().create_task(self._run(rec))
        self.recordings[rec.key] = rec
        self.by_name[s.name] = rec
        log.info("DVR stream %s: recording device %s channel %s to %s", s.name, s.device_id,
                 s.channel, root)

    async def stop(self, rec: Recording, reason: str, tell_device: bool = True) -> None:
        if self.recordings.get(rec.key) is rec:
            del self.recordings[rec.key]
        self.by_name.pop(rec.stream.name, None)
        rec.queue.put_nowait(None)
        if rec.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(rec.task), 60)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                log.error("DVR stream %s: the last segment could not be stored in time",
                          rec.stream.name)
        await self.gw.call(self.gw.media_admission.close, rec.key[0], rec.key[1], rec.ref)
        session = self.gw.sessions_by_device.get(rec.stream.device_id)
        live = self.gw.live.existing(rec.stream.device_id, rec.stream.channel, "live")
        if tell_device and session is not None and live is None:
            session.send(m.RealtimeControl(channel=rec.stream.channel, command=0, close_type=0,
                                           stream_type=0))
        log.info("DVR stream %s: recording stopped (%s)", rec.stream.name, reason)

    def holds(self, device_id: int, channel: int) -> bool:
        """Whether a recording needs this channel streaming (live must not stop it)."""
        return (device_id, channel) in self.recordings

    def streaming(self, device_id: int, channel: int) -> bool:
        """Whether a recorded channel's stream is flowing here now (a live viewer can share
        it instead of asking the device, which serves one stream per channel)."""
        rec = self.recordings.get((device_id, channel))
        return (rec is not None and rec.media_conn is not None
                and self.gw.loop_time() - rec.last_frame < 5.0)

    def owns(self, connection_id: int) -> bool:
        """Whether a media connection carries a recorded channel's stream."""
        return any(r.media_conn == connection_id for r in self.recordings.values())

    # -- keeping devices streaming ------------------------------------------------------
    async def tick(self) -> None:
        now = self.gw.loop_time()
        if now - self._refreshed >= self.refresh_every:
            await self.refresh()
        for rec in self.recordings.values():
            session = self.gw.sessions_by_device.get(rec.stream.device_id)
            if session is None or not getattr(session, "registered", False):
                continue
            clip = self.gw.recorder.jobs.get(rec.key)
            if clip is not None and not clip.done:
                continue  # the channel plays a clip back (one stream per channel on many
                # devices): asking now would replace that request; ask once it is done
            fresh_session = session is not rec.asked_session
            silent = now - max(rec.last_frame, rec.asked_at) > ASK_AGAIN_AFTER
            if fresh_session or silent:
                await self._ask(rec, session, now)

    async def _ask(self, rec: Recording, session: Any, now: float) -> None:
        """Register the outstanding request the media connection will be admitted for, then
        ask the device (ready before the media can arrive)."""
        rec.asked_session, rec.asked_at = session, now
        await self.gw.call(self.gw.media_admission.request, kind=KIND, device_id=rec.key[0],
                           channel=rec.key[1], ref=rec.ref, holder=self.gw.gateway_id,
                           source=session.source, expires=self.gw.clock.now() + REQUEST_LIFE)
        if self.gw.sessions_by_device.get(rec.stream.device_id) is not session:
            return  # gone meanwhile; the next tick asks the new session
        session.send(m.RealtimeRequest(ip=self.gw.media_host, tcp_port=self.gw.port_1078,
                                       udp_port=0, channel=rec.stream.channel, data_type=0,
                                       stream_type=0))
        log.info("DVR stream %s: asked device %s for channel %s", rec.stream.name,
                 rec.stream.device_id, rec.stream.channel)

    # -- MediaSink ----------------------------------------------------------------------
    def attach(self, request: Any, device: Device, connection_id: int) -> bool:
        """A media connection was admitted for a recording's request: it feeds that one."""
        rec = self.recordings.get((device.id, request.channel))
        if rec is None or request.ref != rec.ref:
            return False
        rec.media_conn = connection_id
        return True

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None:
        rec = self.recordings.get((device.id, frame.channel))
        if rec is None or frame.data_type > AUDIO or frame.timestamp is None:
            return
        if rec.media_conn != connection_id:
            return  # only the connection bound to the recording's request feeds it
        live = self.gw.live.streams.get(rec.key)
        if live is not None and not live.ended and live.kind == "live" \
                and frame.data_type != AUDIO:
            if live.media_conn is None:
                live.media_conn = connection_id  # a viewer shares the recorded stream
            self.gw.live.on_frame(device, connection_id, frame)
        rec.last_frame = self.gw.loop_time()
        if rec.queue.qsize() >= MAX_QUEUE:
            rec.dropped += 1
            if rec.dropped % 500 == 1:
                log.warning("DVR stream %s: storage too slow, %d frames dropped",
                            rec.stream.name, rec.dropped)
            return
        rec.queue.put_nowait(frame)

    def on_close(self, device: Device, connection_id: int, reason: str) -> None:
        for rec in self.recordings.values():
            if rec.media_conn == connection_id:
                rec.media_conn = None
                rec.asked_at = float("-inf")  # ask again at the next tick (device online)
                rec.last_frame = float("-inf")

    # -- fragments to segments ----------------------------------------------------------
    def _utc(self, rec: Recording, ts: int) -> int:
        now_ms = int(self.gw.clock.now() * 1000)
        if abs(ts - now_ms) <= UTC_PLAUSIBLE_MS:
            rec.offset_ms = None
            return ts
        if rec.offset_ms is None or abs(ts + rec.offset_ms - now_ms) > REANCHOR_MS:
            rec.offset_ms = now_ms - ts
        return ts + rec.offset_ms

    async def _run(self, rec: Recording) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await rec.queue.get()) is not None:
            if frame.data_type == AUDIO:
                await self._audio(rec, frame)
                continue
            try:
                assert frame.timestamp is not None
                codec = CODEC_NAMES.get(frame.payload_type)
                if codec is None:
                    raise FleetcamError(f"unsupported video payload type {frame.payload_type}")
                if codec != rec.codec:
                    await self._close_segment(rec)
                    for f in rec.fragmenter.flush():
                        await self._append(rec, f)
                    rec.codec, rec.fragmenter = codec, DvrFragmenter()
                    rec.transcoder = HevcToH264() if codec == "hevc" else None
                utc = self._utc(rec, frame.timestamp)
                key = frame.data_type == 0
                if rec.transcoder is None:
                    units = [(frame.data, utc, key)]
                else:
                    units = await loop.run_in_executor(self.transcoder, rec.transcoder.push,
                                                       frame.data, utc, key)
                for data, ms, k in units:
                    for f in rec.fragmenter.push(data, ms, k):
                        await self._append(rec, f)
                if rec.audio is not None:  # video goes on: silence where audio is missing
                    for f in rec.fragmenter.push_audio(rec.audio.fill_until(utc - AUDIO_LAG_MS)):
                        await self._append(rec, f)
                rec.frames += 1
            except FleetcamError as e:
                rec.error = e.reason
                log.warning("DVR stream %s: frame skipped: %s", rec.stream.name, e.reason)
            except Exception:
                log.exception("DVR stream %s: frame skipped", rec.stream.name)
        try:
            if rec.transcoder is not None:
                for data, ms, k in await loop.run_in_executor(self.transcoder,
                                                              rec.transcoder.flush):
                    for f in rec.fragmenter.push(data, ms, k):
                        await self._append(rec, f)
            if rec.audio is not None:
                for f in rec.fragmenter.push_audio(rec.audio.flush()):
                    await self._append(rec, f)
            for f in rec.fragmenter.flush():
                await self._append(rec, f)
        except Exception:
            log.exception("DVR stream %s: last fragment lost", rec.stream.name)
        await self._close_segment(rec)

    async def _audio(self, rec: Recording, frame: MediaFrame) -> None:
        """One audio frame: to AAC beside the video (media.dvraudio). A frame that cannot be
        used is dropped and counted (a warning a minute at most): the video never waits on
        audio and never breaks for it."""
        assert frame.timestamp is not None
        try:
            if rec.audio is None:
                rec.audio = AudioTranscoder()
            packets = rec.audio.push(frame.payload_type, frame.data,
                                     self._utc(rec, frame.timestamp),
                                     rec.fragmenter.open_start_ms)
            for f in rec.fragmenter.push_audio(packets):
                await self._append(rec, f)
            rec.audio_frames += 1
        except BadAudio as e:
            self._audio_dropped(rec, str(e))
        except Exception as e:  # noqa: BLE001 - audio never stops the recording
            log.debug("DVR stream %s: audio frame failed", rec.stream.name, exc_info=True)
            self._audio_dropped(rec, f"{type(e).__name__}: {e}")

    def _audio_dropped(self, rec: Recording, reason: str) -> None:
        rec.audio_dropped += 1
        now = self.gw.loop_time()
        if now - rec.audio_warned >= WARN_EVERY:
            rec.audio_warned = now
            log.warning("DVR stream %s: audio frame dropped (%d so far): %s", rec.stream.name,
                        rec.audio_dropped, reason[:200])

    async def _append(self, rec: Recording, frag: Fragment) -> None:
        seg = rec.open
        if seg is not None and (frag.discontinuity or seg.duration_ms >= rec.object_ms
                                or seg.size + len(frag.data) > MAX_OBJECT_BYTES):
            await self._close_segment(rec)
        if rec.open is None:
            if not frag.keyframe:
                return  # a segment opens on a keyframe (a cut long GOP waits for the next)
            ikey = init_key(rec.stream.name, init_digest(frag.init))
            if ikey not in rec.inits:
                await self._store(rec, ikey, frag.init, "video/mp4")
                rec.inits.add(ikey)
            rec.open = OpenSegment(rec.stream.name, rec.stream.dvr.root if rec.stream.dvr
                                   else rec.root, secrets.token_hex(4), frag, ikey)
        rec.open.append(frag)

    async def _close_segment(self, rec: Recording) -> None:
        seg = rec.open
        if seg is None or not seg.fragments:
            rec.open = None
            return
        data = seg.read()
        entry = seg.entry(created_at=self.gw.clock.now())
        await self._retry(rec, "intent", self.svc.index.intend, entry.root, entry.key,
                          self.gw.clock.now())
        if await self._store(rec, seg.key, data, "video/iso.segment"):
            # its thumbnails are the object-created handler's (services/dvrthumbs.py: the
            # S3 event's Lambda on AWS, the ingest worker locally), not the gateway's
            if await self._retry(rec, "index", self.svc.index.add, entry) is not None:
                rec.stored += 1
        rec.open = None

    async def _store(self, rec: Recording, key: str, data: bytes, content_type: str) -> bool:
        root = rec.stream.dvr.root if rec.stream.dvr else rec.root
        done = await self._retry(rec, key, self.svc.storage.put, root, key, data,
                                 content_type=content_type)
        return done is not None

    async def _retry(self, rec: Recording, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        delay = 0.5
        for attempt in range(STORE_TRIES):
            try:
                result = await self.gw.call(fn, *args, **kw)
                return True if result is None else result
            except Exception as e:
                if attempt == STORE_TRIES - 1:
                    log.error("DVR stream %s: %s lost after %d tries: %s", rec.stream.name,
                              what, STORE_TRIES, e)
                    return None
                log.warning("DVR stream %s: storing %s failed (%s); retrying", rec.stream.name,
                            what, e)
                await asyncio.sleep(delay)
                delay *= 2
        return None

    # -- clips of recorded ranges ------------------------------------------------------
    async def from_archive(self, cmd: Any) -> bool:
        """Answer a request_video whose whole range is recorded in the cloud from the archive
        (never from the device again). False: the device must be asked."""
        clips = self.gw.c.dvr_clips
        p = cmd.properties
        if clips is None or cmd.name != "request_video":
            return False
        start = int(p["from"]) * 1000
        end = start + int(p["duration"]) * 1000
        segs = await self.gw.call(clips.recorded, cmd.device_id, int(p["channel"]), start, end)
        return segs is not None and await self._archive_clip(cmd, segs, start, end)

    async def _archive_clip(self, cmd: Any, segs: list[SegmentEntry], start: int,
                            end: int) -> bool:
        import json
        import os
        import tempfile

        from fleetcam.domain import keys
        from fleetcam.domain.models import new_uuid
        from fleetcam.services.media import META_KEY

        sent = await self.gw.call(self.gw.commands.mark_sent, cmd, None)
        if sent is None:
            return True  # canceled meanwhile, or another copy took it
        uuid, channel = new_uuid(), int(cmd.properties["channel"])
        first = max(start, segs[0].start_ms)
        options = {"name": f"video-ch{channel}-{start // 1000}.mp4", "channel": channel,
                   "created": first / 1000, "protected": False,
                   "attributes": {"source": "cloud-dvr", "stream": segs[0].stream},
                   "command_id": sent.id}
        fd, path = tempfile.mkstemp(suffix=".mp4")
        os.close(fd)

        def cut_and_store() -> None:
            self.gw.c.dvr_clips.cut(segs, start, end, path)
            with open(path, "rb") as f:
                self.gw.c.store.put(keys.media_key(cmd.device_id, uuid, "mp4"), f,
                                    content_type="video/mp4",
                                    metadata={META_KEY: json.dumps(options, ensure_ascii=True)})

        try:
            await self.gw.call(cut_and_store)
            log.info("request_video %s answered from the DVR archive of %s", sent.id,
                     segs[0].stream)
        except Exception as e:
            log.exception("request_video %s: the archive clip failed", sent.id)
            await self.gw.call(self.gw.commands.finish, sent, False,
                               {"reason": f"cutting the clip from the DVR archive failed: {e}"})
        finally:
            os.unlink(path)
        return True

    # -- DvrTail ------------------------------------------------------------------------
    def open_segment(self, stream: str) -> SegmentEntry | None:
        rec = self.by_name.get(stream)
        seg = rec.open if rec is not None else None
        if seg is None or not seg.fragments:
            return None
        return seg.entry(key="")  # type: ignore[no-any-return]

    def read_open(self, stream: str, segment_id: str, start: int = 0,
                  end: int | None = None) -> bytes:
        rec = self.by_name.get(stream)
        seg = rec.open if rec is not None else None
        if seg is None or seg.segment_id != segment_id:
            raise NotFound(f"segment {segment_id} of {stream} is not open (stored or dropped)")
        return seg.read(start, end)

    async def close(self) -> None:
        for rec in list(self.recordings.values()):
            await self.stop(rec, "gateway stopping", tell_device=False)
        self.transcoder.shutdown(wait=False)
