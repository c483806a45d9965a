"""Active-safety extension (Su-biao): alarm items, attachment signalling, file-data stream.

Vectors: SmallChi/JT808, src/JT808.Protocol.Extensions/JT808.Protocol.Extensions.SuBiao.Test
(JT808_0x0200_0x64_Test.cs ... JT808_0x9212_Test.cs, the ``Serializer`` expectations).
"""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcam.protocol.bcd import Reader
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import extras
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.subiao import (
    GUANGDONG,
    JIANGSU,
    AlarmAttachmentInfo,
    AlarmIdentification,
    AttachmentFileDone,
    AttachmentFileInfoMsg,
    AttachmentFileResult,
    AttachmentItem,
    AttachmentStream,
    AttachmentUploadRequest,
    FileAssembly,
    FileChunk,
    alarm_identification,
    decode_alarm_item,
    encode_chunk,
)

# SmallChi: 0x0200 with one alarm item each; the identification is terminal "4444444",
# 2019-12-10 18:31:00 (GMT+8), serial 3, 2 attachments, reserved 0.
BASIC = "000000010000000200BA7F0E07E4F11C0028003C0000180715101010"
ITEM_64 = ("642F000000010C0605120A0B100F1100070000000D0000000E19121118310000133434343434343419121018"
           "3100030200")
ITEM_65 = ("652F000000010C060512010203041100070000000D0000000E1912111831000013343434343434341912101"
           "83100030200")
ITEM_66 = ("663B000000010C1100070000000D0000000E191211183100001334343434343434191210183100030200020"
           "400010003000500020900060008000A0007")
ITEM_67 = ("672A000000010C09081100070000000D0000000E191211183100001334343434343434191210183100030200")
IDENT_TIME = 1575973860  # 2019-12-10T10:31:00Z
ALARM_TIME = 1576060260  # 2019-12-11T10:31:00Z


def location(item_hex: str) -> m.Location:
    return m.Location.decode(Reader(bytes.fromhex(BASIC + item_hex)), False)


def test_adas_item_smallchi() -> None:
    f = extras.decode_items(location(ITEM_64).extras)
    assert f["adas.alarm.event.id"] == 1
    assert f["adas.alarm.status"] == 12
    assert f["adas.alarm.type"] == 6 and f["adas.alarm.type.name"] == "road_sign_overlimit"
    assert f["adas.alarm.level"] == 5
    assert f["adas.front.vehicle.speed"] == 18
    assert f["adas.front.distance"] == 10
    assert f["adas.lane.departure.type"] == 11
    assert f["adas.road.sign.type"] == 16 and f["adas.road.sign.data"] == 15
    assert f["adas.alarm.speed"] == 17 and f["adas.alarm.altitude"] == 7
    assert f["adas.alarm.latitude"] == pytest.approx(13e-6)
    assert f["adas.alarm.longitude"] == pytest.approx(14e-6)
    assert f["adas.alarm.time"] == ALARM_TIME
    assert f["adas.alarm.vehicle.status"] == 19
    assert f["alarm.id"] == f"4444444-{IDENT_TIME}-3"
    assert f["alarm.terminal.id"] == "4444444"
    assert f["alarm.attachments"] == 2 and f["alarm.serial"] == 3
    assert f["alarm.source"] == "adas" and f["alarm.layout"] == JIANGSU


def test_dsm_item_smallchi() -> None:
    f = extras.decode_items(location(ITEM_65).extras)
    assert f["dsm.alarm.type"] == 6 and f["dsm.alarm.level"] == 5
    assert f["dsm.fatigue.level"] == 18
    assert f["dsm.alarm.speed"] == 17 and f["dsm.alarm.vehicle.status"] == 19
    assert f["alarm.source"] == "dsm" and f["alarm.attachments"] == 2


def test_tpms_item_smallchi() -> None:
    f = extras.decode_items(location(ITEM_66).extras)
    assert f["tpms.tires.count"] == 2
    assert [f[f"tpms.tire.0.{k}"] for k in ("position", "alarm.type", "pressure",
                                            "temperature", "battery")] == [4, 1, 3, 5, 2]
    assert [f[f"tpms.tire.1.{k}"] for k in ("position", "alarm.type", "pressure",
                                            "temperature", "battery")] == [9, 6, 8, 10, 7]
    assert f["tpms.alarm.speed"] == 17 and f["alarm.source"] == "tpms"


def test_bsd_item_smallchi() -> None:
    f = extras.decode_items(location(ITEM_67).extras)
    assert f["bsd.alarm.type"] == 9 and f["bsd.alarm.level"] == 8
    assert f["bsd.alarm.time"] == ALARM_TIME and f["alarm.source"] == "bsd"


def guangdong(item_hex: str, ident_at: int | None = None) -> bytes:
    """The same item with a 40-byte identification (terminal id widened to 30 bytes, a second
    reserved byte)."""
    value = bytes.fromhex(item_hex)[2:]
    at = len(value) - 16 if ident_at is None else ident_at
    ident = value[at:at + 16]
    wide = ident[:7].ljust(30, b"\x00") + ident[7:] + b"\x00"
    return value[:at] + wide + value[at + 16:]


@pytest.mark.parametrize("item_hex,item", [(ITEM_64, 0x64), (ITEM_65, 0x65), (ITEM_67, 0x67)])
def test_guangdong_layout_detected_by_length(item_hex: str, item: int) -> None:
    value = guangdong(item_hex)
    f = decode_alarm_item(item, value)
    assert f["alarm.layout"] == GUANGDONG
    assert f["alarm.terminal.id"] == "4444444"
    assert f["alarm.time"] == IDENT_TIME and f["alarm.attachments"] == 2
    assert decode_alarm_item(item, value, JIANGSU) == {}  # forced layout: length must match
    assert decode_alarm_item(item, value, GUANGDONG)["alarm.layout"] == GUANGDONG


def test_guangdong_tpms() -> None:
    value = guangdong(ITEM_66, ident_at=24)
    f = decode_alarm_item(0x66, value)
    assert f["alarm.layout"] == GUANGDONG and f["tpms.tires.count"] == 2
    assert alarm_identification({0x66: value})[0][1].terminal_id == "4444444"


@pytest.mark.parametrize("item", [0x64, 0x65, 0x66, 0x67])
def test_wrong_length_yields_nothing(item: int) -> None:
    assert decode_alarm_item(item, b"\x00" * 10) == {}
    assert alarm_identification({item: b"\x00" * 10}) == []


def test_alarm_identification_of_location() -> None:
    found = alarm_identification(location(ITEM_64).extras)
    assert found == [(0x64, AlarmIdentification("4444444", IDENT_TIME, 3, 2, 0, JIANGSU))]


VEC_9208 = ("0B3139322E3136382E312E311388138934343434343434191210183100030201313131313131313131313131"
            "313131313131313131313131313131313131313100000000000000000000000000000000")
VEC_1210 = ("3434343434343434343434343434191210183100030201313131313131313131313131313131313131313131"
            "313131313131313131313100020866696C656E616D65000000090966696C656E616D65310000000A")
VEC_1211 = "0846696C654E616D650200000001"
VEC_9212 = "0846696C654E616D65010202000000140000000A000000280000001E"


def roundtrip(msg_id: int, hexbody: str) -> object:
    body = bytes.fromhex(hexbody)
    msg = m.decode_body(msg_id, body, False)
    assert m.encode_body(msg, False) == (msg_id, body)
    return msg


def test_9208_vector() -> None:
    msg = roundtrip(0x9208, VEC_9208)
    assert isinstance(msg, AttachmentUploadRequest)
    assert (msg.ip, msg.tcp_port, msg.udp_port) == ("192.168.1.1", 5000, 5001)
    assert msg.alarm_number == "1" * 32
    assert msg.ident == AlarmIdentification("4444444", IDENT_TIME, 3, 2, 1, JIANGSU)


def test_1210_vector() -> None:
    msg = roundtrip(0x1210, VEC_1210)
    assert isinstance(msg, AlarmAttachmentInfo)
    assert msg.terminal_id == "4444444" and msg.info_type == 0
    assert msg.alarm_number == "1" * 32
    assert msg.items == (AttachmentItem("filename", 9), AttachmentItem("filename1", 10))


def test_1211_1212_vector() -> None:
    info = roundtrip(0x1211, VEC_1211)
    assert info == AttachmentFileInfoMsg("FileName", 2, 1)
    done = roundtrip(0x1212, VEC_1211)
    assert done == AttachmentFileDone("FileName", 2, 1)


def test_9212_vector() -> None:
    msg = roundtrip(0x9212, VEC_9212)
    assert msg == AttachmentFileResult("FileName", 1, 2, ((20, 10), (40, 30)))


def test_1210_guangdong_roundtrip() -> None:
    ident = AlarmIdentification("T" * 30, IDENT_TIME, 1, 1, 0, GUANGDONG)
    msg = AlarmAttachmentInfo("T" * 30, ident, "a" * 32, 0, (AttachmentItem("x.jpg", 5),))
    _, body = m.encode_body(msg, False)
    assert m.decode_body(0x1210, body, False) == msg


def test_file_assembly_out_of_order_and_gaps() -> None:
    data = bytes(range(256)) * 4
    asm = FileAssembly("a.jpg", 0, len(data), 10_000)
    for off in (512, 0, 768):
        asm.add(off, data[off:off + 256])
    assert not asm.complete
    assert asm.missing() == [(256, 256)]
    asm.add(256, data[256:512])
    assert asm.complete and asm.content() == data
    assert asm.missing() == []


def test_file_assembly_refuses_what_does_not_fit() -> None:
    with pytest.raises(ProtocolError):
        FileAssembly("big", 2, 10_001, 10_000)
    with pytest.raises(ProtocolError):
        FileAssembly("empty", 2, 0, 10_000)
    asm = FileAssembly("a", 0, 10, 100)
    with pytest.raises(ProtocolError):
        asm.add(8, b"abc")  # past the announced size
    with pytest.raises(ProtocolError):
        asm.content()  # incomplete files never come out


def test_stream_splits_frames_and_chunks_in_any_cut() -> None:
    frame = bytes.fromhex("7e121100000000000000000000017e")
    chunk = encode_chunk(FileChunk("f.jpg", 4, b"\x7e\x7d\x30\x31\x63\x64" * 50))
    stream = frame + chunk + frame
    rng = random.Random(7)
    for _ in range(50):
        s = AttachmentStream()
        out: list[tuple[str, object]] = []
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 40)
            out += s.feed(stream[pos:pos + step])
            pos += step
        assert [k for k, _ in out] == ["frame", "chunk", "frame"]
        assert out[1][1] == FileChunk("f.jpg", 4, b"\x7e\x7d\x30\x31\x63\x64" * 50)
        assert s.buffered == 0


def test_stream_bounds() -> None:
    with pytest.raises(ProtocolError):
        AttachmentStream(max_chunk=100).feed(encode_chunk(FileChunk("x", 0, b"a" * 101)))
    with pytest.raises(ProtocolError):
        AttachmentStream(max_frame=10).feed(b"\x7e" + b"a" * 20)
    with pytest.raises(ProtocolError):
        AttachmentStream().feed(b"GET / HTTP/1.1\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_stream_never_crashes(data: bytes) -> None:
    s = AttachmentStream(max_chunk=1000, max_frame=500)
    try:
        s.feed(data)
    except ProtocolError:
        pass
    assert s.buffered <= 1000 + 62


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0x64, 0x65, 0x66, 0x67]), st.binary(max_size=120))
def test_fuzz_alarm_items_never_raise(item: int, value: bytes) -> None:
    assert isinstance(decode_alarm_item(item, value), dict)
    alarm_identification({item: value})


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([0x9208, 0x1210, 0x1211, 0x1212, 0x9212]), st.binary(max_size=200))
def test_fuzz_signalling_raises_only_protocol_errors(msg_id: int, body: bytes) -> None:
    try:
        m.decode_body(msg_id, body, False)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 400)),
                                      max_size=30))
def test_fuzz_assembly_missing_is_the_complement(size: int,
                                                  chunks: list[tuple[int, int]]) -> None:
    asm = FileAssembly("f", 0, size, 3000)
    covered = [False] * size
    for off, n in chunks:
        if off + n > size:
            continue
        asm.add(off, b"x" * n)
        for i in range(off, off + n):
            covered[i] = True
    gaps = asm.missing()
    holes = [False] * size
    for off, n in gaps:
        for i in range(off, off + n):
            holes[i] = True
    assert all(c != h for c, h in zip(covered, holes, strict=True))
    assert asm.complete == all(covered)
