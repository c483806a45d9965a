"""Message header: both layouts, version detection, subpackage fields."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808.framing import unescape
from fleetcam.protocol.jt808.header import Header, encode_header, parse_header


def _payload(frame_hex: str) -> bytes:
    """Unescaped header+body of a wire frame (delimiters and check code removed)."""
    return unescape(bytes.fromhex(frame_hex)[1:-1])[:-1]


def test_2013_header() -> None:
    # go-jt808 protocol/jt808/jt808_test.go, 2013 heartbeat
    header, body = parse_header(_payload("7e0002000001234567890100008a7e"))
    assert header == Header(0x0002, "012345678901", 0, False)
    assert body == b""


def test_2019_header() -> None:
    # go-jt808 protocol/jt808/jt808_test.go, 2019 heartbeat
    header, _ = parse_header(_payload("7e0002400001000000000172998417380000027e"))
    assert header == Header(0x0002, "00000000017299841738", 0, True, protocol_version=1)


def test_escape_inside_the_header() -> None:
    # go-jt808 t_0x0200_addition_extensions_test.go: body length 0x7E is sent as 7D 02
    frame = ("7E0200407D0201000000000202326095590A4F00002000004C100301E0D7F2073E6EAC0064021400"
             "142411271542300104000000CC020201D425040000000030010831010914040000007F15040000000"
             "1160400000001170200011803000709642F0000001F000201323201000035006401E0D40A073E6AC4"
             "241127154210FFFF69643030303033241127154217000500767E")
    header, body = parse_header(_payload(frame))
    assert (header.msg_id, header.version2019, header.phone) == (0x0200, True,
                                                                  "00000000020232609559")
    assert len(body) == 0x7E


def test_bit14_with_2013_layout_falls_back() -> None:
    # SmallChi/JT808 JT808_0x0200Test.Test5_3: bit 14 set, 6-byte phone, no version byte
    header, body = parse_header(_payload("7E0102400C01003000068109024A3130303330303030363831857E"))
    assert header.version2019 is False
    assert header.phone == "010030000681"
    assert len(body) == 12


def test_subpackage_fields() -> None:
    # SmallChi/JT808 JT808_0x1205Test.Test4, second part
    frame = ("7E1205203804066657506200EC000200020120121900163320121900360700000000000000000001"
             "010F0CE4CD0120121900002220121900163300000000000000000001010C6F9E7B5D7E")
    header, body = parse_header(_payload(frame))
    assert (header.packet_total, header.packet_index, header.serial) == (2, 2, 0xEC)
    assert len(body) == 0x38


def test_length_mismatch_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        parse_header(bytes.fromhex("0100002c012345") + bytes(10))
    with pytest.raises(ProtocolError):
        parse_header(b"\x00" * 5)


headers = st.builds(
    Header,
    msg_id=st.integers(0, 0xFFFF),
    phone=st.just(""),
    serial=st.integers(0, 0xFFFF),
    version2019=st.booleans(),
    protocol_version=st.integers(0, 255),
    encryption=st.sampled_from([0, 1]),
    packet_total=st.none() | st.integers(1, 0xFFFF),
)


@given(headers, st.integers(0, 1023), st.data())
def test_round_trip(header: Header, length: int, data: st.DataObject) -> None:
    digits = 20 if header.version2019 else 12
    phone = data.draw(st.text("0123456789", min_size=digits, max_size=digits))
    header = replace(header, phone=phone,
                     protocol_version=header.protocol_version if header.version2019 else 1)
    if header.packet_total is not None:
        header = replace(header, packet_index=data.draw(st.integers(1, header.packet_total)))
    body = bytes(length)
    assert parse_header(encode_header(header, length) + body) == (header, body)


def test_short_phone_is_left_padded() -> None:
    head = encode_header(Header(2, "14419999999", 1, True), 0)
    assert parse_header(head)[0].phone == "00000000014419999999"
    head = encode_header(Header(2, "00000000014419999999", 1, False), 0)
    assert parse_header(head)[0].phone == "014419999999"
    with pytest.raises(ProtocolError):
        encode_header(Header(2, "1234567890123", 1, False), 0)
    with pytest.raises(ProtocolError):
        encode_header(Header(2, "1", 1, False), 1024)
