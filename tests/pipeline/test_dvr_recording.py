"""Cloud DVR recording end to end: a simulated MDVR, the gateway, segments and their index."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import av
import pytest

from fleetcam.media import fmp4
from fleetcam.media.testpattern import read_burnt_time
from fleetcam.protocol.jt808 import messages as m
from fleetcam.runtime.dev import LocalServer
from tests.pipeline import http, pipeline_server, record_platform_messages, simulate, until

API = "/streamer/api/v3"


def stored(server: LocalServer, name: str) -> list[Any]:
    return server.container.dvr_index.segments(name)


def decode(server: LocalServer, seg: Any) -> list[av.VideoFrame]:
    st = server.container.dvr_storage
    init = b"".join(st.read(seg.root, seg.init_key))
    body = b"".join(st.read(seg.root, seg.key))
    with av.open(io.BytesIO(init + body), format="mp4") as c:
        return list(c.decode(video=0))


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_recorded_channel_streams_and_is_stored_in_indexed_segments(tmp_path: Path, codec):
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", dvr_object_seconds=2) as server, \
                simulate(server, codec=codec, width=320, height=240) as sim, \
                http(server) as api:
            seen = record_platform_messages(sim.devices[0])
            r = await api.put(f"{API}/streams/1-1", json={"dvr": {"root": "dvr"}})
            assert r.status_code == 200, r.text

            async def two_segments() -> list[Any]:
                segs = await asyncio.to_thread(stored, server, "1-1")
                return segs if len(segs) >= 2 else []

            segs = await until(two_segments, 60, 0.2, "two stored segments")
            assert [type(b) for b in seen].count(m.RealtimeRequest) == 1
            assert next(b for b in seen if isinstance(b, m.RealtimeRequest)).channel == 1
            a, b = segs[:2]
            assert b.start_ms == a.end_ms  # consecutive objects touch: one range
            assert 2000 <= a.duration_ms <= 4000 and a.codec.startswith("avc1.")
            assert (a.width, a.height) == (320, 240)
            assert sum(f.size for f in a.fragments) == a.size
            frames = await asyncio.to_thread(decode, server, a)
            assert len(frames) == sum(f.frames for f in a.fragments)
            burnt = read_burnt_time(frames[0])
            assert burnt is not None and abs(burnt * 1000 - a.start_ms) < 1000
            # the tail: the newest fragments, not stored yet, readable through the port
            tail = server.container.dvr_tail
            assert tail is not None

            async def has_tail() -> Any:
                return tail.open_segment("1-1")

            open_seg = await until(has_tail, 10, 0.05, "an open segment")
            assert open_seg.key == "" and open_seg.start_ms >= b.end_ms
            head = tail.read_open("1-1", open_seg.segment_id, 0, open_seg.fragments[0].size - 1)
            info = fmp4.parse_fragment(head[:open_seg.fragments[0].moof_size])
            assert info.base_ms == open_seg.start_ms

            # the media connection breaks: the gateway asks again, recording goes on
            for sess in list(server.gateway.sessions_1078):
                sess.close("test")
            await until(lambda: _count(seen, m.RealtimeRequest, 2), 30, 0.2, "asked again")
            before = len(await asyncio.to_thread(stored, server, "1-1"))

            async def more() -> bool:
                return len(await asyncio.to_thread(stored, server, "1-1")) >= before + 2

            await until(more, 30, 0.2, "segments after the reconnect")

            # DELETE stops recording and tells the device
            r = await api.delete(f"{API}/streams/1-1")
            assert r.status_code == 204
            await until(lambda: _count(seen, m.RealtimeControl, 1), 15, 0.1, "stream closed")
            assert not server.gateway.dvr.recordings

    asyncio.run(scenario())


async def _count(seen: list[Any], kind: type, n: int) -> bool:
    return [type(b) for b in seen].count(kind) >= n


def test_clips_and_the_archive(tmp_path: Path) -> None:
    """A recorded range is cut from the archive (the device is not asked); an older range is
    fetched from the device and its clip joins the archive as ``device`` segments."""
    import time

    from tests.pipeline import api_ok, media_files, wait_results

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", dvr_object_seconds=2) as server, \
                simulate(server, width=320, height=240) as sim, http(server) as api:
            seen = record_platform_messages(sim.devices[0])
            assert (await api.put(f"{API}/streams/1-1",
                                  json={"dvr": {"root": "dvr"}})).status_code == 200

            async def recorded_seconds() -> bool:
                spans = await asyncio.to_thread(server.container.dvr_index.spans, "1-1")
                return bool(spans) and spans[-1][1] - spans[0][0] >= 6000

            await until(recorded_seconds, 60, 0.2, "6 s recorded")
            spans = server.container.dvr_index.spans("1-1")
            start = spans[0][0] // 1000 + 2
            r = await api.post("/gw/devices/1/commands-queue", json=[{
                "name": "request_video", "ttl": 120,
                "properties": {"channel": 1, "from": start, "duration": 3}}])
            [cmd_id] = [c["id"] for c in api_ok(r)]
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            assert not any(isinstance(b, m.PlaybackRequest) for b in seen)  # not asked
            [f] = await media_files(api, 1)
            assert f["meta"]["codec"] == "h264" and 3 <= f["meta"]["duration"] <= 6
            assert f.get("source", f.get("attributes", {}).get("source")) == "cloud-dvr", f

            # an hour ago: only the device has it; its clip joins the archive
            old = int(time.time()) - 3600
            r = await api.post("/gw/devices/1/commands-queue", json=[{
                "name": "request_video", "ttl": 120,
                "properties": {"channel": 1, "from": old, "duration": 4}}])
            [cmd_id] = [c["id"] for c in api_ok(r)]
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            assert any(isinstance(b, m.PlaybackRequest) for b in seen)
            segs = server.container.dvr_index.segments("1-1", old * 1000, (old + 4) * 1000)
            assert segs and all(s.source == "device" for s in segs)
            assert segs[0].start_ms == old * 1000
            frames = await asyncio.to_thread(decode, server, segs[0])
            burnt = read_burnt_time(frames[0])
            assert burnt is not None and abs(burnt - old) < 0.05

    asyncio.run(scenario())


def test_a_live_viewer_shares_the_recorded_stream(tmp_path: Path) -> None:
    """start_videostream on a recorded channel does not ask the device again (one stream per
    channel): the viewer gets the recording's frames, and recording goes on after it."""
    import httpx

    from tests.pipeline import api_ok

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", dvr_object_seconds=2) as server, \
                simulate(server, width=320, height=240) as sim, http(server) as api:
            seen = record_platform_messages(sim.devices[0])
            await api.put(f"{API}/streams/1-1", json={"dvr": {"root": "dvr"}})

            async def flowing() -> bool:
                return server.gateway.dvr.streaming(1, 1)

            await until(flowing, 30, 0.1, "recording flows")
            r = await api.post("/gw/devices/1/commands", json=[{
                "name": "start_videostream", "properties": {"channel": 1}, "timeout": 30}])
            [result] = api_ok(r)
            assert result["executed"] is True, result
            playlist = await httpx.AsyncClient(timeout=10).get(result["response"]["hls"])
            assert playlist.status_code == 200 and ".ts" in playlist.text
            assert [type(b) for b in seen].count(m.RealtimeRequest) == 1  # only the DVR's
            before = len(stored(server, "1-1"))

            async def more() -> bool:
                return len(await asyncio.to_thread(stored, server, "1-1")) >= before + 2

            await until(more, 30, 0.2, "recording goes on beside the viewer")

    asyncio.run(scenario())
