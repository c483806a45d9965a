"""Recording a clip a command asked for: playback frames → a raw clip object, with retries."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from fleetcam.domain import keys, rawclip
from fleetcam.domain.admission import MediaRequest
from fleetcam.domain.gateway import Command
from fleetcam.domain.models import Device, new_uuid
from fleetcam.protocol.jt1078.packet import CODEC_NAMES
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.protocol.jt808 import messages as m
from fleetcam.services.media import META_KEY

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway

log = logging.getLogger(__name__)
END_TOLERANCE_MS = 1500
"""A recording that reaches this close to its expected end counts as complete."""
MAX_RETRIES = 5
NO_DATA_TIMEOUT = 30.0
"""Seconds without a frame after which the playback is asked for again."""
PROGRESS_EVERY = 2.0
"""Seconds between two progress reports of a recording (MQTT and commands-queue reads)."""
GAP_MS = 2000
"""A jump between two video frames longer than this is reported as a gap in the clip."""
MAX_GAPS = 50
SHORT_TOLERANCE = 0.5
"""A clip this much shorter than asked is still "complete"; more is reported as short."""
MAX_JUMP_MS = 5_000
"""A video frame further than this past the covered part of the range is believed only when
the next one follows it (a real gap in the device's recording, reported as such); a lone
stray or forged far-future timestamp is dropped, so it can neither end a clip early nor
leave a hole: a clip completes only when its frames cover the range."""


@dataclass
class Job:
    cmd: Command
    device_id: int
    channel: int
    start: int
    end: float
    """The expected end: the requested end, or the end of what the device has, if earlier."""
    path: str
    file: BinaryIO
    uuid: str = field(default_factory=new_uuid)
    codec: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    audio: int | None = None
    """JT/T 1078 payload type of the audio frames, once one arrived (G.711/AAC are kept)."""
    last_ts: int | None = None
    first_ts: int | None = None
    frames: int = 0
    retries: int = 0
    conn_id: int | None = None
    last_progress: float = 0.0
    done: bool = False
    asked_to: int = 0
    """The end the command asked for (``end`` may be earlier)."""
    asked_at: float = 0.0
    """Wall-clock time of the request: a range ending after it cannot be complete."""
    bytes: int = 0
    video_frames: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)
    reported: float = 0.0
    begin: int = 0
    """Where coverage starts: ``start``, or where the device's recordings begin if later."""
    jump: MediaFrame | None = None
    """A frame past MAX_JUMP_MS, waiting for the next one to confirm it."""
    strays: int = 0
    remote: bool = False
    """The device's signalling connection is held by another copy (only the media is here)."""

    @property
    def ref(self) -> str:
        return f"cmd:{self.cmd.id}"


class Recorder:
    """A MediaSink: frames of a playback connection go to the job of their device and channel.

    The raw clip is stored only once it is complete (the range is covered, or the device's
    recording ended); a broken connection is resumed from the last frame while the command's
    ttl lasts; what never completes is discarded, so a partial clip is never presented."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.jobs: dict[tuple[int, int], Job] = {}

    async def expect(self, cmd: Command, items: tuple[Any, ...], source: str) -> None:
        """Get ready for the clip's media and open its request (before asking the device, so
        frames that beat the device's answer are not lost); ``source`` is the address of the
        device's signalling connection."""
        job = self._new_job(cmd, items)
        await self.gw.call(self._open_request, job, source)

    def _new_job(self, cmd: Command, items: tuple[Any, ...]) -> Job:
        start = int(cmd.properties["from"])
        end = start + int(cmd.properties["duration"])
        have = max((it.end for it in items), default=end)
        fd, path = tempfile.mkstemp(prefix="fleetcam-rec-", suffix=".fcraw")
        job = Job(cmd=cmd, device_id=cmd.device_id, channel=int(cmd.properties["channel"]),
                  start=start, end=min(end, have), path=path, file=os.fdopen(fd, "w+b"),
                  last_progress=self.gw.loop_time(), asked_to=end,
                  asked_at=self.gw.clock.now(), begin=start)
        old = self.jobs.pop((job.device_id, job.channel), None)
        if old is not None:
            self._discard(old, "replaced by a newer request")
        self.jobs[(job.device_id, job.channel)] = job
        return job

    def _open_request(self, job: Job, source: str) -> None:
        """Store call: the clip's outstanding request. A command sent again (its connection
        was lost) keeps the clip's uuid, so a clip is never stored twice under two names."""
        store = self.gw.c.media_requests
        old = store.get(job.device_id, job.channel)
        if old is not None and old.ref == job.ref:
            job.uuid = str(old.progress.get("uuid", job.uuid))
        self.gw.media_admission.request(
            kind="clip", device_id=job.device_id, channel=job.channel, ref=job.ref,
            holder=self.gw.gateway_id, source=source, expires=job.cmd.expires,
            command_id=job.cmd.id,
            progress={"uuid": job.uuid, "command": asdict(job.cmd), "end": job.end,
                      "begin": job.begin})

    def limit(self, cmd: Command, items: tuple[Any, ...]) -> None:
        """The device listed what it has: the clip ends where its recordings end."""
        job = self.jobs.get((cmd.device_id, int(cmd.properties["channel"])))
        if job is not None and job.cmd.id == cmd.id and items:
            job.end = min(job.end, max(it.end for it in items))
            job.begin = max(job.start, min(int(it.start) for it in items))
            # a copy that receives the media elsewhere learns it through the store
            end, begin = job.end, job.begin
            self.gw.spawn(self.gw.call(self.gw.media_admission.update, job.device_id,
                                       job.channel, job.ref, lambda r: r.with_changes(
                                           progress={**r.progress, "end": end,
                                                     "begin": begin})))

    def cancel(self, cmd: Command, reason: str) -> None:
        """The device cannot deliver: drop the job and fail the command."""
        job = self.jobs.get((cmd.device_id, int(cmd.properties["channel"])))
        if job is not None and job.cmd.id == cmd.id:
            self._fail(job, reason)
        else:
            self.gw.spawn(self.gw.call(self.gw.commands.finish, cmd, False, {"reason": reason}))

    # -- MediaSink ----------------------------------------------------------------------
    def attach(self, request: MediaRequest, device: Device, connection_id: int) -> bool:
        job = self.jobs.get((device.id, request.channel))
        if (job is None or job.done or job.ref != request.ref) and \
                request.holder != self.gw.gateway_id and "command" in request.progress:
            # the media reached this copy, another holds the device: record it here, from
            # what the shared request says (the holder learns the outcome through the store)
            cmd = Command(**request.progress["command"])
            job = self._new_job(cmd, ())
            job.uuid = str(request.progress.get("uuid", job.uuid))
            job.end = float(request.progress.get("end", job.end))
            job.begin = int(request.progress.get("begin", job.begin))
            job.remote = True
            log.info("recording of command %s: media arrived here, device held by %s",
                     cmd.id, request.holder)
        if job is None or job.done or job.ref != request.ref:
            return False
        job.conn_id = connection_id
        job.last_progress = self.gw.loop_time()
        return True

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None:
        job = self.jobs.get((device.id, frame.channel))
        if job is None or job.done or frame.timestamp is None or frame.data_type > 3:
            return
        if job.conn_id != connection_id:
            return  # only the connection bound to the request feeds it
        ts = frame.timestamp
        if ts < job.start * 1000 or (job.last_ts is not None and ts <= job.last_ts
                                     and frame.data_type < 3):
            return  # before the range, or overlap after a resumed playback
        covered = job.last_ts if job.last_ts is not None else job.begin * 1000
        if ts > covered + MAX_JUMP_MS:
            jump = job.jump
            if frame.data_type < 3 and jump is not None and jump.timestamp is not None \
                    and 0 < ts - jump.timestamp <= GAP_MS:
                job.jump = None  # confirmed: the device's recording has a gap here
                self._write(job, jump)
                if not job.done:
                    self._write(job, frame)
                return
            if frame.data_type < 3:
                if job.jump is not None:
                    self._stray(job, job.jump)
                job.jump = frame
            return
        if job.jump is not None and frame.data_type < 3:
            self._stray(job, job.jump)
            job.jump = None
        self._write(job, frame)

    def _stray(self, job: Job, frame: MediaFrame) -> None:
        job.strays += 1
        self.gw.refusals.refuse("clip frame", str(job.device_id), "-",
                                f"timestamp {frame.timestamp} is beyond the covered part of "
                                f"the range of command {job.cmd.id}")

    def _write(self, job: Job, frame: MediaFrame) -> None:
        ts = frame.timestamp
        assert ts is not None
        if job.codec is None:
            if frame.data_type >= 3:
                return  # wait for video to know the codec
            job.codec = CODEC_NAMES.get(frame.payload_type)
            if job.codec is None:
                self._fail(job, f"unsupported video payload type {frame.payload_type}")
                return
            job.header = {"codec": job.codec, "channel": job.channel,
                          "device_id": job.device_id, "start": job.start, "end": job.end,
                          "command_id": job.cmd.id}
            job.file.write(rawclip.encode_header(job.header, rawclip.HEADER_ROOM))
        if frame.data_type == 3 and job.audio is None:
            job.audio = frame.payload_type
        job.file.write(rawclip.encode_frame(int(frame.data_type), ts, frame.data))
        job.frames += 1
        job.bytes += len(frame.data)
        job.first_ts = ts if job.first_ts is None else job.first_ts
        if frame.data_type < 3:
            if (job.last_ts is not None and ts - job.last_ts > GAP_MS
                    and len(job.gaps) < MAX_GAPS):
                job.gaps.append((job.last_ts / 1000, ts / 1000))
            job.last_ts = ts
            job.video_frames += 1
        job.last_progress = self.gw.loop_time()
        if job.last_progress - job.reported >= PROGRESS_EVERY:
            job.reported = job.last_progress
            self.gw.spawn(self.gw.call(self.gw.commands.progress, job.cmd,
                                       {"progress": self._progress(job)}))
        if ts >= job.end * 1000 - 1000 / 25:
            self._complete(job, "range complete")

    def on_close(self, device: Device, connection_id: int, reason: str) -> None:
        for job in list(self.jobs.values()):
            if job.conn_id == connection_id and not job.done:
                self._interrupted(job, f"media connection closed ({reason})")

    # -- progress -----------------------------------------------------------------------
    def _interrupted(self, job: Job, why: str) -> None:
        if job.last_ts is not None and job.last_ts >= job.end * 1000 - END_TOLERANCE_MS:
            self._complete(job, "device ended the stream")
            return
        if job.remote:  # the holder of the device asks it again (it sees the request free)
            job.done = True
            self.jobs.pop((job.device_id, job.channel), None)
            log.info("recording of command %s: %s; left to the device's gateway copy",
                     job.cmd.id, why)
            self._close_file(job)
            return
        if self.gw.clock.now() >= job.cmd.expires or job.retries >= MAX_RETRIES:
            self._fail(job, f"recording incomplete ({why}; got "
                       f"{(job.last_ts or job.start * 1000) / 1000 - job.start:.1f} s of "
                       f"{job.end - job.start:.0f} s)")
            return
        session = self.gw.sessions_by_device.get(job.device_id)
        if session is None:
            return  # the device is offline: tick() retries when it is back
        job.retries += 1
        resume = int((job.last_ts or job.start * 1000) / 1000)
        log.info("recording of command %s: %s; resuming from %d (retry %d)", job.cmd.id, why,
                 resume, job.retries)
        job.conn_id = None
        job.last_progress = self.gw.loop_time()
        p = job.cmd.properties
        session.send(m.PlaybackRequest(ip=self.gw.media_host, tcp_port=self.gw.media_port,
                                       udp_port=0, channel=job.channel,
                                       media_type=p.get("media_type", 0), stream_type=0,
                                       storage_type=0, mode=0, speed=0, start=resume,
                                       end=int(job.end)))

    async def watch_remote(self) -> None:
        """Jobs whose media did not come here: is another copy recording it (keep waiting),
        or did it finish (stop the device's playback, forget the job)?"""
        now = self.gw.clock.now()
        for job in list(self.jobs.values()):
            if job.done or job.remote or job.conn_id is not None:
                continue
            req = await self.gw.call(self.gw.c.media_requests.get, job.device_id, job.channel)
            if req is None or req.ref != job.ref:
                if self.jobs.get((job.device_id, job.channel)) is job:
                    job.done = True
                    self.jobs.pop((job.device_id, job.channel), None)
                    self._close_file(job)
                    session = self.gw.sessions_by_device.get(job.device_id)
                    if session is not None:
                        session.send(m.PlaybackControl(channel=job.channel, control=2,
                                                       speed=0, position=0))
                    log.info("recording of command %s finished on another copy", job.cmd.id)
            elif req.bound_gateway and req.bound_gateway != self.gw.gateway_id \
                    and req.bound_until > now:
                job.last_progress = self.gw.loop_time()  # recording on another copy

    def tick(self) -> None:
        """Called by the gateway's housekeeping: retry stalled jobs, fail expired ones."""
        now = self.gw.loop_time()
        for job in list(self.jobs.values()):
            if job.done:
                continue
            if self.gw.clock.now() >= job.cmd.expires:
                self._interrupted(job, "command ttl passed")
            elif job.conn_id is None and now - job.last_progress > NO_DATA_TIMEOUT:
                self._interrupted(job, "no media connection")
            elif now - job.last_progress > NO_DATA_TIMEOUT:
                self._interrupted(job, "no frames")

    @staticmethod
    def _progress(job: Job) -> dict[str, Any]:
        got = 0.0 if job.last_ts is None or job.first_ts is None else (
            (job.last_ts - job.first_ts) / 1000)
        return {"bytes": job.bytes, "frames": job.frames, "seconds": round(got, 2),
                "of": job.asked_to - job.start}

    def _forget(self, job: Job) -> None:
        job.done = True
        self.jobs.pop((job.device_id, job.channel), None)
        self.gw.spawn(self.gw.call(self.gw.media_admission.close, job.device_id, job.channel,
                                   job.ref))

    def _complete(self, job: Job, why: str) -> None:
        self._forget(job)
        session = self.gw.sessions_by_device.get(job.device_id)
        if session is not None:  # stop the device's playback of this channel
            session.send(m.PlaybackControl(channel=job.channel, control=2, speed=0, position=0))
        for s in list(self.gw.sessions_1078):
            if s.conn_id == job.conn_id:
                s.close("recording complete")
        report = clip_report(job)
        log.info("recording of command %s complete (%s): %d frames%s", job.cmd.id, why,
                 job.frames, f"; {report['short']}" if "short" in report else "")
        self.gw.spawn(self._upload(job, report))

    async def _upload(self, job: Job, report: dict[str, Any]) -> None:
        await self.gw.call(self.gw.commands.progress, job.cmd,
                           {"progress": {**self._progress(job), "stored": True},
                            "clip": report})
        if job.audio is not None and job.header:  # the packager converts G.711/AAC to AAC
            rawclip.rewrite_header(job.file, {**job.header, "audio": job.audio})
        job.file.flush()
        options = {"name": f"video-ch{job.channel}-{job.start}.mp4", "channel": job.channel,
                   "created": (job.first_ts or job.start * 1000) / 1000,
                   "protected": False, "attributes": {},
                   "command_id": job.cmd.id}
        key = keys.raw_key(job.device_id, job.uuid)

        def put() -> None:
            job.file.seek(0)
            self.gw.c.store.put(key, job.file, content_type="application/x-fleetcam-raw",
                                metadata={META_KEY: json.dumps(options, ensure_ascii=True)})

        try:
            await self.gw.call(put)
        except Exception as e:
            log.exception("upload of the recording of command %s failed", job.cmd.id)
            await self.gw.call(self.gw.commands.finish, job.cmd, False,
                               {"reason": f"storing the recording failed: {e}"})
        finally:
            self._close_file(job)

    def _fail(self, job: Job, reason: str) -> None:
        self._discard(job, reason)
        self.gw.spawn(self.gw.call(self.gw.commands.finish, job.cmd, False, {"reason": reason}))

    def _discard(self, job: Job, reason: str) -> None:
        self._forget(job)
        log.info("recording of command %s dropped: %s", job.cmd.id, reason)
        self._close_file(job)

    @staticmethod
    def _close_file(job: Job) -> None:
        try:
            job.file.close()
        finally:
            try:
                os.unlink(job.path)
            except FileNotFoundError:
                pass


def clip_report(job: Job) -> dict[str, Any]:
    """What a finished recording holds against what was asked: the range asked, the range
    stored, the gaps, and (when it is short) why, e.g. "range ends in the future; 13 s of
    20 s recorded"."""
    asked = job.asked_to - job.start
    first = (job.first_ts if job.first_ts is not None else job.start * 1000) / 1000
    last = (job.last_ts if job.last_ts is not None else job.start * 1000) / 1000
    # the last frame lasts one frame interval (the average one of this clip)
    step = (last - first) / (job.video_frames - 1) if job.video_frames > 1 else 0.0
    stored_to = last + step
    report: dict[str, Any] = {
        "asked": {"from": job.start, "to": job.asked_to, "duration": asked},
        "stored": {"from": round(first, 3), "to": round(stored_to, 3),
                   "duration": round(stored_to - first, 3)},
        "gaps": [{"from": round(a, 3), "to": round(b, 3)} for a, b in job.gaps],
    }
    missing = sum(b - a for a, b in job.gaps)
    recorded = stored_to - first - missing
    if recorded >= asked - SHORT_TOLERANCE:
        return report
    why = []
    if job.asked_to > job.asked_at:
        why.append("range ends in the future")
    elif job.end < job.asked_to:
        why.append(f"the device's recording ends {job.asked_to - job.end:.0f} s early")
    if first - job.start > SHORT_TOLERANCE:
        why.append(f"the device's recording starts {first - job.start:.0f} s late")
    if job.gaps:
        why.append(f"{len(job.gaps)} gap(s) without video ({missing:.0f} s)")
    if not why:
        why.append("the device ended the playback early")
    report["short"] = f"{'; '.join(why)}; {recorded:.0f} s of {asked} s recorded"
    return report
