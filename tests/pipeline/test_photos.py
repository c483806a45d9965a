"""Photos end to end: take_photo answers and photos a device pushes become image media files."""
from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import av

from fleetcam.media.testpattern import read_burnt_time, snapshot_jpeg
from fleetcam.protocol.jt808 import messages as m
from tests.e2e_local import run
from tests.pipeline import (Mqtt, api_ok, device_messages, http, media_files, pipeline_server,
                            simulate, until)

FLAG = b"\x7e"
MESSAGES = "fleetcam/gw/devices/+/messages"


def photo(when: int, channel: int, media_id: int, jpeg: bytes) -> m.MultimediaData:
    loc = m.Location(alarm=0, status=0b11, latitude=52.5, longitude=4.5, altitude=3, speed=0.0,
                     direction=0, time=when, extras={})
    return m.MultimediaData(media_id=media_id, media_type=0, media_format=0, event=1,
                            channel=channel, location=loc, data=jpeg)


def test_take_photo_makes_an_image_file_and_a_media_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, MESSAGES) as bus:
            r = await api.post("/gw/devices/1/commands", json=[{
                "name": "take_photo", "properties": {"channel": 2, "resolution": 2},
                "timeout": 20}])
            [result] = api_ok(r)
            assert result["executed"] is True, result
            assert len(result["response"]["media_ids"]) == 1
            [f] = await until(lambda: media_files(api, 1), 10, what="photo file")
            assert f["mime"] == "image/jpeg" and f["channel_id"] == 2
            assert (f["meta"]["type"], f["meta"]["width"], f["meta"]["height"]) == (
                "image", 640, 480)
            assert abs(f["created"] - time.time()) < 30
            thumb = (await api.get(f["preview"]["url"])).content
            assert thumb[:2] == b"\xff\xd8"
            content = (await api.get(f["url"])).content
            with av.open(io.BytesIO(content)) as c:
                picture = next(c.decode(video=0))
            assert abs(read_burnt_time(picture) - f["created"]) < 2  # type: ignore[operator]
            assert sim.devices[0].cfg.stats["photos"] == 1

            msgs = await until(lambda: _media(api), 10, what="media message")
            [msg] = msgs
            assert msg["media.image.2"]["url"] == f["url"]
            assert msg["media.image.2"]["width"] == 640
            assert msg["timestamp"] == f["created"]
            await bus.wait(MESSAGES, lambda p: bool(p and "media.image.2" in p))

    run(scenario(), 60)


async def _media(api: object) -> list[dict[str, object]]:
    return [x for x in await device_messages(api, 1) if x.get("media")]  # type: ignore[arg-type]


def test_a_pushed_subpackaged_photo_becomes_a_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api:
            dev = sim.devices[0]
            when = int(time.time()) - 5
            jpeg = await asyncio.to_thread(snapshot_jpeg, 1280, 720, when)
            assert len(jpeg) > 20 * 1023  # split in 20+ sub-packages
            wire = dev.codec.send(photo(when, 1, 77, jpeg), phone=dev.cfg.phone,
                                  version2019=False)
            assert wire.count(FLAG) > 40  # 20+ frames
            assert dev.writer is not None
            dev.send(photo(when, 1, 0, b"").location)  # telemetry at the photo's time
            dev.writer.write(wire)
            [f] = await until(lambda: media_files(api, 1), 10, what="pushed photo file")
            assert f["mime"] == "image/jpeg" and f["channel_id"] == 1 and f["created"] == when
            assert (f["meta"]["width"], f["meta"]["height"]) == (1280, 720)
            assert f["size"] == len(jpeg)
            assert (await api.get(f["url"])).content == jpeg
            [msg] = await until(lambda: _media(api), 10, what="media message")
            assert msg["media.image.1"]["uuid"] == f["uuid"]
            assert msg["position.latitude"] == 52.5  # telemetry nearest the photo

    run(scenario(), 60)


def test_a_device_gone_mid_subpackaged_photo_makes_no_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api:
            gw = server.gateway
            assert gw is not None
            dev = sim.devices[0]
            when = int(time.time())
            jpeg = await asyncio.to_thread(snapshot_jpeg, 1280, 720, when)
            wire = dev.codec.send(photo(when, 1, 78, jpeg), phone=dev.cfg.phone,
                                  version2019=False)
            frames = [f for f in wire.split(FLAG) if f]
            half = FLAG + (FLAG + FLAG).join(frames[:len(frames) // 2]) + FLAG
            assert dev.writer is not None
            dev.writer.write(half)
            await dev.writer.drain()
            session = gw.sessions_by_device[1]
            await until(lambda: asyncio.sleep(0, session.codec._reassemblies), 5,
                        what="sub-packages received")
            await sim.stop_all()  # the device goes away mid-upload
            await until(lambda: asyncio.sleep(0, 1 not in gw.sessions_by_device), 5,
                        what="device gone")
            await asyncio.sleep(1.5)  # a wrongly assembled photo would show up by now
            assert await media_files(api, 1) == []
            assert not (server.settings.data_dir / "objects" / "media").exists() or not any(
                p.is_file() for p in (server.settings.data_dir / "objects" / "media").rglob("*"))

    run(scenario(), 60)
