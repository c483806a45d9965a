"""Issue 10, bounded resources: what a stranger's connections may cost, and a legitimate
terminal never disconnected by how its bytes arrive."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.framing import wrap
from fleetcam.protocol.jt808.header import Header, encode_header
from fleetcam.protocol.jt808.ids import MsgId
from fleetcam.ports import MediaQuery
from tests.e2e_local import collect, mqtt_client, run
from tests.gateway import RawDevice, device_of, gateway_server, poll, session_of, wait_for
from tests.mediagen import make_image

PHONE = "013912340001"
LOCATION = m.Location(alarm=0, status=3, latitude=52.37, longitude=4.9, altitude=5, speed=40.0,
                      direction=90, time=1_700_000_000, extras={})


def test_heartbeats_before_authentication_do_not_keep_a_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d", preauth_timeout=1.0,
                                  idle_timeout=60.0) as server:
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, PHONE).connect()
            loop = asyncio.get_running_loop()
            start = loop.time()
            closed = False
            while loop.time() - start < 5:
                try:
                    await raw.send(m.Heartbeat())
                except ConnectionError:
                    closed = True
                    break
                if await raw.recv(0.2) is None and raw.eof:
                    closed = True
                    break
            assert closed, "heartbeats kept an unauthenticated connection open"
            assert loop.time() - start < 3
            assert await wait_for(lambda: not gw.sessions_808, 2)
            assert gw.admission.total == 0

            # an authenticated one is kept past the pre-authentication timeout
            await asyncio.to_thread(server.container.devices.create, [{"ident": PHONE}])
            ok = await RawDevice(gw.port_808, PHONE).connect()
            await ok.login()
            await asyncio.sleep(1.5)
            serial = await ok.send(m.Heartbeat())
            ack = await ok.expect(m.GeneralResponse)
            assert ack.body.reply_serial == serial
            await ok.close()

    run(scenario())


def test_no_reassembly_memory_before_authentication(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server:
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, PHONE).connect()
            await wait_for(lambda: session_of(gw, raw.local_port) is not None, 2)
            session = session_of(gw, raw.local_port)
            assert session is not None
            peak = 0
            try:
                for i in range(1, 41):  # parts 1..40 of a 60 000-part message, 1000 bytes each
                    h = Header(0x0F01, PHONE, i, False, packet_total=60000, packet_index=i)
                    await raw.write(wrap(encode_header(h, 1000) + bytes(1000)))
                    await asyncio.sleep(0)
                    peak = max(peak, session.codec.reassembly_bytes)
            except ConnectionError:
                pass
            await asyncio.sleep(0.2)
            assert peak == 0, "subpackages were held before authentication"
            assert gw.reassembly_budget.held == 0
            assert session.bogus >= 1 or raw.eof
            await raw.close()

    run(scenario())


def test_a_500_kb_photo_written_in_one_go(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server:
            gw = server.gateway
            assert gw is not None
            await asyncio.to_thread(server.container.devices.create, [{"ident": PHONE}])
            raw = await RawDevice(gw.port_808, PHONE).connect()
            await raw.login()
            jpeg = make_image(1600, 1200, seed=5)
            jpeg += bytes(500_000 - len(jpeg)) if len(jpeg) < 500_000 else b""
            assert len(jpeg) >= 500_000
            photo = m.MultimediaData(media_id=7, media_type=0, media_format=0, event=0,
                                     channel=1, location=LOCATION, data=jpeg)
            data = raw.frame(photo)
            assert len(data) > 500_000
            raw.writer.write(data)  # type: ignore[union-attr]  # one write, ~500 subpackages
            ack = await raw.expect(m.MultimediaUploadResponse, timeout=20)
            assert (ack.body.media_id, ack.body.retransmit) == (7, ())
            dev = device_of(server, PHONE)
            files = await poll(lambda: server.container.index.query(MediaQuery((dev.id,))), 20)
            assert files and files[0].size == len(jpeg)
            serial = await raw.send(m.Heartbeat())  # and the connection carries on
            assert (await raw.expect(m.GeneralResponse)).body.reply_serial == serial
            await raw.close()

    run(scenario())


def test_connections_per_address_and_in_total_are_capped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d", max_connections_per_address=3,
                                  max_connections=100) as server, \
                mqtt_client(server.settings.mqtt_port) as sub:
            gw = server.gateway
            assert gw is not None
            await asyncio.to_thread(server.container.devices.create, [{"ident": PHONE}])
            device = await RawDevice(gw.port_808, PHONE).connect()
            await device.login()
            await sub.subscribe("fleetcam/#", qos=1)
            strangers = [await RawDevice(gw.port_808, f"0139000000{i:02d}").connect()
                         for i in range(2)]
            await wait_for(lambda: gw.admission.total == 3, 2)
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                extra = [await RawDevice(gw.port_808, "013900000099").connect()
                         for _ in range(20)]
                for e in extra:
                    assert await e.closed_by_peer(3)
            assert gw.admission.total == 3 and gw.stats["refused_connections"] == 20
            lines = [r for r in caplog.records if "refused" in r.getMessage()]
            assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]  # rate-limited
            assert "127.0.0.1" in lines[0].getMessage()
            serial = await device.send(m.Heartbeat())  # the device was never touched
            assert (await device.expect(m.GeneralResponse)).body.reply_serial == serial
            retained = [t for t, _ in await collect(sub, "fleetcam/#", 5, timeout=1.0)
                        if "connections" not in t]
            assert retained == []  # nothing that looks like a device event
            for s in strangers:
                await s.close()
            await device.close()

    run(scenario())


def test_registration_and_refusals_publish_nothing_and_close_no_one_else(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "d") as server, \
                mqtt_client(server.settings.mqtt_port) as sub:
            gw = server.gateway
            assert gw is not None
            await asyncio.to_thread(server.container.devices.create, [{"ident": PHONE}])
            device = await RawDevice(gw.port_808, PHONE).connect()
            await device.login()
            await sub.subscribe("fleetcam/log/#", qos=1)
            await sub.subscribe("fleetcam/gw/#", qos=1)
            stranger = await RawDevice(gw.port_808, PHONE).connect()
            await stranger.send(m.Location(**{**LOCATION.__dict__}))  # before authenticating
            await stranger.send(m.Register(province=1, city=1, manufacturer="X", model="Y",
                                           terminal_id="Z", plate_color=1, plate="P"))
            assert (await stranger.expect(m.RegisterResponse)).body.result == 3
            serial = await stranger.send(m.Authenticate(auth_code="0" * 32))
            while True:
                ack = await stranger.expect(m.GeneralResponse)
                if ack.body.reply_id == MsgId.AUTHENTICATE:
                    assert (ack.body.reply_serial, ack.body.result) == (serial, 1)
                    break
            own = session_of(gw, device.local_port)
            assert own is not None
            got = [(t, p) for t, p in await collect(sub, "fleetcam/#", 3, timeout=1.0)
                   if not (t.endswith("/connections/connected") and p["id"] == own.conn_id)]
            assert got == []  # (the device's own connection may be announced late)
            serial = await device.send(m.Heartbeat())
            assert (await device.expect(m.GeneralResponse)).body.reply_serial == serial
            await stranger.close()
            await device.close()

    run(scenario())
