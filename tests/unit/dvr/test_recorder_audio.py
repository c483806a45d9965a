"""The gateway's recording loop with audio: good audio recorded beside the video; malformed,
oversized or unsupported audio frames dropped and logged at most once a minute, the video
untouched."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.config import Settings
from fleetcam.domain.dvr import DvrConfig, DvrStream
from fleetcam.gateway.dvr import DvrRecorder, Recording
from fleetcam.media.testpattern import encode_pattern
from fleetcam.protocol.jt1078.packet import DataType, PayloadType
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.runtime.local import build_local
from fleetcam.simulator.streamer import alaw_tone

T0 = 1_778_300_000_000
SIM = "013912345678"


class _Gateway:
    """What the recording loop uses of the gateway; store calls inline."""

    def __init__(self, container: Any, settings: Settings) -> None:
        self.c, self.settings, self.clock = container, settings, container.clock

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def loop_time(self) -> float:
        return time.monotonic()


def _record(tmp: Path, audio: list[tuple[int, int, bytes]]) -> tuple[Recording, Any]:
    """Four seconds of video, with ``audio`` frames ``(ms, payload type, data)`` between."""
    settings = Settings(data_dir=tmp, admin_token="B" * 64, dvr_object_seconds=600)
    c = build_local(settings, clock=ManualClock(T0 / 1000))
    frames: list[MediaFrame] = []
    sound = sorted(audio)
    for f in encode_pattern("h264", 320, 240, 25, start_time=T0 / 1000, seconds=4):
        while sound and sound[0][0] <= f.pts_ms:
            ms, pt, data = sound.pop(0)
            frames.append(MediaFrame(SIM, 1, DataType.AUDIO, pt, T0 + ms, data))
        frames.append(MediaFrame(SIM, 1, DataType.I_FRAME if f.keyframe else DataType.P_FRAME,
                                 PayloadType.H264, T0 + f.pts_ms, f.data))
    rec_mgr = DvrRecorder(_Gateway(c, settings))  # type: ignore[arg-type]
    rec = Recording(stream=DvrStream("1-1", 1, 1, DvrConfig("dvr"), 0.0, 0.0), root="dvr",
                    object_ms=600_000)
    for fr in frames:
        rec.queue.put_nowait(fr)
    rec.queue.put_nowait(None)
    asyncio.run(rec_mgr._run(rec))
    rec_mgr.transcoder.shutdown(wait=True)
    return rec, c


def test_good_audio_is_recorded_and_bad_audio_only_dropped(tmp_path: Path, caplog) -> None:
    good = [(ms, PayloadType.G711A, alaw_tone(40, ms)) for ms in range(0, 4000, 40)]
    bad = [(1001, PayloadType.G711A, bytes(20_000)),           # oversized
           (1501, PayloadType.AAC, b"\xff\xf1garbage" * 9),     # does not decode
           (2001, PayloadType.AMR, b"\x3c" * 32),               # not recorded
           (2501, PayloadType.G711A, b"")]                      # empty
    with caplog.at_level(logging.WARNING, logger="fleetcam.gateway.dvr"):
        rec, c = _record(tmp_path, good + bad)
    assert rec.frames == 100 and rec.audio_dropped == 4
    assert rec.audio_frames == len(good)
    dropped = [r for r in caplog.records if "audio frame dropped" in r.getMessage()]
    assert len(dropped) == 1  # rate-limited: one warning a minute per stream
    [seg] = c.dvr_index.segments("1-1")
    assert seg.tracks == (1, 2)
    assert sum(f.frames for f in seg.fragments) == 100  # every video frame stored
    c.extras["db"].close()


def test_a_channel_that_sends_only_bad_audio_records_video_only(tmp_path: Path) -> None:
    rec, c = _record(tmp_path, [(ms, PayloadType.G711A, bytes(20_000))
                                for ms in range(0, 4000, 40)])
    [seg] = c.dvr_index.segments("1-1")
    assert seg.tracks == (1,) and sum(f.frames for f in seg.fragments) == 100
    assert rec.audio_dropped == 100
    c.extras["db"].close()
