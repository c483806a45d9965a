"""Memory of one gateway process holding 10 000 idle, authenticated JT/T 808 connections that
send heartbeats.

Usage: ``.venv/bin/python bench/idle_connections.py [--connections 10000] [--hold 35]``
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import _load

TARGET_BYTES = 1 << 30
TICK = 0.1
"""Heartbeats go out in slots this many seconds apart, each terminal in its own slot."""


class Terminal(asyncio.Protocol):
    """A logged-in terminal that only sends heartbeats; replies are counted, not decoded."""

    def __init__(self, login: bytes, beat: bytes, counts: dict[str, int]) -> None:
        self.login, self.beat = login, beat
        self.counts = counts
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.login)

    def data_received(self, data: bytes) -> None:
        self.counts["rx"] += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts["lost"] += 1


def frames(device: int) -> tuple[bytes, bytes]:
    """(register + authenticate, heartbeat) of simulated terminal ``device``, pre-encoded."""
    from fleetcam.protocol.jt808 import messages as m
    from fleetcam.protocol.jt808.connection import Jt808Connection

    phone, codec = _load.sim(device), Jt808Connection()
    login = codec.send(m.Register(province=31, city=100, manufacturer="FLEET", model="BENCH",
                                  terminal_id=phone[-7:], plate_color=1, plate=f"B{phone[-6:]}"),
                       phone=phone, version2019=False)
    login += codec.send(m.Authenticate(auth_code=_load.auth_code(device)), phone=phone,
                        version2019=False)
    return login, codec.send(m.Heartbeat(), phone=phone, version2019=False)


def idle_main(conn: Connection, port: int, first: int, count: int, heartbeat: float,
              limit: float, cpus: set[int]) -> None:
    """Client process: ``count`` terminals from ``first``, logged in, then heartbeating."""
    _load.pin(cpus)
    _load.raise_nofile(count + 256)
    asyncio.run(_idle(conn, port, first, count, heartbeat, limit))


async def _idle(conn: Connection, port: int, first: int, count: int, heartbeat: float,
                limit: float) -> None:
    loop = asyncio.get_running_loop()
    counts = {"rx": 0, "lost": 0, "failed": 0, "beats": 0}
    encoded = [frames(i) for i in range(first, first + count)]
    gate = asyncio.Semaphore(32)  # the gateway's accept backlog is asyncio's default (100)
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    terminals: list[Terminal] = []

    async def connect(login: bytes, beat: bytes) -> None:
        async with gate:
            for attempt in range(3):
                try:
                    _, t = await loop.create_connection(lambda: Terminal(login, beat, counts),
                                                        "127.0.0.1", port)
                    terminals.append(t)
                    return
                except OSError:
                    await asyncio.sleep(0.5 * (attempt + 1))
            counts["failed"] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(connect(login, beat) for login, beat in encoded))
    conn.send({"connected": len(terminals), "failed": counts["failed"],
               "seconds": time.monotonic() - t0})
    # Heartbeats every ``heartbeat`` s per terminal, terminals spread evenly over the period.
    slots = max(1, int(heartbeat / TICK))
    order = list(range(len(terminals)))
    random.Random(first).shuffle(order)
    start, k = time.monotonic(), 0
    while not stop.is_set() and time.monotonic() - start < limit:
        for j in order[k % slots::slots]:
            tr = terminals[j].transport
            if tr is not None and not tr.is_closing():
                tr.write(terminals[j].beat)
                counts["beats"] += 1
        k += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, start + k * TICK - time.monotonic()))
    loop.remove_reader(conn.fileno())
    counts["lost_while_held"] = counts["lost"]
    for t in terminals:
        if t.transport is not None:
            t.transport.close()
    await asyncio.sleep(0.5)
    conn.send(counts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=4, help="client processes")
    ap.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    ap.add_argument("--hold", type=float, default=35.0,
                    help="seconds all connections are held after the last one logged in")
    args = ap.parse_args(argv)
    n = args.connections
    gw_cpus, load_cpus = _load.placement()
    _load.pin(load_cpus)
    nofile = _load.raise_nofile(n + 1024)
    if nofile[0] < n + 64:
        print(f"WARNING: RLIMIT_NOFILE is {nofile[0]} (hard {nofile[1]}), below the {n + 64} "
              "descriptors the gateway needs; expect failed connections")
    print(f"load average before: {_load.loadavg()}")
    t = time.monotonic()
    with _load.ServerProcess("gateway", cpus=gw_cpus, devices=n, nofile=n + 1024,
                             timeout=300) as server:
        setup = time.monotonic() - t
        time.sleep(1.0)
        rss_before = _load.rss_kib(server.pid)
        print(f"gateway pid {server.pid} pinned to {server.info['pinned']}; {n:,} devices "
              f"created in {setup:.1f} s; RLIMIT_NOFILE {nofile[0]}; {args.clients} client "
              f"processes on cpus {sorted(load_cpus)}")
        per = -(-n // args.clients)
        t0 = time.monotonic()
        limit = 600.0 + args.hold
        clients = [_load.LoadProcess(idle_main, server.info["port_808"], first,
                                     min(per, n - first), args.heartbeat, limit, load_cpus)
                   for first in range(0, n, per)]
        try:
            connected = [c.recv(300) for c in clients]
            while True:
                m = server.mark("registry")
                if m["registered"] >= n or time.monotonic() - t0 > 300:
                    break
                time.sleep(0.5)
            login = time.monotonic() - t0
            cpu = _load.CpuMeter([server.pid])
            time.sleep(args.hold)
            idle_cpu = cpu.read()
            end = server.mark("registry")
            rss_after = _load.rss_kib(server.pid)
            for c in clients:
                c.send("stop")
            reports = [c.recv(60) for c in clients]
        finally:
            for c in clients:
                c.join()
    per_conn = (rss_after - rss_before) * 1024 / max(1, end["registered"] or 0)
    rows = [
        ["connections opened by clients", sum(c["connected"] for c in connected)],
        ["failed to connect", sum(c["failed"] for c in connected)],
        ["registered in ConnectionRegistry", end["registered"]],
        ["authenticated sessions", end["authenticated"]],
        ["all logged in after (s)", login],
        ["heartbeats sent", sum(r["beats"] for r in reports)],
        ["reply bytes received", sum(r["rx"] for r in reports)],
        ["closed by the gateway while held", sum(r["lost_while_held"] for r in reports)],
        ["gateway RSS before (MiB)", rss_before / 1024],
        ["gateway RSS after (MiB)", rss_after / 1024],
        ["bytes per connection", round(per_conn)],
        ["gateway CPU while held", f"{idle_cpu:.1f}%"],
    ]
    print(_load.table(["measure", "value"], rows))
    ok = end["registered"] == n and end["authenticated"] == n
    print(f"all {n:,} registered: {'yes' if ok else 'NO'}; RSS after {rss_after / 1024:.0f} MiB "
          f"(target under 1 GiB: {'met' if rss_after * 1024 < TARGET_BYTES else 'NOT met'})")
    print(f"load average after: {_load.loadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
