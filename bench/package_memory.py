"""Peak RSS of the packaging handler on a 1-hour 720p raw clip, measured in a child process.

Usage: ``.venv/bin/python bench/package_memory.py [--hours 1] [--hevc-minutes 3]``

Each job runs in a fresh ``python`` child; its peak RSS comes from ``os.wait4`` (the child's
``ru_maxrss``, read by a tiny launcher) and from the child's own ``VmHWM``. The reference, in
the same run, is a child that only imports av. The H.265 job (transcoding) is shorter: its memory is the decoder's and
encoder's frame buffers, which do not grow with the clip (the 1-hour H.264 job shows that
the streaming part does not either).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import package_clip as pc

TARGET_MIB = 300
_CHILD = r"""
import json, sys, time
import av
job, raw, out = sys.argv[1:4]
result = {}
if job != "import-av":
    from fleetcam.media import package
    t = time.perf_counter()
    with open(raw, "rb", buffering=1 << 16) as src:
        info = package._package(src, out, preset="veryfast", movflags=getattr(package, job))
    result = {"frames": info.frames, "duration": info.duration,
              "seconds": time.perf_counter() - t}
status = open("/proc/self/status").read().split("\n")
result["hwm_kib"] = next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
print(json.dumps(result))
"""


_LAUNCHER = r"""
import json, os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def _child(job: str, raw: Path, out: Path) -> tuple[dict, float]:
    """Run one job in a fresh interpreter: (its report, its ru_maxrss in MiB).

    A small launcher (python -S) starts the job and reads its rusage with ``os.wait4``:
    Linux records the spawning process's own RSS high-water in a child's ``ru_maxrss`` at
    exec, so spawning from this (large) process would hide the job's figure under ours.
    """
    cmd = [sys.executable, "-S", "-c", _LAUNCHER, "-c", _CHILD, job, str(raw), str(out)]
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    report, usage = json.loads(lines[0]), json.loads(lines[-1])
    if usage["status"] != 0:
        raise SystemExit(f"child {job} failed with {usage['status']}")
    return report, usage["maxrss_kib"] / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--hevc-minutes", type=float, default=3.0)
    ap.add_argument("--bitrate", type=int, default=1_000_000)
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        t = time.perf_counter()
        raw264, raw265, out = tmp / "h264.fcraw", tmp / "hevc.fcraw", tmp / "out.mp4"
        seconds = args.hours * 3600
        n264 = pc.write_raw(raw264, "h264", pc.looped(pc.pattern("h264", 2, args.bitrate),
                                                      seconds))  # fmt: skip
        n265 = pc.write_raw(raw265, "hevc", pc.looped(pc.pattern("hevc", 2, args.bitrate),
                                                      args.hevc_minutes * 60))  # fmt: skip
        print(f"raw clips: H.264 {seconds / 3600:g} h, {n264} frames, "
              f"{raw264.stat().st_size / 2**20:.0f} MiB; H.265 {args.hevc_minutes:g} min, "
              f"{n265} frames (720p, {args.bitrate / 1e6:g} Mbit/s, 2 s of pattern looped), "
              f"written in {time.perf_counter() - t:.0f} s")
        jobs = [
            ("reference: python -c 'import av'", "import-av", raw264, None),
            ("H.264 copy, moov first (package_raw)", "FASTSTART", raw264, n264),
            ("H.264 copy, fragmented", "FRAGMENTED", raw264, n264),
            ("H.265 -> H.264 transcode, moov first", "FASTSTART", raw265, n265),
        ]
        print(f"{'job':40} {'peak RSS MiB':>13} {'VmHWM MiB':>10} {'vs ref':>8} "
              f"{'seconds':>8} {'out MiB':>8}")
        ref, target_met = 0.0, False
        for label, job, raw, frames in jobs:
            report, peak = _child(job, raw, out)
            ref = ref or peak
            size = out.stat().st_size / 2**20 if frames else 0.0
            secs = report.get("seconds", 0.0)
            print(f"{label:40} {peak:13.1f} {report['hwm_kib'] / 1024:10.1f} "
                  f"{peak / ref:7.2f}x {secs:8.1f} {size:8.0f}")
            if frames is not None:
                ok &= report["frames"] == frames
                if job == "FASTSTART" and raw is raw264:
                    target_met = peak < TARGET_MIB
            if out.exists():
                out.unlink()
        print(f"target: package_raw peak RSS on the 1-hour clip < {TARGET_MIB} MiB: "
              f"{'met' if target_met else 'MISSED'}; frame counts {'ok' if ok else 'WRONG'}")
    return 0 if ok and target_met else 1


if __name__ == "__main__":
    sys.exit(main())
