"""Event-triggered clips: /gw/video-rules, and a matching device message queueing request_video."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.services import rules as rules_service
from tests.e2e_local import run
from tests.pipeline import (Mqtt, api_ok, device_messages, http, location, log_entries,
                            media_files, pipeline_server, simulate, until, wait_results)

HITS = "fleetcam/log/gw/devices/+/video-rules/+/hit"
COLLISION = 1 << 29  # JT/T 808 table 24


def _error(r: Any) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    [err] = r.json()["errors"]
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(("body", "field"), [
    ({"condition": "alarm.collision"}, "name"),
    ({"name": "x"}, "condition"),
    ({"name": "x", "condition": "alarm.collision &&"}, None),
    ({"name": "x", "condition": "a", "channels": []}, "channels"),
    ({"name": "x", "condition": "a", "channels": [0]}, "channels"),
    ({"name": "x", "condition": "a", "channels": ["1"]}, "channels"),
    ({"name": "x", "condition": "a", "before": -1}, "before"),
    ({"name": "x", "condition": "a", "after": 601}, "after"),
    ({"name": "x", "condition": "a", "ttl": 5}, "ttl"),
    ({"name": "x", "condition": "a", "cooldown": True}, "cooldown"),
    ({"name": "x", "condition": "a", "devices": 5}, "devices"),
    ({"name": "x", "condition": "a", "enabled": "yes"}, "enabled"),
    ({"name": "x", "condition": "a", "colour": "red"}, "colour"),
    ("just a string", "body"),
])
def test_invalid_rules_are_refused_naming_the_field(client: TestClient, body: Any,
                                                    field: str | None) -> None:
    err = _error(client.post("/gw/video-rules", json=body))
    assert err["reason"]
    if field is not None:
        assert err["field"] == field, err
    assert api_ok(client.get("/gw/video-rules/all")) == []


def test_rules_are_created_read_changed_and_deleted(client: TestClient) -> None:
    r = client.post("/gw/video-rules", json=[
        {"name": "crash", "condition": "alarm.collision", "channels": [1, 2], "before": 5,
         "after": 5},
        {"name": "speeding", "condition": "position.speed>120", "devices": "1,2"}])
    crash, speeding = api_ok(r)
    assert crash == {"id": crash["id"], "name": "crash", "condition": "alarm.collision",
                     "devices": "all", "channels": [1, 2], "before": 5, "after": 5,
                     "ttl": 86400, "cooldown": 60, "enabled": True, "extra": {},
                     "clip": True, "episode": False}
    assert (speeding["devices"], speeding["channels"], speeding["before"]) == ("1,2", [1], 10)
    assert api_ok(client.get("/gw/video-rules/all")) == [crash, speeding]
    assert api_ok(client.get(f"/gw/video-rules/{speeding['id']}")) == [speeding]

    [changed] = api_ok(client.put(f"/gw/video-rules/{crash['id']}",
                                  json={"after": 20, "enabled": False}))
    assert changed == {**crash, "after": 20, "enabled": False}
    assert api_ok(client.get(f"/gw/video-rules/{crash['id']}")) == [changed]
    assert _error(client.put(f"/gw/video-rules/{crash['id']}", json={"before": "x"}))[
        "field"] == "before"
    assert api_ok(client.get(f"/gw/video-rules/{crash['id']}")) == [changed]
    assert _error(client.get("/gw/video-rules/abc"))["field"] == "selector"

    assert api_ok(client.delete(f"/gw/video-rules/{crash['id']}")) == [{"id": crash["id"]}]
    assert api_ok(client.get("/gw/video-rules/all")) == [speeding]
    assert api_ok(client.delete(f"/gw/video-rules/{crash['id']}")) == []


def test_a_collision_queues_clips_around_it_once_per_cooldown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_service, "DELIVERY_MARGIN", 1.0)

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data") as server, simulate(server) as sim, \
                http(server) as api, Mqtt(server.settings.mqtt_port, HITS) as bus:
            crash, foreign, on_media = api_ok(await api.post("/gw/video-rules", json=[
                {"name": "crash", "condition": "alarm.collision", "channels": [1, 2],
                 "before": 5, "after": 5, "ttl": 120, "cooldown": 60},
                {"name": "not this device", "condition": "alarm.collision", "devices": "999"},
                {"name": "media", "condition": "media=true", "channels": [1]}]))
            dev = sim.devices[0]
            ts = int(time.time())
            dev.send(location(ts, alarm=COLLISION))

            [(topic, hit)] = await bus.wait(HITS)
            assert topic == f"fleetcam/log/gw/devices/1/video-rules/{crash['id']}/hit"
            assert (hit["rule_id"], hit["timestamp"], hit["channels"]) == (crash["id"], ts,
                                                                          [1, 2])
            ids = hit["commands"]
            assert len(ids) == 2
            dev.send(location(ts + 1, alarm=COLLISION))  # within the cooldown: no new hit

            queued = api_ok(await api.get("/gw/devices/1/commands-queue"))
            assert [(q["id"], q["name"], q["properties"], q["status"]) for q in queued] == [
                (ids[0], "request_video", {"channel": 1, "from": ts - 5, "duration": 10},
                 "queued"),
                (ids[1], "request_video", {"channel": 2, "from": ts - 5, "duration": 10},
                 "queued")]
            store = server.container.commands.store
            for cmd_id in ids:
                assert store.get(cmd_id).not_before >= ts + 5  # type: ignore[union-attr]

            results = await wait_results(api, 1, ids, 40)
            assert all(r["executed"] for r in results.values()), results
            for cmd_id in ids:
                sent = store.get(cmd_id).sent  # type: ignore[union-attr]
                assert sent is not None and sent >= ts + 5  # not before the event's end
            files = await media_files(api, 1)
            assert sorted(f["channel_id"] for f in files) == [1, 2]
            assert {f["created"] for f in files} == {ts - 5}
            assert all(f["meta"]["duration"] == pytest.approx(10, abs=0.1) for f in files)
            media = await until(lambda: _media(api), 5, what="media messages")
            assert len(media) == 2  # ...which trigger no rule, "media=true" included

            await asyncio.sleep(1.0)  # a late, wrong hit would be published by now
            assert len(bus.matching(HITS)) == 1
            hits = [e for e in await log_entries(api, 1) if e["event_text"] == "rule_hit"]
            assert [h["rule_id"] for h in hits] == [crash["id"]]
            assert foreign["id"] not in {h["rule_id"] for h in hits}  # devices: 999 only
            assert on_media["id"] not in {h["rule_id"] for h in hits}
            assert len(api_ok(await api.get("/gw/devices/1/commands-result"))) == 2

    run(scenario(), 60)


async def _media(api: Any) -> list[dict[str, Any]]:
    return [m for m in await device_messages(api, 1) if m.get("media")]
