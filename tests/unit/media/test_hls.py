"""HlsSegmenter: live pattern frames (H.264 and H.265) become MPEG-TS segments players decode."""
from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from fleetcam.errors import CorruptMedia
from fleetcam.media.hls import HlsSegmenter, Segment
from fleetcam.media.testpattern import EncodedFrame, encode_pattern, read_burnt_time

START = 1_778_300_000.0  # 2026-05-09T04:13:20Z
FPS = 25
AUD = b"\x00\x00\x00\x01\x09\xf0"  # the access unit delimiter the TS muxer puts first


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    """3.5 s at 320x240, a keyframe each second (frames 0, 25, 50, 75)."""
    return {
        codec: list(encode_pattern(codec, 320, 240, FPS, start_time=START, seconds=3.5))
        for codec in ("h264", "hevc")
    }


def _ms(frame: EncodedFrame) -> int:
    return round(frame.time * 1000)


def _segment(codec: str, frames: list[EncodedFrame], times: list[int] | None = None,
             **kwargs: object) -> tuple[HlsSegmenter, list[Segment]]:  # fmt: skip
    seg = HlsSegmenter(codec, **kwargs)  # type: ignore[arg-type]
    out: list[Segment] = []
    for t, f in zip(times or [_ms(f) for f in frames], frames):
        out += seg.push(f.data, t, f.keyframe)
    out += seg.flush()
    return seg, out


def _decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format="mpegts") as c:
        return list(c.decode(video=0))


def _packets(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data), format="mpegts") as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_segments_start_on_keyframes_and_decode_alone(clips, codec):
    _, segments = _segment(codec, clips[codec])
    assert [s.sequence for s in segments] == [0, 1, 2, 3]
    assert [s.frames for s in segments] == [25, 25, 25, 13]
    assert [s.duration for s in segments] == pytest.approx([1.0, 1.0, 1.0, 0.52])
    for s in segments:
        assert s.data[0] == 0x47 and len(s.data) % 188 == 0  # whole TS packets
        with av.open(io.BytesIO(s.data), format="mpegts") as c:
            assert c.streams.video[0].codec_context.name == "h264"  # H.265 → H.264
            assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
            pictures = list(c.decode(video=0))
        assert len(pictures) == s.frames
        assert pictures[0].key_frame
        assert (pictures[0].width, pictures[0].height) == (320, 240)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_first_frame_shows_its_start_time(clips, codec):
    _, segments = _segment(codec, clips[codec])
    for s in segments:
        first = _decode(s.data)[0]
        assert read_burnt_time(first) == pytest.approx(s.start_ms / 1000, abs=0.0005)
        assert s.start_ms == round(START * 1000) + 1000 * s.sequence
        assert first.pts == 90 * 1000 * s.sequence  # 90 kHz, from the first keyframe


def test_h264_is_copied_frame_for_frame(clips):
    frames = clips["h264"]
    seg, segments = _segment("h264", frames)
    assert not seg.transcoding and not seg.long_gop and seg.dropped == 0
    assert (seg.width, seg.height) == (320, 240)
    packets = [p for s in segments for p in _packets(s.data)]
    assert len(packets) == len(frames) == sum(s.frames for s in segments)
    assert packets == [AUD + f.data for f in frames]


def test_hevc_keeps_every_frame(clips):
    seg, segments = _segment("hevc", clips["hevc"])
    assert seg.transcoding and seg.codec == "hevc"
    assert sum(len(_decode(s.data)) for s in segments) == len(clips["hevc"])


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_leading_frames_before_a_keyframe_are_dropped(clips, codec):
    frames = clips[codec][10:]  # starts with 15 P-frames
    seg, segments = _segment(codec, frames)
    assert seg.dropped == 15
    assert sum(s.frames for s in segments) == len(frames) - 15
    first = _decode(segments[0].data)[0]
    assert first.key_frame and first.pts == 0
    assert segments[0].start_ms == _ms(frames[15])
    assert read_burnt_time(first) == pytest.approx(frames[15].time, abs=0.0005)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_segments_concatenate_into_one_stream(clips, codec):
    _, segments = _segment(codec, clips[codec])
    pictures = _decode(b"".join(s.data for s in segments))
    assert len(pictures) == len(clips[codec])
    pts = [p.pts for p in pictures]
    assert pts == sorted(set(pts)) and pts[0] == 0
    assert pts == [f.pts_ms * 90 for f in clips[codec]]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_ffmpeg_hls_demuxer_plays_a_playlist(clips, codec, tmp_path: Path):
    _, segments = _segment(codec, clips[codec])
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
             "#EXT-X-MEDIA-SEQUENCE:0"]  # fmt: skip
    for s in segments:
        (tmp_path / f"{s.sequence}.ts").write_bytes(s.data)
        lines += [f"#EXTINF:{s.duration:.3f},", f"{s.sequence}.ts"]
    (tmp_path / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    with av.open(str(tmp_path / "index.m3u8")) as c:
        assert c.format.name == "hls"
        pictures = list(c.decode(video=0))
    assert len(pictures) == len(clips[codec])
    assert read_burnt_time(pictures[-1]) == pytest.approx(clips[codec][-1].time, abs=0.0005)


def test_target_and_gop_decide_the_cuts(clips):
    # 2 s target on a 1 s GOP: every other keyframe; transcoding cuts at the target too.
    for codec in ("h264", "hevc"):
        _, segments = _segment(codec, clips[codec], target=2.0)
        assert [s.frames for s in segments] == [50, 38]
        assert segments[0].duration == pytest.approx(2.0)


def test_jittery_timestamps_still_cut_on_the_keyframe(clips):
    frames = clips["h264"]
    times = [_ms(f) + (-7 if i % 25 == 0 and i else 3 * (i % 2)) for i, f in enumerate(frames)]
    _, segments = _segment("h264", frames, times)
    assert [s.frames for s in segments] == [25, 25, 25, 13]


def test_long_gop_copy_keeps_going_and_says_so():
    frames = list(encode_pattern("h264", 176, 120, FPS, start_time=START, seconds=6, gop=125))
    seg, segments = _segment("h264", frames, max_segment=4.0)
    assert seg.long_gop
    assert [s.frames for s in segments] == [125, 25]
    assert all(_decode(s.data)[0].key_frame for s in segments)


def test_transcoding_cuts_without_source_keyframes():
    frames = list(encode_pattern("hevc", 176, 120, FPS, start_time=START, seconds=3, gop=250))
    seg, segments = _segment("hevc", frames)
    assert not seg.long_gop
    assert [s.frames for s in segments] == [25, 25, 25]
    for s in segments:
        first = _decode(s.data)[0]
        assert first.key_frame
        assert read_burnt_time(first) == pytest.approx(s.start_ms / 1000, abs=0.0005)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_bad_timestamps_give_valid_increasing_segments(clips, codec):
    frames = clips[codec]
    times = [_ms(f) for f in frames]
    times[5] = times[4]  # repeated
    times[12] = times[10] - 30  # a step back
    times[40:] = [t - 3_600_000 for t in times[40:]]  # the device clock goes back an hour
    times[70:] = [t + 86_400_000 for t in times[70:]]  # and a day forward
    _, segments = _segment(codec, frames, times)
    assert sum(s.frames for s in segments) == len(frames)
    assert all(s.duration > 0 for s in segments)
    pictures = _decode(b"".join(s.data for s in segments))
    pts = [p.pts for p in pictures]
    assert len(pts) == len(frames) and all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] < 90 * 4000  # the timeline stayed continuous
    for s in segments:
        assert _decode(s.data)[0].key_frame


def test_garbage_is_corrupt_media(clips):
    frames = clips["h264"]
    junk = bytes(range(7, 256)) * 12  # no start code
    with pytest.raises(CorruptMedia):
        HlsSegmenter("h264").push(junk, 0, True)
    seg = HlsSegmenter("h264")
    for f in frames[:5]:
        seg.push(f.data, _ms(f), f.keyframe)
    with pytest.raises(CorruptMedia):
        seg.push(junk, _ms(frames[5]), False)
    # an SPS, PPS and IDR header with nothing decodable behind them
    fake = b"".join(b"\x00\x00\x00\x01" + bytes([t]) + junk[:200] for t in (0x67, 0x68, 0x65))
    with pytest.raises(CorruptMedia):
        HlsSegmenter("h264").push(fake, 0, True)
    fake_hevc = b"".join(b"\x00\x00\x00\x01" + bytes([t, 1]) + junk[:200]
                         for t in (0x40, 0x42, 0x44, 0x26))  # fmt: skip
    seg = HlsSegmenter("hevc")
    with pytest.raises(CorruptMedia):
        for n in range(60):
            seg.push(fake_hevc, n * 40, True)


@pytest.mark.parametrize(("codec", "other"), [("h264", "hevc"), ("hevc", "h264")])
def test_codec_change_mid_stream_is_corrupt_media(clips, codec, other):
    seg = HlsSegmenter(codec)
    for f in clips[codec][:30]:
        seg.push(f.data, _ms(f), f.keyframe)
    with pytest.raises(CorruptMedia, match="codec change"):
        seg.push(clips[other][0].data, _ms(clips[other][0]) + 1200, True)


def test_flush_without_a_keyframe_gives_nothing(clips):
    seg = HlsSegmenter("h264")
    for f in clips["h264"][1:10]:
        assert seg.push(f.data, _ms(f), f.keyframe) == []
    assert seg.flush() == [] and seg.dropped == 9
    with pytest.raises(ValueError):
        HlsSegmenter("vp8")
