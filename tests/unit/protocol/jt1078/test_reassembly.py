"""FrameAssembler: real split frames, gaps, orphans, interleaving and resets."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import av
import pytest

from fleetcam.protocol.jt1078 import (
    DataType,
    FrameAssembler,
    FrameDropped,
    MediaFrame,
    Packet,
    PayloadType,
    nal_type,
    packetize,
    parse_packet,
    split_annexb,
)

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt1078.json").read_text())
FRAMES = VECTORS["frames"]


def _parse(hexes: list[str]) -> list[Packet]:
    return [(parse_packet(bytes.fromhex(h)) or pytest.fail("incomplete"))[0] for h in hexes]


def _push_all(assembler: FrameAssembler, packets: list[Packet]) -> list[Any]:
    """Non-None results (typed Any: the tests check each one's type)."""
    return [r for p in packets if (r := assembler.push(p)) is not None]


@pytest.mark.parametrize("vector", FRAMES, ids=[f["name"] for f in FRAMES])
def test_real_split_frame(vector: dict[str, Any]) -> None:
    packets = _parse(vector["packets"])
    expect = vector["expect"]
    assert [p.subpackage for p in packets] == expect["subpackages"]
    assert [p.sequence for p in packets] == expect["sequences"]
    assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
    results = _push_all(FrameAssembler(), packets)
    assert len(results) == 1 and isinstance(frame := results[0], MediaFrame)
    assert frame.data == b"".join(p.payload for p in packets)
    assert (frame.sim, frame.channel, frame.data_type, frame.payload_type, frame.timestamp) == (
        expect["sim"], expect["channel"], expect["data_type"], expect["payload_type"],
        expect["timestamp"],
    )  # fmt: skip
    assert len(frame.data) == expect["size"]
    assert [nal_type(frame.payload_type, n) for n in split_annexb(frame.data)] == expect[
        "nal_types"
    ]


def test_real_i_frame_decodes_with_pyav() -> None:
    frame = _push_all(FrameAssembler(), _parse(FRAMES[0]["packets"]))[0]
    assert isinstance(frame, MediaFrame)
    codec = av.CodecContext.create("h264", "r")
    pictures = [pic for pkt in codec.parse(frame.data + b"\x00\x00\x00\x01\x09\xf0")
                for pic in codec.decode(pkt)] + list(codec.decode(None))  # fmt: skip
    assert len(pictures) == 1
    assert (pictures[0].width, pictures[0].height) == (352, 288)
    assert pictures[0].key_frame


def _split(data: bytes, seq: int = 100, **kw: Any) -> list[Packet]:
    args: dict[str, Any] = {
        "sim": "013912345678", "channel": 1, "data_type": DataType.I_FRAME,
        "payload_type": PayloadType.H264, "timestamp": 5000, "sequence_start": seq,
    } | kw  # fmt: skip
    return packetize(data, **args)


DATA = bytes(range(256)) * 12  # 3072 bytes: FIRST, MIDDLE, MIDDLE, LAST


def test_sequence_gap_drops_the_frame_and_the_rest_of_it() -> None:
    packets = _split(DATA)
    assert [p.subpackage for p in packets] == [1, 3, 3, 2]
    assembler = FrameAssembler()
    results = _push_all(assembler, [packets[0], packets[2], packets[3]])
    assert len(results) == 1 and isinstance(results[0], FrameDropped)
    assert results[0].reason == "sequence gap" and results[0].packets == 1
    assert assembler.dropped == 1
    # The next frame is assembled normally.
    assert _push_all(assembler, _split(b"next", seq=104))[0].data == b"next"


def test_continuation_without_first_is_reported_once() -> None:
    packets = _split(DATA)
    assembler = FrameAssembler()
    results = _push_all(assembler, packets[1:])
    assert [type(r) for r in results] == [FrameDropped]
    assert results[0].reason == "no first packet"
    frame = _push_all(assembler, _split(DATA, seq=104))
    assert [type(r) for r in frame] == [MediaFrame] and frame[0].data == DATA


def test_new_first_before_last_drops_the_old_partial() -> None:
    old, new = _split(DATA), _split(DATA[::-1], seq=104)
    results = _push_all(FrameAssembler(), old[:2] + new)
    assert isinstance(results[0], FrameDropped) and results[0].packets == 2
    assert isinstance(results[1], MediaFrame) and results[1].data == DATA[::-1]


def test_atomic_frame_is_emitted_and_a_pending_partial_only_counted() -> None:
    assembler = FrameAssembler()
    partial = _split(DATA)[:2]
    atomic = _split(b"small", seq=102, data_type=DataType.P_FRAME)
    results = _push_all(assembler, partial + atomic)
    assert results == [MediaFrame("013912345678", 1, DataType.P_FRAME, 98, 5000, b"small")]
    assert assembler.dropped == 1


def test_shared_counter_audio_interleaved_inside_a_video_frame() -> None:
    video = _split(DATA, seq=10)
    audio = _split(b"\x01" * 160, seq=12, data_type=DataType.AUDIO, payload_type=PayloadType.G711A)
    # One counter for both: V10 V11 A12 V13 V14 V15 (the video pieces renumbered).
    video = [dataclasses.replace(p, sequence=s) for p, s in zip(video, (10, 11, 13, 14))]
    results = _push_all(FrameAssembler(), video[:2] + audio + video[2:])
    assert [r.data_type for r in results] == [DataType.AUDIO, DataType.I_FRAME]
    assert results[1].data == DATA


def test_separate_counters_for_audio_and_video() -> None:
    video = _split(DATA, seq=65534)  # wraps: 65534, 65535, 0, 1
    audio = _split(b"\x02" * 160, seq=7, data_type=DataType.AUDIO, payload_type=PayloadType.G711A)
    results = _push_all(FrameAssembler(), video[:3] + audio + video[3:])
    assert [type(r) for r in results] == [MediaFrame, MediaFrame]
    assert results[1].data == DATA


def test_lost_packet_with_shared_counter_is_still_a_gap() -> None:
    video = [dataclasses.replace(p, sequence=s) for p, s in zip(_split(DATA), (10, 11, 13, 14))]
    results = _push_all(FrameAssembler(), video)  # 12 (audio) never arrived
    assert [type(r) for r in results] == [FrameDropped]


def test_timestamp_change_inside_a_frame_drops_it() -> None:
    packets = _split(DATA)
    packets[2] = dataclasses.replace(packets[2], timestamp=5040)
    results = _push_all(FrameAssembler(), packets)
    assert [type(r) for r in results] == [FrameDropped]


def test_streams_are_separate_per_sim_and_channel() -> None:
    a = _split(DATA, channel=1)
    b = _split(DATA[::-1], channel=2, seq=500)
    c = _split(DATA, sim="013900000000", seq=900)
    interleaved = [p for trio in zip(a, b, c) for p in trio]
    results = _push_all(FrameAssembler(), interleaved)
    assert sorted((r.sim, r.channel, r.data) for r in results) == sorted(
        [("013912345678", 1, DATA), ("013912345678", 2, DATA[::-1]), ("013900000000", 1, DATA)]
    )


def test_frame_size_cap() -> None:
    assembler = FrameAssembler(max_frame_bytes=2000)
    results = _push_all(assembler, _split(DATA))
    assert [type(r) for r in results] == [FrameDropped]
    assert "exceeds" in results[0].reason


def test_reset_drops_partials_of_that_channel_only() -> None:
    assembler = FrameAssembler()
    one, two = _split(DATA, channel=1), _split(DATA, channel=2, seq=300)
    _push_all(assembler, one[:2] + two[:2])
    dropped = assembler.reset(channel=1)
    assert [(d.channel, d.reason, d.packets) for d in dropped] == [(1, "stream reset", 2)]
    # Channel 1's remaining pieces are orphans now; channel 2 completes.
    results = _push_all(assembler, one[2:] + two[2:])
    assert [type(r) for r in results] == [FrameDropped, MediaFrame]
    assert assembler.reset() == []


def test_too_many_partials_drops_the_oldest() -> None:
    assembler = FrameAssembler(max_partials=2)
    firsts = [_split(DATA, channel=ch, seq=ch * 10)[0] for ch in (1, 2, 3)]
    results = _push_all(assembler, firsts)
    assert [(r.channel, r.reason) for r in results] == [(1, "too many frames under assembly")]
