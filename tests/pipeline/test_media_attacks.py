"""A stranger who knows a device's SIM gets nothing into its clips or live streams.

The attacker streams well-formed JT/T 1078 video naming the device's SIM and channel from
another address (127.0.0.2: Linux routes all of 127/8 to loopback); its pictures carry a burnt-in
time years away from the device's, so a clip or segment shows whose video it holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from fleetcam.media.testpattern import encode_pattern, read_burnt_time
from fleetcam.protocol.jt1078.nal import packetize
from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet
from fleetcam.simulator.device import VirtualMdvr
from tests.e2e_local import run
from tests.pipeline import api_ok, http, media_files, pipeline_server, simulate, wait_results

ATTACKER = "127.0.0.2"
FORGED_TIME = 946_684_800.0  # 2000-01-01: what the attacker's pictures show


def forged_video(seconds: float, ts0_ms: int, sim: str, channel: int = 1,
                 step_ms: int = 40) -> bytes:
    """JT/T 1078 packets of a valid H.264 clip whose pictures show FORGED_TIME; packet
    timestamps from ``ts0_ms`` on, ``step_ms`` apart."""
    out, seq = [], 0
    for n, f in enumerate(encode_pattern("h264", 176, 144, 25, start_time=FORGED_TIME,
                                         seconds=seconds, bitrate=100_000)):
        packets = packetize(f.data, sim=sim, channel=channel,
                            data_type=DataType.I_FRAME if f.keyframe else DataType.P_FRAME,
                            payload_type=PayloadType.H264, timestamp=ts0_ms + n * step_ms,
                            sequence_start=seq, last_frame_interval=40)
        seq = (seq + len(packets)) & 0xFFFF
        out.append(b"".join(encode_packet(p) for p in packets))
    return b"".join(out)


class Attacker:
    """Keeps connecting from ATTACKER to the media port and sending ``payload`` (as a blind
    attacker would), counting how often the gateway closed it."""

    def __init__(self, port: int, payload: bytes) -> None:
        self.port = port
        self.payload = payload
        self.connections = 0
        self.closed_by_gateway = 0
        self.task: asyncio.Task[None] | None = None

    async def _once(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       local_addr=(ATTACKER, 0))
        self.connections += 1
        try:
            for _ in range(50):  # keeps sending while the gateway lets it
                writer.write(self.payload)
                await writer.drain()
                with contextlib.suppress(asyncio.TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                        self.closed_by_gateway += 1
                        return
        except ConnectionError:
            self.closed_by_gateway += 1
        finally:
            writer.close()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                await self._once()
            await asyncio.sleep(0.05)

    def start(self) -> Attacker:
        self.task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@contextlib.asynccontextmanager
async def attacking(port: int, payload: bytes) -> AsyncIterator[Attacker]:
    a = Attacker(port, payload).start()
    try:
        yield a
    finally:
        await a.stop()


def slow_to_answer_media(device: VirtualMdvr, delay: float) -> None:
    """The device opens its media connection ``delay`` seconds after being asked (a real
    MDVR seeks its storage first): the window an attacker who knows when it starts aims at."""
    start_stream = device.start_stream

    def later(*args: Any, **kw: Any) -> None:
        asyncio.get_running_loop().call_later(delay, lambda: start_stream(*args, **kw))

    device.start_stream = later  # type: ignore[method-assign]


def clip_times(mp4: bytes) -> list[float | None]:
    import io

    with av.open(io.BytesIO(mp4)) as c:
        return [read_burnt_time(f) for f in c.decode(video=0)]


def refusals(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("refused") and all(w in r.getMessage() for w in words)]


def rv(start: int, duration: int) -> dict[str, Any]:
    return {"name": "request_video", "ttl": 120,
            "properties": {"channel": 1, "from": start, "duration": duration}}


async def _clip_under_attack(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                             blind: bool) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")
    async with pipeline_server(tmp_path / "data") as server, \
            simulate(server, width=176, height=144, bitrate=100_000) as sim, \
            http(server) as api:
        gw = server.gateway
        assert gw is not None
        dev = sim.devices[0]
        slow_to_answer_media(dev, 1.5)
        t = int(time.time()) - 600
        sim_id = dev.cfg.phone[-12:]
        if blind:  # far-future frames, sent all along: nobody knows when a clip is asked
            payload = forged_video(1.0, int(time.time() * 1000) + 10 * 365 * 86400_000, sim_id)
            attack = attacking(gw.port_1078, payload)
            a = await attack.__aenter__()
            await asyncio.sleep(0.3)
        r = await api.post("/gw/devices/1/commands-queue", json=[rv(t, 6)])
        [cmd_id] = [c["id"] for c in api_ok(r)]
        if not blind:  # the attacker sees the request go out and covers the whole range
            store = server.container.commands.store
            for _ in range(200):
                cmd = await asyncio.to_thread(store.get, cmd_id)
                if cmd is not None and cmd.status != "queued":
                    break
                await asyncio.sleep(0.02)
            attack = attacking(gw.port_1078, forged_video(6.0, t * 1000, sim_id))
            a = await attack.__aenter__()
        try:
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
        finally:
            await attack.__aexit__(None, None, None)
        assert result["executed"] is True, result
        [f] = await media_files(api, 1)
        assert f["meta"]["duration"] == pytest.approx(6, abs=0.1)
        clip = (await api.get(f["url"])).content
        times = await asyncio.to_thread(clip_times, clip)
        assert times and all(x is not None and t - 0.5 <= x <= t + 6.5 for x in times), (
            "the clip holds the attacker's video", times[:5])
        assert a.connections >= 1 and a.closed_by_gateway >= 1
        media = [c for c in server.container.connections.registry.list((1,))
                 if c.meta.get("protocol") == "jt1078" and c.source.startswith(ATTACKER)]
        assert media == []
        logged = refusals(caplog, ATTACKER, dev.cfg.phone)
        assert logged, "the refusal was not logged"
        assert len(logged) <= 2, f"refusals are not rate-limited: {len(logged)} lines"
        logs = api_ok(await api.get("/gw/devices/1/logs", params={"data": '{"count":10000}'}))
        assert ATTACKER not in json.dumps(logs)  # nothing published about the attacker


def test_media_injected_into_a_recording_when_it_starts_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(_clip_under_attack(tmp_path, caplog, blind=False))


def test_blind_far_future_frames_cannot_end_a_recording(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(_clip_under_attack(tmp_path, caplog, blind=True))


def test_a_live_stream_cannot_be_hijacked_by_streaming_first(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, width=176, height=144, bitrate=100_000) as sim, \
                http(server) as api:
            gw = server.gateway
            assert gw is not None
            dev = sim.devices[0]
            slow_to_answer_media(dev, 1.0)
            payload = forged_video(4.0, int(time.time() * 1000), dev.cfg.phone[-12:])
            async with attacking(gw.port_1078, payload) as a:
                await asyncio.sleep(0.3)  # already streaming when the operator asks
                r = await api.post("/gw/devices/1/commands", json=[{
                    "name": "start_videostream", "properties": {"channel": 1},
                    "timeout": 30}])
                [result] = api_ok(r)
                assert result["executed"] is True, result
                url = result["response"]["hls"]
                playlist = (await api.get(url)).text
                first = [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")][0]
                seg = (await api.get(url.replace("index.m3u8", first))).content
            times = await asyncio.to_thread(clip_times, seg)
            now = time.time()
            assert times and all(x is not None and abs(x - now) < 60 for x in times), (
                "the stream shows the attacker's video", times[:5])
            assert a.closed_by_gateway >= 1
            assert refusals(caplog, ATTACKER)

    run(scenario())


def test_media_for_a_sim_with_nothing_outstanding_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server) as sim, http(server) as api:
            gw = server.gateway
            assert gw is not None
            dev = sim.devices[0]
            # even from the device's own address: nothing was asked of it
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port_1078)
            writer.write(forged_video(1.0, int(time.time() * 1000), dev.cfg.phone[-12:]))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway
            writer.close()
            await asyncio.sleep(0.2)
            conns = api_ok(await api.get("/gw/devices/1/connections/all"))
            assert [c for c in conns if c["meta"].get("protocol") == "jt1078"] == []
            logs = api_ok(await api.get("/gw/devices/1/logs"))
            assert not [e for e in logs if "jt1078" in json.dumps(e)]
            assert refusals(caplog, dev.cfg.phone, "nothing outstanding")
            [signalling] = [c for c in conns if not c["secondary"]]  # untouched
            assert signalling["meta"]["protocol"] == "jt808"

    run(scenario())

