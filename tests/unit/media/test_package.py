"""package_raw: raw clips (generated with the burnt-in-time pattern) become playable MP4s."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import pytest

from fleetcam.domain.rawclip import encode_frame, encode_header
from fleetcam.errors import CorruptMedia
from fleetcam.media import package
from fleetcam.media.package import package_raw
from fleetcam.media.testpattern import EncodedFrame, encode_pattern, read_burnt_time
from fleetcam.protocol.jt1078.nal import split_annexb

START = 1_778_300_000.0  # 2026-05-09T04:13:20Z
FPS = 25


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    """3 s at 320x240, a keyframe each second (frames 0, 25, 50)."""
    return {
        codec: list(encode_pattern(codec, 320, 240, FPS, start_time=START, seconds=3))
        for codec in ("h264", "hevc")
    }


def _ms(frame: EncodedFrame) -> int:
    return round(frame.time * 1000)


def _raw(codec: str, frames: list[EncodedFrame], *, header: dict | None = None,
         times: list[int] | None = None, audio: list[tuple[int, bytes]] = ()) -> io.BytesIO:
    """A raw clip of ``frames`` (their own times unless ``times``), audio records merged in
    by timestamp."""
    times = times or [_ms(f) for f in frames]
    pending = list(audio)
    records = []
    for t, f in zip(times, frames):  # video keeps its order, whatever its times
        while pending and pending[0][0] <= t:
            records.append(encode_frame(3, *pending.pop(0)))
        records.append(encode_frame(0 if f.keyframe else 1, t, f.data))
    body = b"".join(records + [encode_frame(3, t, data) for t, data in pending])
    return io.BytesIO(encode_header({"codec": codec, **(header or {})}) + body)


def _decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def _video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as c:
        return [p for p in c.demux(video=0) if p.size]


def _length_prefixed(annexb: bytes) -> bytes:
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in split_annexb(annexb))


def _annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def _atoms(path: Path) -> list[bytes]:
    data, names, i = path.read_bytes(), [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        names.append(data[i + 4 : i + 8])
        if size < 8:
            break
        i += size
    return names


def test_h264_is_copied_into_a_faststart_mp4(clips, tmp_path: Path) -> None:
    frames = clips["h264"]
    out = tmp_path / "out.mp4"
    info = package_raw(_raw("h264", frames), str(out))
    assert (info.codec, info.source_codec, info.transcoded) == ("h264", "h264", False)
    assert (info.width, info.height, info.frames, info.has_audio) == (320, 240, 75, False)
    assert info.duration == pytest.approx(3.0, abs=1 / FPS)
    assert info.fps == pytest.approx(FPS, rel=0.01)
    atoms = _atoms(out)
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_tag == "avc1"
        assert stream.codec_context.extradata[0] == 1  # an avcC record, not Annex-B
        assert float(stream.duration * stream.time_base) == pytest.approx(3.0, abs=1 / FPS)
    pictures = _decode(out)
    assert len(pictures) == 75
    assert read_burnt_time(pictures[0]) == pytest.approx(frames[0].time, abs=1e-3)
    assert read_burnt_time(pictures[-1]) == pytest.approx(frames[-1].time, abs=1e-3)
    assert [round(p.time * 1000) for p in pictures] == [_ms(f) - _ms(frames[0]) for f in frames]
    packets = _video_packets(out)
    assert [p.is_keyframe for p in packets] == [f.keyframe for f in frames]
    for n in (0, 1, 30, 74):  # the very bytes the device sent, only re-framed
        assert bytes(packets[n]) == _length_prefixed(frames[n].data)


def test_hevc_is_transcoded_to_h264(clips, tmp_path: Path) -> None:
    frames = clips["hevc"]
    out = tmp_path / "out.mp4"
    info = package_raw(_raw("hevc", frames), str(out), preset="ultrafast")
    assert (info.codec, info.source_codec, info.transcoded) == ("h264", "hevc", True)
    assert (info.width, info.height, info.frames) == (320, 240, 75)
    assert info.duration == pytest.approx(3.0, abs=1 / FPS)
    atoms = _atoms(out)
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    pictures = _decode(out)
    assert len(pictures) == 75
    assert read_burnt_time(pictures[0]) == pytest.approx(frames[0].time, abs=1e-3)
    assert read_burnt_time(pictures[-1]) == pytest.approx(frames[-1].time, abs=1e-3)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_leading_p_frames_are_dropped(clips, tmp_path: Path, codec: str) -> None:
    frames = clips[codec][5:]  # starts with 20 P-frames, then the keyframe at 1 s
    out = tmp_path / "out.mp4"
    info = package_raw(_raw(codec, frames), str(out), preset="ultrafast")
    assert info.frames == 50
    assert info.duration == pytest.approx(2.0, abs=1 / FPS)
    pictures = _decode(out)
    assert len(pictures) == 50
    assert read_burnt_time(pictures[0]) == pytest.approx(START + 1, abs=1e-3)
    assert read_burnt_time(pictures[-1]) == pytest.approx(frames[-1].time, abs=1e-3)


def test_keyframe_without_parameter_sets_borrows_earlier_ones(clips, tmp_path: Path) -> None:
    frames = clips["h264"]
    nals = split_annexb(frames[0].data)
    assert [n[0] & 0x1F for n in nals][:2] == [7, 8]
    params_only = EncodedFrame(frames[0].time, 0, True, _annexb(nals[:2]))
    bare = EncodedFrame(frames[0].time, 0, True, _annexb(nals[2:]))
    out = tmp_path / "out.mp4"
    info = package_raw(_raw("h264", [params_only, bare, *frames[1:]]), str(out))
    assert info.frames == 75
    assert len(_decode(out)) == 75


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_irregular_timestamps_still_make_a_valid_file(clips, tmp_path: Path,
                                                      codec: str) -> None:  # fmt: skip
    frames = clips[codec]
    times = [_ms(f) for f in frames]
    times[10] = times[9]  # a repeated time stamp
    times[40:] = [t - 5000 for t in times[40:]]  # the device clock stepped back 5 s
    times[60:] = [t + 3_600_000 for t in times[60:]]  # ... then an hour forward
    out = tmp_path / "out.mp4"
    raw = _raw(codec, frames, times=times)
    info = package_raw(raw, str(out), preset="ultrafast")
    assert info.frames == 75
    assert info.duration == pytest.approx(3.0, abs=0.1)
    pictures = _decode(out)
    assert len(pictures) == 75
    pts = [p.pts for p in pictures]
    assert pts == sorted(set(pts))
    assert read_burnt_time(pictures[-1]) == pytest.approx(frames[-1].time, abs=1e-3)


def test_fragmented_layout_is_available(clips, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    info = package._package(_raw("h264", clips["h264"]), str(out), preset="veryfast",
                            movflags=package.FRAGMENTED)  # fmt: skip
    atoms = _atoms(out)
    assert b"moof" in atoms and atoms.index(b"moov") < atoms.index(b"moof")
    assert info.frames == len(_decode(out)) == 75


def _alaw(seconds: float, start_ms: int) -> list[tuple[int, bytes]]:
    """G.711 A-law records of 320 samples (40 ms at 8 kHz), HiSilicon-prefixed like a DVR."""
    enc = av.CodecContext.create("pcm_alaw", "w")
    enc.sample_rate, enc.layout, enc.format = 8000, "mono", "s16"
    enc.time_base = Fraction(1, 8000)
    records = []
    for n in range(round(seconds * 25)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=320)
        tone = bytes((n * 7 + i) % 256 for i in range(640))
        frame.planes[0].update(tone)
        frame.sample_rate, frame.pts = 8000, n * 320
        data = b"".join(bytes(p) for p in enc.encode(frame))
        records.append((start_ms + n * 40, b"\x00\x01" + bytes([len(data) // 2, 0]) + data))
    return records


def test_g711_audio_becomes_aac(clips, tmp_path: Path) -> None:
    frames = clips["h264"]
    out = tmp_path / "out.mp4"
    audio = _alaw(3, _ms(frames[0]))
    info = package_raw(_raw("h264", frames, header={"audio": "g711a"}, audio=audio), str(out))
    assert info.has_audio and info.frames == 75
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].sample_rate == 8000
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples == pytest.approx(3 * 8000, abs=2048)
    assert len(_decode(out)) == 75


def test_unknown_audio_is_dropped(clips, tmp_path: Path) -> None:
    frames = clips["h264"]
    audio = [(_ms(frames[0]) + 40 * n, b"\x12" * 80) for n in range(50)]
    raw = _raw("h264", frames, header={"audio": "g726"}, audio=audio)
    info = package_raw(raw, str(tmp_path / "out.mp4"))
    assert not info.has_audio and info.frames == 75
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not c.streams.audio


def _truncated(clips) -> io.BytesIO:
    data = _raw("h264", clips["h264"]).getvalue()
    return io.BytesIO(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda clips: io.BytesIO(b"\x00garbage" * 1000), "raw clip"),
        (_truncated, "truncated"),
        (lambda clips: _raw("h264", [f for f in clips["h264"] if not f.keyframe]), "keyframe"),
        (lambda clips: _raw("mjpeg", clips["h264"]), "unknown video codec"),
        (lambda clips: _raw("hevc", clips["h264"]), "keyframe"),  # wrong codec declared
        (lambda clips: io.BytesIO(encode_header({"codec": "h264"})), "keyframe"),  # empty
    ],
    ids=["garbage", "truncated", "no-keyframe", "unknown-codec", "mislabelled", "empty"],
)
def test_bad_input_raises_corrupt_media(clips, tmp_path: Path, make, reason: str) -> None:
    with pytest.raises(CorruptMedia, match=reason) as e:
        package_raw(make(clips), str(tmp_path / "out.mp4"))
    assert e.value.reason


def test_a_corrupt_keyframe_raises_corrupt_media(clips, tmp_path: Path) -> None:
    first = clips["h264"][0]
    nals = split_annexb(first.data)
    broken = _annexb([*nals[:2], b"\x65" + bytes(range(256)) * 8])  # real SPS/PPS, bad IDR
    frames = [EncodedFrame(first.time, 0, True, broken)]
    with pytest.raises(CorruptMedia, match="keyframe"):
        package_raw(_raw("h264", frames), str(tmp_path / "out.mp4"))
