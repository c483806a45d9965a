"""The commands queue and real-time commands, through the REST API, a simulated MDVR and MQTT."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.protocol.jt808 import messages as m
from fleetcam.simulator.recordings import recordings
from tests.e2e_local import http, mqtt_client, run
from tests.gateway import (api_ok, collect_any, data, device_of, gateway_server, matching, poll,
                           simulate)

RESULT_FIELDS = {"id", "name", "properties", "device_id", "timestamp", "executed", "response"}
LOGS = "fleetcam/log/gw/devices/+/commands-queue/+/+"
STATES = "fleetcam/state/gw/devices/+/commands-queue/+"


def test_queued_commands_are_delivered_when_the_device_connects(tmp_path: Path) -> None:
    clock = ManualClock(time.time())

    async def scenario() -> None:
        async with gateway_server(tmp_path / "data", clock=clock) as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            await sub.subscribe(LOGS, qos=1)
            await sub.subscribe(STATES, qos=1)
            sim = await simulate(server, 1, start=False)
            dev = device_of(server, sim.devices[0].cfg.phone)
            now = int(time.time())
            queued = api_ok(await api.post(f"/gw/devices/{dev.id}/commands-queue", json=[
                {"name": "take_photo", "properties": {"channel": 2}, "ttl": 60},
                {"name": "video_timeline", "properties": {"channel": 1, "from": now - 1200,
                                                          "to": now - 600}, "ttl": 60}]))
            assert [(q["name"], q["status"], q["ttl"], q["device_id"]) for q in queued] == [
                ("take_photo", "queued", 60, dev.id), ("video_timeline", "queued", 60, dev.id)]
            assert queued[0]["id"] < queued[1]["id"]
            assert api_ok(await api.get(f"/gw/devices/{dev.id}/commands-queue")) == queued
            assert api_ok(await api.get(f"/gw/devices/{dev.id}/commands-result")) == []

            await sim.start()
            try:
                done = await poll(lambda: len(server.container.commands.results((dev.id,))) == 2,
                                  10)
                assert done, "queued commands were not processed after the device connected"
            finally:
                await sim.stop_all()
            results = api_ok(await api.get(f"/gw/devices/{dev.id}/commands-result"))
            assert {r["id"] for r in results} == {q["id"] for q in queued}
            for r in results:
                assert set(r) == RESULT_FIELDS
                assert r["executed"] is True and r["device_id"] == dev.id
            photo = next(r for r in results if r["name"] == "take_photo")
            assert photo["properties"] == {"channel": 2, "resolution": 2}
            assert photo["response"]["result"] == 0 and photo["response"]["media_ids"]
            # the stored photo's uuid and link, not only the device's media ids
            [stored] = photo["response"]["files"]
            files = api_ok(await api.get(f"/gw/devices/{dev.id}/media"))
            assert [(f["uuid"], f["url"]) for f in files] == [(stored["uuid"], stored["url"])]
            timeline = next(r for r in results if r["name"] == "video_timeline")
            assert [(x["begin"], x["end"], x["channel"]) for x in timeline["response"]] == [
                (r.start, r.end, r.channel) for r in recordings(2, now - 1200, now - 600, now)
                if r.channel == 1]
            assert api_ok(await api.get(f"/gw/devices/{dev.id}/commands-queue")) == []

            steps = await _command_steps(api, dev.id)
            for q in queued:
                assert steps[q["id"]] == ["queued", "sent", "processed"]
            got = await collect_any(sub, (LOGS, STATES), 14)
            logs, states = matching(got, LOGS), matching(got, STATES)
            base = f"fleetcam/log/gw/devices/{dev.id}/commands-queue"
            progress = {"take_photo": ["progress"], "video_timeline": []}
            for q in queued:
                assert [t.rsplit("/", 1)[1] for t, p in logs if p["id"] == q["id"]] == [
                    "queued", "sent", *progress[q["name"]], "processed"]
                assert all(t.startswith(f"{base}/{q['name']}/") for t, p in logs
                           if p["id"] == q["id"])
            processed = [p for t, p in logs if t.endswith("/processed")]
            assert {p["id"]: p for p in processed} == {r["id"]: r for r in results}
            for q in queued:
                mine = [p for t, p in states
                        if t == f"fleetcam/state/gw/devices/{dev.id}/commands-queue/{q['id']}"]
                assert [p and p["status"] for p in mine] == [
                    "queued", "sent", *["sent"] * len(progress[q["name"]]), None]
            [waiting] = [p for t, p in logs if t.endswith("/take_photo/progress")]
            assert waiting["progress"] == {"photos": 0, "of": 1}

    run(scenario())


async def _command_steps(api: Any, device_id: int) -> dict[int, list[str]]:
    rows = api_ok(await api.get(f"/gw/devices/{device_id}/logs", params=data(count=1000)))
    out: dict[int, list[str]] = {}
    for r in rows:
        if r["event_text"].startswith("command_"):
            assert r["event_code"] == {"queued": 310, "sent": 311, "processed": 312,
                                       "canceled": 313, "expired": 314}[
                                           r["event_text"].removeprefix("command_")]
            out.setdefault(r["command_id"], []).append(r["event_text"].removeprefix("command_"))
    return out


def test_commands_expire_after_their_ttl(tmp_path: Path) -> None:
    clock = ManualClock(time.time())

    async def scenario() -> None:
        async with gateway_server(tmp_path / "data", clock=clock) as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            await sub.subscribe(LOGS, qos=1)
            await sub.subscribe(STATES, qos=1)
            sim = await simulate(server, 1, start=False)
            dev = device_of(server, sim.devices[0].cfg.phone)
            [cmd] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands-queue", json=[
                {"name": "take_photo", "properties": {"channel": 1}, "ttl": 10}]))
            commands = server.container.commands
            clock.advance(9)
            assert commands.expire() == 0
            assert [c["id"] for c in api_ok(await api.get(
                f"/gw/devices/{dev.id}/commands-queue"))] == [cmd["id"]]
            clock.advance(2)
            assert commands.expire() == 1
            assert commands.expire() == 0
            assert api_ok(await api.get(f"/gw/devices/{dev.id}/commands-queue")) == []
            [res] = api_ok(await api.get(f"/gw/devices/{dev.id}/commands-result"))
            assert (res["id"], res["executed"], res["timestamp"]) == (cmd["id"], False,
                                                                      clock.now())
            assert "expired" in str(res["response"])
            assert server.container.commands.store.get(cmd["id"]).status == "expired"
            steps = await _command_steps(api, dev.id)
            assert steps[cmd["id"]] == ["queued", "expired"]
            got = await collect_any(sub, (LOGS, STATES), 4)
            logs, states = matching(got, LOGS), matching(got, STATES)
            assert [t for t, _ in logs] == [
                f"fleetcam/log/gw/devices/{dev.id}/commands-queue/take_photo/queued",
                f"fleetcam/log/gw/devices/{dev.id}/commands-queue/take_photo/expired"]
            assert logs[1][1] == res
            assert [p and p["status"] for _, p in states] == ["queued", None]

            # the device connecting late does not get the expired command
            await sim.start()
            try:
                await sim.wait_authenticated(10)
                assert not await poll(lambda: sim.devices[0].cfg.stats["photos"], 1.0)
            finally:
                await sim.stop_all()

    run(scenario())


def test_list_and_cancel_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            await sub.subscribe(LOGS, qos=1)
            await sub.subscribe(STATES, qos=1)
            sim = await simulate(server, 2, start=False)
            a, b = (device_of(server, d.cfg.phone) for d in sim.devices)
            q = api_ok(await api.post(f"/gw/devices/{a.id},{b.id}/commands-queue", json=[
                {"name": "take_photo", "properties": {"channel": 1}},
                {"name": "custom", "properties": {"msg_id": 0x8300, "body": "0048"}}]))
            assert [(c["device_id"], c["name"]) for c in q] == [
                (a.id, "take_photo"), (a.id, "custom"), (b.id, "take_photo"), (b.id, "custom")]
            assert all(c["ttl"] == 86400 for c in q)
            qa = [c for c in q if c["device_id"] == a.id]
            assert api_ok(await api.get(f"/gw/devices/{a.id}/commands-queue")) == qa
            assert api_ok(await api.get(f"/gw/devices/{a.id}/commands-queue/{qa[1]['id']}")
                          ) == [qa[1]]
            bad = await api.get(f"/gw/devices/{a.id}/commands-queue/x")
            assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "selector"

            [gone] = api_ok(await api.delete(
                f"/gw/devices/{a.id}/commands-queue/{qa[0]['id']}"))
            assert set(gone) == RESULT_FIELDS
            assert (gone["id"], gone["executed"]) == (qa[0]["id"], False)
            assert api_ok(await api.get(f"/gw/devices/{a.id}/commands-queue")) == [qa[1]]
            # another device's command cannot be canceled through this device: 404 names it
            r = await api.delete(f"/gw/devices/{a.id}/commands-queue/{q[2]['id']}")
            assert r.status_code == 404 and r.json()["errors"][0]["ids"] == [q[2]["id"]]
            assert q[2] in api_ok(await api.get(f"/gw/devices/{b.id}/commands-queue"))
            rest = api_ok(await api.delete(f"/gw/devices/{a.id},{b.id}/commands-queue"))
            assert sorted(c["id"] for c in rest) == sorted(c["id"] for c in q[1:])
            assert api_ok(await api.get("/gw/devices/all/commands-queue")) == []
            results = api_ok(await api.get(f"/gw/devices/{a.id},{b.id}/commands-result"))
            assert sorted(r["id"] for r in results) == sorted(c["id"] for c in q)
            assert not any(r["executed"] for r in results)
            assert api_ok(await api.delete(f"/gw/devices/{a.id}/commands-queue")) == []

            steps = await _command_steps(api, a.id)
            assert [steps[c["id"]] for c in qa] == [["queued", "canceled"]] * 2
            got = await collect_any(sub, (LOGS, STATES), 16)
            logs, states = matching(got, LOGS), matching(got, STATES)
            canceled = [t for t, _ in logs if t.endswith("/canceled")]
            assert sorted(canceled) == sorted(
                f"fleetcam/log/gw/devices/{c['device_id']}/commands-queue/{c['name']}/canceled"
                for c in q)
            for c in q:
                topic = f"fleetcam/state/gw/devices/{c['device_id']}/commands-queue/{c['id']}"
                assert [p and p["status"] for t, p in states if t == topic] == ["queued", None]

    run(scenario())


def test_realtime_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, http(server.settings) as api:
            sim = await simulate(server, 2, mixed_editions=True, report_interval=5)
            offline = api_ok(await api.post("/gw/devices", json=[{"ident": "013700000001"}]))[0]
            try:
                await sim.wait_authenticated(10)
                a, b = (device_of(server, d.cfg.phone) for d in sim.devices)
                now = int(time.time())
                frm, to = now - 1800, now - 300
                url = f"/gw/devices/{a.id}/commands"

                # several commands in one call, answered in order
                res = api_ok(await api.post(url, json=[
                    {"name": "video_timeline", "properties": {"channel": 1, "from": frm,
                                                              "to": to}, "timeout": 10},
                    {"name": "custom", "properties": {"msg_id": 0x8FFF, "body": "01"}},
                    {"name": "take_photo", "properties": {"channel": 1, "resolution": 1}}],
                    timeout=30))
                assert [r["name"] for r in res] == ["video_timeline", "custom", "take_photo"]
                assert all(set(r) == RESULT_FIELDS and r["device_id"] == a.id for r in res)
                timeline, custom, photo = res
                expected = recordings(sim.devices[0].cfg.channels, frm, to, now,
                                      sim.devices[0].cfg.bitrate, 1)
                assert [{k: x[k] for k in ("begin", "end", "channel")}
                        for x in timeline["response"]] == [
                    {"begin": r.start, "end": r.end, "channel": r.channel} for r in expected]
                assert timeline["response"][0]["begin"] == frm
                assert timeline["response"][-1]["end"] == to
                assert timeline["executed"] is True
                assert (custom["executed"], custom["response"]) == (False, {"result": 3})
                assert photo["executed"] is True

                # several devices through the selector
                res = api_ok(await api.post(f"/gw/devices/{a.id},{b.id}/commands", json={
                    "name": "video_timeline", "properties": {"from": frm, "to": to},
                    "timeout": 10}, timeout=20))
                assert sorted(r["device_id"] for r in res) == sorted([a.id, b.id])
                for r in res:  # channel 0: every channel
                    assert {x["channel"] for x in r["response"]} == {1, 2}

                # refusals
                for body, field in (
                        ({"name": "take_photo", "properties": {"channel": 1}, "timeout": 4},
                         "timeout"),
                        ({"name": "take_photo", "properties": {"channel": 1}, "timeout": 61},
                         "timeout"),
                        ({"name": "self_destruct"}, "name"),
                        ({"name": "take_photo", "properties": {}}, "properties.channel")):
                    r = await api.post(url, json=[body])
                    assert r.status_code == 400, (body, r.text)
                    assert r.json()["errors"][0]["field"] == field
                    assert field in r.json()["errors"][0]["reason"]
                for sel in (str(offline["id"]), f"{a.id},{offline['id']}"):
                    r = await api.post(f"/gw/devices/{sel}/commands",
                                       json=[{"name": "take_photo", "properties": {"channel": 1}}])
                    assert r.status_code == 400 and r.json()["errors"][0]["code"] == 2, r.text
                assert api_ok(await api.get(f"/gw/devices/{offline['id']}/commands-result")
                              ) == []

                # no answer in time: 504, and the command is canceled
                device = sim.devices[0]
                original = device.handle

                async def deaf(msg: Any) -> None:
                    if not isinstance(msg.body, m.Snapshot):
                        await original(msg)

                monkeypatch.setattr(device, "handle", deaf)
                before = len(api_ok(await api.get(f"/gw/devices/{a.id}/commands-result")))
                t0 = time.monotonic()
                r = await api.post(url, json=[{"name": "take_photo", "timeout": 5,
                                               "properties": {"channel": 1}}], timeout=20)
                assert 5 <= time.monotonic() - t0 < 8
                assert r.status_code == 504 and r.json()["errors"][0]["code"] == 3, r.text
                results = api_ok(await api.get(f"/gw/devices/{a.id}/commands-result"))
                assert len(results) == before + 1
                assert (results[-1]["name"], results[-1]["executed"]) == ("take_photo", False)
                assert server.container.commands.store.get(results[-1]["id"]).status == \
                    "canceled"
                assert api_ok(await api.get(f"/gw/devices/{a.id}/commands-queue")) == []
                steps = await _command_steps(api, a.id)
                assert steps[results[-1]["id"]] == ["queued", "sent", "canceled"]
            finally:
                await sim.stop_all()

    run(scenario())


def test_a_fast_answer_is_not_undone_by_the_serial_bookkeeping(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device may answer before the gateway has stored the serial it sent the command with."""
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, http(server.settings) as api:
            store = server.container.commands.store
            update = store.update

            def late(cmd: Any, *, expect_status: str | None = None) -> bool:
                if cmd.status == "sent" and cmd.serial is not None:
                    time.sleep(0.3)  # in the store thread: the answer overtakes it
                return update(cmd, expect_status=expect_status)

            monkeypatch.setattr(store, "update", late)
            sim = await simulate(server, 1)
            try:
                await sim.wait_authenticated(10)
                dev = device_of(server, sim.devices[0].cfg.phone)
                [res] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands", json=[
                    {"name": "custom", "properties": {"msg_id": 0x8FFF}, "timeout": 5}],
                    timeout=10))
                assert res["response"] == {"result": 3}
                await asyncio.sleep(0.4)  # let the late bookkeeping land
                assert store.get(res["id"]).status == "processed"
            finally:
                await sim.stop_all()

    run(scenario())
