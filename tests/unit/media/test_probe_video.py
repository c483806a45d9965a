"""probe_video: stream properties and a ≤320 px JPEG preview from the first keyframe."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import pytest

from fleetcam.errors import CorruptMedia
from fleetcam.media.probe import THUMB_MAX, _thumbnail, probe_video
from fleetcam.media.testpattern import pattern_frame

START = 1_778_300_000.0


def _mp4(path: Path, width: int, height: int, seconds: float, fps: int = 25,
         audio: bool = False) -> Path:  # fmt: skip
    """An H.264 MP4 of the pattern, a keyframe each second, optionally with AAC audio."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt, video.gop_size = width, height, "yuv420p", fps
        sound = out.add_stream("aac", rate=8000) if audio else None
        for n in range(round(seconds * fps)):
            frame = pattern_frame(width, height, START + n / fps, n)
            frame.pts, frame.time_base = n, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            for n in range(round(seconds * 8000 / 1024)):
                samples = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
                for plane in samples.planes:
                    plane.update(bytes(4096))
                samples.sample_rate, samples.pts = 8000, n * 1024
                out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(jpeg)) as c:
        assert c.format.name in ("jpeg_pipe", "image2")
        frame = next(c.decode(video=0))
    return frame.width, frame.height


def test_probe_video_reads_meta_and_makes_a_preview(tmp_path: Path) -> None:
    info, jpeg = probe_video(str(_mp4(tmp_path / "a.mp4", 1280, 720, 2)))
    assert (info.width, info.height, info.codec, info.frames) == (1280, 720, "h264", 50)
    assert info.fps == pytest.approx(25)
    assert info.duration == pytest.approx(2.0, abs=0.04)
    assert (info.transcoded, info.source_codec, info.has_audio) == (False, "h264", False)
    assert jpeg[:2] == b"\xff\xd8"
    assert _jpeg_size(jpeg) == (320, 180)


def test_portrait_preview_and_audio_track(tmp_path: Path) -> None:
    info, jpeg = probe_video(str(_mp4(tmp_path / "p.mp4", 360, 640, 1, audio=True)))
    assert (info.width, info.height, info.has_audio) == (360, 640, True)
    w, h = _jpeg_size(jpeg)
    assert h == THUMB_MAX and w == 180


def test_small_video_is_not_upscaled(tmp_path: Path) -> None:
    _, jpeg = probe_video(str(_mp4(tmp_path / "s.mp4", 176, 144, 1)))
    assert _jpeg_size(jpeg) == (176, 144)


def _luma(jpeg: bytes) -> bytes:
    with av.open(io.BytesIO(jpeg)) as c:
        return bytes(next(c.decode(video=0)).reformat(format="gray").planes[0])


def test_preview_is_the_first_keyframe(tmp_path: Path) -> None:
    path = _mp4(tmp_path / "k.mp4", 640, 360, 1)
    _, jpeg = probe_video(str(path))
    with av.open(str(path)) as c:
        pictures = list(c.decode(video=0))
    preview = _luma(jpeg)

    def distance(picture: av.VideoFrame) -> int:
        other = _luma(_thumbnail(picture))
        return sum(abs(a - b) for a, b in zip(preview[::7], other[::7]))

    assert distance(pictures[0]) < distance(pictures[12]) / 4


@pytest.mark.parametrize(
    "content",
    [b"", b"not a video at all" * 100, b"\x00\x00\x00\x20ftypisom" + bytes(200)],
    ids=["empty", "garbage", "truncated-mp4"],
)
def test_bad_files_raise_corrupt_media(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(CorruptMedia):
        probe_video(str(path))


def test_audio_only_file_raises_corrupt_media(tmp_path: Path) -> None:
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=8000)
        samples = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        for plane in samples.planes:
            plane.update(bytes(4096))
        samples.sample_rate, samples.pts = 8000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode(None))
    with pytest.raises(CorruptMedia, match="no video"):
        probe_video(str(path))
