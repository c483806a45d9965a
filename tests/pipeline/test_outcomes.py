"""Command results say what happened: short clips and why, refusals and why, progress while a
command runs, photos as stored files, and a real-time clip that outlasts the old 15 s wait."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from fleetcam.domain.gateway import CLIP_TIMEOUT_MAX, TIMEOUT_DEFAULT, validate_timeout
from fleetcam.errors import Invalid
from tests.e2e_local import run
from tests.pipeline import (Mqtt, api_ok, http, media_files, pipeline_server, simulate,
                            wait_results)
from tests.pipeline.test_request_video import request, rv

PROGRESS = "fleetcam/log/gw/devices/+/commands-queue/+/progress"


def test_a_clip_reaching_past_now_says_it_is_short_and_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api:
            assert sim.devices
            t = int(time.time()) - 13
            [cmd_id] = await request(api, 1, rv(1, t, 20))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True, result
            resp = result["response"]
            assert {"uuid", "url", "meta", "clip"} <= set(resp)
            clip = resp["clip"]
            assert clip["asked"] == {"from": t, "to": t + 20, "duration": 20}
            assert clip["stored"]["from"] == pytest.approx(t, abs=0.05)
            assert 12 <= clip["stored"]["duration"] <= 15
            assert clip["gaps"] == []
            short = re.fullmatch(r"range ends in the future; (\d+) s of 20 s recorded",
                                 clip["short"])
            assert short and 12 <= int(short.group(1)) <= 15, clip["short"]
            assert resp["meta"]["duration"] == pytest.approx(clip["stored"]["duration"],
                                                             abs=0.2)

    run(scenario(), timeout=90)


def test_a_complete_clip_reports_its_range_and_no_shortfall(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            t = int(time.time()) - 300
            [cmd_id] = await request(api, 1, rv(1, t, 6))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            clip = result["response"]["clip"]
            assert result["executed"] is True and "short" not in clip, clip
            assert clip["asked"] == {"from": t, "to": t + 6, "duration": 6}
            assert clip["stored"]["duration"] == pytest.approx(6, abs=0.1)

    run(scenario(), timeout=90)


def test_a_clip_the_device_storage_cannot_hold_fails_with_the_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            api_ok(await api.put("/gw/devices/1", json={"media_rotate": 1000}))
            t = int(time.time()) - 300
            [cmd_id] = await request(api, 1, rv(1, t, 3))
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is False
            reason = result["response"]["reason"]
            assert reason.startswith("device storage full: ") and "1000 bytes" in reason
            assert result["response"]["clip"]["asked"]["duration"] == 3
            assert await media_files(api, 1) == []

    run(scenario(), timeout=90)


def test_a_photo_the_device_storage_cannot_hold_fails_take_photo(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            api_ok(await api.put("/gw/devices/1", json={"media_rotate": 1000}))
            r = await api.post("/gw/devices/1/commands",
                               json=[{"name": "take_photo", "properties": {"channel": 1}}])
            [result] = api_ok(r)
            assert result["executed"] is False, result
            assert result["response"]["reason"].startswith("device storage full: file of ")
            assert await media_files(api, 1) == []
            logs = api_ok(await api.get("/gw/devices/1/logs"))
            assert [e["event_text"] for e in logs if e["event_text"] == "media_file_rejected"]

    run(scenario(), timeout=60)


def test_take_photo_answers_with_the_stored_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server), \
                http(server) as api:
            r = await api.post("/gw/devices/1/commands",
                               json=[{"name": "take_photo", "properties": {"channel": 2}}])
            [result] = api_ok(r)
            assert result["executed"] is True, result
            [photo] = result["response"]["files"]
            [f] = await media_files(api, 1)
            assert (photo["uuid"], photo["url"]) == (f["uuid"], f["url"])
            assert photo["meta"]["type"] == "image"
            assert (await api.get(photo["url"])).content[:2] == b"\xff\xd8"

    run(scenario(), timeout=60)


def test_a_long_clip_publishes_progress_and_shows_it_in_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, playback_speed=2.0) as sim, http(server) as api, \
                Mqtt(server.settings.mqtt_port, PROGRESS) as bus:
            assert sim.devices
            t = int(time.time()) - 300
            [cmd_id] = await request(api, 1, rv(1, t, 12))
            [(topic, first)] = await bus.wait(PROGRESS, lambda p: p["id"] == cmd_id,
                                              timeout=20)
            assert topic == "fleetcam/log/gw/devices/1/commands-queue/request_video/progress"
            assert first["status"] == "sent" and first["progress"]["bytes"] > 0
            assert first["progress"]["of"] == 12 and first["progress"]["seconds"] >= 0
            [queued] = api_ok(await api.get(f"/gw/devices/1/commands-queue/{cmd_id}"))
            assert queued["progress"]["bytes"] >= first["progress"]["bytes"]
            result = (await wait_results(api, 1, [cmd_id], 60))[cmd_id]
            assert result["executed"] is True and "progress" not in result["response"]
            seconds = [p["progress"]["seconds"] for _, p in bus.matching(PROGRESS)]
            assert seconds == sorted(seconds) and seconds[-1] >= 10

    run(scenario(), timeout=90)


def test_a_realtime_clip_longer_than_fifteen_seconds_answers_with_its_link(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, \
                simulate(server, playback_speed=1.0), http(server) as api:
            api.timeout = 90
            t = int(time.time()) - 300
            r = await api.post("/gw/devices/1/commands", json=[rv(1, t, 17)])
            [result] = api_ok(r)
            assert result["executed"] is True, result
            assert result["response"]["url"].endswith(result["response"]["uuid"])

    run(scenario(), timeout=120)


def test_the_default_realtime_timeout_follows_the_clip() -> None:
    assert validate_timeout({"name": "take_photo"}) == TIMEOUT_DEFAULT
    assert validate_timeout(rv(1, 0, 60)) == 135
    assert validate_timeout(rv(1, 0, 3600)) == CLIP_TIMEOUT_MAX
    assert validate_timeout(rv(1, 0, 1)) == TIMEOUT_DEFAULT + 2
    assert validate_timeout({**rv(1, 0, 60), "timeout": 200}) == 200
    with pytest.raises(Invalid):
        validate_timeout({"name": "take_photo", "timeout": 200})
    with pytest.raises(Invalid):
        validate_timeout({**rv(1, 0, 60), "timeout": CLIP_TIMEOUT_MAX + 1})
