"""Teltonika Codec 8/8E/12 and the DualCam camera protocol, against published vectors.

Sources: Teltonika's wiki "Codec" page examples (Codec 8 examples 1-3, Codec 8 Extended,
Codec 12 ``getinfo``), as quoted in public decoders' tests (e.g. tgranqvist/fmb-server README,
a C# Codec8DecoderTests); the camera capture is Traccar's DualcamProtocolDecoderTest
(traccar/traccar src/test/java/org/traccar/protocol/DualcamProtocolDecoderTest.java).
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcam.protocol.errors import BadChecksum, ProtocolError
from fleetcam.protocol.teltonika import camera as cam
from fleetcam.protocol.teltonika.codec import (CODEC_8, CODEC_8E, AvlRecord, Command12, Imei,
                                               Packet, TeltonikaStream, crc16_arc,
                                               crc16_kermit, decode_data, encode_avl,
                                               encode_command, encode_imei, record_message)

WIKI_8_1 = ("000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101"
            "425E0F01F10000601A014E0000000000000000010000C7CF")
WIKI_8_2 = ("000000000000002808010000016B40D9AD80010000000000000000000000000000000103021503010101"
            "425E100000010000F22A")
WIKI_8_3 = ("000000000000004308020000016B40D57B480100000000000000000000000000000001010101000000000000"
            "016B40D5C198010000000000000000000000000000000101010101000000020000252C")
WIKI_8E = ("000000000000004A8E010000016B412CEE000100000000000000000000000000000000010005000100010100"
           "010011001D00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994")
WIKI_12 = "000000000000000F0C010500000007676574696E666F0100004312"
IMEI = "000F333536333037303432343431303133"


def packets(hexdata: str) -> list[Packet]:
    s = TeltonikaStream()
    s.imei = "356307042441013"
    return [p for p in s.feed(bytes.fromhex(hexdata)) if isinstance(p, Packet)]


def test_imei_handshake() -> None:
    s = TeltonikaStream()
    assert s.feed(bytes.fromhex(IMEI)) == [Imei("356307042441013")]
    assert encode_imei("356307042441013") == bytes.fromhex(IMEI)


def test_wiki_codec8_example1() -> None:
    (p,) = packets(WIKI_8_1)
    assert p.codec == CODEC_8
    (r,) = p.body  # type: ignore[misc]
    assert r.timestamp_ms == 0x16B40D8EA30 and r.priority == 1 and r.event_id == 1
    assert r.io == {0x15: 3, 0x01: 1, 0x42: 0x5E0F, 0xF1: 0x601A, 0x4E: 0}
    msg = record_message(r)
    assert msg["io.21"] == 3 and msg["gsm.signal.level"] == 3
    assert msg["din.1"] is True
    assert msg["external.powersource.voltage"] == pytest.approx(24.079)
    assert msg["gsm.operator.code"] == 0x601A and msg["ibutton.code"] == "0000000000000000"
    assert msg["timestamp"] == 0x16B40D8EA30 / 1000


def test_wiki_codec8_examples_2_and_3() -> None:
    (p,) = packets(WIKI_8_2)
    assert p.body[0].io == {0x15: 3, 0x01: 1, 0x42: 0x5E10}  # type: ignore[index]
    (p3,) = packets(WIKI_8_3)
    assert [r.io for r in p3.body] == [{1: 0}, {1: 1}]  # type: ignore[union-attr]
    assert [r.timestamp_ms for r in p3.body] == [0x16B40D57B48, 0x16B40D5C198]  # type: ignore


def test_wiki_codec8e() -> None:
    (p,) = packets(WIKI_8E)
    assert p.codec == CODEC_8E
    (r,) = p.body  # type: ignore[misc]
    assert r.io[0x01] == 1 and r.io[0x11] == 0x1D and r.io[0x10] == 0x015E2C88
    assert r.io[0x0B] == 0x3544C87A and r.io[0x0E] == 0x1DD7E06A


def test_wiki_codec12_getinfo() -> None:
    (p,) = packets(WIKI_12)
    assert p.body == Command12(5, "getinfo")
    assert encode_command("getinfo") == bytes.fromhex(WIKI_12)


def test_crc_is_checked() -> None:
    bad = WIKI_8_1[:-4] + "0000"
    with pytest.raises(BadChecksum):
        packets(bad)


def test_bad_input() -> None:
    with pytest.raises(ProtocolError):
        TeltonikaStream().feed(b"\x00\x40" + b"1" * 64)  # IMEI too long
    with pytest.raises(ProtocolError):
        TeltonikaStream().feed(b"\x00\x0fGET / HTTP/1.1\r")
    s = TeltonikaStream()
    s.imei = "1"
    with pytest.raises(ProtocolError):
        s.feed(b"\x00\x00\x00\x00\x7f\xff\xff\xff")  # absurd length
    with pytest.raises(ProtocolError):
        decode_data(bytes.fromhex("0801"))  # truncated


def test_avl_round_trip_keeps_unknown_io_raw() -> None:
    rec = AvlRecord(1_700_000_000_000, 1, 4.9041, 52.3676, 5, 90, 11, 40, 239,
                    {239: 1, 240: 1, 66: 12900, 16: 123456789, 9999: b"\x01\x02\x03"})
    (p,) = packets(encode_avl([rec, rec]).hex())
    assert p.body == [rec, rec]
    msg = record_message(rec)
    assert msg["io.9999"] == "010203" and msg["engine.ignition.status"] is True
    assert msg["position.latitude"] == pytest.approx(52.3676)


# Traccar's real DualCam capture: INIT, START (17 packets), SYNC 1 and the first DATA
CAM_INIT = "000000050001403a4abaa31444000400"
CAM_START = "00010006000000110000"
CAM_SYNC = "0003000400000001"


def test_camera_capture_traccar() -> None:
    s = cam.CameraStream()
    events = s.feed(bytes.fromhex(CAM_INIT + CAM_START + CAM_SYNC))
    init, start, sync = events
    assert isinstance(init, cam.Init) and init.protocol == 5
    assert init.imei == str(0x0001403A4ABAA314)
    assert init.settings == 0x44000400 and ("photo", 1) in init.available()
    assert start == cam.Start(17) and sync == cam.Sync(1)


def test_camera_crc_is_kermit() -> None:
    """The wiki's 0x8408 polynomial, confirmed: the first 1024-byte DATA chunk of Traccar's
    capture (a JPEG's first KB) carries CRC 0x4874, which CRC-16/KERMIT reproduces and
    0xA001 (ARC) does not."""
    from pathlib import Path
    raw = bytes.fromhex((Path(__file__).parent / "dualcam_data.hex").read_text().strip())
    (data, *_) = cam.CameraStream(max_message=2048).feed(raw)
    assert isinstance(data, cam.Data) and len(data.payload) == 1024
    assert data.payload[:2] == b"\xff\xd8"
    assert data.crc == 0x4874 and data.valid
    assert crc16_kermit(data.payload) == 0x4874 != crc16_arc(data.payload)
    assert not cam.Data(data.payload, data.crc ^ 1).valid


def test_camera_messages_round_trip() -> None:
    s = cam.CameraStream()
    wire = (cam.encode_init("350612071913857", cam.FLAG_VIDEO_REAR) + cam.encode_start(3)
            + cam.encode_data(b"a" * 1024) + cam.encode_data(b"b" * 10, corrupt=True))
    init, start, d1, d2 = s.feed(wire)
    assert init == cam.Init(5, "350612071913857", cam.FLAG_VIDEO_REAR)
    assert init.available() == [("video", 2)]
    assert start == cam.Start(3) and d1.valid and not d2.valid  # type: ignore[union-attr]
    # the forum's example: IMEI 350612071913857 and the %photof request
    assert cam.CameraStream().feed(bytes.fromhex("0000000500013ee13c00198144000400"))[0] == \
        cam.Init(5, "350612071913857", 0x44000400)
    assert cam.file_request("%photof") == bytes.fromhex("000800072570686f746f66")


def test_camera_bounds() -> None:
    with pytest.raises(ProtocolError):
        cam.CameraStream().feed(b"\x00\x04\xff\xff")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_streams(data: bytes) -> None:
    for stream in (TeltonikaStream(), cam.CameraStream()):
        try:
            stream.feed(data)
        except ProtocolError:
            pass
        assert stream.buffered < 70_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_decode_data(data: bytes) -> None:
    try:
        decode_data(data)
    except ProtocolError:
        pass
