"""CPU a live HLS stream costs the gateway: HlsSegmenter on 1 Mbit/s 25 fps 640x360 streams.

Usage: ``.venv/bin/python bench/live_cpu.py [--seconds 60] [--runs 3] [--no-hevc]``

Feeds a pre-encoded test-pattern stream through ``HlsSegmenter`` as fast as it goes and
divides the process CPU time (all threads) by the stream's length. References measured in the
same run: wrapping the frames into packets only, a bare long-lived MPEG-TS mux of the same
packets, the same into fragmented MP4 (the other HLS segment format), and for H.265 a bare
decode. The audio case adds the channel's audio as MDVRs send it (40 ms of G.711 A-law with
each video frame) converted to AAC-LC by ``media.dvraudio.AudioTranscoder`` and muxed into the
same segments: the cost of a stream with audio against one without, same reference.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from fractions import Fraction

import av

from fleetcam.media.dvraudio import AudioTranscoder
from fleetcam.media.hls import DECODE_THREADS, HlsSegmenter, Segment
from fleetcam.media.testpattern import EncodedFrame, encode_pattern

START_MS = 1_778_300_000_000
FPS = 25
TARGET_PERCENT = 0.3  # of one core per 1 Mbit/s copied stream (issue 7)
TS_CLOCK = Fraction(1, 90_000)


class _Null:
    """A file that counts what is written to it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def _cpu(fn: Callable[[], object], runs: int) -> float:
    """Median process CPU seconds (user + system, all threads) of ``runs`` calls."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def _packets(frames: list[EncodedFrame]) -> list[av.Packet]:
    out = []
    for f in frames:
        p = av.Packet(f.data)
        p.pts = p.dts = f.pts_ms * 90
        p.is_keyframe = f.keyframe
        out.append(p)
    return out


def _bare_mux(frames: list[EncodedFrame], fmt: str, options: dict[str, str]) -> int:
    """One long-lived muxer, no cutting or checks: the floor under any segmenter."""
    sink = _Null()
    with av.open(sink, "w", format=fmt, options=options) as out:
        stream = out.add_mux_stream("h264", width=640, height=360)
        stream.time_base = TS_CLOCK
        for p in _packets(frames):
            p.time_base, p.stream = TS_CLOCK, stream
            out.mux_one(p)
    return sink.size


G711A = 6  # JT/T 1078 table 12


def _alaw(frames: list[EncodedFrame]) -> list[bytes]:
    """40 ms of a 440 Hz tone in G.711 A-law per video frame (the simulator's audio)."""
    from fleetcam.simulator.streamer import alaw_tone

    return [alaw_tone(1000 // FPS, f.pts_ms) for f in frames]


def _segment(codec: str, frames: list[EncodedFrame], cuts: list[float],
             audio: list[bytes] | None = None) -> list[Segment]:  # fmt: skip
    seg = HlsSegmenter(codec)
    tr = AudioTranscoder() if audio is not None else None
    out: list[Segment] = []
    for i, f in enumerate(frames):
        t = time.perf_counter()
        done = seg.push(f.data, START_MS + f.pts_ms, f.keyframe)
        if done:
            cuts.append(time.perf_counter() - t)
        out += done
        if tr is not None and audio is not None:
            out += seg.push_audio(tr.push(G711A, audio[i], START_MS + f.pts_ms))
    if tr is not None:
        out += seg.push_audio(tr.flush())
    return out + seg.flush()


def _decode(frames: list[EncodedFrame]) -> int:
    ctx = av.CodecContext.create("hevc", "r")
    ctx.thread_count = DECODE_THREADS  # as the segmenter decodes
    n = 0
    for f in frames:
        n += len(ctx.decode(av.Packet(f.data)))
    return n + len(ctx.decode(None))


def _row(name: str, cpu: float, seconds: float, ref: float | None = None) -> None:
    per = cpu / seconds
    ratio = f"{cpu / ref:6.2f}x" if ref else ""
    streams = f"{1 / per:8.0f}" if per > 0 else "     inf"
    print(f"  {name:<44} {cpu:7.3f} s  {per * 100:7.3f} %  {streams}  "
          f"{cpu / seconds * 1000:7.3f} ms  {ratio}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-hevc", action="store_true")
    args = ap.parse_args()
    ok = True
    secs = args.seconds
    for codec in ("h264",) if args.no_hevc else ("h264", "hevc"):
        t = time.perf_counter()
        frames = list(encode_pattern(codec, 640, 360, FPS, start_time=START_MS / 1000,
                                     seconds=secs, bitrate=1_000_000, gop=FPS))  # fmt: skip
        mbit = sum(len(f.data) for f in frames) * 8 / secs / 1e6
        print(f"\n{codec}: {len(frames)} frames, {secs:.0f} s 640x360 {FPS} fps, {mbit:.2f} Mbit/s, "
              f"keyframe each second (encoded in {time.perf_counter() - t:.1f} s); "
              f"median of {args.runs} runs")  # fmt: skip
        print(f"  {'':<44} {'CPU':>9}  {'% core':>9}  {'streams':>8}  {'per 1 s seg':>10}")
        packets = _cpu(lambda: _packets(frames), args.runs)
        _row("reference: frames -> av.Packet only", packets, secs)
        ts = _cpu(lambda: _bare_mux(frames, "mpegts", {"flush_packets": "1"}), args.runs)
        _row("reference: bare MPEG-TS mux (one muxer)", ts, secs)
        fmp4_opts = {"movflags": "+frag_keyframe+empty_moov+default_base_moof"}
        fmp4 = _cpu(lambda: _bare_mux(frames, "mp4", fmp4_opts), args.runs)
        _row("reference: bare fragmented-MP4 mux", fmp4, secs, ts)
        if codec == "hevc":
            dec = _cpu(lambda: _decode(frames), args.runs)
            _row("reference: H.265 decode only", dec, secs)
        cuts: list[float] = []
        segments: list[Segment] = []

        def run() -> None:
            cuts.clear()
            segments[:] = _segment(codec, frames, cuts)

        cpu = _cpu(run, args.runs)
        name = "HlsSegmenter (copy)" if codec == "h264" else "HlsSegmenter (H.265 -> H.264)"
        ref = ts if codec == "h264" else dec
        _row(name, cpu, secs, ref)
        per = cpu / secs * 100
        print(f"  {name}: {per:.3f} % of one core per {mbit:.1f} Mbit/s stream, "
              f"{100 / per:.0f} streams per core; the push() that cuts a segment took "
              f"p50 {statistics.median(cuts) * 1000:.2f} ms, max {max(cuts) * 1000:.2f} ms "
              f"(wall); {cpu / secs * 1000:.2f} ms CPU per 1 s segment "
              f"({cpu / ref:.2f}x the {'bare TS mux' if codec == 'h264' else 'bare decode'})")  # fmt: skip
        if codec == "h264":
            verdict = "holds" if per < TARGET_PERCENT else "MISSED"
            print(f"  target < {TARGET_PERCENT} % of a core per copied stream: {verdict}")
        got = sum(s.frames for s in segments)
        playable = all(
            next(av.open(io.BytesIO(s.data), format="mpegts").decode(video=0)).key_frame
            for s in segments[:3]
        )
        if got != len(frames) or len(segments) != round(secs) or not playable:
            print(f"  CHECK FAILED: {got}/{len(frames)} frames in {len(segments)} segments, "
                  f"first segments start on a keyframe: {playable}")  # fmt: skip
            ok = False

        # the same stream with its audio: G.711 A-law -> AAC-LC, muxed into the segments
        alaw = _alaw(frames)
        with_audio: list[Segment] = []

        def run_audio() -> None:
            cuts.clear()
            with_audio[:] = _segment(codec, frames, cuts, alaw)

        cpu_a = _cpu(run_audio, args.runs)
        _row(name + " + G.711A->AAC", cpu_a, secs, ref)
        per_a = cpu_a / secs * 100
        print(f"  with audio: {per_a:.3f} % of one core per channel against {per:.3f} % "
              f"without (+{per_a - per:.3f} %, {cpu_a / cpu:.2f}x; {cpu_a / ref:.2f}x the "
              f"{'bare TS mux' if codec == 'h264' else 'bare decode'})")  # fmt: skip
        aac = sum(s.audio_frames for s in with_audio)
        if sum(s.frames for s in with_audio) != len(frames) or aac * 1024 / 8000 < secs - 0.5:
            print(f"  CHECK FAILED (audio): {aac} AAC frames for {secs:.0f} s")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
