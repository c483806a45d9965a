"""Packaging a 5-minute 720p H.264 raw clip with package_raw (warm process) vs ``ffmpeg -c copy``.

Usage: ``.venv/bin/python bench/package_clip.py [--minutes 5] [--short-seconds 10] [--runs 3]
[--fold-seconds 60]``

Then folding a request_video clip into a recorded stream's DVR archive (``DvrClips.fold``, run
right after packaging by the same handler), with and without its G.711 audio (to AAC-LC),
against packaging the same clip in the same run (``--fold-seconds 0`` skips it).

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


def write_raw(path: Path, codec: str, records: Iterable[Record],
              header: dict[str, object] | None = None) -> int:
    with path.open("wb") as out:
        out.write(encode_header({"codec": codec, "channel": 1, **(header or {})}))
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
    ap.add_argument("--fold-seconds", type=float, default=60.0)
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
        if args.fold_seconds > 0:
            ok &= _fold(Path(tmp), args.fold_seconds, args.runs)
    return 0 if ok else 1


def _with_alaw(records: Iterable[Record]) -> Iterator[Record]:
    """Each video frame followed by 40 ms of G.711 A-law, as MDVRs (and the simulator) send."""
    from fleetcam.simulator.streamer import alaw_tone

    for kind, ms, data in records:
        yield kind, ms, data
        yield 3, ms, alaw_tone(1000 // FPS, ms - START_MS)


def _fold(tmp: Path, seconds: float, runs: int) -> bool:
    """CPU of folding a device clip into the archive (fragments, AAC, object writes, SQLite
    rows), video only and with G.711 audio, against package_raw on the clip with audio."""
    from fleetcam.adapters.local.clock import ManualClock
    from fleetcam.config import Settings
    from fleetcam.domain.dvr import DvrConfig, DvrStream
    from fleetcam.runtime.local import build_local

    gop_frames = pattern("h264", 10, bitrate=1_000_000, size=(640, 360))
    video, audio = tmp / "fold-v.fcraw", tmp / "fold-va.fcraw"
    frames = write_raw(video, "h264", looped(gop_frames, seconds))
    write_raw(audio, "h264", _with_alaw(looped(gop_frames, seconds)), {"audio": 6})
    c = build_local(Settings(data_dir=tmp / "data", admin_token="B" * 64),
                    clock=ManualClock(START_MS / 1000 + 86400))
    assert c.dvr_clips is not None
    clips, made = c.dvr_clips, {"n": 0}
    results: dict[str, list[tuple[int, int, tuple[int, ...]]]] = {"v": [], "va": []}

    def fold(raw: Path, key: str) -> None:
        made["n"] += 1  # a stream of its own each run: nothing of the clip is archived yet
        n = made["n"]
        c.dvr_streams.put(DvrStream(f"{n}-1", n, 1, DvrConfig(f"dvr{n}"), 0.0, 0.0))
        with raw.open("rb") as src:
            segs = clips.fold(n, f"clip{n}", src)
        results[key].append((len(segs), sum(f.frames for s in segs for f in s.fragments),
                             segs[0].tracks if segs else ()))

    out = tmp / "fold.mp4"
    jobs: list[tuple[str, Callable[[], object]]] = [
        ("reference: package_raw, same clip with audio",
         lambda: _package(audio, out, package.FASTSTART)),
        ("fold into the archive, video only", lambda: fold(video, "v")),
        ("fold into the archive, video + G.711A -> AAC-LC", lambda: fold(audio, "va")),
    ]
    fold(video, "v"), fold(audio, "va")  # warm-up (codecs, SQLite)
    rows = compare(jobs, runs)
    print(f"\nfold: {seconds:g} s of 640x360 H.264 at 1 Mbit/s, {frames} frames, a 40 ms G.711 "
          f"A-law frame after each; {load_note()}")
    print(f"{'job':52} {'cpu ms':>8} {'cpu/clip':>8} {'x ref':>6}")
    for r in rows:
        print(f"{r.label:52} {r.cpu * 1000:8.1f} {r.cpu / seconds * 100:7.3f}% "
              f"{r.cpu / rows[0].cpu:6.2f}")
    print(f"audio adds {(rows[2].cpu - rows[1].cpu) * 1000:.1f} ms CPU per {seconds:g} s clip "
          f"({(rows[2].cpu - rows[1].cpu) / seconds * 1000:.2f} ms per second of clip); fold with "
          f"audio / package_raw: {rows[2].cpu / rows[0].cpu:.2f}x")
    ok = all(r[1] == frames and r[2] == (1,) for r in results["v"]) and all(
        r[1] == frames and r[2] == (1, 2) for r in results["va"])
    print(f"check: every video frame folded, tracks as expected: {'ok' if ok else 'FAILED'} "
          f"{results['v'][0]} {results['va'][0]}")
    c.extras["db"].close()
    return ok


def _package_warmup(tmp: Path, gop_frames: list[EncodedFrame]) -> None:
    """A worker has PyAV loaded and its codecs initialised once; so does this process."""
    raw = tmp / "warm.fcraw"
    write_raw(raw, "h264", looped(gop_frames, 1))
    _package(raw, tmp / "warm.mp4", package.FASTSTART)


if __name__ == "__main__":
    sys.exit(main())
