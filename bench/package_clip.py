"""Packaging a 5-minute 720p H.264 raw clip with package_raw (warm process) vs ``ffmpeg -c copy``.

Usage: ``.venv/bin/python bench/package_clip.py [--minutes 5] [--short-seconds 10] [--runs 3]``

Also the shared clip builders of the media benchmarks (transcode, preview, package_memory).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from fleetcam.domain.rawclip import encode_frame, encode_header
from fleetcam.media import package
from fleetcam.media.testpattern import EncodedFrame, encode_pattern

START_MS = 1_778_300_000_000
FPS = 25
FFMPEG = shutil.which("ffmpeg")
Record = tuple[int, int, bytes]  # kind, timestamp ms, Annex-B data


class Timing(NamedTuple):
    label: str
    wall: float
    cpu: float


def pattern(codec: str, seconds: float, bitrate: int = 2_000_000,
            size: tuple[int, int] = (1280, 720)) -> list[EncodedFrame]:  # fmt: skip
    """``seconds`` of the 720p pattern, a keyframe every second."""
    return list(encode_pattern(codec, *size, FPS, start_time=START_MS / 1000,
                               seconds=seconds, bitrate=bitrate, gop=FPS))  # fmt: skip


def looped(frames: list[EncodedFrame], seconds: float) -> Iterator[Record]:
    """The frames over and over (each loop starts on its keyframe), times rewritten."""
    total = round(seconds * FPS)
    for n in range(total):
        f = frames[n % len(frames)]
        yield (0 if f.keyframe else 1), START_MS + n * 1000 // FPS, f.data


def write_raw(path: Path, codec: str, records: Iterable[Record]) -> int:
    with path.open("wb") as out:
        out.write(encode_header({"codec": codec, "channel": 1}))
        count = 0
        for kind, ms, data in records:
            out.write(encode_frame(kind, ms, data))
            count += 1
    return count


def write_annexb(path: Path, records: Iterable[Record]) -> None:
    with path.open("wb") as out:
        for _, _, data in records:
            out.write(data)


def ffmpeg(*args: str) -> None:
    assert FFMPEG is not None
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def compare(jobs: list[tuple[str, Callable[[], object]]], runs: int) -> list[Timing]:
    """Run the jobs round-robin ``runs`` times (so load from elsewhere on the machine hits
    them alike) and keep each one's median wall and CPU seconds (CPU includes children)."""
    walls: list[list[float]] = [[] for _ in jobs]
    cpus: list[list[float]] = [[] for _ in jobs]
    for _ in range(runs):
        for n, (_, fn) in enumerate(jobs):
            c, t = _cpu(), time.perf_counter()
            fn()
            walls[n].append(time.perf_counter() - t)
            cpus[n].append(_cpu() - c)
    return [Timing(label, statistics.median(w), statistics.median(c))
            for (label, _), w, c in zip(jobs, walls, cpus)]  # fmt: skip


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def no_ffmpeg_note() -> None:
    print("ffmpeg not found (/usr/bin/ffmpeg): the ffmpeg column is skipped. Install it with "
          "`apt-get update && apt-get install -y --no-install-recommends ffmpeg`.")


def _package(raw: Path, out: Path, movflags: str) -> package.VideoInfo:
    with raw.open("rb") as src:
        return package._package(src, str(out), preset="veryfast", movflags=movflags)


def _case(tmp: Path, name: str, gop_frames: list[EncodedFrame], seconds: float,
          runs: int) -> bool:  # fmt: skip
    raw, es, mp4 = tmp / f"{name}.fcraw", tmp / f"{name}.h264", tmp / f"{name}.in.mp4"
    frames = write_raw(raw, "h264", looped(gop_frames, seconds))
    write_annexb(es, looped(gop_frames, seconds))
    mib = es.stat().st_size / 2**20
    out = tmp / "out.mp4"
    info = _package(raw, out, package.FASTSTART)
    ok = info.frames == frames and not info.transcoded
    print(f"\n{name}: {seconds:g} s, {frames} frames 1280x720, {mib:.1f} MiB of H.264; "
          f"result {info.frames} frames, {info.duration:.2f} s, check {'ok' if ok else 'FAILED'}")
    jobs: list[tuple[str, Callable[[], object]]] = [
        ("package_raw, moov first (+faststart)",
         lambda: _package(raw, out, package.FASTSTART)),
        ("package_raw, fragmented (frag_keyframe)",
         lambda: _package(raw, out, package.FRAGMENTED)),
    ]  # fmt: skip
    if FFMPEG:
        ffmpeg("-framerate", str(FPS), "-i", str(es), "-c", "copy", str(mp4))
        jobs += [
            ("ffmpeg -i clip.h264 -c copy -movflags +faststart",
             lambda: ffmpeg("-framerate", str(FPS), "-i", str(es), "-c", "copy",
                            "-movflags", "+faststart", str(out))),
            ("ffmpeg -i clip.mp4 -c copy -movflags +faststart",
             lambda: ffmpeg("-i", str(mp4), "-c", "copy", "-movflags", "+faststart", str(out))),
        ]  # fmt: skip
    rows = compare(jobs, runs)
    print(f"{'job':52} {'wall ms':>9} {'cpu ms':>8} {'MiB/s':>7} {'frames/s':>9}")
    for r in rows:
        print(f"{r.label:52} {r.wall * 1000:9.1f} {r.cpu * 1000:8.1f} {mib / r.wall:7.1f} "
              f"{frames / r.wall:9.0f}")
    if FFMPEG:
        ours, ref, ref_mp4 = rows[0], rows[2], rows[3]
        print(f"throughput package_raw / ffmpeg (.h264 input): {ref.wall / ours.wall:.2f}x "
              f"(.mp4 input: {ref_mp4.wall / ours.wall:.2f}x; by CPU time "
              f"{ref.cpu / ours.cpu:.2f}x); target >= 1x")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--short-seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not FFMPEG:
        no_ffmpeg_note()
    t = time.perf_counter()
    gop_frames = pattern("h264", 10)  # 10 s generated once, looped (each loop on a keyframe)
    print(f"generated 10 s of 720p H.264 at 2 Mbit/s in {time.perf_counter() - t:.1f} s; "
          f"medians of {args.runs} round-robin runs in this (warm) process; {load_note()}")
    with tempfile.TemporaryDirectory() as tmp:
        _package_warmup(Path(tmp), gop_frames)
        ok = _case(Path(tmp), "long", gop_frames, args.minutes * 60, args.runs)
        ok &= _case(Path(tmp), "short", gop_frames, args.short_seconds, max(args.runs, 5))
    return 0 if ok else 1


def _package_warmup(tmp: Path, gop_frames: list[EncodedFrame]) -> None:
    """A worker has PyAV loaded and its codecs initialised once; so does this process."""
    raw = tmp / "warm.fcraw"
    write_raw(raw, "h264", looped(gop_frames, 1))
    _package(raw, tmp / "warm.mp4", package.FASTSTART)


if __name__ == "__main__":
    sys.exit(main())
