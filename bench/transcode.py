"""H.265→H.264 frames per second: package_raw vs ``ffmpeg -c:v libx264`` on the same input.

Usage: ``.venv/bin/python bench/transcode.py [--seconds 30] [--preset veryfast] [--runs 2]``
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import package_clip as pc

from fleetcam.media import package


def _package(raw: Path, out: Path, preset: str,
             thread_type: str | None = None) -> package.VideoInfo:  # fmt: skip
    """package_raw; ``thread_type`` overrides the H.265 decoder's (to show frame vs slice)."""
    if thread_type is None:
        with raw.open("rb") as src:
            return package.package_raw(src, str(out), preset=preset)
    # The writer builds its decoder in __init__: swap it for one with other threading.
    writer_init = package._Writer.__init__

    def init(self: package._Writer, *args: object) -> None:
        writer_init(self, *args)
        if getattr(self, "decoder", None) is not None:
            self.decoder = package.av.CodecContext.create("hevc", "r")
            self.decoder.thread_count = 0
            self.decoder.thread_type = thread_type

    package._Writer.__init__ = init  # type: ignore[method-assign]
    try:
        with raw.open("rb") as src:
            return package.package_raw(src, str(out), preset=preset)
    finally:
        package._Writer.__init__ = writer_init  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not pc.FFMPEG:
        pc.no_ffmpeg_note()
    t = time.perf_counter()
    gop_frames = pc.pattern("hevc", 10)
    print(f"generated 10 s of 720p H.265 at 2 Mbit/s in {time.perf_counter() - t:.1f} s, "
          f"looped to {args.seconds:g} s; {os.cpu_count()} CPUs; preset {args.preset}; "
          f"medians of {args.runs} round-robin runs; {pc.load_note()}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        raw, es, out = tmp / "in.fcraw", tmp / "in.hevc", tmp / "out.mp4"
        frames = pc.write_raw(raw, "hevc", pc.looped(gop_frames, args.seconds))
        pc.write_annexb(es, pc.looped(gop_frames, args.seconds))
        warm = tmp / "warm.fcraw"
        pc.write_raw(warm, "hevc", pc.looped(gop_frames, 1))
        _package(warm, out, args.preset)
        info = _package(raw, out, args.preset)
        ok = info.frames == frames and info.transcoded and info.codec == "h264"
        print(f"check (frames {info.frames}/{frames}, h264, transcoded): "
              f"{'ok' if ok else 'FAILED'}; result {out.stat().st_size / 2**20:.1f} MiB")
        jobs: list[tuple[str, Callable[[], object]]] = [
            ("package_raw (hevc frame threads)", lambda: _package(raw, out, args.preset)),
            ("package_raw with slice threads instead",
             lambda: _package(raw, out, args.preset, "SLICE")),
        ]  # fmt: skip
        if pc.FFMPEG:
            cmd = ("-framerate", str(pc.FPS), "-i", str(es), "-c:v", "libx264", "-preset",
                   args.preset, "-crf", str(package.CRF), "-pix_fmt", "yuv420p",
                   "-movflags", "+faststart", str(out))  # fmt: skip
            jobs.append((f"ffmpeg -c:v libx264 -preset {args.preset}",
                         lambda: pc.ffmpeg(*cmd)))  # fmt: skip
        rows = pc.compare(jobs, args.runs)
        print(f"{'job':44} {'wall s':>7} {'cpu s':>7} {'frames/s':>9}")
        for r in rows:
            print(f"{r.label:44} {r.wall:7.2f} {r.cpu:7.2f} {frames / r.wall:9.1f}")
        print(f"frame vs slice threading: {rows[1].wall / rows[0].wall:.2f}x wall")
        if pc.FFMPEG:
            print(f"fps package_raw / ffmpeg: {rows[2].wall / rows[0].wall:.2f}x "
                  f"(CPU seconds ratio {rows[2].cpu / rows[0].cpu:.2f}x); target >= 0.95x")
        print(pc.load_note())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
