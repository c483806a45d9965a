"""Live and playback video over HLS: simulated MDVRs, real HTTP, PyAV/FFmpeg as the player."""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.gateway import live as live_module
from fleetcam.media.testpattern import read_burnt_time
from fleetcam.protocol.jt1078.nal import packetize
from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet
from fleetcam.protocol.jt808 import messages as m
from fleetcam.simulator import device as sim_device
from tests.e2e_local import run
from tests.pipeline import (Mqtt, api_ok, http, pipeline_server, record_platform_messages,
                            simulate, until)

STREAM_LOG = "fleetcam/log/gw/devices/+/mediastream/+"
CONN_STATE = "fleetcam/state/gw/devices/+/connections/+"


async def start(api: httpx.AsyncClient, device_id: int, channel: int = 1,
                name: str = "start_videostream", **props: Any) -> dict[str, Any]:
    r = await api.post(f"/gw/devices/{device_id}/commands", json=[{
        "name": name, "properties": {"channel": channel, **props}, "timeout": 30}])
    [result] = api_ok(r)
    return result  # type: ignore[no-any-return]


def segments(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def ended_playlist(url: str, limit: float) -> str:
    """The stream's playlist once it carries EXT-X-ENDLIST (polled up to ``limit`` s)."""
    async with httpx.AsyncClient(timeout=10) as plain:
        async def ended() -> str | None:
            text = (await plain.get(url)).text
            return text if "#EXT-X-ENDLIST" in text else None

        return await until(ended, limit, what="playback playlist ended")


def durations(playlist: str) -> list[float]:
    return [float(line[8:].rstrip(",")) for line in playlist.splitlines()
            if line.startswith("#EXTINF:")]


def play(url: str, frames: int) -> list[tuple[float | None, float]]:
    """Open the playlist with FFmpeg's HLS demuxer at the live edge and decode ``frames``:
    (burnt-in time, wall clock at decode) each."""
    out = []
    with av.open(url, options={"live_start_index": "-1"}, timeout=10) as c:
        for frame in c.decode(video=0):
            out.append((read_burnt_time(frame), time.time()))
            if len(out) >= frames:
                break
    return out


def decode_all(url: str) -> tuple[list[str], list[float | None]]:
    with av.open(url, timeout=10) as c:
        codecs = [s.codec_context.name for s in c.streams.video]
        return codecs, [read_burnt_time(f) for f in c.decode(video=0)]


def test_a_live_stream_plays_is_shared_listed_and_stopped_by_the_user(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, STREAM_LOG,
                                          CONN_STATE) as bus:
            seen = record_platform_messages(sim.devices[0])
            result = await start(api, 1)
            assert result["executed"] is True, result
            resp = result["response"]
            uuid = resp["uuid"]
            base = server.settings.base_url
            assert resp["hls"] == resp["url"] == f"{base}/media/live/{uuid}/index.m3u8"
            assert resp["mediastream"] == "hls"  # the format, as flespi's clients read it
            assert resp["stream_type"] == "main"
            # answered once a first segment exists: the playlist lists it, and it is there
            plain = httpx.AsyncClient(timeout=10)  # stream files need no token
            first = await plain.get(resp["hls"])
            assert first.status_code == 200
            assert first.headers["content-type"] == "application/vnd.apple.mpegurl"
            listed = segments(first.text)
            assert listed and (await plain.get(resp["hls"].replace("index.m3u8",
                                                                   listed[0]))).status_code == 200

            again = await start(api, 1)  # a second operator shares the device stream
            assert again["executed"] is True and again["response"]["uuid"] == uuid
            assert [type(b) for b in seen].count(m.RealtimeRequest) == 1
            assert sim.devices[0].cfg.stats["streams"] == 1

            # a player at the live edge, while a watcher checks every listed segment exists
            statuses: list[int] = []

            async def watch() -> None:
                while True:
                    text = (await plain.get(resp["hls"])).text
                    for name in segments(text):
                        seg = await plain.get(resp["hls"].replace("index.m3u8", name))
                        statuses.append(seg.status_code)
                    await asyncio.sleep(0.05)

            watcher = asyncio.get_running_loop().create_task(watch())
            try:
                frames = await asyncio.to_thread(play, resp["hls"], 50)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            lags = [wall - burnt for burnt, wall in frames if burnt is not None]
            assert len(lags) == 50
            assert all(-0.5 < lag < 8 for lag in lags), lags
            assert len(statuses) > 20 and set(statuses) == {200}

            conns = api_ok(await api.get("/gw/devices/1/connections"))
            [hls_conn] = [c for c in conns if c["transport"] == "hls"]
            meta = hls_conn["meta"]
            assert meta["hls"] == resp["hls"] and meta["channel"] == 1
            assert meta["mediastream"] == {"uuid": uuid, "channel": 1, "mediastream": "hls",
                                           "stream_type": "main", "has_audio": False}
            assert abs(meta["started"] - time.time()) < 30 and meta["bytes"] > 10_000
            assert meta["last_access"] >= meta["started"]

            # the stream's uuid is a media link too: its playlist, a recent still, a share link
            link = await plain.get(f"{base}/media/{uuid}")
            assert link.status_code == 307 and link.headers["location"].endswith(
                f"/media/live/{uuid}/index.m3u8")
            still = await plain.get(f"{base}/media/{uuid}", params={"preview": "jpeg"})
            assert still.status_code == 200 and still.content[:2] == b"\xff\xd8"
            described = (await plain.get(f"{base}/media/{uuid}", params={"preview": "json"}))
            assert described.json()["mediastream"]["uuid"] == uuid
            assert described.json()["meta"]["type"] == "mediastream"
            assert described.json()["mime"] == "application/x-mpegURL"
            [shared] = api_ok(await api.post("/gw/devices/1/media/share",
                                             json={"uuid": uuid, "expire": int(time.time()) + 60}))
            assert (await plain.get(shared["url"])).status_code == 307
            assert hls_conn["id"] == resp["connection_id"]
            await bus.wait(CONN_STATE, lambda p: bool(p) and p.get("transport") == "hls")

            r = await api.delete(f"/gw/devices/1/connections/{hls_conn['id']}")
            assert r.status_code == 200, r.text
            [(topic, stop)] = await bus.wait(STREAM_LOG, lambda p: p["event"] == "stop")
            assert topic == "fleetcam/log/gw/devices/1/mediastream/1"
            assert stop["reason"] == "user" and stop["uuid"] == uuid
            assert bus.matching(STREAM_LOG, lambda p: p["event"] == "start")
            await until(lambda: asyncio.sleep(0, any(
                isinstance(b, m.RealtimeControl) and b.channel == 1 and b.command == 0
                for b in seen)), 5, what="0x9102 close to the device")
            ended = (await plain.get(resp["hls"])).text
            assert ended.rstrip().endswith("#EXT-X-ENDLIST")
            state_topic = f"fleetcam/state/gw/devices/1/connections/{hls_conn['id']}"
            await bus.wait(state_topic, lambda p: p is None)
            assert [c for c in api_ok(await api.get("/gw/devices/1/connections"))
                    if c["transport"] == "hls"] == []
            await plain.aclose()

    run(scenario(), 90)


def test_an_idle_stream_stops_and_its_files_go_after_the_grace(tmp_path: Path) -> None:
    clock = ManualClock(time.time())

    async def scenario() -> None:
        # the clock jumps by more than a gateway lease (45 s): a lease that long keeps the
        # copy's own connections from looking expired before its next renewal tick
        async with pipeline_server(tmp_path / "data", clock=clock,
                                   gateway_lease=3600.0) as server, \
                simulate(server), http(server) as api, \
                Mqtt(server.settings.mqtt_port, STREAM_LOG) as bus:
            resp = (await start(api, 1))["response"]
            url = resp["hls"]
            plain = httpx.AsyncClient(timeout=10)
            assert (await plain.get(url)).status_code == 200  # an access: the idle time starts
            await asyncio.sleep(2)  # a few segments
            listed = segments((await plain.get(url)).text)
            clock.advance(live_module.IDLE_STOP - 5)  # still watched recently enough
            await asyncio.sleep(1.5)
            assert not bus.matching(STREAM_LOG, lambda p: p["event"] == "stop")
            clock.advance(10)  # nobody fetched the playlist for longer than IDLE_STOP
            [(_, stop)] = await bus.wait(STREAM_LOG, lambda p: p["event"] == "stop")
            assert stop["reason"] == "idle"
            text = (await plain.get(url)).text
            assert text.rstrip().endswith("#EXT-X-ENDLIST")  # kept during the grace
            names = segments(text)
            assert (await plain.get(url.replace("index.m3u8", names[-1]))).status_code == 200

            clock.advance(live_module.SEGMENT_GRACE + 1)

            async def gone() -> bool:
                return (await plain.get(url)).status_code == 404

            await until(gone, 5, what="playlist deleted")
            for name in {*listed, *names}:
                r = await plain.get(url.replace("index.m3u8", name))
                assert r.status_code == 404 and "errors" in r.json()
            await plain.aclose()

    run(scenario(), 60)


def test_stream_files_that_do_not_exist_are_404(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            result = await start(api, 1)
            assert result["executed"] is True, result["response"]
            url = result["response"]["hls"]
            async with httpx.AsyncClient(timeout=10) as plain:
                assert (await plain.get(url)).status_code == 200
                for name in ("999999.ts", "index.m3u9", "..%2Fx.ts", "0.mp4"):
                    r = await plain.get(url.replace("index.m3u8", name))
                    assert r.status_code == 404, name
                other = url.replace(url.split("/")[-2], "0" * 32)
                assert (await plain.get(other)).status_code == 404

    run(scenario(), 60)


def test_a_device_going_offline_ends_its_stream_cleanly(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, STREAM_LOG) as bus:
            url = (await start(api, 1))["response"]["hls"]
            await asyncio.sleep(1)
            await sim.stop_all()  # the MDVR loses power: both of its connections drop
            [(_, stop)] = await bus.wait(STREAM_LOG, lambda p: p["event"] == "stop")
            assert stop["reason"] == "device gone"
            async with httpx.AsyncClient(timeout=10) as plain:
                text = (await plain.get(url)).text
                assert text.rstrip().endswith("#EXT-X-ENDLIST")
                for name in segments(text):
                    r = await plain.get(url.replace("index.m3u8", name))
                    assert r.status_code == 200

            async def gone() -> bool:  # each connection's end is handled as it drops
                return api_ok(await api.get("/gw/devices/1/connections")) == []

            await until(gone, 10, what="the device's connections to be gone")

    run(scenario(), 60)


def test_h265_live_video_is_served_as_h264_segments(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, codec="hevc", width=320, height=240), http(server) as api:
            result = await start(api, 1)
            assert result["executed"] is True, result
            url = result["response"]["hls"]
            async with httpx.AsyncClient(timeout=10) as plain:
                name = segments((await plain.get(url)).text)[0]
                seg = (await plain.get(url.replace("index.m3u8", name))).content
            with av.open(io.BytesIO(seg), format="mpegts") as c:
                assert c.streams.video[0].codec_context.name == "h264"
                picture = next(c.decode(video=0))
            assert (picture.width, picture.height) == (320, 240)
            burnt = read_burnt_time(picture)
            assert burnt is not None and abs(time.time() - burnt) < 10

    run(scenario(), 60)


def test_playback_video_is_an_event_playlist_covering_the_range(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            t = int(time.time()) - 300
            result = await start(api, 1, 1, "playback_video", **{"from": t, "to": t + 10})
            assert result["executed"] is True, result
            url = result["response"]["hls"]
            text = await ended_playlist(url, 20)
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
            assert segments(text)[0] == "0.ts"
            assert sum(durations(text)) == pytest.approx(10, abs=0.1)
            codecs, times = await asyncio.to_thread(decode_all, url)
            assert codecs == ["h264"] and None not in times
            assert times == pytest.approx([t + i / 25 for i in range(250)], abs=0.002)

    run(scenario(), 60)


async def _bad_stream(host: str, port: int, *, sim: str, channel: int, kind: str,
                      **_: Any) -> None:
    """A media connection that sends garbage, or H.264 without a keyframe, until closed."""
    _, writer = await asyncio.open_connection(host, port)
    seq = 0
    try:
        for i in range(10_000):
            data = os.urandom(2000) if kind == "garbage" else (
                b"\x00\x00\x00\x01\x41" + os.urandom(800))  # non-IDR slices only
            packets = packetize(data, sim=sim, channel=channel, data_type=DataType.P_FRAME,
                                payload_type=PayloadType.H264,
                                timestamp=int(time.time() * 1000), sequence_start=seq)
            seq = (seq + len(packets)) & 0xFFFF
            writer.write(b"".join(encode_packet(p) for p in packets))
            await writer.drain()
            await asyncio.sleep(0.04)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("kind", ["garbage", "no keyframe"])
def test_a_bad_device_stream_reports_the_problem_and_spares_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    real = sim_device.stream_video
    monkeypatch.setattr(live_module, "NO_KEYFRAME", 2.0)

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server, 2) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, STREAM_LOG) as bus:
            bad_sim = sim.devices[0].cfg.phone[-12:]

            async def streamer(*args: Any, **kw: Any) -> None:
                if kw["sim"] == bad_sim:
                    await _bad_stream(*args, kind=kind, **kw)
                else:
                    await real(*args, **kw)

            monkeypatch.setattr(sim_device, "stream_video", streamer)
            good = (await start(api, 2))["response"]
            result = await start(api, 1)
            assert result["executed"] is False
            reason = result["response"]["reason"]
            assert ("keyframe" in reason) if kind == "no keyframe" else ("NAL" in reason or
                                                                         "Annex-B" in reason)
            [(topic, stop)] = await bus.wait(STREAM_LOG, lambda p: p["event"] == "stop")
            assert topic == "fleetcam/log/gw/devices/1/mediastream/1"
            assert stop["reason"].startswith("error: ")

            async with httpx.AsyncClient(timeout=10) as plain:
                def last(text: str) -> int:
                    return int(segments(text)[-1].split(".")[0])

                before = last((await plain.get(good["hls"])).text)

                async def advanced() -> bool:
                    text = (await plain.get(good["hls"])).text
                    return "#EXT-X-ENDLIST" not in text and last(text) >= before + 2

                await until(advanced, 10, what="the good stream going on")
            conns = api_ok(await api.get("/gw/devices/2/connections"))
            assert [c["meta"]["mediastream"]["uuid"] for c in conns
                    if c["transport"] == "hls"] == [good["uuid"]]
            assert not bus.matching("fleetcam/log/gw/devices/2/mediastream/+",
                                    lambda p: p["event"] == "stop")

    run(scenario(), 60)
