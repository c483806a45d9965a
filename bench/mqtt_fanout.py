"""MQTT fan-out: fleetcam's embedded broker against amqtt and mosquitto, in the same run.

Each broker runs alone in its own process pinned to one CPU (mosquitto too); a client process
on the other CPU opens ``--subscribers`` MQTT 3.1.1 connections subscribed to ``bench/#`` and
one publisher that sends ``--messages`` QoS 0 PUBLISHes of ``--size`` bytes in batches of
``--batch``, waiting after each batch until every subscriber has all of it (so no broker is
pushed past its queues). It reports delivered messages a second, broker CPU microseconds a
delivered message, and the ratios fleetcam/amqtt and fleetcam/mosquitto. fleetcam's broker
is measured with token authentication on, the others anonymous. Exits non-zero if a broker
loses or duplicates a message.

    .venv/bin/python bench/mqtt_fanout.py [--subscribers 50] [--messages 2000] [--size 512]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import MP, cpu_seconds, pin, placement  # noqa: E402

TOKEN = "B" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- brokers ----------------------------------------------------------------------------
def run_fleetcam(port: int, cpus: set[int]) -> None:
    pin(cpus)
    from fleetcam.broker.server import Broker, Limits
    from fleetcam.broker.transports import TcpListener

    class Master:
        kind = "master"
        acl = ()
        token_id = 1

        def allows(self, *a: object, **k: object) -> bool:
            return True

    principal = Master()

    async def main() -> None:
        broker = Broker("fleetcam", lambda raw: principal if raw.endswith(TOKEN) else None,
                        lambda p: {"id": 1}, limits=Limits(max_sessions=10_000))
        await broker.start()
        await TcpListener(broker, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def run_amqtt(port: int, cpus: set[int]) -> None:
    pin(cpus)
    import logging

    logging.disable(logging.WARNING)
    from amqtt.broker import Broker

    async def main() -> None:
        broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}",
                                                  "max_connections": 10_000}},
                         "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                                     {"allow_anonymous": True}}})
        await broker.start()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the load ---------------------------------------------------------------------------
def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    n, enc = len(body), bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        enc.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes([first]) + bytes(enc) + body


def connect_packet(client_id: str, username: str | None) -> bytes:
    flags = 0x02 | (0x80 if username else 0)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", 60) + _str(client_id)
    if username:
        body += _str(username)
    return _packet(0x10, body)


class Counter:
    """Reads a subscriber's stream and counts PUBLISH packets by their fixed headers."""

    def __init__(self) -> None:
        self.count = 0
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        i = 0
        while True:
            if len(buf) - i < 2:
                break
            n, shift, j = 0, 0, i + 1
            while j < len(buf):
                b = buf[j]
                n |= (b & 0x7F) << shift
                j += 1
                if not b & 0x80:
                    break
                shift += 7
            else:
                break
            if len(buf) < j + n:
                break
            if buf[i] >> 4 == 3:
                self.count += 1
            i = j + n
        del buf[:i]


async def load(port: int, username: str | None, subscribers: int, messages: int, size: int,
               batch: int) -> dict[str, float]:
    subs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, Counter]] = []
    for i in range(subscribers):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(connect_packet(f"s{i}", username))
        w.write(_packet(0x82, struct.pack(">H", 1) + _str("bench/#") + b"\x00"))
        await w.drain()
        ack = await asyncio.wait_for(r.readexactly(4), 10)  # CONNACK
        assert ack[3] == 0, f"refused: {ack!r}"
        await asyncio.wait_for(r.readexactly(5), 10)  # SUBACK
        subs.append((r, w, Counter()))

    async def reader(r: asyncio.StreamReader, counter: Counter) -> None:
        while data := await r.read(65536):
            counter.feed(data)

    tasks = [asyncio.create_task(reader(r, c)) for r, _, c in subs]
    pr, pw = await asyncio.open_connection("127.0.0.1", port)
    pw.write(connect_packet("pub", username))
    await pw.drain()
    await asyncio.wait_for(pr.readexactly(4), 10)
    payload = os.urandom(size)
    publish = _packet(0x30, _str("bench/t") + payload)
    t0 = time.perf_counter()
    sent = 0
    while sent < messages:
        n = min(batch, messages - sent)
        pw.write(publish * n)
        await pw.drain()
        sent += n
        deadline = time.perf_counter() + 30
        while min(c.count for _, _, c in subs) < sent:
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.2)  # duplicates, if any, would arrive now
    counts = [c.count for _, _, c in subs]
    for t in tasks:
        t.cancel()
    for _, w, _ in subs:
        w.close()
    pw.close()
    return {"elapsed": elapsed, "delivered": sum(counts), "min": min(counts),
            "max": max(counts)}


def client(port: int, username: str | None, args: argparse.Namespace, cpus: set[int],
           out: "MP.Queue[dict[str, float]]") -> None:  # type: ignore[name-defined]
    pin(cpus)
    out.put(asyncio.run(load(port, username, args.subscribers, args.messages, args.size,
                             args.batch)))


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(name: str, start: "callable", username: str | None,  # type: ignore[valid-type]
            args: argparse.Namespace) -> dict[str, float] | None:
    broker_cpus, load_cpus = placement()
    port = free_port()
    proc = start(port, broker_cpus)
    try:
        wait_port(port)
        pid = proc.pid
        before = cpu_seconds(pid)
        q = MP.Queue()
        c = MP.Process(target=client, args=(port, username, args, load_cpus, q))
        c.start()
        result = q.get(timeout=600)
        c.join()
        result["cpu"] = cpu_seconds(pid) - before
        result["name"] = name  # type: ignore[assignment]
        return result
    finally:
        proc.terminate()
        proc.join() if hasattr(proc, "join") else proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()

    def proc_of(fn: "callable") -> "callable":  # type: ignore[valid-type]
        def start(port: int, cpus: set[int]) -> object:
            p = MP.Process(target=fn, args=(port, cpus), daemon=True)
            p.start()
            return p
        return start

    tmp = Path(tempfile.mkdtemp())

    def start_mosquitto(port: int, cpus: set[int]) -> object:
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 100000\n")
        p = subprocess.Popen(["taskset", "-c", ",".join(map(str, cpus)), mosquitto, "-c",
                              str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        # taskset execs mosquitto in place: the pid is mosquitto's
        p.join = p.wait  # type: ignore[attr-defined]
        return p

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    runs = [("fleetcam", proc_of(run_fleetcam), f"FlespiToken {TOKEN}"),
            ("amqtt", proc_of(run_amqtt), None)]
    if os.path.exists(mosquitto):
        runs.append(("mosquitto", start_mosquitto, None))
    else:
        print("mosquitto not installed: apt-get install -y mosquitto (row skipped)")
    results = {}
    for name, start, username in runs:
        results[name] = measure(name, start, username, args)
    expected = args.subscribers * args.messages
    print(f"{args.subscribers} subscribers x {args.messages} messages of {args.size} B "
          f"(batches of {args.batch}), MQTT 3.1.1 QoS 0, each broker on one CPU")
    print(f"{'broker':<10} {'delivered/s':>12} {'broker CPU us/msg':>18} {'wall s':>8} "
          f"{'received':>10}")
    ok = True
    for name, r in results.items():
        rate = r["delivered"] / r["elapsed"]
        cpu_us = r["cpu"] / max(r["delivered"], 1) * 1e6
        print(f"{name:<10} {rate:>12,.0f} {cpu_us:>18.1f} {r['elapsed']:>8.2f} "
              f"{int(r['delivered']):>10}")
        if r["delivered"] != expected:
            print(f"  {name}: expected {expected} deliveries (min {r['min']}, max {r['max']})")
            ok = ok and name != "fleetcam"
    f = results["fleetcam"]
    frate = f["delivered"] / f["elapsed"]
    for ref in ("amqtt", "mosquitto"):
        if ref in results:
            r = results[ref]
            print(f"fleetcam/{ref}: throughput {frate / (r['delivered'] / r['elapsed']):.2f}x, "
                  f"CPU per message {(f['cpu'] / f['delivered']) / (r['cpu'] / r['delivered']):.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
