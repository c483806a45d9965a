"""The DVR's fMP4: fragments from pattern frames decode in PyAV, as stored and re-timed."""
from __future__ import annotations

import io

import av
import pytest

from fleetcam.errors import CorruptMedia
from fleetcam.media import fmp4
from fleetcam.media.dvr import DvrFragmenter, Fragment, HevcToH264
from fleetcam.media.testpattern import EncodedFrame, encode_pattern

START = 1_778_300_000.0
FPS = 25


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    return {codec: list(encode_pattern(codec, 320, 240, FPS, start_time=START, seconds=4.2))
            for codec in ("h264", "hevc")}


def _fragments(frames: list[EncodedFrame], times: list[int] | None = None) -> list[Fragment]:
    f = DvrFragmenter()
    out: list[Fragment] = []
    for t, fr in zip(times or [round(x.time * 1000) for x in frames], frames):
        out += f.push(fr.data, t, fr.keyframe)
    return out + f.flush()


def _file(frags: list[Fragment], rebase: int | None = None) -> bytes:
    parts = [frags[0].init]
    for i, fr in enumerate(frags, start=1):
        data = bytearray(fr.data)
        fmp4.rewrite_fragment_header(data, i, fr.start_ms - (rebase or 0))
        parts.append(bytes(data))
    return b"".join(parts)


def _decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format="mp4") as c:
        return list(c.decode(video=0))


def test_one_fragment_per_gop_with_utc_times(clips):
    frames = clips["h264"]
    frags = _fragments(frames)
    assert [f.frames for f in frags] == [25, 25, 25, 25, 5]
    assert all(f.keyframe for f in frags)
    assert frags[0].start_ms == round(START * 1000)
    for a, b in zip(frags, frags[1:]):
        assert b.start_ms == a.start_ms + a.duration_ms  # contiguous in time
    assert [f.discontinuity for f in frags] == [True, False, False, False, False]
    assert (frags[0].width, frags[0].height, frags[0].codec[:5]) == (320, 240, "avc1.")
    info = fmp4.parse_fragment(frags[1].data[:frags[1].moof_size])
    assert info.base_ms == frags[1].start_ms and len(info.sizes) == 25
    assert info.keyframes[0] and not any(info.keyframes[1:])


def test_init_plus_fragments_decode_in_ffmpeg(clips):
    frags = _fragments(clips["h264"])
    pictures = _decode(_file(frags, rebase=frags[0].start_ms))
    assert len(pictures) == len(clips["h264"])
    assert (pictures[0].width, pictures[0].height) == (320, 240)
    assert pictures[25].time == pytest.approx(1.0, abs=0.002)


def test_any_run_of_fragments_decodes_after_the_init(clips):
    frags = _fragments(clips["h264"])
    assert len(_decode(_file(frags[2:4], rebase=frags[2].start_ms))) == 50


def test_hevc_is_transcoded_to_h264(clips):
    t = HevcToH264(gop_ms=1000)
    f = DvrFragmenter()
    frags: list[Fragment] = []
    for fr in clips["hevc"]:
        for data, ms, key in t.push(fr.data, round(fr.time * 1000), fr.keyframe):
            frags += f.push(data, ms, key)
    for data, ms, key in t.flush():
        frags += f.push(data, ms, key)
    frags += f.flush()
    assert sum(x.frames for x in frags) == len(clips["hevc"])
    assert len(_decode(_file(frags, rebase=frags[0].start_ms))) == len(clips["hevc"])


def test_a_gap_starts_a_new_timeline_on_the_next_keyframe(clips):
    frames = clips["h264"]
    times = [round(x.time * 1000) for x in frames]
    times[60:] = [t + 5000 for t in times[60:]]  # 5 s pause after frame 59
    frags = _fragments(frames, times)
    assert [f.discontinuity for f in frags] == [True, False, False, True, False]
    assert frags[2].frames == 10  # frames 50-59, closed at the gap
    assert frags[3].start_ms == times[75]  # 60-74 dropped: no keyframe after the gap
    assert sum(f.frames for f in frags) == 25 + 25 + 10 + 25 + 5


def test_non_h264_is_corrupt_media(clips):
    with pytest.raises(CorruptMedia):
        DvrFragmenter().push(clips["hevc"][0].data, 0, True)
    with pytest.raises(CorruptMedia):
        DvrFragmenter().push(b"garbage", 0, True)


def test_frames_before_the_first_keyframe_are_dropped(clips):
    f = DvrFragmenter()
    assert f.push(clips["h264"][3].data, 0, False) == []
    assert f.dropped == 1


def test_sps_dimensions_match_ffmpeg():
    for w, h in ((320, 240), (1280, 720), (1920, 1080), (352, 288)):
        frame = next(iter(encode_pattern("h264", w, h, FPS, start_time=START, seconds=0.1)))
        from fleetcam.protocol.jt1078.nal import split_annexb

        sps = next(n for n in split_annexb(frame.data) if n[0] & 0x1F == 7)
        assert fmp4.h264_dimensions(sps) == (w, h)
