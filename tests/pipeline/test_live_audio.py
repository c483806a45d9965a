"""Live HLS with the channel's audio: a simulated MDVR interleaving G.711 A-law with its H.264
(``fleetcam simulate --audio``), the gateway's segments in object storage as a player fetches
them, and bad audio frames that must not stop the video."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from fleetcam.simulator import streamer
from tests.e2e_local import run
from tests.mediagen import probe_streams
from tests.pipeline import api_ok, http, pipeline_server, simulate, until
from tests.pipeline.test_live import ended_playlist, segments, start




async def fetch_segments(url: str, n: int, tmp_path: Path) -> list[Path]:
    """The first ``n`` segments the playlist lists, as files."""
    async with httpx.AsyncClient(timeout=10) as plain:
        async def listed() -> list[str]:
            names = segments((await plain.get(url)).text)
            return names if len(names) >= n else []

        names = (await until(listed, 30, 0.2, f"{n} segments"))[:n]
        paths = []
        for name in names:
            r = await plain.get(url.replace("index.m3u8", name))
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp2t"
            paths.append(tmp_path / name)
            paths[-1].write_bytes(r.content)
        return paths


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_live_stream_carries_the_channels_audio_in_sync(tmp_path: Path, codec: str) -> None:
    """H.264 copied or H.265 converted to H.264: the AAC track is there either way."""
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, width=320, height=240, audio=True, codec=codec), \
                http(server) as api:
            result = await start(api, 1)
            assert result["executed"] is True, result
            url = result["response"]["hls"]
            for path in await fetch_segments(url, 3, tmp_path):
                streams = await asyncio.to_thread(probe_streams, path)
                assert set(streams) == {"video", "audio"}, (path.name, streams)
                v, a = streams["video"], streams["audio"]
                assert v["codec_name"] == "h264" and a["codec_name"] == "aac"
                assert (a["sample_rate"], a["channels"]) == ("8000", 1)
                assert int(a["nb_read_frames"]) >= 5  # about 8 AAC frames a 1 s segment
                assert abs(float(v["start_time"]) - float(a["start_time"])) < 0.1, (v, a)
            [s] = server.gateway.live.streams.values()
            assert s.audio_frames > 0 and s.audio_dropped == 0
            conns = api_ok(await api.get("/gw/devices/1/connections"))
            [hls_conn] = [c for c in conns if c["transport"] == "hls"]
            assert hls_conn["meta"]["mediastream"]["has_audio"] is True

    run(scenario(), 120)


def test_bad_audio_frames_are_dropped_and_the_video_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every third audio frame is 20 KB of garbage (over dvraudio's 16 KB limit): those are
    dropped and counted, with one warning line (a minute at most), and both tracks go on."""
    tone = streamer.alaw_tone
    calls = {"n": 0}

    def sometimes_garbage(ms: int, at_ms: int) -> bytes:
        calls["n"] += 1
        return b"\x55" * 20_000 if calls["n"] % 3 == 0 else tone(ms, at_ms)

    monkeypatch.setattr(streamer, "alaw_tone", sometimes_garbage)
    caplog.set_level(logging.WARNING, logger="fleetcam.gateway.live")

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, width=320, height=240, audio=True), http(server) as api:
            result = await start(api, 1)
            assert result["executed"] is True, result
            paths = await fetch_segments(result["response"]["hls"], 4, tmp_path)
            for path in paths:
                streams = await asyncio.to_thread(probe_streams, path)
                assert int(streams["video"]["nb_read_frames"]) >= 20
                assert set(streams) == {"video", "audio"}
            [s] = server.gateway.live.streams.values()
            assert not s.ended and s.error is None
            assert s.audio_dropped > 10 and s.audio_frames > 10
            warnings = [r for r in caplog.records if "audio dropped" in r.getMessage()]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "16384" in warnings[0].getMessage()

    run(scenario(), 120)


def test_hls_js_in_chromium_plays_the_live_stream_with_its_audio(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    from tests.pipeline.test_browser import ARGS, CHROMIUM, HLS_JS, playing, serve_player

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    assert HLS_JS.exists(), f"{HLS_JS} is missing: run `make browser-deps`"

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, width=320, height=240, audio=True), http(server) as api:
            base = server.settings.base_url
            result = await start(api, 1)
            assert result["executed"] is True, result

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = await browser.new_page()
                    await page.route(f"{base}/test-player/*", serve_player)
                    await page.goto(f"{base}/test-player/index.html")
                    await page.evaluate("url => playHls(url)", result["response"]["hls"])
                    state = await playing(page, 2.0)
                    assert (state["w"], state["h"]) == (320, 240)
                    later = await playing(page, state["t"] + 2.0)  # it keeps going
                    assert not later["paused"]
                    got = await page.evaluate(
                        "() => ({codecs: window.bufferCodecs,"
                        " audio: video.webkitAudioDecodedByteCount,"
                        " buffered: [...Array(video.buffered.length).keys()].map("
                        "   i => [video.buffered.start(i), video.buffered.end(i)])})")
                finally:
                    await browser.close()
            # hls.js found an AAC-LC track beside the H.264 one and Chromium decoded it
            assert set(got["codecs"]) == {"audio", "video"}, got
            assert got["codecs"]["audio"].startswith("mp4a.40"), got
            assert got["codecs"]["video"].startswith("avc1"), got
            assert got["audio"] > 0, got

    run(scenario(), 120)


def test_a_playback_stream_carries_the_recordings_audio(tmp_path: Path) -> None:
    """Playback (0x9201) shares the live code: its event playlist's 10 s carry 10 s of AAC."""
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, width=320, height=240, audio=True), http(server) as api:
            t = int(time.time()) - 300
            result = await start(api, 1, 1, "playback_video", **{"from": t, "to": t + 10})
            assert result["executed"] is True, result
            url = result["response"]["hls"]
            text = await ended_playlist(url, 30)
            async with httpx.AsyncClient(timeout=10) as plain:
                whole = tmp_path / "whole.ts"
                whole.write_bytes(b"".join([(await plain.get(url.replace("index.m3u8", n))
                                             ).content for n in segments(text)]))
            streams = await asyncio.to_thread(probe_streams, whole)
            assert int(streams["video"]["nb_read_frames"]) == 250
            audio_s = int(streams["audio"]["nb_read_frames"]) * 1024 / 8000
            assert 10 - 0.3 < audio_s < 10 + 0.3, audio_s
            assert abs(float(streams["video"]["start_time"])
                       - float(streams["audio"]["start_time"])) < 0.1

    run(scenario(), 90)
