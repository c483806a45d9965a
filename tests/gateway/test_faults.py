"""Hostile and broken input over raw sockets: only the offender suffers, the others keep going."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetcam.domain.models import Device
from fleetcam.gateway.jt808 import BOGUS_BUDGET
from fleetcam.protocol.jt1078.nal import packetize
from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import FEED_SLICE
from fleetcam.protocol.jt808.framing import checksum, escape
from fleetcam.protocol.jt808.header import Header, encode_header
from fleetcam.protocol.jt808.ids import MsgId, Result
from fleetcam.ports import MediaQuery
from fleetcam.runtime.dev import LocalServer
from mediagen import make_image
from tests.e2e_local import run
from tests.gateway import (RawDevice, RecordingSink, device_of, gateway_server,
                           open_media_request, poll, session_of, simulate, wait_for)

RAW_PHONE = "013955550001"
LOCATION = m.Location(alarm=0, status=0b11, latitude=52.1, longitude=4.3, altitude=1, speed=10.0,
                      direction=90, time=1_700_000_000, extras={})


@asynccontextmanager
async def bystander(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[LocalServer,
                                                                             Device]]:
    """A server, a well-behaved simulated device reporting every 0.1 s, and a known terminal
    ``RAW_PHONE`` for the raw socket to play."""
    async with gateway_server(tmp_path / "data", **overrides) as server:
        await asyncio.to_thread(server.container.devices.create, [{"ident": RAW_PHONE}])
        sim = await simulate(server, 1, report_interval=0.1)
        try:
            await sim.wait_authenticated(10)
            good = device_of(server, sim.devices[0].cfg.phone)
            yield server, good
            await still_reporting(server, good)
            assert len([c for c in server.container.connections.registry.list((good.id,))
                        if not c.secondary]) == 1
        finally:
            await sim.stop_all()


async def still_reporting(server: LocalServer, good: Device) -> None:
    """The well-behaved device's messages keep arriving."""
    store = server.container.messages.store
    before = len(store.query((good.id,), count=10_000))
    assert await poll(lambda: len(store.query((good.id,), count=10_000)) >= before + 2, 3), \
        "the well-behaved device stopped reporting"


def logged(caplog: pytest.LogCaptureFixture, conn_id: int, *words: str) -> bool:
    """A gateway log record names the connection and says all of ``words``."""
    return any(str(conn_id) in r.getMessage() and all(w in r.getMessage() for w in words)
               for r in caplog.records if r.name.startswith("fleetcam.gateway"))


def raw_frame(payload: bytes, check: int | None = None) -> bytes:
    return b"\x7e" + escape(payload + bytes([checksum(payload) if check is None else check])
                            ) + b"\x7e"


def location_payload(serial: int = 7) -> bytes:
    body = m.encode_body(LOCATION, False)[1]
    return encode_header(Header(MsgId.LOCATION, RAW_PHONE, serial, False), len(body)) + body


def _bad_checksum() -> bytes:
    payload = location_payload()
    return raw_frame(payload, checksum(payload) ^ 0x5A)


def _bad_escape() -> bytes:
    good = raw_frame(location_payload())
    return good[:20] + b"\x7d\x05" + good[20:]


def _oversized() -> bytes:
    return b"\x7e" + bytes(range(1, 126)) * 80 + b"\x7e"  # 10 000 bytes, no 0x7E inside


def _truncated() -> bytes:
    return raw_frame(location_payload()[:-10])  # a good check code over a short body


def _garbage() -> bytes:
    rnd = random.Random(808)
    return bytes(rnd.randrange(256) for _ in range(4000))


BAD_INPUT: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "bad check code": (_bad_checksum, ("bad frame", "checksum")),
    "bad escape": (_bad_escape, ("bad frame",)),
    "oversized frame": (_oversized, ("bad frame", "bytes")),
    "truncated frame": (_truncated, ("bad frame", "does not match")),
    "garbage": (_garbage, ("bad frame",)),
}


@pytest.mark.parametrize("kind", list(BAD_INPUT))
def test_a_bad_frame_is_logged_and_the_connection_carries_on(
        kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")
    make, words = BAD_INPUT[kind]

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            await raw.login()
            session = session_of(gw, raw.local_port)
            assert session is not None and session.device is not None
            stored = server.container.messages.store
            await raw.write(make())
            assert await wait_for(lambda: session.bogus >= 1, 3), "the bad input went unnoticed"
            assert logged(caplog, session.conn_id, *words), caplog.text
            assert stored.query((session.device.id,)) == []  # nothing decoded from it
            # the offender is still served: a good location after the bad input is answered
            serial = await raw.send(LOCATION)
            ack = await raw.expect(m.GeneralResponse)
            assert (ack.body.reply_serial, ack.body.reply_id, ack.body.result) == (
                serial, MsgId.LOCATION, Result.SUCCESS)
            assert len(stored.query((session.device.id,))) == 1
            await still_reporting(server, good)
            await raw.close()

    run(scenario())


def test_too_many_bad_frames_close_only_the_offender(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            await raw.login()
            session = session_of(gw, raw.local_port)
            assert session is not None
            await raw.write(_bad_checksum() * BOGUS_BUDGET)
            await raw.send(m.Heartbeat())
            assert (await raw.expect(m.GeneralResponse)).body.reply_id == MsgId.HEARTBEAT
            assert session.bogus == BOGUS_BUDGET
            await raw.write(_bad_checksum())
            assert await raw.closed_by_peer(3)
            assert logged(caplog, session.conn_id, "closing", "too many bad frames")
            assert await poll(lambda: server.container.connections.registry.get(
                session.conn_id) is None, 3)

            flood = await RawDevice(gw.port_808, RAW_PHONE).connect()  # random bytes, no login
            port = flood.local_port
            rnd = random.Random(1078)
            await wait_for(lambda: session_of(gw, port) is not None, 2)
            offender = session_of(gw, port)
            assert offender is not None
            try:
                for _ in range(40):
                    await flood.write(rnd.randbytes(16_384))
            except ConnectionError:
                pass
            assert await flood.closed_by_peer(3)
            assert logged(caplog, offender.conn_id, "closing")
            await still_reporting(server, good)

    run(scenario())


def test_messages_before_authentication_are_refused(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            serial = await raw.send(LOCATION)
            nack = await raw.expect(m.GeneralResponse)
            assert (nack.body.reply_serial, nack.body.reply_id, nack.body.result) == (
                serial, MsgId.LOCATION, Result.FAILURE)
            session = session_of(gw, raw.local_port)
            assert session is not None
            assert logged(caplog, session.conn_id, "Location before authentication")
            raw_dev = device_of(server, RAW_PHONE)
            assert server.container.messages.store.query((raw_dev.id,)) == []
            assert server.container.connections.registry.list((raw_dev.id,)) == []
            await raw.login()  # the same connection may still log in
            await raw.send(LOCATION)
            await raw.expect(m.GeneralResponse)
            assert len(server.container.messages.store.query((raw_dev.id,))) == 1
            await still_reporting(server, good)
            await raw.close()

    run(scenario())


def test_an_unknown_message_id_is_answered_not_supported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            await asyncio.to_thread(server.container.devices.create,
                                    [{"ident": RAW_PHONE.zfill(20)}])
            raw = await RawDevice(gw.port_808, RAW_PHONE.zfill(20), version2019=True).connect()
            await raw.login()
            session = session_of(gw, raw.local_port)
            assert session is not None
            serial = await raw.send(m.UnknownMessage(0x0F0F, b"\x01\x02\x03"), msg_id=0x0F0F)
            ack = await raw.expect(m.GeneralResponse)
            assert ack.header.msg_id == MsgId.PLATFORM_RESPONSE
            assert ack.header.version2019 is True  # answered in the terminal's edition
            assert (ack.body.reply_serial, ack.body.reply_id, ack.body.result) == (
                serial, 0x0F0F, Result.NOT_SUPPORTED)
            assert logged(caplog, session.conn_id, "0x0F0F", "not supported")
            await raw.send(m.Heartbeat())  # still connected and served
            assert (await raw.expect(m.GeneralResponse)).body.reply_id == MsgId.HEARTBEAT
            await still_reporting(server, good)
            await raw.close()

    run(scenario())


def _frames(wire: bytes) -> list[bytes]:
    return [b"\x7e" + f + b"\x7e" for f in wire.strip(b"\x7e").split(b"\x7e\x7e")]


def test_a_photo_cut_off_mid_subpackage_leaves_no_file(tmp_path: Path) -> None:
    jpeg = make_image(640, 480, seed=3)
    assert len(jpeg) > 3 * 1023

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            dev = device_of(server, RAW_PHONE)
            photo = m.MultimediaData(media_id=9, media_type=0, media_format=0, event=0,
                                     channel=3, location=LOCATION, data=jpeg)
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            await raw.login()
            parts = _frames(raw.frame(photo))
            assert len(parts) >= 4
            await raw.write(b"".join(parts[:-1]))  # all but the last, then gone
            await raw.close()
            await asyncio.sleep(0.3)
            assert not await poll(lambda: _files(server, dev), 1.0)
            assert _objects(server) == []

            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()  # now all of it
            await raw.login()
            await raw.write(raw.frame(photo))
            ack = await raw.expect(m.MultimediaUploadResponse)
            assert (ack.body.media_id, ack.body.retransmit) == (9, ())
            assert await poll(lambda: _files(server, dev), 10)
            [f] = _files(server, dev)
            assert (f.size, f.channel_id) == (len(jpeg), 3)
            await raw.close()

    run(scenario())


def _files(server: LocalServer, dev: Device) -> list[Any]:
    return server.container.index.query(MediaQuery((dev.id,)))


def _objects(server: LocalServer) -> list[Path]:
    root = Path(server.settings.data_dir) / "objects"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


SIM = RAW_PHONE


def _media(frames: list[tuple[DataType, bytes]], seq: int = 0, ts: int = 1_700_000_000_000,
           sim: str = SIM) -> tuple[bytes, int]:
    out = b""
    for n, (dtype, data) in enumerate(frames):
        packets = packetize(data, sim=sim, channel=1, data_type=dtype,
                            payload_type=PayloadType.H264, timestamp=ts + 40 * n,
                            sequence_start=seq, last_frame_interval=40)
        seq += len(packets)
        out += b"".join(encode_packet(p) for p in packets)
    return out, seq


def test_media_connection_hands_on_only_whole_frames(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")
    rnd = random.Random(1078)
    f1 = b"\x00\x00\x00\x01\x65" + rnd.randbytes(3000)
    f2 = b"\x00\x00\x00\x01\x41" + rnd.randbytes(2500)
    f3 = b"\x00\x00\x00\x01\x41" + rnd.randbytes(300)
    f4 = b"\x00\x00\x00\x01\x65" + rnd.randbytes(4000)

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            sink = RecordingSink()
            dev = device_of(server, RAW_PHONE)
            await open_media_request(gw, dev, 1, sink=sink)
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port_1078)
            port = writer.get_extra_info("sockname")[1]
            one, seq = _media([(DataType.I_FRAME, f1)])
            two, _ = _media([(DataType.P_FRAME, f2)], seq=seq, ts=1_700_000_000_040)
            cut = b"01cd".join(two.split(b"01cd")[:3])  # FIRST and MIDDLE, no LAST
            rest, _ = _media([(DataType.P_FRAME, f3), (DataType.I_FRAME, f4)], seq=seq + 2,
                             ts=1_700_000_000_080)
            writer.write(rnd.randbytes(5000).replace(b"01cd", b"xxxx") + one + b"junk" * 50
                         + cut + rest)
            await writer.drain()
            assert await wait_for(lambda: len(sink.frames) >= 3, 5), sink.frames
            await asyncio.sleep(0.1)
            assert [f.data for _, _, f in sink.frames] == [f1, f3, f4]
            assert {d for d, _, _ in sink.frames} == {dev.id}
            assert [f.data_type for _, _, f in sink.frames] == [DataType.I_FRAME,
                                                                 DataType.P_FRAME,
                                                                 DataType.I_FRAME]
            media = next(s for s in gw.sessions_1078 if s.source.endswith(f":{port}"))
            assert logged(caplog, media.conn_id, "jt1078 conn")
            [conn] = [c for c in server.container.connections.registry.list((dev.id,))
                      if c.id == media.conn_id]
            assert conn.secondary and conn.meta["protocol"] == "jt1078"
            # a frame cut off by the disconnect is never handed on
            tail, _ = _media([(DataType.I_FRAME, f4)], seq=seq + 20, ts=1_700_000_001_000)
            writer.write(tail[: len(tail) // 2])
            await writer.drain()
            writer.close()
            assert await wait_for(lambda: sink.closed, 3)
            assert sink.closed == [(dev.id, media.conn_id, "device closed")]
            assert len(sink.frames) == 3
            assert await poll(lambda: server.container.connections.registry.get(
                media.conn_id) is None, 3)
            del reader

    run(scenario())


def test_media_from_an_unknown_sim_is_refused(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            sink = RecordingSink()
            gw.taps.append(sink)
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port_1078)
            data, _ = _media([(DataType.I_FRAME, b"\x00\x00\x00\x01\x65" + bytes(2000))] * 3,
                             sim="019999999999")
            writer.write(data)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the gateway
            assert sink.frames == []
            assert any("unknown SIM 019999999999" in r.getMessage() for r in caplog.records)
            assert server.container.connections.registry.list() == [
                c for c in server.container.connections.registry.list() if c.device_id == good.id]
            writer.close()

    run(scenario())


def test_memory_per_connection_is_bounded(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")
    chunk = bytes(range(1, 126)) * 512  # 64 000 bytes without 0x7E or a 1078 header
    total = 10 * 1024 * 1024

    async def flood(port: int, prefix: bytes, check: Callable[[], None]) -> bool:
        """Send ``prefix`` and 10 MB; True when the gateway closed the connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        try:
            writer.write(prefix)
            while sent < total:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                check()
        except ConnectionError:
            return True
        try:
            return await asyncio.wait_for(reader.read(), 0.5) == b""
        except asyncio.TimeoutError:
            return False
        finally:
            writer.close()

    async def scenario() -> None:
        async with bystander(tmp_path) as (server, good):
            gw = server.gateway
            assert gw is not None
            seen: list[Any] = []

            def jt808_bounded() -> None:
                for s in gw.sessions_808:
                    assert len(s.codec._splitter.buffer) <= FEED_SLICE + s.codec.max_buffer
                    assert s.codec.unparsed <= 2 * 1024 * 1024  # one socket read at most
                    assert s.inbox.qsize() <= s.inbox.maxsize
                    seen.append(s)

            # no 0x7E at all: skipped as it comes, nothing is buffered; before authentication
            # a connection may send only PREAUTH_GARBAGE bytes that are not frames
            assert await flood(gw.port_808, b"", jt808_bounded)
            assert seen and all(s.codec.garbage_bytes < total for s in seen)
            # a frame start and then 10 MB without an end: cut up and dropped, then closed
            assert await flood(gw.port_808, b"\x7e", jt808_bounded)
            await still_reporting(server, good)
            # an authenticated terminal's garbage is skipped, and the connection stays
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            await raw.login()
            for _ in range(40):
                await raw.write(chunk)
            session = session_of(gw, raw.local_port)
            assert session is not None
            assert await wait_for(lambda: session.codec.garbage_bytes >= 38 * len(chunk), 5)
            serial = await raw.send(LOCATION)
            ack = await raw.expect(m.GeneralResponse)
            assert ack.body.reply_serial == serial
            await raw.close()

            def jt1078_bounded() -> None:
                for s in gw.sessions_1078:
                    assert s.decoder.buffered <= s.decoder.max_buffer
                    assert len(s.held) <= 64

            assert await flood(gw.port_1078, b"", jt1078_bounded)
            assert "closing: protocol error: no JT/T 1078 packet" in caplog.text

    run(scenario())


def test_idle_connections_are_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetcam.gateway")

    async def scenario() -> None:
        async with bystander(tmp_path, idle_timeout=1.0) as (server, good):
            gw = server.gateway
            assert gw is not None
            [before] = server.container.connections.registry.list((good.id,))
            raw = await RawDevice(gw.port_808, RAW_PHONE).connect()
            await raw.login()
            session = session_of(gw, raw.local_port)
            assert session is not None
            media_r, media_w = await asyncio.open_connection("127.0.0.1", gw.port_1078)
            t0 = time.monotonic()
            assert await raw.closed_by_peer(4)
            assert 0.9 <= time.monotonic() - t0 < 3.5  # idle_timeout, plus a tick at most
            assert await asyncio.wait_for(media_r.read(), 3) == b""
            assert logged(caplog, session.conn_id, "closing", "idle timeout")
            assert await poll(lambda: server.container.connections.registry.get(
                session.conn_id) is None, 3)
            [after] = server.container.connections.registry.list((good.id,))
            assert after.id == before.id  # the chatty device was never cut
            media_w.close()

    run(scenario())
