"""HlsSegmenter with the channel's audio: G.711 A-law from the device, AAC-LC (media.dvraudio)
in the MPEG-TS segments, in sync with the video; bad or missing audio never holds the video."""
from __future__ import annotations

import array
import io
import math
from pathlib import Path
from typing import Any

import av
import pytest

from fleetcam.media.dvraudio import AacPacket, AudioTranscoder
from fleetcam.media.hls import AUDIO_LAG_MS, HlsSegmenter, Segment, adts
from fleetcam.media.testpattern import EncodedFrame, encode_pattern
from fleetcam.simulator.streamer import alaw_tone

from tests.mediagen import probe_streams
START = 1_778_300_000.0
FPS = 25
G711A = 6  # JT/T 1078 table 12


@pytest.fixture(scope="module")
def clips() -> dict[str, list[EncodedFrame]]:
    """4.5 s at 320x240, a keyframe each second."""
    return {codec: list(encode_pattern(codec, 320, 240, FPS, start_time=START, seconds=4.5))
            for codec in ("h264", "hevc")}


def _ms(f: EncodedFrame) -> int:
    return round(f.time * 1000)


def _run(codec: str, frames: list[EncodedFrame], audio_ms: set[int] | None = None,
         audio_from: int = 0, bad: set[int] = frozenset()) -> tuple[HlsSegmenter, list[Segment]]:  # type: ignore[assignment]
    """Frames as an MDVR interleaves them: each video frame, then 40 ms of G.711 A-law with
    the same timestamp (``audio_ms``: only for these frame indices; ``bad``: garbage
    instead)."""
    seg = HlsSegmenter(codec)
    tr = AudioTranscoder()
    out: list[Segment] = []
    for i, f in enumerate(frames):
        out += seg.push(f.data, _ms(f), f.keyframe)
        if i < audio_from or (audio_ms is not None and i not in audio_ms):
            continue
        if i in bad:
            out += seg.push_audio([AacPacket(_ms(f) * 8, b"\xff" * 3, _other_config())])
            continue
        out += seg.push_audio(tr.push(G711A, alaw_tone(40, f.pts_ms), _ms(f)))
    out += seg.push_audio(tr.flush())
    return seg, out + seg.flush()


def _other_config() -> Any:
    from fleetcam.media.fmp4 import AudioConfig
    return AudioConfig(16000, 1, b"\x14\x08", b"")


def ffprobe(data: bytes, tmp_path: Path, name: str = "s.ts") -> dict[str, dict[str, Any]]:
    path = tmp_path / name
    path.write_bytes(data)
    return probe_streams(path)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_segments_carry_aac_in_sync_with_the_video(clips, codec, tmp_path):
    seg, segments = _run(codec, clips[codec])
    assert seg.audio is not None and (seg.audio.rate, seg.audio.channels) == (8000, 1)
    assert [s.frames for s in segments] == [25, 25, 25, 25, 12]
    for s in segments:
        streams = ffprobe(s.data, tmp_path)
        assert set(streams) == {"video", "audio"}, streams
        v, a = streams["video"], streams["audio"]
        assert v["codec_name"] == "h264" and a["codec_name"] == "aac"
        assert (a["sample_rate"], a["channels"]) == ("8000", 1)
        assert abs(float(v["start_time"]) - float(a["start_time"])) < 0.1, (v, a)
        assert int(a["nb_read_frames"]) == s.audio_frames > 0
    # the whole track: every AAC frame of the device's audio, none lost between segments
    whole = ffprobe(b"".join(s.data for s in segments), tmp_path, "all.ts")
    audio_s = int(whole["audio"]["nb_read_frames"]) * 1024 / 8000
    assert 4.5 - 0.3 < audio_s < 4.5 + 0.3, audio_s
    assert seg.audio_dropped == 0


def test_the_audio_is_the_devices_tone(clips):
    """A 440 Hz tone went in: the decoded AAC is loud and crosses zero 880 times a second."""
    _, segments = _run("h264", clips["h264"])
    pcm = array.array("f")
    with av.open(io.BytesIO(segments[1].data), format="mpegts") as c:
        for frame in c.decode(audio=0):
            pcm.frombytes(bytes(frame.planes[0])[:frame.samples * 4])
    assert len(pcm) >= 7000
    rms = math.sqrt(sum(x * x for x in pcm) / len(pcm))
    crossings = sum(1 for a, b in zip(pcm, pcm[1:]) if (a < 0) != (b < 0))
    assert rms > 0.05, rms
    assert abs(crossings * 8000 / len(pcm) - 880) < 40, crossings


def test_a_stream_without_audio_has_no_audio_track(clips, tmp_path):
    seg, segments = _run("h264", clips["h264"], audio_ms=set())
    assert seg.audio is None and len(segments) == 5
    assert set(ffprobe(segments[0].data, tmp_path)) == {"video"}


def test_audio_that_stops_is_filled_with_silence_and_holds_no_segment(clips, tmp_path):
    """Audio for the first 1.5 s only: later segments come out (AUDIO_LAG_MS behind the
    video at most) with silent AAC frames, so the track has no hole a player stalls on."""
    frames = clips["h264"]
    seg = HlsSegmenter("h264")
    tr = AudioTranscoder()
    out: list[Segment] = []
    lag = []
    for i, f in enumerate(frames):
        got = seg.push(f.data, _ms(f), f.keyframe)
        if i < 38:
            got += seg.push_audio(tr.push(G711A, alaw_tone(40, f.pts_ms), _ms(f)))
        for s in got:
            lag.append(f.pts_ms - (s.start_ms - _ms(frames[0])) - s.duration * 1000)
        out += got
    out += seg.flush()
    assert [s.frames for s in out] == [25, 25, 25, 25, 12]
    assert max(lag) <= AUDIO_LAG_MS + 40, lag
    for s in out:
        streams = ffprobe(s.data, tmp_path)
        assert set(streams) == {"video", "audio"}
        assert abs(float(streams["video"]["start_time"]) -
                   float(streams["audio"]["start_time"])) < 0.1
    whole = ffprobe(b"".join(s.data for s in out), tmp_path, "all.ts")
    assert int(whole["audio"]["nb_read_frames"]) * 1024 / 8000 > 4.3


def test_bad_audio_is_dropped_and_the_video_goes_on(clips, tmp_path):
    """Packets of another configuration than the track's are left out and counted."""
    seg, segments = _run("h264", clips["h264"], bad=set(range(40, 60)))
    assert [s.frames for s in segments] == [25, 25, 25, 25, 12]
    assert seg.audio_dropped >= 20
    for s in segments:
        assert set(ffprobe(s.data, tmp_path)) == {"video", "audio"}


def test_audio_that_starts_after_the_first_segment_is_left_out(clips, tmp_path):
    """MSE players cannot take a track that appears mid-stream: the stream stays video-only."""
    seg, segments = _run("h264", clips["h264"], audio_from=40)
    assert seg.audio is None and seg.audio_dropped > 0
    assert [s.frames for s in segments] == [25, 25, 25, 25, 12]
    assert all(set(ffprobe(s.data, tmp_path)) == {"video"} for s in segments)


def test_audio_queue_is_bounded(clips):
    """Audio far ahead of the video (a device clock gone wrong) is capped, not hoarded."""
    seg = HlsSegmenter("h264")
    tr = AudioTranscoder()
    frames = clips["h264"]
    seg.push(frames[0].data, _ms(frames[0]), True)
    for k in range(2000):  # 80 s of audio, no more video
        seg.push_audio(tr.push(G711A, alaw_tone(40, k * 40), _ms(frames[0]) + k * 40))
    assert len(seg._audio_q) <= 250 and seg.audio_dropped > 0


def test_adts_header():
    """ISO/IEC 13818-7 ADTS: sync, MPEG-4, no CRC, AAC LC, 8 kHz (index 11), mono, length."""
    frame = adts(b"\x01\x02\x03", 8000, 1)
    assert frame.hex() == "fff1 6c40 01 5f fc 010203".replace(" ", "")


def _g722(ms: int) -> bytes:
    """``ms`` of a 440 Hz tone, G.722 (16 kHz), made with PyAV's encoder."""
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / 16000))
                                for i in range(16 * ms)))
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(samples))
    frame.planes[0].update(samples.tobytes())
    frame.sample_rate, frame.pts = 16000, 0
    enc = av.CodecContext.create("adpcm_g722", "w")
    enc.sample_rate, enc.format, enc.layout = 16000, "s16", "mono"
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def test_g722_becomes_16_khz_aac(clips, tmp_path):
    """Another of dvraudio's codecs (JT/T 1078 PT 2, G.722): a 16 kHz AAC track."""
    frames = clips["h264"]
    seg, tr, out = HlsSegmenter("h264"), AudioTranscoder(), []
    chunk = _g722(40)
    for f in frames:
        out += seg.push(f.data, _ms(f), f.keyframe)
        out += seg.push_audio(tr.push(2, chunk, _ms(f)))
    out += seg.push_audio(tr.flush()) + seg.flush()
    assert seg.audio is not None and seg.audio.rate == 16000
    for s in out:
        streams = ffprobe(s.data, tmp_path)
        assert streams["audio"]["sample_rate"] == "16000"
        assert abs(float(streams["video"]["start_time"]) -
                   float(streams["audio"]["start_time"])) < 0.1
