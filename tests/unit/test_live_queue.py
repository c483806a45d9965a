"""LiveManager.on_frame: a stalled segmenter cannot grow memory through audio either (at most
AUDIO_QUEUE_MAX audio frames wait; the rest are dropped, counted and logged once a minute),
and a full audio queue takes nothing from the video's."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from fleetcam.domain.models import Device
from fleetcam.gateway import live
from fleetcam.protocol.jt1078.packet import DataType, PayloadType
from fleetcam.protocol.jt1078.reassembly import MediaFrame


def test_audio_queue_is_capped_and_video_still_queues(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        gw = SimpleNamespace(loop_time=asyncio.get_running_loop().time)
        mgr = live.LiveManager.__new__(live.LiveManager)
        mgr.gw, mgr.streams = gw, {}
        s = live.LiveStream(uuid="ab" * 16, device_id=1, ident="1", channel=1,
                            stream_type="main", kind="live", started=0.0, media_conn=7)
        mgr.streams[(1, 1)] = s
        device = Device.__new__(Device)
        object.__setattr__(device, "id", 1)

        def frame(kind: DataType, pt: int, ts: int) -> MediaFrame:
            return MediaFrame(sim="1", channel=1, data_type=kind, payload_type=pt,
                              timestamp=ts, data=b"\x55" * 320)

        for k in range(live.AUDIO_QUEUE_MAX + 100):  # the segmenter never runs
            mgr.on_frame(device, 7, frame(DataType.AUDIO, PayloadType.G711A, k * 40))
        assert s.queued_audio == live.AUDIO_QUEUE_MAX and s.audio_dropped == 100
        mgr.on_frame(device, 7, frame(DataType.I_FRAME, PayloadType.H264, 0))
        assert s.queued_video == 1 and s.dropped == 0
        assert s.queue.qsize() == live.AUDIO_QUEUE_MAX + 1

    caplog.set_level(logging.WARNING, logger="fleetcam.gateway.live")
    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "audio dropped" in r.getMessage()]
    assert len(lines) == 1 and "segmenter is behind" in lines[0], lines
