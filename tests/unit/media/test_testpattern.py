"""The burnt-in-time test pattern, and the full loop through the JT/T 1078 codec and back."""
from __future__ import annotations

import io
import random

import av
import pytest

from fleetcam.media.testpattern import (
    EncodedFrame,
    encode_pattern,
    pattern_frame,
    read_burnt_time,
    snapshot_jpeg,
)
from fleetcam.protocol.jt1078 import (
    NEED_DATA,
    DataType,
    FrameAssembler,
    Jt1078Decoder,
    MediaFrame,
    Packet,
    PayloadType,
    encode_packet,
    packetize,
)

START = 1_778_300_000.123  # 2026-05-09T04:13:20.123Z
PT = {"h264": PayloadType.H264, "hevc": PayloadType.H265}


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    return {codec: list(encode_pattern(codec, start_time=START)) for codec in ("h264", "hevc")}


def _decode(codec: str, chunks: list[bytes]) -> list[av.VideoFrame]:
    ctx = av.CodecContext.create(codec, "r")
    pictures = []
    for chunk in [*chunks, None]:
        for packet in ctx.parse(chunk):
            pictures.extend(ctx.decode(packet))
    pictures.extend(ctx.decode(None))
    return pictures


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_clip_shape_and_burnt_times(clips: dict[str, list[EncodedFrame]], codec: str) -> None:
    frames = clips[codec]
    assert len(frames) == 50
    assert [f.pts_ms for f in frames] == [40 * i for i in range(50)]
    assert all(f.time == pytest.approx(START + i / 25, abs=1e-9) for i, f in enumerate(frames))
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 25]
    pictures = _decode(codec, [f.data for f in frames])
    assert len(pictures) == 50
    assert (pictures[0].width, pictures[0].height) == (640, 360)
    for picture, frame in zip(pictures, frames):
        burnt = read_burnt_time(picture)
        assert burnt is not None and abs(burnt - frame.time) < 0.001


def test_decoder_can_join_at_a_later_keyframe(clips: dict[str, list[EncodedFrame]]) -> None:
    for codec, frames in clips.items():
        pictures = _decode(codec, [f.data for f in frames[25:]])
        assert len(pictures) == 25, codec
        assert read_burnt_time(pictures[0]) == pytest.approx(frames[25].time, abs=0.001)


def test_h264_carries_about_the_requested_bitrate(clips: dict[str, list[EncodedFrame]]) -> None:
    bits = sum(len(f.data) for f in clips["h264"]) * 8
    assert 0.75e6 < bits / 2.0 < 1.25e6


def test_digits_roll_over_midnight_and_the_date() -> None:
    start = 20_000 * 86_400 - 0.06  # 2024-10-04 23:59:59.940
    frames = list(encode_pattern("h264", 320, 240, start_time=start, seconds=0.16, bitrate=400_000))
    pictures = _decode("h264", [f.data for f in frames])
    assert [read_burnt_time(p) for p in pictures] == pytest.approx(
        [start + i / 25 for i in range(4)], abs=0.001
    )


def test_unpatterned_frames_read_as_none() -> None:
    blank = av.VideoFrame(640, 360, "yuv420p")
    for plane in blank.planes:
        plane.update(bytes([16 if plane is blank.planes[0] else 128]) * plane.buffer_size)
    assert read_burnt_time(blank) is None
    assert read_burnt_time(av.VideoFrame(64, 48, "yuv420p")) is None  # too small for a pattern


def test_pattern_frame_reads_back_exactly() -> None:
    assert read_burnt_time(pattern_frame(640, 360, START)) == START
    assert read_burnt_time(pattern_frame(320, 240, 0.0).reformat(format="rgb24")) == 0.0
    with pytest.raises(ValueError):
        pattern_frame(100, 50, START)


def test_snapshot_jpeg() -> None:
    jpeg = snapshot_jpeg(640, 360, START)
    assert jpeg[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(jpeg)) as container:
        picture = next(container.decode(video=0))
    assert (picture.width, picture.height) == (640, 360)
    assert read_burnt_time(picture) == pytest.approx(START, abs=0.001)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_full_loop_through_jt1078(clips: dict[str, list[EncodedFrame]], codec: str) -> None:
    """testpattern -> packetize -> bytes cut anywhere -> decoder -> assembler -> PyAV."""
    frames = clips[codec]
    packets: list[Packet] = []
    seq = 65000  # wraps during the clip
    for frame in frames:
        pieces = packetize(
            frame.data,
            sim="013912345678",
            channel=1,
            data_type=DataType.I_FRAME if frame.keyframe else DataType.P_FRAME,
            payload_type=PT[codec],
            timestamp=round(frame.time * 1000),
            sequence_start=seq,
            last_frame_interval=40,
        )
        seq = (seq + len(pieces)) & 0xFFFF
        packets.extend(pieces)
    wire = b"".join(encode_packet(p) for p in packets)
    rng = random.Random(1078)
    cuts = sorted(rng.sample(range(1, len(wire)), 400))
    decoder, assembler = Jt1078Decoder(), FrameAssembler()
    out: list[MediaFrame] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)]):
        decoder.receive_data(wire[a:b])
        while (event := decoder.next_event()) is not NEED_DATA:
            assert isinstance(event, Packet)
            result = assembler.push(event)
            if result is not None:
                assert isinstance(result, MediaFrame)
                out.append(result)
    assert [f.data for f in out] == [f.data for f in frames]
    assert [f.timestamp for f in out] == [round(f.time * 1000) for f in frames]
    assert assembler.dropped == 0
    pictures = _decode(codec, [f.data for f in out])
    assert len(pictures) == len(frames)
    for picture, frame in zip(pictures, frames):
        burnt = read_burnt_time(picture)
        assert burnt is not None and abs(burnt - frame.time) < 0.001
