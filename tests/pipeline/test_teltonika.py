"""Teltonika trackers with a DualCam against a real server: positions, Codec 12 commands,
take_photo and request_video through the camera connection (one chunk corrupted and resumed),
a camera-initiated video, and strangers refused."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetcam.protocol.teltonika import camera as cam
from fleetcam.protocol.teltonika.codec import encode_imei
from fleetcam.runtime.dev import LocalServer
from fleetcam.simulator.teltonika import TeltonikaConfig, VirtualTeltonika
from tests.pipeline import api_ok, device_messages, http, media_files, pipeline_server, until

pytestmark = pytest.mark.timeout(180)
IMEI = "350612071913857"


@contextlib.asynccontextmanager
async def tracker(server: LocalServer, **cfg: Any) -> AsyncIterator[VirtualTeltonika]:
    gw = server.gateway
    assert gw is not None
    await asyncio.to_thread(server.container.devices.create,
                            [{"ident": IMEI, "name": "FMC with DualCam"}])
    dev = VirtualTeltonika(TeltonikaConfig(imei=IMEI, port=gw.port_teltonika,
                                           camera_port=gw.port_teltonika_camera,
                                           report_interval=3600, width=320, height=240, **cfg))
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(dev.run(stop))
    try:
        await asyncio.wait_for(dev.connected.wait(), 10)
        yield dev
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


def test_positions_commands_photo_video_and_event_footage(tmp_path: Path) -> None:
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, \
                tracker(server, corrupt_first_chunk=True) as dev:
            api = http(server)
            async with api:
                msgs = await until(lambda: device_messages(api, 1), 10, what="a position")
                assert msgs[0]["ident"] == IMEI
                assert msgs[0]["engine.ignition.status"] is True
                assert msgs[0]["io.66"] == 13800
                assert msgs[0]["external.powersource.voltage"] == pytest.approx(13.8)
                devs = api_ok(await api.get("/gw/devices/1"))
                assert devs[0]["connected"] is True
                # a Codec 12 command, real-time
                got = api_ok(await api.post("/gw/devices/1/commands", json=[
                    {"name": "custom", "properties": {"text": "getinfo"}}]))
                assert "INI:" + IMEI in got[0]["response"]["text"]
                # take_photo: camreq, then the camera connection delivers the JPEG
                got = api_ok(await api.post("/gw/devices/1/commands", json=[
                    {"name": "take_photo", "properties": {"channel": 2}, "timeout": 60}]))
                res = got[0]
                assert res["executed"] is True, res
                photo = res["response"]
                assert photo.get("uuid") or photo.get("files"), res
                # request_video from the front camera
                got = api_ok(await api.post("/gw/devices/1/commands", json=[
                    {"name": "request_video", "properties": {"channel": 1, "from": 1,
                                                             "duration": 3}, "timeout": 60}]))
                assert got[0]["executed"] is True, got
                assert dev.cfg.stats["resumes"] >= 1  # a corrupted chunk was asked again
                # the camera offers an event clip on its own
                dev.event_video(camera=2)

                async def three() -> list[dict[str, Any]] | None:
                    files = await media_files(api, 1)
                    return files if len(files) >= 3 else None
                files = await until(three, 60, every=0.3, what="three camera files")
                kinds = sorted((f["mime"], f["camera.trigger"]) for f in files)
                assert kinds == [("image/jpeg", "request"), ("video/mp4", "event"),
                                 ("video/mp4", "request")]
                assert all(f["meta"].get("codec", "h264") == "h264" for f in files
                           if f["mime"] == "video/mp4")
                # unsupported commands say so
                got = api_ok(await api.post("/gw/devices/1/commands", json=[
                    {"name": "start_videostream", "properties": {"channel": 1}}]))
                assert got[0]["executed"] is False
                assert "not supported" in str(got[0]["response"])

    asyncio.run(main())


def test_strangers_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server:
            gw = server.gateway
            assert gw is not None
            await asyncio.to_thread(server.container.devices.create,
                                    [{"ident": IMEI, "name": "offline tracker"}])
            # an unknown IMEI gets 00 and the connection closes
            r, w = await asyncio.open_connection("127.0.0.1", gw.port_teltonika)
            w.write(encode_imei("999999999999999"))
            assert await asyncio.wait_for(r.read(), 5) == b"\x00"
            w.close()
            # garbage instead of an IMEI
            r, w = await asyncio.open_connection("127.0.0.1", gw.port_teltonika)
            w.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
            # a camera of an unknown IMEI, and of a known one that is offline with nothing
            # requested: closed, nothing stored
            for imei in ("999999999999999", IMEI):
                r, w = await asyncio.open_connection("127.0.0.1", gw.port_teltonika_camera)
                w.write(cam.encode_init(imei, cam.FLAG_PHOTO_FRONT))
                assert await asyncio.wait_for(r.read(), 5) == b""
                w.close()
            api = http(server)
            async with api:
                assert await media_files(api, 1) == []
                assert await device_messages(api, 1) == []

    asyncio.run(main())


def test_make_run_simulation_includes_a_teltonika_tracker(tmp_path: Path) -> None:
    """``fleetcam serve --simulate N`` runs the MDVRs and one Teltonika tracker with a camera."""
    from fleetcam.runtime.dev import SIMULATED_TELTONIKA_IMEI, start_simulation

    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server:
            sim = await start_simulation(server, 1)
            try:
                await asyncio.wait_for(sim.teltonika.connected.wait(), 10)
                device = await asyncio.to_thread(server.container.device_repo.find_by_ident,
                                                 SIMULATED_TELTONIKA_IMEI)
                assert device is not None
                api = http(server)
                async with api:
                    msgs = await until(lambda: device_messages(api, device.id), 10,
                                       what="the tracker's first record")
                    assert msgs[0]["ident"] == SIMULATED_TELTONIKA_IMEI
            finally:
                await sim.stop_all()

    asyncio.run(main())
