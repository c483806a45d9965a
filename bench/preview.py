"""Preview generation (probe_video) in a warm worker for a 720p MP4: median and p95 ms.

Usage: ``.venv/bin/python bench/preview.py [--seconds 60] [--calls 200]``

The reference, measured in the same run, is the ffmpeg command line making the same
thumbnail: ``ffmpeg -i clip.mp4 -frames:v 1 -vf scale=320:-2 preview.jpg``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import package_clip as pc

from fleetcam.media.package import package_raw
from fleetcam.media.probe import probe_video

TARGET_MS = 50.0


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def _calls(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    if not pc.FFMPEG:
        pc.no_ffmpeg_note()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        raw, mp4, jpg = tmp / "in.fcraw", tmp / "clip.mp4", tmp / "preview.jpg"
        pc.write_raw(raw, "h264", pc.looped(pc.pattern("h264", 2), args.seconds))
        with raw.open("rb") as src:
            package_raw(src, str(mp4))  # the packager's own output: moov first
        info, jpeg = probe_video(str(mp4))  # warm: PyAV loaded, codecs initialised
        ok = (info.width, info.height, info.codec) == (1280, 720, "h264")
        ok &= jpeg[:2] == b"\xff\xd8"
        print(f"{mp4.stat().st_size / 2**20:.1f} MiB 720p MP4, {info.duration:g} s, "
              f"{info.frames} frames; preview {len(jpeg)} bytes; check {'ok' if ok else 'FAILED'}")
        rows = [("probe_video (warm worker)", _calls(lambda: probe_video(str(mp4)), args.calls))]
        if pc.FFMPEG:
            cmd = ("-i", str(mp4), "-frames:v", "1", "-vf", "scale=320:-2", str(jpg))
            rows.append(("ffmpeg -frames:v 1 -vf scale=320:-2 (process)",
                         _calls(lambda: pc.ffmpeg(*cmd), max(20, args.calls // 10))))  # fmt: skip
        print(f"{'job':48} {'calls':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        for label, samples in rows:
            med, p95, top = _percentiles(samples)
            print(f"{label:48} {len(samples):6} {med:10.2f} {p95:8.2f} {top:8.2f}")
        med, p95, _ = _percentiles(rows[0][1])
        if pc.FFMPEG:
            ref = statistics.median(rows[1][1])
            print(f"median: probe_video in the warm worker is {ref / med:.1f}x faster than "
                  "the ffmpeg process")
        verdict = "met" if p95 < TARGET_MS else "MISSED"
        print(f"target: p95 {p95:.1f} ms < {TARGET_MS:g} ms: {verdict}; {pc.load_note()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
