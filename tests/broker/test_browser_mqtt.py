"""A page on another origin, in Chromium, subscribes over MQTT-over-WebSocket with mqtt.js
(npm), the way flespi's web clients do; a stranger's page is refused.

Needs Debian's chromium and mqtt.js (``make browser-deps`` installs both); if they are
missing the test fails, it does not skip."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from playwright.async_api import async_playwright

from tests.broker import READER, running_broker
from tests.e2e_local import free_port, run

CHROMIUM = Path("/usr/bin/chromium")
MQTT_JS = Path(__file__).parents[2] / ".cache/npm/node_modules/mqtt/dist/mqtt.min.js"
PAGE = Path(__file__).with_name("mqtt_page.html")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOG = "fleetcam/log/gw/devices"


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """The page and mqtt.js from another origin (localhost on its own port)."""
    app = FastAPI()
    app.get("/mqtt.min.js")(lambda: Response(MQTT_JS.read_bytes(),
                                             media_type="application/javascript"))
    app.get("/index.html")(lambda: Response(PAGE.read_bytes(), media_type="text/html"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.02)
    try:
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        await task


def test_page_on_another_origin_subscribes_with_mqtt_js() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-deps`"
    assert MQTT_JS.exists(), f"{MQTT_JS} is missing: run `make browser-deps`"

    async def scenario() -> None:
        async with running_broker() as r, page_server() as origin:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = await browser.new_page()
                    await page.goto(f"{origin}/index.html")
                    result: dict[str, Any] = await page.evaluate(
                        "([url, token, filters]) => connectFleetcam(url, token, filters)",
                        [r.ws_url, READER,
                         [[f"{LOG}/7/media_file_uploaded,media_file_updated", 5],
                          [f"{LOG}/9/media_file_uploaded", 6]]])
                    assert result["connected"], result
                    assert json.loads(result["token"]) == {"id": 2, "access": {"type": 2}}
                    by_id = {x["id"]: x for x in result["results"]}
                    assert by_id[5]["err"] is None and by_id[5]["granted"] == [1]
                    assert "Not authorized" in by_id[6]["err"]  # SUBACK reason 135

                    for topic in (f"{LOG}/7/media_file_updated", f"{LOG}/9/media_file_uploaded",
                                  f"{LOG}/7/media_file_uploaded"):
                        r.broker.publish(topic, json.dumps({"topic": topic}).encode(), qos=1)
                    for _ in range(100):
                        events = await page.evaluate("() => window.events")
                        if len(events) >= 2:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.3)
                    events = await page.evaluate("() => window.events")
                    assert [(e["topic"], e["ids"]) for e in events] == [
                        (f"{LOG}/7/media_file_updated", 5),  # mqtt.js: one id, unwrapped
                        (f"{LOG}/7/media_file_uploaded", 5)]
                    assert json.loads(events[0]["payload"]) == {
                        "topic": f"{LOG}/7/media_file_updated"}

                    stranger = await browser.new_page()
                    await stranger.goto(f"{origin}/index.html")
                    refused = await stranger.evaluate(
                        "([url, token, filters]) => connectFleetcam(url, token, filters)",
                        [r.ws_url, None, [[f"{LOG}/7/media_file_uploaded", 1]]])
                    assert refused["connected"] is False and refused["code"] == 135, refused
                finally:
                    await browser.close()

    run(scenario())
