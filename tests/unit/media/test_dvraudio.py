"""The recorder's audio: device codecs to AAC-LC on one clock, fragments with both tracks, and
bad audio dropped without touching the video."""
from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import pytest

from fleetcam.media import archive, fmp4
from fleetcam.media.dvr import DvrFragmenter, Fragment
from fleetcam.media.dvraudio import MAX_FRAME_BYTES, AudioTranscoder, BadAudio
from fleetcam.media.testpattern import encode_pattern
from fleetcam.simulator.streamer import alaw_tone

T0 = 1_778_300_000_000
FPS = 25


def _pcm(seconds: float, rate: int = 8000) -> av.AudioFrame:
    import math

    n = int(seconds * rate)
    samples = struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / rate))
                                      for i in range(n)))
    frame = av.AudioFrame(format="s16", layout="mono", samples=n)
    frame.planes[0].update(samples)
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    return frame


def _encode(codec: str, seconds: float, options: dict[str, str] | None = None,
            **opts: object) -> list[bytes]:
    enc = av.CodecContext.create(codec, "w")
    enc.sample_rate, enc.layout, enc.format = 8000, "mono", "s16"
    for k, v in opts.items():
        setattr(enc, k, v)
    enc.options = options or {}
    return [bytes(p) for p in [*enc.encode(_pcm(seconds)), *enc.encode(None)]]


def _adts(seconds: float) -> list[bytes]:
    """AAC in ADTS frames, as devices send AAC (PT 19)."""
    out = io.BytesIO()
    with av.open(out, "w", format="adts") as c:
        s = c.add_stream("aac", rate=8000, layout="mono")
        frame = _pcm(seconds)
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    data, frames = out.getvalue(), []
    while data:
        n = ((data[3] & 3) << 11) | (data[4] << 3) | (data[5] >> 5)
        frames.append(data[:n])
        data = data[n:]
    return frames


def _hisilicon_adpcm(seconds: float) -> list[bytes]:
    """HiSilicon IMA ADPCM (PT 26): a 4-byte state header, then nibbles high first, behind
    HiSilicon's ``00 01 <len/2> 00`` frame header (made from FFmpeg's IMA WAV blocks)."""
    out = []
    for block in _encode("adpcm_ima_wav", seconds, {"block_size": "128"}):  # 249 samples
        body = block[:4] + bytes(((b & 0x0F) << 4) | (b >> 4) for b in block[4:])
        out.append(bytes([0, 1, len(body) // 2, 0]) + body)
    return out


def _run(pt: int, frames: list[bytes], step_ms: int) -> tuple[AudioTranscoder, list]:
    t = AudioTranscoder()
    packets = []
    for i, data in enumerate(frames):
        packets += t.push(pt, data, T0 + i * step_ms)
    return t, packets + t.flush()


@pytest.mark.parametrize("pt, frames, step", [
    (6, [alaw_tone(40, i * 40) for i in range(50)], 40),                        # G.711A
    (7, [b"".join(_encode("pcm_mulaw", 2.0))[i:i + 320] for i in range(0, 16000, 320)], 40),
    (8, [b"".join(_encode("adpcm_g726", 2.0, bit_rate=16000))[i:i + 80]         # G.726-16k
         for i in range(0, 4000, 80)], 40),
    (26, _hisilicon_adpcm(2.0), 31),                                            # ADPCMA
    (25, _encode("libmp3lame", 2.0), 72),                                       # MP3
], ids=["g711a", "g711u", "g726", "adpcma", "mp3"])
def test_device_codecs_become_aac_lc_on_one_clock(pt, frames, step):
    t, packets = _run(pt, frames, step)
    assert t.config is not None and t.config.rate == 8000 and t.config.channels == 1
    assert t.config.asc[:2] == b"\x15\x88"  # AAC-LC, 8 kHz, mono
    pts = [p.pts for p in packets]
    assert all(b - a == 1024 for a, b in zip(pts, pts[1:]))  # contiguous frames
    covered = (pts[-1] + 1024 - pts[0]) / 8000
    assert 1.8 <= covered <= 2.6, covered
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = t.config.asc
    pcm = sum(f.samples for p in packets for f in dec.decode(av.Packet(p.data)))
    assert pcm == 1024 * len(packets)


def test_device_aac_lc_is_copied_as_sent():
    frames = _adts(2.0)
    t, packets = _run(19, frames, 128)
    assert t.config is not None and t.config.asc == b"\x15\x88"  # from the ADTS header
    assert t.config.silence  # a frame of silence in the same configuration
    assert [p.data for p in packets] == [f[7:] for f in frames]  # raw, headers off
    pts = [p.pts for p in packets]
    assert pts[0] == T0 * 8 and all(b - a == 1024 for a, b in zip(pts, pts[1:]))
    # a pause keeps the frame grid; late frames are dropped; a broken one is refused
    later = t.push(19, frames[0], T0 + len(frames) * 128 + 1000)
    assert (later[0].pts - pts[0]) % 1024 == 0 and later[0].pts > pts[-1] + 1024
    assert t.push(19, frames[1], T0) == []
    with pytest.raises(BadAudio):
        t.push(19, frames[2][:7] + b"\xde\xad" * 20, T0 + 99_000)
    # then G.711 from the same channel: encoded again, a new configuration
    g711 = t.push(6, alaw_tone(40, 0), T0 + 100_000) + t.flush()
    assert g711 and g711[0].config != packets[0].config


def test_a_pause_in_the_audio_is_filled_with_silence():
    t = AudioTranscoder()
    packets = []
    for i in range(25):
        packets += t.push(6, alaw_tone(40, i * 40), T0 + i * 40)
    for i in range(25):  # three seconds later
        packets += t.push(6, alaw_tone(40, i * 40), T0 + 4000 + i * 40)
    packets += t.fill_until(T0 + 8000)  # video went on without audio
    packets += t.flush()
    pts = [p.pts for p in packets]
    assert all(b - a == 1024 for a, b in zip(pts, pts[1:]))
    assert pts[-1] + 1024 >= 8000 * 8 - 1024 + T0 * 8
    # a jump of minutes starts a new clock instead of minutes of silence
    t2 = AudioTranscoder()
    t2.push(6, alaw_tone(40, 0), T0)
    t2.push(6, alaw_tone(40, 0), T0 + 600_000)
    assert t2.clock is not None and t2.clock < (T0 + 600_100) * 8


@pytest.mark.parametrize("pt, data, reason", [
    (6, b"", "bytes"),
    (6, bytes(MAX_FRAME_BYTES + 1), "bytes"),
    (28, b"\x3c" + bytes(31), "unsupported"),   # AMR: not recorded
    (91, b"transparent", "unsupported"),
    (19, b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\xde\xad" * 40, "decode"),  # broken AAC
    (19, b"not aac at all" * 10, "decode"),
])
def test_bad_audio_frames_are_refused(pt, data, reason):
    t = AudioTranscoder()
    with pytest.raises(BadAudio, match=reason):
        t.push(pt, data, T0)
    # the transcoder goes on with good frames afterwards
    assert t.push(6, alaw_tone(40, 0), T0 + 40) == [] and t.config is not None


def _trafs(frag: Fragment) -> dict[int, tuple[int, list[int]]]:
    """track id -> (tfdt, sample durations) of a stored fragment."""
    out = {}
    data = frag.data
    for kind, pos, size, header in archive.iter_boxes(data, 0, frag.moof_size):
        for k, p, s, h in archive.iter_boxes(data, pos + header, pos + size):
            if k != b"traf":
                continue
            boxes = {kk: pp for kk, pp, _, _ in archive.iter_boxes(data, p + h, p + s)}
            track = struct.unpack_from(">I", data, boxes[b"tfhd"] + 12)[0]
            tfdt = struct.unpack_from(">Q", data, boxes[b"tfdt"] + 12)[0]
            trun = boxes[b"trun"]
            flags = struct.unpack_from(">I", data, trun + 8)[0] & 0xFFFFFF
            n = struct.unpack_from(">I", data, trun + 12)[0]
            width = 12 if flags == 0x701 else 8
            durs = [struct.unpack_from(">I", data, trun + 20 + i * width)[0] for i in range(n)]
            out[track] = (tfdt, durs)
    return out


def _record(audio_at, *, fill: bool = True, skew_ms: int = 3) -> list[Fragment]:
    """Six seconds of pattern video with G.711 audio where ``audio_at(ms)`` says (its
    timestamps ``skew_ms`` off the video's); ``fill``: the recorder's silence fill."""
    f, t = DvrFragmenter(), AudioTranscoder()
    out: list[Fragment] = []
    for fr in encode_pattern("h264", 320, 240, FPS, start_time=T0 / 1000, seconds=6):
        ms = T0 + fr.pts_ms
        out += f.push(fr.data, ms, fr.keyframe)
        if audio_at(fr.pts_ms):
            out += f.push_audio(t.push(6, alaw_tone(40, fr.pts_ms), ms + skew_ms,
                                       f.open_start_ms))
        if fill:
            out += f.push_audio(t.fill_until(ms - 1000))
    out += f.push_audio(t.flush())
    return out + f.flush()


def _audio_covers_video(frags: list[Fragment]) -> None:
    """Every fragment's audio starts where the previous one's ended (or with its video) and
    reaches its video's end: no hole a browser would stall on."""
    expect = None
    for x in frags:
        base, durs = _trafs(x)[2]
        assert x.start_ms * 8 <= base < (x.start_ms + x.duration_ms) * 8
        assert expect is None or base == expect
        expect = base + sum(durs)
        assert expect >= (x.start_ms + x.duration_ms) * 8, (x.start_ms, base, durs)


def test_audio_that_stops_or_runs_on_another_clock_never_leaves_a_hole():
    stops = _record(lambda ms: ms < 1500, fill=False)  # no silence from the transcoder either
    assert all(x.tracks == (1, 2) and x.audio_frames for x in stops[1:])
    _audio_covers_video(stops[1:])
    elsewhere = _record(lambda ms: True, skew_ms=3_600_000)  # audio stamped an hour off
    assert [x.frames for x in elsewhere] == [25] * 6  # the video is untouched
    assert all(x.tracks == (1, 2) for x in elsewhere)
    _audio_covers_video(elsewhere)


def test_fragments_carry_both_tracks_without_holes():
    frags = _record(lambda ms: not 2000 <= ms < 3500)  # and a 1.5 s pause in the audio
    assert [x.frames for x in frags] == [25] * 6
    assert all(x.tracks == (1, 2) and x.audio_frames > 0 for x in frags)
    assert [x.discontinuity for x in frags] == [True] + [False] * 5
    assert frags[0].init == frags[-1].init and fmp4.audio_of(frags[0].init) == (8000, 1)
    expect = None
    for x in frags:
        tr = _trafs(x)
        assert tr[1][0] == x.start_ms and sum(tr[1][1]) == x.duration_ms
        base, durs = tr[2]
        assert x.start_ms * 8 <= base < (x.start_ms + x.duration_ms) * 8
        assert expect is None or base == expect  # the audio runs on from fragment to fragment
        expect = base + sum(durs)
        assert len(x.data) - x.moof_size - 8 == sum(  # mdat: video, then audio samples
            archive_sizes(x))
    assert frags[0].moof_size == fmp4.moof_size(25, frags[0].audio_frames)
    # the stored layout reads back: a file of them demuxes with both streams
    rates = {1: 1000, 2: 8000}
    buf = bytearray(frags[0].init)
    for i, x in enumerate(frags, start=1):
        d = bytearray(x.data)
        fmp4.shift_fragment(d, i, -frags[0].start_ms, rates)
        buf += d
    with av.open(io.BytesIO(bytes(buf)), format="mp4") as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        sound = list(c.decode(audio=0))
        assert abs(sum(s.samples for s in sound) / 8000 - 6) < 0.3


def archive_sizes(frag: Fragment) -> list[int]:
    """Sample sizes of both trafs of a fragment (from its trun)."""
    data, out = frag.data, []
    for kind, pos, size, header in archive.iter_boxes(data, 0, frag.moof_size):
        for k, p, s, h in archive.iter_boxes(data, pos + header, pos + size):
            if k != b"traf":
                continue
            trun = next(pp for kk, pp, _, _ in archive.iter_boxes(data, p + h, p + s)
                        if kk == b"trun")
            flags = struct.unpack_from(">I", data, trun + 8)[0] & 0xFFFFFF
            n = struct.unpack_from(">I", data, trun + 12)[0]
            width, at = (12, 4) if flags == 0x701 else (8, 4)
            out += [struct.unpack_from(">I", data, trun + 20 + i * width + at)[0]
                    for i in range(n)]
    return out


def test_a_channel_without_audio_stays_video_only():
    frags = _record(lambda ms: False)
    assert all(x.tracks == (1,) and x.audio_frames == 0 for x in frags)
    assert fmp4.audio_of(frags[0].init) is None


def test_audio_without_video_is_bounded_and_not_recorded():
    f, t = DvrFragmenter(), AudioTranscoder()
    for i in range(25 * 120):  # two minutes of audio, no video
        assert f.push_audio(t.push(6, alaw_tone(40, i * 40), T0 + i * 40)) == []
    assert len(f._audio) <= 60 * 8000 // 1024 + 1
    assert f.audio_dropped > 0
    assert f.flush() == []


def test_a_clip_cut_from_the_archive_keeps_the_audio(tmp_path):
    """request_video answered from the archive (media.dvr.mp4_of): both streams, from 0."""
    from fleetcam.media.dvr import mp4_of

    frags = _record(lambda ms: True)
    out = tmp_path / "clip.mp4"
    mp4_of(frags[0].init, [(x.data, x.start_ms) for x in frags[2:5]], str(out))
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        pictures = list(c.decode(v))
        assert len(pictures) == 75 and pictures[0].time == 0
    with av.open(str(out)) as c:
        sound = list(c.decode(audio=0))
        assert abs(sound[0].time) < 0.2
        assert abs(sum(s.samples for s in sound) / 8000 - 3) < 0.3


def test_audio_a_little_later_than_the_first_keyframe_still_makes_one_av_segment():
    frags = _record(lambda ms: ms >= 1200)  # the first GOP closes before any audio came
    assert all(x.tracks == (1, 2) for x in frags)
    assert [x.discontinuity for x in frags] == [True] + [False] * 5  # one init, one segment
    _audio_covers_video(frags)
