"""The DVR's read side, measured through real HTTP (uvicorn on 127.0.0.1): time to first byte
of archive MP4 downloads (1 minute and 3 hours), a Range seek into the 3-hour download, export
throughput against ``cat`` of the same stored bytes, and ranges.json over a year of segments
with 1 s gaps.

Usage: ``.venv/bin/python bench/dvr_read.py [--runs 20] [--export-minutes 10] [--year-days 365]
[--in-process]``

The server runs in its own process (uvicorn on the same data folder), as a player and a server
are in real life; ``--in-process`` serves from a thread of the bench instead (then the
client's and the server's Python threads share one GIL, which charges a long download's
streaming to the client's time to first byte).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parents[1]))

from fleetcam.api.app import create_app  # noqa: E402
from fleetcam.config import Settings  # noqa: E402
from fleetcam.domain import dvr  # noqa: E402
from fleetcam.media import fmp4  # noqa: E402
from fleetcam.runtime.local import build_local  # noqa: E402
from tests import dvrgen  # noqa: E402
from tests.integration.httpserver import ServerThread  # noqa: E402

TOKEN = "B" * 64
H = {"Authorization": f"FlespiToken {TOKEN}"}


def record(c: Any, name: str, start_s: int, seconds: int, *, bitrate: int,
           object_s: int = 600) -> list[dvr.SegmentEntry]:
    """``seconds`` of archive in ``object_s`` objects, as the gateway stores it."""
    now = time.time()
    c.dvr_streams.put(dvr.DvrStream(name, 7, 1, dvr.DvrConfig("dvr", 0), now, now))
    init, gops = dvrgen.encoded(gops=10, bitrate=bitrate)
    ikey = dvr.init_key(name, fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    out = []
    for part in range(0, seconds, object_s):
        seg, data = dvrgen.segment(name, (start_s + part) * 1000, min(object_s, seconds - part),
                                   gops=gops, init_key=ikey)
        c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
        c.dvr_index.add(seg)
        out.append(seg)
    return out


SETTLE = 0.05
"""Seconds between timed requests: each one below reads only its first bytes and then drops
the connection, and the server streams on until it notices; without a pause the next request
would be timed against the tail of the previous download (a 3 h one after a 1 min one)."""


def ttfb(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> tuple[float, int]:
    """Seconds to the first body byte (the first chunk the socket gives: splitting it into
    1-byte chunks, as ``iter_raw(1)`` does, costs the client ~0.1 ms per KB), and the status."""
    time.sleep(SETTLE)  # the server finishes with the previous, abandoned, download first
    t = time.perf_counter()
    with client.stream("GET", url, headers=headers) as r:
        for _ in r.iter_raw():
            break
        return time.perf_counter() - t, r.status_code


def to_index(client: httpx.Client, url: str) -> float:
    """Seconds until the whole ``sidx`` arrived (what a player needs before it can seek)."""
    import struct

    t = time.perf_counter()
    buf = b""
    with client.stream("GET", url) as r:
        for chunk in r.iter_raw():
            buf += chunk
            pos = 0
            while pos + 8 <= len(buf):
                size, kind = struct.unpack_from(">I4s", buf, pos)
                if pos + size > len(buf):
                    break
                if kind == b"sidx":
                    return time.perf_counter() - t
                pos += size
    raise RuntimeError(f"no sidx in {url}")


SERVER_FIRST: dict[str, list[float]] = {}
TIMINGS: Path | None = None
"""Server in its own process: it appends ``kind seconds`` lines here (``SERVER_FIRST``)."""


def reset_server_first() -> None:
    SERVER_FIRST.clear()
    if TIMINGS is not None:
        TIMINGS.write_text("")


def collect_server_first() -> None:
    if TIMINGS is None:
        return
    SERVER_FIRST.clear()
    for line in TIMINGS.read_text().splitlines():
        kind, secs = line.split()
        SERVER_FIRST.setdefault(kind, []).append(float(secs))
"""Server side: seconds from a request's arrival to its first body bytes handed to uvicorn,
by kind (``short``, ``long``, ``seek``): the first byte without the client's share."""


class FirstBody:
    """ASGI wrapper timing ``SERVER_FIRST`` for archive downloads."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if not path.endswith(".mp4") or "/archive-" not in path:
            return await self.app(scope, receive, send)
        ranged = any(k == b"range" for k, _ in scope.get("headers", []))
        kind = "seek" if ranged else "short" if path.endswith("-60.mp4") else "long"
        t0 = time.perf_counter()
        seen = False

        async def timed(msg: Any) -> None:
            nonlocal seen
            if msg["type"] == "http.response.body" and not seen:
                seen = True
                took = time.perf_counter() - t0
                SERVER_FIRST.setdefault(kind, []).append(took)
                if TIMINGS is not None:
                    with TIMINGS.open("a") as f:
                        f.write(f"{kind} {took}\n")
            await send(msg)

        await self.app(scope, receive, timed)


def med(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)] * 1000


def bench_downloads(c: Any, base: str, runs: int) -> bool:
    start = 1_700_000_000
    segs = record(c, "long", start, 3 * 3600, bitrate=150_000)
    frags = sum(len(s.fragments) for s in segs)
    print(f"archive: 3 h, {len(segs)} objects, {frags} fragments, "
          f"{sum(s.size for s in segs) / 1e6:.0f} MB")
    q = f"?token={TOKEN}"
    ok = True
    with httpx.Client(base_url=base, timeout=60) as cl:
        for _ in range(3):  # warm-up
            ttfb(cl, "/health")
            ttfb(cl, f"/long/archive-{start + 600}-60.mp4{q}")
        health, short, long, seek, warm = [], [], [], [], []
        total = int(cl.head(f"/long/archive-{start}-10800.mp4{q}").headers["content-length"])
        for i in range(runs):  # interleaved, so load elsewhere hits all alike
            health.append(ttfb(cl, "/health")[0])
            # every URL is new (a layout is reused for 30 s: that is the warm case below)
            t, st = ttfb(cl, f"/long/archive-{start + 600 + i * 60}-60.mp4{q}")
            short.append(t)
            ok &= st == 200
            t, st = ttfb(cl, f"/long/archive-{start + i}-{10800 - i}.mp4{q}")
            long.append(t)
            ok &= st == 200
            url = f"/long/archive-{start + 100 + i}-{10700 - i}.mp4{q}"
            first = total // 2 + i * 1_000_003
            t, st = ttfb(cl, url, {"Range": f"bytes={first}-{first + 1_000_000}"})
            seek.append(t)
            ok &= st == 206
            t, st = ttfb(cl, url, {"Range": f"bytes={first // 2}-{first // 2 + 1_000_000}"})
            warm.append(t)
            ok &= st == 206
    print(f"\n{'request (each URL new unless said)':<44}{'median ms':>10}{'p95 ms':>9}{'x /health':>11}")
    ref = med(health)
    for label, xs in [("GET /health (reference)", health),
                      ("archive-…-60.mp4 (1 min), TTFB", short),
                      ("archive-…-10800.mp4 (3 h), TTFB", long),
                      ("3 h download, Range at the middle, TTFB", seek),
                      ("  the next seek on that download, TTFB", warm)]:
        print(f"{label:<44}{med(xs):>10.1f}{p95(xs):>9.1f}{med(xs) / ref:>11.1f}")
    ratio = med(long) / med(short)
    reset_server_first()
    with httpx.Client(base_url=base, timeout=60) as cl:
        for i in range(runs):  # the same requests again, timed inside the server
            ttfb(cl, f"/long/archive-{start + 900 + i * 60}-60.mp4{q}")
            ttfb(cl, f"/long/archive-{start + 50 + i}-{10700 - i}.mp4{q}")
    collect_server_first()
    srv = {k: med(v) for k, v in SERVER_FIRST.items()}
    with httpx.Client(base_url=base, timeout=60) as cl:
        idx_short = [to_index(cl, f"/long/archive-{start + 1200 + i * 60}-60.mp4{q}")
                     for i in range(runs)]
        idx_long = [to_index(cl, f"/long/archive-{start + 80 + i}-{10600 - i}.mp4{q}")
                    for i in range(runs)]
    print(f"{'whole header (to the end of sidx), 1 min':<44}{med(idx_short):>10.1f}"
          f"{p95(idx_short):>9.1f}")
    print(f"{'whole header (to the end of sidx), 3 h':<44}{med(idx_long):>10.1f}"
          f"{p95(idx_long):>9.1f}")
    print(f"{'server: arrival to first body bytes, 1 min':<44}{srv.get('short', 0):>10.1f}"
          f"{p95(SERVER_FIRST.get('short', [0])):>9.1f}")
    print(f"{'server: arrival to first body bytes, 3 h':<44}{srv.get('long', 0):>10.1f}"
          f"{p95(SERVER_FIRST.get('long', [0])):>9.1f}")
    # the same work without HTTP or other processes' load: CPU time of laying a download out
    from fleetcam.runtime.dvrplay import playback

    svc = playback(c)
    cpu_short, cpu_long = [], []
    for i in range(runs):
        t = time.thread_time()
        svc.download("long", start + 7000 + i, 60)
        cpu_short.append(time.thread_time() - t)
        t = time.thread_time()
        svc.download("long", start + 7 + i, 10800 - 7 - i)
        cpu_long.append(time.thread_time() - t)
    print(f"{'layout CPU (no HTTP), 1 min':<44}{med(cpu_short):>10.1f}{p95(cpu_short):>9.1f}")
    print(f"{'layout CPU (no HTTP), 3 h':<44}{med(cpu_long):>10.1f}{p95(cpu_long):>9.1f}")
    print(f"3 h / 1 min TTFB: {ratio:.2f} (target: both < 100 ms and within 20%: "
          f"{'met' if med(long) < 100 and med(short) < 100 and ratio <= 1.2 else 'NOT met'}); "
          f"inside the server: {srv.get('long', 0) / max(srv.get('short', 1e-9), 1e-9):.2f}")
    print(f"seek TTFB target < 100 ms: {'met' if med(seek) < 100 else 'NOT met'}")
    return ok


def bench_export(c: Any, base: str, minutes: int, tmp: Path) -> bool:
    start = 1_690_000_000
    segs = record(c, "exp", start, minutes * 60, bitrate=1_000_000)
    files = [Path(c.dvr_storage.resolve("dvr")) / s.key for s in segs]
    size = sum(f.stat().st_size for f in files)
    out_dir = c.settings.data_dir / "exports"
    out_dir.mkdir(parents=True, exist_ok=True)
    cat_s, exp_s = [], []
    with httpx.Client(base_url=base, timeout=600, headers=H) as cl:
        for i in range(3):
            dst = out_dir / f"cat-{i}.mp4"
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            with open(dst, "wb") as f:
                subprocess.run(["cat", *map(str, files)], stdout=f, check=True)
                f.flush()
                import os
                os.fsync(f.fileno())
            cat_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = cl.post("/streamer/api/v3/streams/exp/dvr/export",
                        params={"from": start, "duration": minutes * 60, "path": f"e-{i}.mp4"})
            exp_s.append(time.perf_counter() - t)
            if r.status_code != 200:
                print("export failed:", r.text)
                return False
            written = r.json()["result"]["bytes"]
    cat_mb = size / 1e6 / statistics.median(cat_s)
    exp_mb = written / 1e6 / statistics.median(exp_s)
    print(f"\nexport of {minutes} min at 1 Mbit/s ({len(segs)} objects, {size / 1e6:.0f} MB "
          f"stored, {written / 1e6:.0f} MB written), median of 3, both fsync'ed:")
    print(f"  cat of the stored objects into one file: {cat_mb:8.0f} MB/s")
    print(f"  POST .../dvr/export (HTTP, one pass):    {exp_mb:8.0f} MB/s")
    print(f"  export / cat: {exp_mb / cat_mb:.2f} (target >= 0.5: "
          f"{'met' if exp_mb / cat_mb >= 0.5 else 'NOT met'})")
    return True


def bench_ranges(c: Any, base: str, days: int, runs: int) -> bool:
    name = "year"
    now = time.time()
    c.dvr_streams.put(dvr.DvrStream(name, 8, 1, dvr.DvrConfig("dvr", 0), now, now))
    start = 1_660_000_000_000
    frag = dvr.FragmentEntry(0, 599_000, 0, 1000, 100, 25)
    n = days * 24 * 6
    t = time.perf_counter()
    for i in range(n):  # 10-minute segments, each ending 1 s before the next starts
        s = start + i * 600_000
        c.dvr_index.add(dvr.SegmentEntry(name, dvr.segment_id(s, f"{i:08x}"), "dvr", f"k{i}",
                                         "init", s, s + 599_000, 1000, "avc1.42c01e", 320, 240,
                                         (dvr.FragmentEntry(s, 599_000, 0, 1000, 100, 25),)))
    del frag
    print(f"\nranges: {n} segments with 1 s gaps ({days} days), indexed in "
          f"{time.perf_counter() - t:.0f} s")
    db = c.extras["db"]
    ref, api, admin, cold, health = [], [], [], [], []
    with httpx.Client(base_url=base, timeout=60) as cl:
        for _ in range(runs):
            t = time.perf_counter()
            rows = db.conn().execute("SELECT start_ms, end_ms FROM dvr_segments WHERE stream=?"
                                     " ORDER BY segment_id", (name,)).fetchall()
            ref.append(time.perf_counter() - t)
            t = time.perf_counter()
            cl.get("/health")
            health.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = cl.get(f"/{name}/ranges.json", params={"token": TOKEN})
            api.append(time.perf_counter() - t)
            t = time.perf_counter()
            r2 = cl.get(f"/streamer/api/v3/streams/{name}/dvr/ranges", headers=H)
            admin.append(time.perf_counter() - t)
        for _ in range(max(3, runs // 3)):
            c.extras.pop("dvr_playback", None)  # a fresh process: nothing kept in memory
            t = time.perf_counter()
            r3 = cl.get(f"/{name}/ranges.json", params={"token": TOKEN})
            cold.append(time.perf_counter() - t)
    got = len(r.json()["ranges"])
    print(f"  bare SQL of the spans (reference): {med(ref):7.1f} ms")
    print(f"  GET /health (reference):           {med(health):7.1f} ms")
    print(f"  GET /{name}/ranges.json:            {med(api):7.1f} ms  ({got} ranges, "
          f"{len(r.content) / 1e6:.1f} MB, x{med(api) / med(ref):.2f} the SQL, "
          f"x{med(api) / med(health):.1f} /health)")
    print(f"  GET .../dvr/ranges (admin):        {med(admin):7.1f} ms  "
          f"({len(r2.json()['ranges'])} ranges, x{med(admin) / med(ref):.2f} the SQL)")
    print(f"  ranges.json, a fresh process:      {med(cold):7.1f} ms  "
          f"(x{med(cold) / med(ref):.2f} the SQL)")
    print(f"  target < 50 ms: {'met' if max(med(api), med(admin)) < 50 else 'NOT met'} "
          f"(a fresh process's first answer: {'met' if med(cold) < 50 else 'NOT met'})")
    return got == n and len(rows) == n and r3.content == r.content


def serve(data_dir: Path, port_file: Path, timings: Path) -> None:
    """The server process: the same local runtime over ``data_dir``, on a free port."""
    import socket

    import uvicorn

    global TIMINGS
    TIMINGS = timings
    c = build_local(Settings(data_dir=data_dir, admin_token=TOKEN))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(FirstBody(create_app(c)), log_level="warning",
                                           lifespan="off"))
    port_file.write_text(str(sock.getsockname()[1]))
    server.run(sockets=[sock])


class ServerProcess:
    """``with ServerProcess(data_dir, tmp) as base_url``: ``serve`` in a child process."""

    def __init__(self, data_dir: Path, tmp: Path) -> None:
        global TIMINGS
        self.port_file = tmp / "port"
        TIMINGS = tmp / "timings"
        TIMINGS.write_text("")
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(data_dir),
                                      str(self.port_file), str(TIMINGS)])

    def __enter__(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the server process exited during start-up")
            if self.port_file.exists() and self.port_file.read_text():
                base = f"http://127.0.0.1:{self.port_file.read_text()}"
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        return base
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise TimeoutError("the server process did not start within 30 s")
            time.sleep(0.05)

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--export-minutes", type=int, default=10)
    ap.add_argument("--year-days", type=int, default=365)
    ap.add_argument("--only", choices=["downloads", "export", "ranges"])
    ap.add_argument("--in-process", action="store_true",
                    help="serve from a thread of this process (client and server share a GIL)")
    a = ap.parse_args()
    import os
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(timings scale with it: other work shares these cores)")
    with tempfile.TemporaryDirectory(prefix="dvr-bench-") as tmp:
        c = build_local(Settings(data_dir=Path(tmp) / "data", admin_token=TOKEN))
        ok = True
        print("server: " + ("a thread of this process" if a.in_process
                            else "its own process (uvicorn, same data folder)"))
        with (ServerThread(FirstBody(create_app(c))) if a.in_process
              else ServerProcess(Path(tmp) / "data", Path(tmp))) as base:
            if a.only in (None, "downloads"):
                ok &= bench_downloads(c, base, a.runs)
            if a.only in (None, "export"):
                ok &= bench_export(c, base, a.export_minutes, Path(tmp))
            if a.only in (None, "ranges"):
                ok &= bench_ranges(c, base, a.year_days, max(5, a.runs // 2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
