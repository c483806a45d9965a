"""NAL unit splitting and keyframe detection (on PyAV-encoded clips), and packetize."""
from __future__ import annotations

import pytest

from fleetcam.media.testpattern import EncodedFrame, encode_pattern
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078 import (
    MAX_PAYLOAD,
    DataType,
    PayloadType,
    Subpackage,
    encode_packet,
    is_keyframe,
    nal_type,
    packetize,
    parse_packet,
    split_annexb,
)

START = 1_778_300_000.0


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    return {
        codec: list(encode_pattern(codec, 320, 240, start_time=START, seconds=2.0, bitrate=300_000))
        for codec in ("h264", "hevc")
    }


def test_split_annexb_handles_both_start_codes_and_trailing_zeros() -> None:
    data = b"junk\x00\x00\x00\x01\x67\x4d\x00\x00\x00\x01\x68\xee\x00\x00\x01\x65\x88\x00\x00"
    assert split_annexb(data) == [b"\x67\x4d", b"\x68\xee", b"\x65\x88"]
    assert split_annexb(b"no start code") == []
    assert split_annexb(b"\x00\x00\x01") == []


def test_nal_type_per_codec() -> None:
    assert nal_type(PayloadType.H264, b"\x65\x88") == 5
    assert nal_type("h264", b"\x67") == 7
    assert nal_type(PayloadType.H265, b"\x40\x01") == 32  # VPS
    assert nal_type("hevc", b"\x26\x01") == 19  # IDR_W_RADL
    with pytest.raises(ProtocolError):
        nal_type(98, b"")
    with pytest.raises(ValueError):
        nal_type(PayloadType.AVS, b"\x00")
    with pytest.raises(ValueError):
        nal_type("vp8", b"\x00")


@pytest.mark.parametrize(
    ("codec", "pt", "keyframe_types", "parameter_sets"),
    [("h264", 98, {5}, {7, 8}), ("hevc", 99, {19, 20}, {32, 33, 34})],
)
def test_encoded_clip_nals_and_keyframes(
    clips: dict[str, list[EncodedFrame]],
    codec: str,
    pt: int,
    keyframe_types: set[int],
    parameter_sets: set[int],
) -> None:
    frames = clips[codec]
    assert len(frames) == 50
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 25]  # one per second
    for frame in frames:
        types = [nal_type(pt, nal) for nal in split_annexb(frame.data)]
        assert is_keyframe(pt, frame.data) is frame.keyframe
        assert is_keyframe(codec, frame.data) is frame.keyframe
        if frame.keyframe:
            # parameter sets repeated before each keyframe: a decoder can join here
            assert parameter_sets <= set(types) and set(types) & keyframe_types
            first_picture = min(i for i, t in enumerate(types) if t in keyframe_types)
            assert parameter_sets <= set(types[:first_picture])
        else:
            assert not (set(types) & (keyframe_types | parameter_sets))


def test_is_keyframe_on_data_without_start_codes() -> None:
    assert not is_keyframe("h264", b"")
    assert not is_keyframe("h264", b"\x00\x00\x01")
    assert is_keyframe("h264", b"\x00\x00\x01\x65")


def _packetize(data: bytes, **kw: object) -> list:  # type: ignore[type-arg]
    args: dict[str, object] = {
        "sim": "013912345678", "channel": 1, "data_type": DataType.I_FRAME,
        "payload_type": PayloadType.H264, "timestamp": 1234, "sequence_start": 0,
    } | kw  # fmt: skip
    return packetize(data, **args)  # type: ignore[arg-type]


def test_packetize_splits_with_consecutive_wrapping_sequences() -> None:
    data = bytes(range(256)) * 8  # 2048 bytes -> 950 + 950 + 148
    packets = _packetize(data, sequence_start=65535, last_i_interval=1000, last_frame_interval=40)
    assert [p.subpackage for p in packets] == [Subpackage.FIRST, Subpackage.MIDDLE, Subpackage.LAST]
    assert [len(p.payload) for p in packets] == [MAX_PAYLOAD, MAX_PAYLOAD, 148]
    assert [p.sequence for p in packets] == [65535, 0, 1]
    assert [p.marker for p in packets] == [False, False, True]
    assert {(p.timestamp, p.last_i_interval, p.last_frame_interval) for p in packets} == {
        (1234, 1000, 40)
    }
    assert b"".join(p.payload for p in packets) == data
    for p in packets:
        raw = encode_packet(p)
        assert parse_packet(raw) == (p, len(raw))


def test_packetize_small_audio_transparent_and_empty() -> None:
    (audio,) = _packetize(b"x" * 320, data_type=DataType.AUDIO, payload_type=PayloadType.G711A)
    assert audio.subpackage is Subpackage.ATOMIC and audio.marker
    assert (audio.timestamp, audio.last_i_interval, audio.last_frame_interval) == (1234, None, None)
    (data,) = _packetize(b"x", data_type=DataType.TRANSPARENT, payload_type=PayloadType.TRANSPARENT)
    assert data.timestamp is None
    (empty,) = _packetize(b"")
    assert empty.payload == b"" and empty.subpackage is Subpackage.ATOMIC
    assert (empty.last_i_interval, empty.last_frame_interval) == (0, 0)


def test_packetize_exact_multiple_and_payload_limit() -> None:
    assert len(_packetize(bytes(1900))) == 2
    assert len(_packetize(bytes(1900), max_payload=100)) == 19
    with pytest.raises(ValueError):
        _packetize(b"x", max_payload=951)
