"""The gateway end to end: simulated MDVRs of both editions, real HTTP and a real MQTT client."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.ids import MsgId
from tests.e2e_local import collect, http, mqtt_client, run
from tests.gateway import (RawDevice, RecordingSink, api_ok, data, device_of, gateway_server,
                           poll, simulate, wait_for)

CONN_FIELDS = {"id", "device_id", "established", "ident", "source", "transport", "secondary",
               "meta"}
STATE = "fleetcam/state/gw/devices/+/connections/+"
MESSAGES = "fleetcam/gw/devices/+/messages"


def test_both_editions_register_report_and_are_published(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            await sub.subscribe(STATE, qos=1)
            await sub.subscribe(MESSAGES, qos=1)
            sim = await simulate(server, 2, mixed_editions=True)
            try:
                await sim.wait_authenticated(10)
                d2013, d2019 = (device_of(server, d.cfg.phone) for d in sim.devices)
                assert (len(d2013.ident), len(d2019.ident)) == (12, 20)
                assert [d.cfg.version2019 for d in sim.devices] == [False, True]

                # connections: flespi's fields, the edition in meta, retained state on MQTT
                conns = api_ok(await api.get("/gw/devices/all/connections/all"))
                assert len(conns) == 2
                by_dev = {c["device_id"]: c for c in conns}
                for dev, edition in ((d2013, 2013), (d2019, 2019)):
                    c = by_dev[dev.id]
                    assert set(c) == CONN_FIELDS
                    assert (c["ident"], c["transport"], c["secondary"]) == (dev.ident, "tcp",
                                                                            False)
                    assert c["meta"] == {"protocol": "jt808", "version": edition}
                    assert c["source"].startswith("127.0.0.1:")
                    assert abs(c["established"] - time.time()) < 30
                assert api_ok(await api.get(f"/gw/devices/{d2013.id}/connections")) == [
                    by_dev[d2013.id]]
                states = await collect(sub, STATE, 2)
                assert {t: p for t, p in states} == {
                    f"fleetcam/state/gw/devices/{c['device_id']}/connections/{c['id']}": c
                    for c in conns}
                async with mqtt_client(server.settings.mqtt_port) as late:
                    await late.subscribe(STATE, qos=1)  # retained: a late subscriber sees them
                    assert {t for t, _ in await collect(late, STATE, 2)} == {t for t, _ in states}

                # device messages, stored and published
                for dev in (d2013, d2019):
                    async def enough(dev_id: int = dev.id) -> Any:
                        r = await api.get(f"/gw/devices/{dev_id}/messages")
                        rows = api_ok(r)
                        return rows if len(rows) >= 4 else None
                    rows = await _apoll(enough)
                    assert rows, f"no messages for device {dev.id}"
                    for row in rows:
                        assert row["ident"] == dev.ident
                        assert row["device.id"] == dev.id
                        assert abs(row["timestamp"] - time.time()) < 30
                        assert abs(row["position.latitude"] - 52.37) < 0.1
                        assert abs(row["position.longitude"] - 4.90) < 0.1
                        assert row["position.speed"] == 40.0
                    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
                published = await collect(sub, MESSAGES, 6)
                assert len(published) == 6
                stored = {dev.id: api_ok(await api.get(f"/gw/devices/{dev.id}/messages"))
                          for dev in (d2013, d2019)}
                for topic, payload in published:
                    dev_id = int(topic.split("/")[3])
                    assert topic == f"fleetcam/gw/devices/{dev_id}/messages"
                    assert payload in stored[dev_id]
                assert {int(t.split("/")[3]) for t, _ in published} == {d2013.id, d2019.id}
            finally:
                await sim.stop_all()

            # disconnect: every connection's retained state is emptied
            gone = await collect(sub, STATE, 2)
            assert sorted(gone) == sorted((t, None) for t, _ in states)
            assert await poll(lambda: not server.container.connections.registry.list(), 3)
            assert api_ok(await api.get("/gw/devices/all/connections/all")) == []

    run(scenario())


async def _apoll(probe: Any, timeout: float = 5.0) -> Any:
    """Await ``probe()`` until it returns something other than None, or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await probe()) is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return value


def test_messages_query_options(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, http(server.settings) as api:
            sim = await simulate(server, 2, report_interval=0.05)
            try:
                await sim.wait_authenticated(10)
                a, b = (device_of(server, d.cfg.phone) for d in sim.devices)
                store = server.container.messages.store
                assert await poll(lambda: len(store.query((a.id,))) >= 20
                                  and len(store.query((b.id,))) >= 20, 10)
            finally:
                await sim.stop_all()
            rows = api_ok(await api.get(f"/gw/devices/{a.id}/messages"))
            both = api_ok(await api.get(f"/gw/devices/{a.id},{b.id}/messages"))
            assert len(both) == len(rows) + len(api_ok(await api.get(
                f"/gw/devices/{b.id}/messages")))
            assert [r["timestamp"] for r in both] == sorted(r["timestamp"] for r in both)

            first, last = rows[0]["timestamp"], rows[-1]["timestamp"]
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(count=3))) == rows[:3]
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(reverse=True, count=3))) == rows[::-1][:3]
            window = api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                          params=data(**{"from": first, "to": first})))
            assert window == [r for r in rows if r["timestamp"] == first]
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(**{"from": last + 1}))) == []
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(to=first - 1))) == []
            slim = api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(fields="timestamp,position.speed,ident",
                                                    count=2)))
            assert slim == [{"timestamp": r["timestamp"], "position.speed": 40.0,
                             "ident": a.ident} for r in rows[:2]]
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(filter="position.speed>100"))) == []
            assert api_ok(await api.get(f"/gw/devices/{a.id}/messages",
                                        params=data(filter="position.speed==40"))) == rows
            # the filter picks the messages, then count limits them (as flespi does)
            only_b = api_ok(await api.get(f"/gw/devices/{a.id},{b.id}/messages",
                                          params=data(filter=f'ident=="{b.ident}"', count=5)))
            assert [r["ident"] for r in only_b] == [b.ident] * 5
            bad = await api.get(f"/gw/devices/{a.id}/messages", params=data(count=0))
            assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "count"

    run(scenario())


def test_drop_connection_closes_it_and_empties_its_state(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            await sub.subscribe(STATE, qos=1)
            sim = await simulate(server, 1)
            try:
                await sim.wait_authenticated(10)
                dev = device_of(server, sim.devices[0].cfg.phone)
                [conn] = api_ok(await api.get(f"/gw/devices/{dev.id}/connections/all"))
                [(topic, state)] = await collect(sub, STATE, 1)
                assert (topic, state) == (
                    f"fleetcam/state/gw/devices/{dev.id}/connections/{conn['id']}", conn)
                sim.devices[0].authenticated.clear()

                assert api_ok(await api.delete(
                    f"/gw/devices/{dev.id}/connections/{conn['id']}")) == [conn]
                assert await collect(sub, STATE, 1) == [(topic, None)]
                assert await wait_for(lambda: all(s.conn_id != conn["id"]
                                                  for s in gw.sessions_808), 3)
                listed = api_ok(await api.get(f"/gw/devices/{dev.id}/connections/all"))
                assert conn["id"] not in [c["id"] for c in listed]
                missing = await api.delete(f"/gw/devices/{dev.id}/connections/{conn['id']}")
                assert missing.status_code == 404
                # the simulator reconnects, as a real device would, with a new connection
                await sim.wait_authenticated(10)
                [again] = api_ok(await api.get(f"/gw/devices/{dev.id}/connections/all"))
                assert again["id"] != conn["id"]
            finally:
                await sim.stop_all()

    run(scenario())


def test_registration_and_authentication_rules(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "off") as server, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            # unknown terminal, auto_register off: refused with 0x8100 result 4
            raw = await RawDevice(gw.port_808, "013811112222").connect()
            serial = await raw.send(m.Register(province=1, city=1, manufacturer="X", model="Y",
                                               terminal_id="Z", plate_color=1, plate="P"))
            reg = await raw.expect(m.RegisterResponse)
            assert reg.header.msg_id == MsgId.REGISTER_RESPONSE
            assert (reg.body.reply_serial, reg.body.result, reg.body.auth_code) == (serial, 4,
                                                                                    "")
            assert server.container.device_repo.find_by_ident("013811112222") is None
            await raw.close()

            # a known device with a wrong auth code: 0x8001 failure, no connection
            api_ok(await api.post("/gw/devices", json=[{"ident": "013833334444"}]))
            raw = await RawDevice(gw.port_808, "013833334444").connect()
            await raw.send(m.Register(province=1, city=1, manufacturer="X", model="Y",
                                      terminal_id="Z", plate_color=1, plate="P"))
            assert (await raw.expect(m.RegisterResponse)).body.result == 0
            serial = await raw.send(m.Authenticate(auth_code="not-the-code"))
            ack = await raw.expect(m.GeneralResponse)
            assert ack.header.msg_id == MsgId.PLATFORM_RESPONSE
            assert (ack.body.reply_serial, ack.body.reply_id, ack.body.result) == (
                serial, MsgId.AUTHENTICATE, 1)
            await raw.send(m.Heartbeat())  # still unauthenticated: nothing is registered
            await raw.recv(0.3)
            assert api_ok(await api.get("/gw/devices/all/connections/all")) == []
            await raw.close()

        async with gateway_server(tmp_path / "on", auto_register=True) as server, \
                http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, "00000000013855556666", version2019=True
                                  ).connect()
            await raw.login()
            [dev] = api_ok(await api.get("/gw/devices/all"))
            assert dev["ident"] == "00000000013855556666"
            [conn] = api_ok(await api.get(f"/gw/devices/{dev['id']}/connections/all"))
            assert conn["ident"] == dev["ident"] and conn["meta"]["version"] == 2019
            await raw.close()

    run(scenario())


def test_take_photo_makes_a_media_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            await sub.subscribe("fleetcam/log/gw/devices/+/media_file_uploaded", qos=1)
            sim = await simulate(server, 2, mixed_editions=True)
            try:
                await sim.wait_authenticated(10)
                for d, channel in zip(sim.devices, (1, 2)):
                    dev = device_of(server, d.cfg.phone)
                    [res] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands", json=[
                        {"name": "take_photo", "properties": {"channel": channel},
                         "timeout": 10}]))
                    assert res["executed"] is True and res["response"]["result"] == 0
                    assert len(res["response"]["media_ids"]) == 1

                    async def photo(dev_id: int = dev.id) -> Any:
                        files = api_ok(await api.get(f"/gw/devices/{dev_id}/media"))
                        return files or None
                    files = await _apoll(photo, 10)
                    assert files, "no media file after take_photo"
                    [f] = files
                    assert (f["device_id"], f["channel_id"], f["mime"]) == (dev.id, channel,
                                                                           "image/jpeg")
                    assert f["meta"]["type"] == "image" and f["meta"]["width"] == 640
                    thumb = await api.get(f["preview"]["url"])
                    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
                    [(topic, payload)] = await collect(
                        sub, "fleetcam/log/gw/devices/+/media_file_uploaded", 1)
                    assert topic == f"fleetcam/log/gw/devices/{dev.id}/media_file_uploaded"
                    assert payload["uuid"] == f["uuid"]
                    content = await api.get(f["url"])
                    assert content.status_code == 200
                    assert content.content[:3] == b"\xff\xd8\xff"
            finally:
                await sim.stop_all()

    run(scenario())


def test_live_stream_of_both_editions_reaches_the_media_sinks(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            sink = RecordingSink()
            gw.taps.append(sink)
            sim = await simulate(server, 2, mixed_editions=True, width=176, height=144, fps=10,
                                 bitrate=100_000)
            try:
                await sim.wait_authenticated(10)
                devs = [device_of(server, d.cfg.phone) for d in sim.devices]
                for dev in devs:  # queued: the answer waits for HLS, not needed here
                    api_ok(await api.post(f"/gw/devices/{dev.id}/commands-queue", json=[
                        {"name": "start_videostream", "properties": {"channel": 1},
                         "ttl": 60}]))
                assert await wait_for(lambda: {d for d, _, _ in sink.frames} == {
                    d.id for d in devs}, 10), "no frames from one of the editions"
                for dev in devs:
                    media = [c for c in api_ok(await api.get(
                        f"/gw/devices/{dev.id}/connections/all"))
                        if c["meta"].get("protocol") == "jt1078"]
                    assert len(media) == 1 and media[0]["secondary"] is True
                    assert media[0]["meta"]["channel"] == 1
                    api_ok(await api.delete(f"/gw/devices/{dev.id}/connections/{media[0]['id']}"))
                    assert await wait_for(lambda cid=media[0]["id"]: cid in {
                        c for _, c, _ in sink.closed}, 3)
                frames = [f for _, _, f in sink.frames]
                assert frames[0].data.startswith(b"\x00\x00\x00\x01")
            finally:
                await sim.stop_all()

    run(scenario())
