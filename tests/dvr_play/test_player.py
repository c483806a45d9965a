"""Flussonic's own web player (npm @flussonic/flussonic-dvr-player, unchanged) in headless
Chromium plays a fleetcam stream's archive: it reads the timeline (ranges.json), plays from a
chosen time through the fMP4 playlist, and exports (downloads) a piece as MP4.

The page comes from another origin than fleetcam (CORS preflights included). Needs Debian's
chromium and the player package (``make browser-deps``); missing, the test fails."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Response as PwResponse
from playwright.async_api import Route, async_playwright

from fleetcam.api.app import create_app
from fleetcam.config import Settings
from fleetcam.domain import dvr
from fleetcam.media import fmp4
from fleetcam.media.testpattern import read_burnt_time
from fleetcam.runtime.local import build_local
from tests import dvrgen
from tests.e2e_local import run
from tests.integration.httpserver import ServerThread

CHROMIUM = Path("/usr/bin/chromium")
DIST = Path(__file__).parents[2] / ".cache/npm/flussonic-dvr-player/dist"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=LocalNetworkAccessChecks"]
PAGE_ORIGIN = "http://player.example"
TOKEN = "P" * 64
PAGE = """<html><head><link rel="stylesheet" href="/dist/fonts/font.css">
<script src="/dist/FlussonicDvrPlayer.js"></script></head>
<body style="margin:0"><div id="dvr-player" style="width:960px;height:600px"></div><script>
window.events = [];
const options = {name: '%(name)s', streamer_http: '%(base)s', token: '%(token)s',
                 autoPlay: true, muted: true, from: %(start)d, locale: 'en',
                 onEvent: (name, data) => window.events.push((data && data.data && data.data.event) || String(name))};
window.onload = () => { window.P = FlussonicDvrPlayer.default.load(options,
                                    document.getElementById('dvr-player')); };
</script></body></html>"""


def _archive(tmp: Path, start: int, seconds: int, audio: bool = False) -> Any:
    settings = Settings(data_dir=tmp / "data", admin_token=TOKEN)
    c = build_local(settings)
    now = time.time()
    c.dvr_streams.put(dvr.DvrStream("7-1", 7, 1, dvr.DvrConfig("dvr", 86400), now, now))
    init, gops = dvrgen.encoded(gops=seconds, start_time=start)
    if audio:  # G.711 A-law as the gateway records it: AAC-LC, 8 kHz, beside the video
        init = dvrgen.with_audio(init, dvrgen.tone(start * 1000, 20)[0])
    ikey = dvr.init_key("7-1", fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    for part in range(0, seconds, 20):  # 20 s objects
        seg, data = dvrgen.segment("7-1", (start + part) * 1000, 20, gops=gops, init_key=ikey,
                                   first_gop=part, audio=audio)
        c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
        c.dvr_index.add(seg)
    return c


@pytest.mark.parametrize("audio", [False, True], ids=["video", "video+audio"])
def test_flussonic_player_plays_and_exports_the_archive(tmp_path: Path, audio: bool) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    assert (DIST / "FlussonicDvrPlayer.js").exists(), "run `make browser-deps`"
    start = int(time.time()) - 600
    container = _archive(tmp_path, start, 60, audio)
    chosen = start + 25
    seen: list[tuple[str, str, int]] = []
    exported = tmp_path / "export.mp4"

    async def scenario(base: str) -> None:
        async def serve_page(route: Route) -> None:
            path = route.request.url[len(PAGE_ORIGIN):].split("?")[0]
            if path != "/index.html":
                f = DIST / path.removeprefix("/dist/")
                if f.is_file():
                    await route.fulfill(body=f.read_bytes(), content_type=(
                        "application/javascript" if f.suffix == ".js" else
                        "text/css" if f.suffix == ".css" else "application/octet-stream"))
                    return
                await route.fulfill(status=404, body="")
                return
            await route.fulfill(body=PAGE % {"name": "7-1", "base": base, "token": TOKEN,
                                             "start": chosen}, content_type="text/html")

        def on_response(r: PwResponse) -> None:
            if r.url.startswith(base):
                seen.append((r.request.method, r.url[len(base):], r.status))

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1000, "height": 700})
                await page.route(f"{PAGE_ORIGIN}/**", serve_page)
                page.on("response", on_response)
                await page.goto(f"{PAGE_ORIGIN}/index.html")
                deadline = time.monotonic() + 30
                state: dict[str, Any] = {}
                while time.monotonic() < deadline:  # playback from the chosen time
                    state = await page.evaluate(
                        "() => { const v = document.querySelector('video');"
                        " return v ? {t: v.currentTime, w: v.videoWidth, d: v.duration,"
                        " a: v.webkitAudioDecodedByteCount} : {} }")
                    if state.get("t", 0) > 2 and state.get("w"):
                        break
                    await asyncio.sleep(0.3)
                assert state.get("w") == 320 and state["t"] > 2, state
                assert abs(state["d"] - (start + 60 - chosen)) < 1.5, state  # all of it
                assert (state["a"] > 0) == audio, state  # the AAC track plays (muted)
                shot = await page.evaluate(
                    "() => { const v = document.querySelector('video');"
                    " const c = document.createElement('canvas'); c.width = v.videoWidth;"
                    " c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);"
                    " return [v.currentTime, c.toDataURL('image/png')] }")
                with av.open(io.BytesIO(base64.b64decode(shot[1].split(",", 1)[1]))) as png:
                    burnt = read_burnt_time(next(png.decode(video=0)))
                assert burnt is not None and abs(burnt - (chosen + shot[0])) < 2.5, (burnt, shot)
                # the timeline: the recorded minute is drawn from ranges.json
                assert await page.locator('[data-cy="range-wrap"]').count() == 1
                # export: select, then download through the player's own menu
                await page.click('[aria-label="Select and export"]')
                await page.click('[data-cy="open-download-menu"]')
                await page.click('[data-cy="open-download"]')
                async with page.expect_download(timeout=30_000) as info:
                    await page.click('[data-cy="trigger-download-link"]')
                dl = await info.value
                assert dl.suggested_filename.startswith("7-1-")
                await dl.save_as(str(exported))
            finally:
                await browser.close()

    with ServerThread(create_app(container)) as base:
        run(scenario(base), 120)
    ranges = [u for m, u, st in seen if "/ranges.json" in u and "closed_at_gte" in u and st == 200]
    assert ranges, seen  # the player asked for the timeline in milliseconds, and got it
    assert any(".fmp4.m3u8" in u and f"index-{chosen}-" in u for _, u, _ in seen), seen
    assert any(u.endswith(".m4s") or ".m4s?" in u for _, u, st in seen if st == 206), seen
    with av.open(str(exported)) as c:
        assert len(c.streams.audio) == audio
        sound = [p for p in c.demux(audio=0) if p.size] if audio else []
    with av.open(str(exported)) as c:
        frames = list(c.decode(video=0))
        info = json.loads(c.metadata["comment"])
    if audio:  # the export carries the audio of the whole range
        assert abs(len(sound) * 0.128 - info["duration"]) < 0.5, (len(sound), info)
    assert len(frames) == round(info["duration"] * 25)
    assert read_burnt_time(frames[0]) == pytest.approx(info["from"], abs=0.05)
    assert start <= info["from"] and info["from"] + info["duration"] <= start + 60
