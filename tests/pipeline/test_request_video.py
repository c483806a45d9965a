"""request_video end to end: a simulated MDVR's recording becomes a playable MP4 media file."""
from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from pathlib import Path
from typing import Any

import av
import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.domain import keys, rawclip
from fleetcam.domain.gateway import Command
from fleetcam.domain.models import new_uuid
from fleetcam.media.testpattern import encode_pattern, read_burnt_time, snapshot_jpeg
from fleetcam.ports import MediaQuery, ObjectCreated
from fleetcam.protocol.jt808 import messages as m
from fleetcam.runtime.container import Container
from fleetcam.runtime.worker import drain
from fleetcam.services.media import META_KEY
from fleetcam.simulator import device as sim_device
from tests.e2e_local import run
from tests.pipeline import (Mqtt, api_ok, device_messages, http, location, log_entries,
                            media_files, pipeline_server, simulate, until, wait_results)

UPLOADED = "fleetcam/log/gw/devices/+/media_file_uploaded"
REJECTED = "fleetcam/log/gw/devices/+/media_file_rejected"
MESSAGES = "fleetcam/gw/devices/+/messages"


def boxes(mp4: bytes) -> list[str]:
    """The top-level box types of an MP4 file, in order."""
    out, pos = [], 0
    while pos + 8 <= len(mp4):
        size, kind = struct.unpack(">I4s", mp4[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", mp4[pos + 8:pos + 16])[0]
        out.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return out


def decoded_times(mp4: bytes, limit: int | None = None) -> tuple[str, list[float | None]]:
    """The video codec of an MP4 and the burnt-in time of its decoded frames."""
    with av.open(io.BytesIO(mp4)) as c:
        codec = c.streams.video[0].codec_context.name
        times = []
        for frame in c.decode(video=0):
            times.append(read_burnt_time(frame))
            if limit is not None and len(times) >= limit:
                break
    return codec, times


async def request(api: Any, device_id: int, *items: dict[str, Any]) -> list[int]:
    r = await api.post(f"/gw/devices/{device_id}/commands-queue", json=list(items))
    return [c["id"] for c in api_ok(r)]


def rv(channel: int, start: int, duration: int, ttl: int = 120) -> dict[str, Any]:
    return {"name": "request_video", "ttl": ttl,
            "properties": {"channel": channel, "from": start, "duration": duration}}


def test_request_video_makes_a_playable_clip_at_the_recording_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, UPLOADED, MESSAGES) as bus:
            dev = sim.devices[0]
            t = int(time.time()) - 300
            dev.send(location(t - 40, 52.1, 4.1))  # farther from the clip's start
            dev.send(location(t + 3, 52.2, 4.2))  # nearest: its telemetry goes on the message
            await until(lambda: device_messages(api, 1), 5, what="locations stored")
            [cmd_id] = await request(api, 1, rv(2, t, 20))

            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            resp = result["response"]
            assert {"uuid", "url", "meta"} <= set(resp)
            assert resp["url"] == f"{server.settings.base_url}/media/{resp['uuid']}"

            [f] = await media_files(api, 1)
            assert f["uuid"] == resp["uuid"] and f["url"] == resp["url"]
            assert f["created"] == t
            assert f["mime"] == "video/mp4" and f["channel_id"] == 2 and f["device_id"] == 1
            meta = f["meta"]
            assert (meta["type"], meta["width"], meta["height"], meta["codec"]) == (
                "video", 640, 360, "h264")
            assert meta["duration"] == pytest.approx(20, abs=0.1)
            assert meta["fps"] == pytest.approx(25, abs=0.5)
            assert resp["meta"] == meta
            thumb = await api.get(f["preview"]["url"])
            assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

            r = await api.get(resp["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
            top = boxes(r.content)
            assert "moov" in top and (top.index("moov") < top.index("mdat") or "moof" in top), top
            codec, times = await asyncio.to_thread(decoded_times, r.content, 1)
            assert codec == "h264" and times[0] == pytest.approx(t, abs=0.001)

            [(topic, up)] = await bus.wait(UPLOADED)
            assert topic == "fleetcam/log/gw/devices/1/media_file_uploaded"
            assert up["uuid"] == f["uuid"]

            media = [msg for msg in await device_messages(api, 1) if msg.get("media")]
            assert len(media) == 1
            msg = media[0]
            assert msg["timestamp"] == t and msg["media"] is True
            entry = msg["media.video.2"]
            assert entry["url"] == f["url"] and entry["uuid"] == f["uuid"]
            assert entry["duration"] == pytest.approx(20, abs=0.1) and entry["codec"] == "h264"
            assert (msg["position.latitude"], msg["position.longitude"]) == (52.2, 4.2)
            assert msg["position.speed"] == 33.0
            published = await bus.wait(MESSAGES, lambda p: bool(p and p.get("media")))
            assert published[0][1]["media.video.2"]["url"] == f["url"]
            assert published[0][1]["position.latitude"] == 52.2

    run(scenario(), 90)


def test_several_channels_in_one_call_make_one_command_and_clip_each(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api:
            t = int(time.time()) - 200
            ids = await request(api, 1, rv(1, t, 4), rv(2, t, 4))
            assert len(set(ids)) == 2
            results = await wait_results(api, 1, ids, 60)
            assert all(r["executed"] for r in results.values()), results
            assert [r["properties"]["channel"] for r in results.values()] == [1, 2]
            files = await media_files(api, 1)
            assert sorted(f["channel_id"] for f in files) == [1, 2]
            assert {f["uuid"] for f in files} == {r["response"]["uuid"]
                                                  for r in results.values()}
            media = [msg for msg in await device_messages(api, 1) if msg.get("media")]
            assert sorted(k for msg in media for k in msg if k.startswith("media.video.")) == [
                "media.video.1", "media.video.2"]
            assert sim.devices[0].cfg.stats["streams"] == 2

    run(scenario(), 90)


def test_h265_recording_becomes_an_h264_mp4(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, codec="hevc", width=320, height=240) as _sim, \
                http(server) as api:
            t = int(time.time()) - 120
            [cmd_id] = await request(api, 1, rv(1, t, 4))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            [f] = await media_files(api, 1)
            assert f["mime"] == "video/mp4" and f["meta"]["codec"] == "h264"
            assert (f["meta"]["width"], f["meta"]["height"]) == (320, 240)
            r = await api.get(f["url"])
            codec, times = await asyncio.to_thread(decoded_times, r.content)
            assert codec == "h264"
            assert len(times) == pytest.approx(100, abs=2)
            assert times[0] == pytest.approx(t, abs=0.001)

    run(scenario(), 90)


def test_audio_the_device_interleaves_is_kept_in_the_clip(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, audio=True, width=320, height=240) as _sim, \
                http(server) as api:
            t = int(time.time()) - 120
            [cmd_id] = await request(api, 1, rv(1, t, 4))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            [f] = await media_files(api, 1)
            assert f["meta"]["has_audio"] is True
            body = (await api.get(f["url"])).content
            with av.open(io.BytesIO(body)) as c:
                assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
                assert [s.codec_context.name for s in c.streams.video] == ["h264"]
                seconds = sum(float(p.duration * p.time_base)
                              for p in c.demux(audio=0) if p.duration)
            assert seconds == pytest.approx(4, abs=0.3)  # the G.711 tone, now AAC

    run(scenario(), 90)


def test_a_range_with_no_recording_fails_the_command(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            [cmd_id] = await request(api, 1, rv(1, int(time.time()) - 10 * 86400, 20))
            result = (await wait_results(api, 1, [cmd_id], 20))[cmd_id]
            assert result["executed"] is False
            assert "no recording" in result["response"]["reason"]
            assert await media_files(api, 1) == []

    run(scenario(), 60)


def test_a_broken_media_connection_is_resumed_without_gaps_or_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = sim_device.stream_video
    calls: list[dict[str, Any]] = []

    class BreakAfter(dict):  # type: ignore[type-arg]
        """The device's stats; the media connection breaks after ``limit`` frames."""

        def __init__(self, limit: int) -> None:
            super().__init__(frames=0)
            self.limit = limit

        def __setitem__(self, key: str, value: int) -> None:
            super().__setitem__(key, value)
            if key == "frames" and value >= self.limit:
                raise ConnectionResetError("simulated broken media connection")

    async def flaky(*args: Any, **kw: Any) -> None:
        calls.append(dict(kw))
        if len(calls) == 1:
            kw["stats"] = BreakAfter(213)  # mid-GOP: 8.52 s into the clip
        await real(*args, **kw)

    monkeypatch.setattr(sim_device, "stream_video", flaky)

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            t = int(time.time()) - 200
            [cmd_id] = await request(api, 1, rv(1, t, 20))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            assert len(calls) == 2, calls
            assert calls[1]["start"] > t and calls[1]["start"] <= t + 9  # from where it stopped
            [f] = await media_files(api, 1)
            assert f["meta"]["duration"] == pytest.approx(20, abs=0.1)
            r = await api.get(f["url"])
            _, times = await asyncio.to_thread(decoded_times, r.content)
            assert None not in times
            expected = [t + i / 25 for i in range(500)]
            assert times == pytest.approx(expected, abs=0.002)

    run(scenario(), 90)


def test_a_recording_that_never_completes_within_the_ttl_leaves_nothing(
        tmp_path: Path) -> None:
    clock = ManualClock(time.time())

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", clock=clock) as server, \
                simulate(server, playback_speed=0.2) as _sim, http(server) as api:
            gw = server.gateway
            assert gw is not None
            t = int(time.time()) - 200
            [cmd_id] = await request(api, 1, rv(1, t, 60, ttl=30))
            await until(lambda: asyncio.sleep(0, any(j.frames > 10 for j in
                                                     gw.recorder.jobs.values())),
                        20, what="recording under way")
            clock.advance(31)  # the command's ttl passes while the clip is still arriving
            result = (await wait_results(api, 1, [cmd_id], 15))[cmd_id]
            assert result["executed"] is False
            assert "ttl" in json.dumps(result["response"])
            await asyncio.sleep(1.5)  # give a wrongly stored partial clip the time to appear
            assert await media_files(api, 1) == []
            assert objects(server.settings.data_dir, "raw") == []
            assert objects(server.settings.data_dir, "media") == []
            assert gw.recorder.jobs == {}

    run(scenario(), 60)


def test_a_corrupt_raw_clip_is_rejected_and_fails_its_command(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api, Mqtt(server.settings.mqtt_port, REJECTED) as bus:
            c = server.container
            now = c.clock.now()
            bad = {
                "garbage": b"\x00\x01 this is not a clip" * 100,
                "no keyframe": rawclip.encode_header({"codec": "h264", "channel": 1})
                + b"".join(rawclip.encode_frame(1, 1000 + 40 * i, b"\x00\x00\x00\x01\x41junk")
                           for i in range(50)),
                "truncated": rawclip.encode_header({"codec": "h264", "channel": 1})
                + rawclip.encode_frame(0, 1000, b"\x00\x00\x00\x01\x65" + b"x" * 500)[:-100],
            }
            cases = {}
            for name, blob in bad.items():
                cmd = await asyncio.to_thread(c.commands.store.add, Command(
                    id=0, device_id=1, name="request_video",
                    properties={"channel": 1, "from": int(now) - 100, "duration": 10},
                    queued=now, expires=now + 600, status="sent"))
                uuid = new_uuid()
                key = keys.raw_key(1, uuid)
                await asyncio.to_thread(
                    c.store.put, key, io.BytesIO(blob), content_type="application/x-fleetcam-raw",
                    metadata={META_KEY: json.dumps({"channel": 1, "command_id": cmd.id})})
                cases[name] = (cmd.id, uuid, key)

            ids = [cmd_id for cmd_id, _, _ in cases.values()]
            results = await wait_results(api, 1, ids, 20)
            for name, (cmd_id, uuid, key) in cases.items():
                res = results[cmd_id]
                assert res["executed"] is False, name
                reason = res["response"]["reason"]
                assert reason.startswith("the clip could not be packaged: ") and len(reason) > 40
                assert (await asyncio.to_thread(c.store.head, key)).size == len(bad[name])
            rejected = await bus.wait(REJECTED, n=3)
            assert {p["uuid"] for _, p in rejected} == {u for _, u, _ in cases.values()}
            assert all(p["reason"] for _, p in rejected)
            logged = [e for e in await log_entries(api, 1)
                      if e["event_text"] == "media_file_rejected"]
            assert len(logged) == 3
            assert await media_files(api, 1) == []
            assert objects(server.settings.data_dir, "media") == []
            assert server.container.extras["queue"].pending() == 0  # not retried forever

    run(scenario(), 60)


def test_a_duplicate_raw_event_makes_one_file(container: Container, bus: Any) -> None:
    frames = encode_pattern("h264", 320, 240, 25, start_time=1_700_000_000.0, seconds=2)
    blob = rawclip.encode_header({"codec": "h264", "channel": 1}) + b"".join(
        rawclip.encode_frame(0 if f.keyframe else 1, round(f.time * 1000), f.data)
        for f in frames)
    dev = container.devices.create([{"ident": "013900000001", "name": "cam"}])[0]
    key = keys.raw_key(dev.id, new_uuid())
    container.store.put(key, io.BytesIO(blob), content_type="application/x-fleetcam-raw",
                        metadata={META_KEY: json.dumps({"channel": 1,
                                                        "created": 1_700_000_000.0})})
    queue = container.extras["queue"]
    event = ObjectCreated(container.store.bucket, key, len(blob))
    container.ingest.handle(event)  # the event delivered twice: once here, once by the queue
    drain(queue, container.ingest)
    container.ingest.handle(event)
    media_key = keys.media_key(dev.id, keys.parse_raw_key(key)[1], "mp4")  # type: ignore[index]
    container.ingest.handle(ObjectCreated(container.store.bucket, media_key, 0))
    drain(queue, container.ingest)

    files = container.media.search(MediaQuery(device_ids=(dev.id,)))
    assert len(files) == 1 and files[0].mime == "video/mp4"
    assert files[0].created == 1_700_000_000.0
    msgs = container.messages.store.query((dev.id,))
    assert len([x for x in msgs if x.get("media")]) == 1
    assert len([t for t in bus.topics() if t.endswith("/media_file_uploaded")]) == 1


def objects(data_dir: Path, prefix: str) -> list[Path]:
    """Objects the local store holds under ``prefix`` (files on disk)."""
    return sorted(p for p in (Path(data_dir) / "objects" / prefix).rglob("*") if p.is_file())


def test_enrichment_takes_the_nearest_telemetry_not_another_media_message(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api:
            dev = sim.devices[0]
            t = int(time.time()) - 300
            jpeg = await asyncio.to_thread(snapshot_jpeg, 320, 240, t)
            dev.send(m.MultimediaData(media_id=1, media_type=0, media_format=0, event=0,
                                      channel=1, location=location(t, 0.0, 0.0), data=jpeg))
            await until(lambda: media_files(api, 1), 10, what="photo")  # no telemetry near t
            dev.send(location(t + 20, 52.2, 4.2))  # arrives later (a blind-area upload)
            [cmd_id] = await request(api, 1, rv(1, t, 2))
            assert (await wait_results(api, 1, [cmd_id], 60))[cmd_id]["executed"] is True
            media = [x for x in await device_messages(api, 1) if "media.video.1" in x]
            assert len(media) == 1 and media[0]["timestamp"] == t
            assert (media[0]["position.latitude"], media[0]["position.longitude"]) == (52.2,
                                                                                      4.2)

    run(scenario(), 60)
