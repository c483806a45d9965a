"""Teltonika: AVL records decoded a second on one core, and memory per idle tracker connection.

1. Records: Codec 8E packets of 10 records (the common IO set) through ``TeltonikaStream`` and
   ``record_message``, against JT/T 808 0x0200 reports through ``Jt808Connection`` and
   ``location_message`` in the same run (CPU time, median of ``--runs``).
2. Memory: a gateway process (local container) holding ``--connections`` trackers that sent
   their IMEI and stay idle; its RSS growth per connection, against a bare asyncio Protocol
   listener in the same process holding as many idle connections (the floor of a socket and a
   transport).

Usage: ``.venv/bin/python bench/teltonika.py [--records 200000] [--connections 2000]``
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _load

from fleetcam.gateway.translate import location_message
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import NEED_DATA, Jt808Connection
from fleetcam.protocol.teltonika.codec import (AvlRecord, TeltonikaStream, encode_avl,
                                               record_message)


def teltonika_wire(n: int) -> bytes:
    rec = AvlRecord(1_700_000_000_000, 0, 25.2797, 54.6872, 120, 90, 12, 50, 0,
                    {239: 1, 240: 1, 21: 4, 66: 13800, 67: 4100, 16: 123456, 69: 1, 181: 9,
                     182: 7, 200: 0, 241: 24602})
    return encode_avl([rec] * 10) * (n // 10)


def jt808_wire(n: int) -> bytes:
    codec = Jt808Connection()
    loc = m.Location(alarm=0, status=3, latitude=54.6872, longitude=25.2797, altitude=120,
                     speed=50.0, direction=90, time=1_700_000_000,
                     extras={0x01: (123456).to_bytes(4, "big"), 0x30: bytes([20]),
                             0x31: bytes([12])})
    return codec.send(loc, phone="013912345678", version2019=False) * n


def run_teltonika(wire: bytes) -> tuple[float, int]:
    t = time.process_time()
    s = TeltonikaStream()
    s.imei = "350612071913857"
    count = 0
    for i in range(0, len(wire), 65536):
        for p in s.feed(wire[i:i + 65536]):
            for r in p.body:  # type: ignore[union-attr]
                record_message(r)
                count += 1
    return time.process_time() - t, count


def run_jt808(wire: bytes) -> tuple[float, int]:
    t = time.process_time()
    c = Jt808Connection(max_buffer=1 << 20)
    count = 0
    for i in range(0, len(wire), 65536):
        c.receive_data(wire[i:i + 65536])
        while (ev := c.next_event()) is not NEED_DATA:
            location_message(ev.body, 1, "x", 0.0)  # type: ignore[union-attr]
            count += 1
    return time.process_time() - t, count


def server_main(conn: mp.connection.Connection, n: int) -> None:  # type: ignore[name-defined]
    asyncio.run(_serve(conn, n))


class Idle(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


async def _serve(conn: mp.connection.Connection, n: int) -> None:  # type: ignore[name-defined]
    from fleetcam.config import Settings
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.local import build_local

    _load.raise_nofile(4 * n + 100)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), gateway_host="127.0.0.1", jt808_port=0,
                            jt1078_port=0, attachment_port=0, teltonika_port=0,
                            teltonika_camera_port=0, admin_token="B" * 64,
                            max_connections_per_address=0, preauth_timeout=3600,
                            idle_timeout=3600)
        container = build_local(settings)
        container.devices.create([{"ident": str(350000000000000 + i)} for i in range(n)])
        gw = Gateway(container)
        await gw.start()
        bare = await asyncio.get_running_loop().create_server(Idle, "127.0.0.1", 0)
        conn.send((gw.port_teltonika, bare.sockets[0].getsockname()[1]))
        while True:
            cmd = await asyncio.to_thread(conn.recv)
            if cmd == "rss":
                conn.send(_rss())
            elif cmd == "stop":
                break
        await gw.stop()


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _connect(port: int, n: int, imei: bool) -> list[asyncio.StreamWriter]:
    writers = []
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if imei:
            code = str(350000000000000 + i).encode()
            writer.write(len(code).to_bytes(2, "big") + code)
            await reader.readexactly(1)
        writers.append(writer)
    return writers


def memory(n: int) -> tuple[float, float]:
    parent, child = mp.Pipe()
    proc = mp.Process(target=server_main, args=(child, n))
    proc.start()
    port, bare_port = parent.recv()
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(resource.getrlimit(
        resource.RLIMIT_NOFILE)[1], 4 * n + 100),) * 2)

    async def measure() -> tuple[float, float]:
        await asyncio.sleep(1)
        parent.send("rss")
        base = parent.recv()
        bare = await _connect(bare_port, n, imei=False)
        await asyncio.sleep(1)
        parent.send("rss")
        after_bare = parent.recv()
        trackers = await _connect(port, n, imei=True)
        await asyncio.sleep(2)
        parent.send("rss")
        after = parent.recv()
        for w in bare + trackers:
            w.close()
        return (after_bare - base) / n, (after - after_bare) / n

    try:
        return asyncio.run(measure())
    finally:
        parent.send("stop")
        proc.join(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tw, jw = teltonika_wire(args.records), jt808_wire(args.records)
    t = statistics.median(run_teltonika(tw)[0] for _ in range(args.runs))
    j = statistics.median(run_jt808(jw)[0] for _ in range(args.runs))
    print(f"Teltonika Codec 8E : {args.records / t:10,.0f} records/s per core")
    print(f"JT/T 808 0x0200    : {args.records / j:10,.0f} reports/s per core  [reference]")
    print(f"ratio Teltonika/JT808: {j / t:.2f}x")
    bare_kib, tracker_kib = memory(args.connections)
    print(f"idle connection, bare asyncio Protocol: {bare_kib:6.1f} KiB  [reference]")
    print(f"idle Teltonika tracker (IMEI accepted): {tracker_kib:6.1f} KiB "
          f"(ratio {tracker_kib / bare_kib if bare_kib else float('nan'):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
