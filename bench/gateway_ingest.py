"""JT/T 1078 ingest rate of one gateway process on one core, against two same-run references.

Usage: ``.venv/bin/python bench/gateway_ingest.py [--connections 8] [--duration 8]``
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

TARGET_RATIO = 0.3


class Blaster(asyncio.Protocol):
    """Writes its blob over and over while the transport accepts it (flow-controlled)."""

    def __init__(self, prime: bytes, blob: bytes) -> None:
        self.prime, self.blob = prime, blob
        self.transport: asyncio.Transport | None = None
        self.blasting = self.paused = False
        self.sent = 0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.prime)

    def pump(self) -> None:
        t = self.transport
        while self.blasting and not self.paused and t is not None and not t.is_closing():
            t.write(self.blob)
            self.sent += len(self.blob)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.blasting = False
        if not self.lost.done():
            self.lost.set_result(exc)


def blast_main(conn: Connection, port: int, first: int, count: int, cycle: _load.Cycle,
               prime_wait: float, limit: float, cpus: set[int]) -> None:
    """Client process: ``count`` connections (devices ``first``...) replaying the cycle."""
    _load.pin(cpus)
    asyncio.run(_blast(conn, port, first, count, cycle, prime_wait, limit))


async def _blast(conn: Connection, port: int, first: int, count: int, cycle: _load.Cycle,
                 prime_wait: float, limit: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    protocols: list[Blaster] = []
    for i in range(first, first + count):
        prime = readdressed(cycle, i)
        blob = prime * max(1, (1 << 20) // len(prime))  # about 1 MiB a write, still in order
        _, p = await loop.create_connection(lambda: Blaster(prime, blob), "127.0.0.1", port)
        protocols.append(p)
    await asyncio.sleep(prime_wait)  # the gateway identifies each SIM before the flood
    t0 = time.monotonic()
    for p in protocols:
        p.blasting = True
        p.pump()
    conn.send("blasting")
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), limit)  # bounded even if the parent vanished
    elapsed = time.monotonic() - t0
    for p in protocols:
        p.blasting = False
        if p.transport is not None:
            p.transport.abort()
    await asyncio.gather(*(p.lost for p in protocols))
    loop.remove_reader(conn.fileno())
    conn.send({"sent": sum(p.sent for p in protocols), "elapsed": elapsed})


def readdressed(cycle: _load.Cycle, device: int) -> bytes:
    """The cycle as device ``device`` sends it (its SIM in every packet)."""
    sim6 = bytes.fromhex(_load.sim(device))
    seq, parts = 0, []
    for k, ts in enumerate(cycle.timestamps):
        buf, seq = _load.patch_frame(cycle, k, sim6, seq, ts)
        parts.append(bytes(buf))
    return b"".join(parts)


def measure(mode: str, args: argparse.Namespace, cycle: _load.Cycle,
            gw_cpus: set[int], load_cpus: set[int]) -> dict[str, Any]:
    options: dict[str, Any] = {"cpus": gw_cpus}
    if mode == "gateway":
        n = len(cycle.timestamps)
        options |= {"devices": args.connections,
                    "cycle_next": {cycle.timestamps[k]: cycle.timestamps[(k + 1) % n]
                                   for k in range(n)}}
    with _load.ServerProcess(mode, **options) as server:
        per = -(-args.connections // args.clients)
        clients = [_load.LoadProcess(blast_main, server.info["port_1078"], first,
                                     min(per, args.connections - first), cycle, 1.0,
                                     args.duration + 30, load_cpus)
                   for first in range(0, args.connections, per)]
        try:
            for c in clients:
                if c.recv(60) != "blasting":
                    raise RuntimeError("client failed")
            time.sleep(args.warmup)
            gw_cpu = _load.CpuMeter([server.pid])
            gw_wait = _load.CpuMeter([server.pid], _load.run_wait_seconds)
            cl_cpu = _load.CpuMeter([c.pid for c in clients])
            m0 = server.mark()
            time.sleep(args.duration)
            m1 = server.mark()
            result = {"mode": mode, "elapsed": m1["t"] - m0["t"], "m0": m0, "m1": m1,
                      "cpu": gw_cpu.read(), "client_cpu": cl_cpu.read(), "wait": gw_wait.read(),
                      "pinned": server.info["pinned"]}
            for c in clients:
                c.send("stop")
            sent = [c.recv(60) for c in clients]
            result["sent"] = sum(s["sent"] for s in sent)
        finally:
            for c in clients:
                c.join()
        if mode == "gateway":
            time.sleep(0.3)  # let connection_lost run so the last checks see every frame
            result["final"] = server.mark()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=8, help="media connections (devices)")
    ap.add_argument("--clients", type=int, default=1, help="load processes")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per server")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds blasted before measuring")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the replayed clip")
    args = ap.parse_args(argv)
    gw_cpus, load_cpus = _load.placement()
    _load.pin(load_cpus)
    print(f"load average before: {_load.loadavg()} (other work on the machine skews figures)")
    t = time.monotonic()
    cycle = _load.encode_cycle(args.seconds)
    blob = cycle.blob
    print(f"clip: {len(cycle.timestamps)} frames, {cycle.packets} packets, {len(blob):,} bytes "
          f"(avg packet {len(blob) / cycle.packets:.0f} B, avg frame "
          f"{len(blob) / len(cycle.timestamps):.0f} B), encoded in {time.monotonic() - t:.1f} s")
    results = [measure(mode, args, cycle, gw_cpus, load_cpus)
               for mode in ("count", "parse", "gateway")]
    rows, rate = [], {}
    for r in results:
        m0, m1, el = r["m0"], r["m1"], r["elapsed"]
        rate[r["mode"]] = (m1["bytes"] - m0["bytes"]) / el / 1e6
        frames = (m1["frames"] - m0["frames"]) / el if r["mode"] == "gateway" else None
        packets = (m1["packets"] - m0["packets"]) / el if r["mode"] == "parse" else None
        rows.append([{"count": "byte counter (ceiling)", "parse": "header parse",
                      "gateway": "gateway"}[r["mode"]], rate[r["mode"]],
                     f"{packets:,.0f}" if packets else "-", f"{frames:,.0f}" if frames else "-",
                     f"{r['cpu']:.0f}%", f"{r['wait']:.0f}%", f"{r['client_cpu']:.0f}%",
                     r["pinned"]])
    print(f"{args.connections} connections, {args.clients} client process(es), "
          f"{args.duration:.0f} s measured each")
    print(_load.table(["server", "MB/s", "packets/s", "frames/s", "server CPU",
                       "server waiting for CPU", "client CPU",
                       "server pinned"], rows))
    gw = results[2]
    final = gw["final"]
    print(f"gateway/ceiling = {rate['gateway'] / rate['count']:.2f}x   "
          f"gateway/header-parse = {rate['gateway'] / rate['parse']:.2f}x   "
          f"(target >= {TARGET_RATIO}x the ceiling: "
          f"{'met' if rate['gateway'] >= TARGET_RATIO * rate['count'] else 'NOT met'})")
    ok = final["dropped"] == 0 and final["out_of_order"] == 0 and final["frames"] > 0
    print(f"gateway frames: {final['frames']:,} whole frames out, {final['delivered']:,} to the "
          f"sink, dropped {final['dropped']}, out of order {final['out_of_order']} -> "
          f"{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
