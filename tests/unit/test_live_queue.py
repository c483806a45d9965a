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


def test_the_playlist_is_not_ended_while_queued_frames_still_become_segments() -> None:
    """stop() marks a stream ended at once, but the frames already queued still become
    segments after that: their playlist writes must not carry EXT-X-ENDLIST, or a player
    (and the CI test of a playback range) stops at the segments listed so far."""
    from fleetcam.domain import hls

    async def scenario() -> None:
        puts: dict[str, bytes] = {}
        seen: list[str] = []

        def put(key: str, data: bytes, content_type: str) -> None:
            puts[key] = data
            if key.endswith("index.m3u8"):
                seen.append(data.decode())

        async def call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            return fn(*args, **kwargs)

        loop = asyncio.get_running_loop()
        gw = SimpleNamespace(
            call=call, spawn=lambda coro: loop.create_task(coro), loop_time=loop.time,
            c=SimpleNamespace(store=SimpleNamespace(put=put)),
            media_admission=SimpleNamespace(close=lambda *a: None), sessions_by_device={},
            sessions_1078=set(), clock=SimpleNamespace(now=lambda: 0.0), gateway_id="g",
            settings=SimpleNamespace(base_url="http://fleetcam.test"),
            connections=SimpleNamespace(closed=lambda *a: None,
                                        journal=SimpleNamespace(record=lambda *a: None)))
        mgr = live.LiveManager.__new__(live.LiveManager)
        mgr.gw, mgr.streams, mgr.finished = gw, {}, []
        s = live.LiveStream(uuid="cd" * 16, device_id=1, ident="1", channel=1,
                            stream_type="main", kind="playback", started=0.0, media_conn=7)
        behind = asyncio.Event()

        async def runner() -> None:  # a segmenter still behind when stop() comes
            for n in range(10):
                if n == 8:
                    await behind.wait()
                await mgr._write(s, SimpleNamespace(sequence=n, duration=1.0, data=b"ts"))

        s.task = loop.create_task(runner())
        await asyncio.sleep(0)
        stopping = loop.create_task(mgr.stop(s, "device ended stream", tell_device=False))
        await asyncio.sleep(0.01)
        assert s.ended and not stopping.done()
        behind.set()  # the frames still queued become the ninth and tenth segments
        await stopping
        ended = [text for text in seen if "#EXT-X-ENDLIST" in text]
        assert ended and all(text.count(".ts") == 10 for text in ended), seen[-3:]
        final = puts[hls.stream_key(s.uuid, "index.m3u8")].decode()
        assert "#EXT-X-ENDLIST" in final and "9.ts" in final

    asyncio.run(scenario())
