"""Issue 10, identity on the JT/T 808 port: a stranger who knows a device's phone number
gets nothing in and breaks nothing. Each test is an attack (or a rule) over real sockets."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from fleetcam.domain.identity import Identity
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.ids import MsgId
from tests.e2e_local import collect, http, mqtt_client, run
from tests.gateway import (RawDevice, api_ok, collect_any, device_of, gateway_server, poll,
                           simulate, wait_for)


async def apoll(probe: Any, timeout: float = 5.0) -> Any:
    """Await ``probe()`` until it returns something truthy (None after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await probe()) is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return value

PHONE = "013912340001"
REG = dict(province=31, city=100, manufacturer="RAW", model="RAW-1", terminal_id="RAW0001",
           plate_color=1, plate="RAW1")
LOG = "fleetcam/log/gw/devices/#"
REFUSAL_LOGGERS = ("fleetcam.gateway.jt808", "fleetcam.gateway.server")


async def register(raw: RawDevice, **changes: Any) -> Any:
    await raw.send(m.Register(**{**REG, **changes}))
    return (await raw.expect(m.RegisterResponse)).body


async def authenticate(raw: RawDevice, code: str) -> int:
    serial = await raw.send(m.Authenticate(auth_code=code, imei="860000000000001",
                                           software_version="raw"))
    while True:
        ack = await raw.expect(m.GeneralResponse)
        if ack.body.reply_serial == serial and ack.body.reply_id == MsgId.AUTHENTICATE:
            return int(ack.body.result)


async def alive(raw: RawDevice) -> bool:
    """True when the gateway still answers this connection's heartbeat."""
    serial = await raw.send(m.Heartbeat())
    while (msg := await raw.recv(3.0)) is not None:
        if isinstance(msg.body, m.GeneralResponse) and msg.body.reply_serial == serial:
            return msg.body.result == 0
    return False


def test_registering_with_a_connected_devices_phone_takes_nothing_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d", auto_register=True) as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            api_ok(await api.post("/gw/devices", json=[{"ident": PHONE}]))
            device = await RawDevice(gw.port_808, PHONE).connect()
            first = await register(device)
            assert first.result == 0 and len(first.auth_code) == 32  # 128 random bits, hex
            assert await authenticate(device, first.auth_code) == 0
            stored = device_of(server, PHONE).identity
            assert stored.verify(first.auth_code) and first.auth_code not in stored.to_stored()
            [conn] = api_ok(await api.get("/gw/devices/all/connections/all"))
            await sub.subscribe(LOG, qos=1)

            caplog.clear()
            with caplog.at_level(logging.WARNING):
                attacker = await RawDevice(gw.port_808, PHONE).connect()
                reply = await register(attacker)
                # JT/T 808 result 3, "terminal already registered", and no code
                assert (reply.result, reply.auth_code) == (3, "")
                assert await authenticate(attacker, "") == 1
                assert await authenticate(attacker, "0" * 32) == 1
            assert await alive(device)  # the device's connection was not touched
            assert api_ok(await api.get("/gw/devices/all/connections/all")) == [conn]
            assert device_of(server, PHONE).identity == stored
            assert await collect(sub, LOG, 1, timeout=1.0) == []  # nothing published
            refusals = [r.getMessage() for r in caplog.records
                        if r.name in REFUSAL_LOGGERS and "refused" in r.getMessage()]
            assert refusals and all(PHONE in line and "127.0.0.1:" in line for line in refusals)
            assert any("already registered" in line or "has a code" in line
                       for line in refusals)
            await attacker.close()
            await device.close()

    run(scenario())


def test_replaying_a_code_from_another_connection(tmp_path: Path) -> None:
    """The code travels in clear, so whoever replays it *is* the device to the protocol: the
    newer connection wins (devices reconnect after a network change), and the take-over is
    logged and published with both addresses. A code from before a reset, or another
    terminal's code, gets nothing."""
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            [dev] = api_ok(await api.post("/gw/devices", json=[{"ident": PHONE}]))
            api_ok(await api.post("/gw/devices", json=[{"ident": "013912340002"}]))
            device = await RawDevice(gw.port_808, PHONE).connect()
            code = (await register(device)).auth_code
            assert await authenticate(device, code) == 0
            [old] = api_ok(await api.get(f"/gw/devices/{dev['id']}/connections"))
            await sub.subscribe(f"fleetcam/log/gw/devices/{dev['id']}/connections/#", qos=1)

            # another terminal's phone with this code: refused
            other = await RawDevice(gw.port_808, "013912340002").connect()
            assert await authenticate(other, code) == 1
            await other.close()

            replay = await RawDevice(gw.port_808, PHONE).connect()
            assert await authenticate(replay, code) == 0
            assert await device.closed_by_peer(5)

            async def one_left() -> Any:
                conns = api_ok(await api.get(f"/gw/devices/{dev['id']}/connections"))
                return conns if len(conns) == 1 and conns[0]["id"] != old["id"] else None
            [new] = await apoll(one_left)
            assert new["id"] != old["id"] and new["source"] != old["source"]
            got = await collect_any(sub, (f"fleetcam/log/gw/devices/{dev['id']}/connections/#",),
                                    3, timeout=5.0)
            replaced = [p for t, p in got if t.endswith("/connections/replaced")]
            assert replaced == [{"device_id": dev["id"], "ident": PHONE,
                                 "old_connection": old["id"], "old_source": old["source"],
                                 "new_connection": new["id"], "new_source": new["source"]}]
            logs = api_ok(await api.get(f"/gw/devices/{dev['id']}/logs"))
            assert [e for e in logs if e["event_text"] == "device_connection_replaced"]

            # the admin resets the code: the old one is void, the next registration gets a
            # fresh one
            [put] = api_ok(await api.put(f"/gw/devices/{dev['id']}",
                                         json={"configuration": {"auth_code": None}}))
            assert put["configuration"]["auth_code_state"] == "none"
            await replay.close()
            stale = await RawDevice(gw.port_808, PHONE).connect()
            assert await authenticate(stale, code) == 1
            fresh = (await register(stale)).auth_code
            assert fresh and fresh != code
            assert await authenticate(stale, fresh) == 0
            await stale.close()

    run(scenario())


def test_reregistration_at_boot_follows_its_conditions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server, \
                mqtt_client(server.settings.mqtt_port) as sub, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            [dev] = api_ok(await api.post("/gw/devices", json=[{"ident": PHONE}]))
            raw = await RawDevice(gw.port_808, PHONE).connect()
            code = (await register(raw)).auth_code
            assert await authenticate(raw, code) == 0

            # not allowed by default, even offline
            await raw.close()
            await wait_for(lambda: not gw.sessions_by_device)
            registry = server.container.connections.registry
            assert await poll(lambda: not registry.list((dev["id"],)), 5)
            raw = await RawDevice(gw.port_808, PHONE).connect()
            assert (await register(raw)).result == 3
            [put] = api_ok(await api.put(f"/gw/devices/{dev['id']}",
                                         json={"configuration": {"reregister_at_boot": True}}))
            assert put["configuration"]["reregister_at_boot"] is True
            assert put["configuration"]["registration"] == {
                "terminal_id": "RAW0001", "manufacturer": "RAW", "model": "RAW-1"}
            await sub.subscribe(f"fleetcam/log/gw/devices/{dev['id']}/connections/#", qos=1)

            # allowed now, but only for the terminal that first registered
            assert (await register(raw, terminal_id="OTHER01")).result == 3
            assert (await register(raw, model="RAW-2")).result == 3
            again = await register(raw)
            assert again.result == 0 and again.auth_code != code
            got = await collect(sub, f"fleetcam/log/gw/devices/{dev['id']}/connections/#", 1)
            assert got and got[0][0].endswith("/connections/reregistered")
            assert await authenticate(raw, code) == 1  # the old code died with it
            assert await authenticate(raw, again.auth_code) == 0

            # and only while the device is offline
            other = await RawDevice(gw.port_808, PHONE).connect()
            assert (await register(other)).result == 3
            assert await alive(raw)
            await other.close()
            await raw.close()

    run(scenario())


def test_wrong_codes_are_counted_and_throttled_per_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d", auth_failure_limit=3) as server, \
                http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            api_ok(await api.post("/gw/devices", json=[{"ident": PHONE}]))
            raw = await RawDevice(gw.port_808, PHONE).connect()
            code = (await register(raw)).auth_code
            await raw.close()
            raw = await RawDevice(gw.port_808, PHONE).connect()
            for guess in range(3):
                assert await authenticate(raw, f"guess-{guess:027d}") == 1
            assert gw.stats["auth_failures"] == 3
            # the address is throttled: even the right code is refused unchecked, and closed
            assert await authenticate(raw, code) == 1
            assert await raw.closed_by_peer(5)
            assert api_ok(await api.get("/gw/devices/all/connections/all")) == []

    run(scenario())


def test_auto_registration_is_rate_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d", auto_register=True,
                                  auto_register_limit=10) as server, \
                http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            first = await RawDevice(gw.port_808, "013800000001").connect()
            assert (await register(first)).result == 0
            second = await RawDevice(gw.port_808, "013800000002").connect()
            reply = await register(second)  # one a minute per address at a limit of 10
            assert (reply.result, reply.auth_code) == (4, "")
            assert [d["ident"] for d in api_ok(await api.get("/gw/devices/all"))] == [
                "013800000001"]
            await first.close()
            await second.close()

    run(scenario())


def test_the_simulator_keeps_its_code_across_reconnects(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            sim = await simulate(server, 1)
            try:
                await sim.wait_authenticated(10)
                vdev = sim.devices[0]
                device = device_of(server, vdev.cfg.phone)
                code = vdev.auth_code
                assert code and device.identity.verify(code)
                [conn] = api_ok(await api.get(f"/gw/devices/{device.id}/connections"))
                vdev.authenticated.clear()
                r = await api.delete(f"/gw/devices/{device.id}/connections/{conn['id']}")
                assert r.status_code == 200, r.text
                await asyncio.wait_for(vdev.authenticated.wait(), 15)
                assert vdev.auth_code == code  # authenticated with the code it kept
                assert device_of(server, vdev.cfg.phone).identity == device.identity
            finally:
                await sim.stop_all()

    run(scenario())


def test_admin_reads_sets_and_resets_the_code(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server, http(server.settings) as api:
            gw = server.gateway
            assert gw is not None
            [dev] = api_ok(await api.post("/gw/devices", json=[{"ident": PHONE}]))
            assert dev["configuration"] == {
                "ident": PHONE, "auth_code_state": "none", "auth_code_issued": None,
                "registration": None, "reregister_at_boot": False}
            # provision a code (fleets that configure it into the terminal)
            [put] = api_ok(await api.put(f"/gw/devices/{dev['id']}", json={
                "configuration": {"auth_code": "fleet-provisioned-0001"}}))
            assert put["configuration"]["auth_code_state"] == "provisioned"
            assert "auth_code" not in put["configuration"]  # the admin knows it already
            raw = await RawDevice(gw.port_808, PHONE).connect()
            assert (await register(raw)).result == 3  # it has a code: no other one handed out
            assert await authenticate(raw, "fleet-provisioned-0001") == 0
            await raw.close()
            # generate one: shown once, in this answer; reads never show it or its hash
            [gen] = api_ok(await api.put(f"/gw/devices/{dev['id']}", json={
                "configuration": {"auth_code": "generate"}}))
            shown = gen["configuration"]["auth_code"]
            assert len(shown) == 32
            [read] = api_ok(await api.get(f"/gw/devices/{dev['id']}"))
            assert "auth_code" not in read["configuration"]
            assert shown not in str(read) and "sha256" not in str(read)
            assert device_of(server, PHONE).identity.verify(shown)
            for bad in ("short", 12345, "with space in the middle!", "x" * 65):
                r = await api.put(f"/gw/devices/{dev['id']}",
                                  json={"configuration": {"auth_code": bad}})
                assert r.status_code == 400 and "auth_code" in r.text, r.text
            r = await api.put(f"/gw/devices/{dev['id']}",
                              json={"configuration": {"reregister_at_boot": "yes"}})
            assert r.status_code == 400
            assert device_of(server, PHONE).identity.verify(shown)
            [reset] = api_ok(await api.put(f"/gw/devices/{dev['id']}", json={
                "configuration": {"auth_code": None}}))
            assert reset["configuration"]["auth_code_state"] == "none"
            assert device_of(server, PHONE).identity == Identity()

    run(scenario())


def test_serve_simulate_provisions_codes_so_a_restarted_simulation_authenticates(
        tmp_path: Path) -> None:
    """``fleetcam serve --simulate N``: each start provisions fresh codes (a code issued to an
    earlier simulator process died with it; registering again would be refused)."""
    from fleetcam.runtime.dev import start_simulation

    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server:
            first = await start_simulation(server, 1)
            try:
                await first.wait_authenticated(10)
                old = first.devices[0].auth_code
            finally:
                await first.stop_all()
            again = await start_simulation(server, 1)  # the devices exist, with a code
            try:
                await again.wait_authenticated(10)
                vdev = again.devices[0]
                assert vdev.auth_code != old
                ident = device_of(server, vdev.cfg.phone).identity
                assert ident.verify(vdev.auth_code) and not ident.verify(old)
                assert ident.origin == "provisioned"
            finally:
                await again.stop_all()

    run(scenario())
