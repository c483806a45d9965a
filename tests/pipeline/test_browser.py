"""A stock browser plays what fleetcam serves: Chromium (Playwright) with a request_video MP4
link in a <video> element, and a live HLS playlist through hls.js.

Needs Debian's chromium and the hls.js npm package (``make browser-deps`` installs both); if
they are missing the test fails, it does not skip."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
from playwright.async_api import Page, Route, async_playwright

from fleetcam.media.testpattern import read_burnt_time
from tests.e2e_local import run
from tests.pipeline import api_ok, http, pipeline_server, simulate, wait_results

CHROMIUM = Path("/usr/bin/chromium")
HLS_JS = Path(__file__).parents[2] / ".cache/npm/node_modules/hls.js/dist/hls.min.js"
PLAYER = Path(__file__).with_name("player.html")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=LocalNetworkAccessChecks"]


async def playing(page: Page, seconds: float, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the page's video has played ``seconds`` with a picture; its state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state: dict[str, Any] = await page.evaluate(
            "() => ({t: video.currentTime, w: video.videoWidth, h: video.videoHeight,"
            " paused: video.paused, errors: window.playerErrors})")
        assert not state["errors"], state
        if state["t"] >= seconds and state["w"] > 0:
            return state
        assert loop.time() < deadline, f"the video did not play: {state}"
        await asyncio.sleep(0.2)


async def serve_player(route: Route) -> None:
    """The test page and hls.js, served at fleetcam's own origin (``{base}/test-player/*``)."""
    name = route.request.url.rsplit("/", 1)[-1]
    if name == "hls.min.js":
        await route.fulfill(body=HLS_JS.read_bytes(), content_type="application/javascript")
    else:
        await route.fulfill(body=PLAYER.read_bytes(), content_type="text/html")


def test_chromium_plays_the_clip_link_and_the_live_playlist(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    assert HLS_JS.exists(), f"{HLS_JS} is missing: run `make browser-deps`"

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            base = server.settings.base_url
            t = int(time.time()) - 120
            r = await api.post("/gw/devices/1/commands-queue", json=[{
                "name": "request_video", "properties": {"channel": 1, "from": t,
                                                        "duration": 6}}])
            [cmd] = api_ok(r)
            clip = (await wait_results(api, 1, [cmd["id"]], 60))[cmd["id"]]["response"]
            api_ok(await api.put("/gw/devices/1/media", json={"uuid": clip["uuid"],
                                                              "shared": True}))
            [live] = api_ok(await api.post("/gw/devices/1/commands", json=[{
                "name": "start_videostream", "properties": {"channel": 2}, "timeout": 30}]))
            assert live["executed"] is True, live

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = await browser.new_page()
                    # the page is served at fleetcam's own origin (no cross-origin questions)
                    await page.route(f"{base}/test-player/*", serve_player)

                    await page.goto(f"{base}/test-player/index.html")
                    await page.evaluate("url => playMp4(url)", clip["url"])
                    state = await playing(page, 1.5)
                    assert (state["w"], state["h"]) == (640, 360)

                    await page.goto(f"{base}/test-player/index.html")
                    await page.evaluate("url => playHls(url)", live["response"]["hls"])
                    state = await playing(page, 2.0)
                    assert (state["w"], state["h"]) == (640, 360)
                    later = await playing(page, state["t"] + 1.0)  # it keeps going
                    assert later["t"] > state["t"] and not later["paused"]
                    shot = tmp_path / "live.png"
                    await page.locator("#v").screenshot(path=str(shot))
                    taken = time.time()
                finally:
                    await browser.close()
            # the screenshot shows the camera's picture, burnt-in time and all
            with av.open(str(shot)) as png:
                burnt = read_burnt_time(next(png.decode(video=0)))
            assert burnt is not None and taken - 10 < burnt <= taken, (burnt, taken)

    run(scenario(), 120)
