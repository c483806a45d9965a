"""Framing: escaping, the check code and the bounded frame splitter."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError
from fleetcam.protocol.jt808.framing import FrameSplitter, checksum, escape, unescape, wrap


def test_unescape_traccar_frame_decoder_vector() -> None:
    # traccar Jt808FrameDecoderTest: 7e307d02087d01557e -> 7e307e087d557e
    assert unescape(bytes.fromhex("307d02087d0155")) == bytes.fromhex("307e087d55")


def test_escape_is_the_inverse() -> None:
    assert escape(bytes.fromhex("307e087d55")) == bytes.fromhex("307d02087d0155")
    assert escape(b"\x7d\x02") == b"\x7d\x01\x02"  # 7D first, or 7D 02 would read back as 7E


@given(st.binary(max_size=200))
def test_escape_round_trip(data: bytes) -> None:
    escaped = escape(data)
    assert b"\x7e" not in escaped
    assert unescape(escaped, strict=True) == data


@pytest.mark.parametrize("raw, lenient", [
    ("307da055", "307da055"),      # 7D A0 (Traccar vector): both bytes kept
    ("30007d", "30007d"),          # lone 7D before the delimiter (go-jt808 heartbeat)
    ("7d7d02", "7d7e"),            # illegal 7D, then a legal 7D 02
    ("7d0102", "7d02"),            # 7D 01 -> 7D; the 02 after it is data
])
def test_illegal_escape_policy(raw: str, lenient: str) -> None:
    assert unescape(bytes.fromhex(raw)) == bytes.fromhex(lenient)
    if raw != "7d0102":
        with pytest.raises(ProtocolError):
            unescape(bytes.fromhex(raw), strict=True)


@given(st.binary(max_size=300))
def test_checksum_is_xor_of_all_bytes(data: bytes) -> None:
    expected = 0
    for byte in data:
        expected ^= byte
    assert checksum(data) == expected


def test_wrap_heartbeat_matches_go_jt808() -> None:
    payload = bytes.fromhex("000200000123456789010000")
    assert wrap(payload).hex() == "7e0002000001234567890100008a7e"


def _split(*chunks: bytes, max_frame: int = 8192) -> list[bytes]:
    splitter = FrameSplitter(max_frame)
    frames = []
    for chunk in chunks:
        splitter.feed(chunk)
        while (frame := splitter.next_frame()) is not None:
            frames.append(frame)
    return frames


def test_leading_garbage_is_skipped() -> None:
    splitter = FrameSplitter()
    splitter.feed(bytes.fromhex("24247e0102037e"))
    assert splitter.next_frame() == bytes.fromhex("010203")
    assert splitter.garbage == 2


def test_separate_and_shared_delimiters() -> None:
    assert _split(bytes.fromhex("7e01027e7e03047e")) == [b"\x01\x02", b"\x03\x04"]
    assert _split(bytes.fromhex("7e01027e03047e")) == [b"\x01\x02", b"\x03\x04"]


def test_frame_split_byte_by_byte() -> None:
    stream = bytes.fromhex("ff7e01027e7e03047e")
    assert _split(*(stream[i:i + 1] for i in range(len(stream)))) == [b"\x01\x02", b"\x03\x04"]


def test_garbage_without_delimiter_is_not_buffered() -> None:
    splitter = FrameSplitter()
    splitter.feed(b"x" * 100_000)
    assert not splitter.buffer and splitter.garbage == 100_000


def test_oversized_frame_is_dropped() -> None:
    splitter = FrameSplitter(max_frame=16)
    splitter.feed(b"\x7e" + b"\x01" * 40)
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()
    assert not splitter.buffer
    splitter.feed(bytes.fromhex("7e01027e"))
    assert splitter.next_frame() == b"\x01\x02"
