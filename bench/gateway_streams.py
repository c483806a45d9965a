"""How many 1 Mbit/s H.264 devices, paced in real time, one gateway process on one core keeps up
with, with no lost or reordered frame.

Usage: ``.venv/bin/python bench/gateway_streams.py [--steps 100,250,500,1000] [--step-seconds 10]``
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import _load

TARGET_STREAMS = 1000
SLOTS = 8
"""Devices are spread over this many send slots a frame period (not all at the same instant)."""
HEADERS = ["streams", "identified in s", "gw CPU", "gw waiting for CPU", "frames/s got/expected",
           "Mbit/s", "drops", "reordered", "lag ms p50/p99/max", "client CPU", "client late p99 ms",
           "client backlog KiB",
           "kept up", ""]
MAX_LAG_MS = 200.0
"""Kept up: 99% of frames arrive within this many ms of their timestamp (5 frame periods)."""


class Sender(asyncio.Protocol):
    """One device's media connection; only writes (the platform never answers on it)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def pace_main(conn: Connection, port: int, first: int, count: int, cycle: _load.Cycle,
              cpus: set[int]) -> None:
    """Client process: devices ``first``..``first+count-1``, each sending one frame a period,
    its packets written together as a device does."""
    _load.pin(cpus)
    asyncio.run(_pace(conn, port, first, count, cycle))


async def _pace(conn: Connection, port: int, first: int, count: int, cycle: _load.Cycle) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)

    async def connect(i: int) -> Sender:
        async with gate:
            _, p = await loop.create_connection(Sender, "127.0.0.1", port)
            return p

    senders = await asyncio.gather(*(connect(i) for i in range(first, first + count)))
    conn.send("connected")
    if not conn.poll(60):
        return
    epoch0_ms, mono0, limit = conn.recv()
    step_ms = 1000 // cycle.fps
    n = len(cycle.frames)
    # Per device: transport, SIM bytes, next sequence, next frame of the clip.
    devices = [[s.transport, bytes.fromhex(_load.sim(first + j)), 0, j % n]
               for j, s in enumerate(senders)]
    slots = [devices[s::SLOTS] for s in range(SLOTS)]
    late: list[float] = []
    sent = backlog = 0
    end = mono0 + limit  # bounded even if the parent never says stop
    k = 0
    while True:
        for s, slot in enumerate(slots):
            offset_ms = k * step_ms + s * step_ms / SLOTS
            due = mono0 + offset_ms / 1000.0
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late.append(max(0.0, (time.monotonic() - due) * 1000.0))
            ts = epoch0_ms + int(offset_ms)
            for d in slot:
                t = d[0]
                if t.is_closing():
                    continue
                buf, d[2] = _load.patch_frame(cycle, d[3], d[1], d[2], ts)
                d[3] = (d[3] + 1) % n
                t.write(buf)
                sent += 1
        else:
            k += 1
            if conn.poll():  # the parent says stop
                break
            if k % 25 == 0:
                backlog = max(backlog, max((d[0].get_write_buffer_size() for d in devices),
                                           default=0))
            continue
        break
    for d in devices:
        d[0].close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.lost for s in senders)), 10)
    late.sort()
    conn.send({"sent": sent, "late_p99": late[int(len(late) * 0.99)] if late else 0.0,
               "late_max": late[-1] if late else 0.0, "backlog": backlog})


def run_step(server: _load.ServerProcess, streams: int, args: argparse.Namespace,
             cycle: _load.Cycle, load_cpus: set[int]) -> dict[str, Any]:
    clients_n = max(1, min(args.clients, streams))
    per = -(-streams // clients_n)
    clients = [_load.LoadProcess(pace_main, server.info["port_1078"], first,
                                 min(per, streams - first), cycle, load_cpus)
               for first in range(0, streams, per)]
    try:
        for c in clients:
            if c.recv(120) != "connected":
                raise RuntimeError("client failed to connect")
        limit = 120.0 + args.warmup + args.step_seconds
        start_in = 0.5
        go = (int((time.time() + start_in) * 1000), time.monotonic() + start_in, limit)
        for c in clients:
            c.send(go)
        t0 = time.monotonic()
        # Each media connection is identified (SIM lookup, registry entry) on its first frame;
        # measure once all are, after a warm-up.
        while (server.mark("registry")["registered"] or 0) < streams:
            if time.monotonic() - t0 > 60:
                raise RuntimeError(f"not all {streams} media connections were identified")
            time.sleep(0.2)
        identified = time.monotonic() - t0 - start_in
        time.sleep(args.warmup)
        gw_cpu = _load.CpuMeter([server.pid])
        gw_wait = _load.CpuMeter([server.pid], _load.run_wait_seconds)
        cl_cpu = _load.CpuMeter([c.pid for c in clients])
        m0 = server.mark()
        time.sleep(args.step_seconds)
        m1 = server.mark()
        cpu, client_cpu, wait = gw_cpu.read(), cl_cpu.read(), gw_wait.read()
        for c in clients:
            c.send("stop")
        reports = [c.recv(60) for c in clients]
    finally:
        for c in clients:
            c.join()
    deadline = time.monotonic() + 30
    while (m := server.mark())["sessions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    el = m1["t"] - m0["t"]
    return {"streams": streams, "identified": identified, "cpu": cpu, "wait": wait,
            "client_cpu": client_cpu,
            "fps": (m1["frames"] - m0["frames"]) / el, "expected": streams * cycle.fps,
            "mbps": (m1["frame_bytes"] - m0["frame_bytes"]) * 8 / el / 1e6,
            "dropped": m["dropped"] - m0["dropped"],
            "out_of_order": m["out_of_order"] - m0["out_of_order"],
            "lag_p50": m1["lag_p50"], "lag_p99": m1["lag_p99"], "lag_max": m1["lag_max"],
            "late_p99": max(r["late_p99"] for r in reports),
            "backlog": max(r["backlog"] for r in reports)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="100,250,500,1000",
                    help="comma-separated stream counts, run in turn")
    ap.add_argument("--step-seconds", type=float, default=8.0, help="seconds measured a step")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds streamed before measuring")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--bitrate", type=int, default=1_000_000, help="bits/s a stream")
    args = ap.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    gw_cpus, load_cpus = _load.placement()
    _load.pin(load_cpus)
    nofile = _load.raise_nofile(max(steps) + 256)
    print(f"load average before: {_load.loadavg()} (other work on the machine skews figures)")
    cycle = _load.encode_cycle(2.0, bitrate=args.bitrate)
    blob = cycle.blob
    print(f"clip: {len(cycle.frames)} frames at {cycle.fps} fps, "
          f"{len(blob) * 8 / 2.0 / 1e6:.2f} Mbit/s, {cycle.packets / 2.0:.0f} packets/s a stream")
    rows, results = [], []
    with _load.ServerProcess("gateway", cpus=gw_cpus, devices=max(steps), step_ms=1000 // cycle.fps,
                             nofile=max(steps) + 256) as server:
        print(f"gateway pid {server.pid} pinned to {server.info['pinned']}; load on cpus "
              f"{sorted(load_cpus)} ({args.clients} client processes); RLIMIT_NOFILE {nofile[0]}")
        for n in steps:
            r = run_step(server, n, args, cycle, load_cpus)
            results.append(r)
            kept = (r["dropped"] == 0 and r["out_of_order"] == 0
                    and r["fps"] >= 0.98 * r["expected"] and r["lag_p99"] <= MAX_LAG_MS)
            client_limited = r["late_p99"] > 1000 / cycle.fps or r["client_cpu"] > 95
            r["kept"] = kept
            rows.append([n, r["identified"], f"{r['cpu']:.0f}%", f"{r['wait']:.0f}%",
                         f"{r['fps']:,.0f}/{r['expected']:,}",
                         r["mbps"], r["dropped"], r["out_of_order"],
                         f"{r['lag_p50']:.0f}/{r['lag_p99']:.0f}/{r['lag_max']:.0f}",
                         f"{r['client_cpu']:.0f}%", f"{r['late_p99']:.0f}", r["backlog"] // 1024,
                         "yes" if kept else "NO",
                         " ".join(label for label, on in (("client-limited", client_limited),
                                                          ("gateway-starved", r["wait"] > 20))
                                  if on)])
            print(_load.table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(_load.table(HEADERS, rows))
    best = max((r["streams"] for r in results if r["kept"]), default=0)
    print(f"most streams kept up with on one core: {best} (target {TARGET_STREAMS}: "
          f"{'met' if best >= TARGET_STREAMS else 'NOT met'})")
    broken = any(r["dropped"] or r["out_of_order"] for r in results)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
