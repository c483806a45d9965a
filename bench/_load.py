"""Shared helpers of the gateway benchmarks: server and load processes, /proc readings, tables."""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

MP = mp.get_context("spawn")  # children start clean: no inherited event loop or threads
SIM_BASE = 13_900_000_000  # SIMs 013900000000 + i: 12 digits, sent as BCD[6]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAGIC = b"01cd"
_LENGTH_AT = {0: 28, 1: 28, 2: 28, 3: 24, 4: 16}  # body length offset by data type (BCD[6] SIM)
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


def sim(i: int) -> str:
    """The SIM (and device ident) of simulated device ``i``."""
    return f"{SIM_BASE + i:012d}"


# -- process placement and /proc readings ----------------------------------------------
def pin(cpus: set[int]) -> str:
    """Pin the calling process to ``cpus`` where the OS allows it; says what happened."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        return f"not pinned to {sorted(cpus)} ({e})"
    return f"cpu {','.join(map(str, sorted(os.sched_getaffinity(0))))}"


def placement() -> tuple[set[int], set[int]]:
    """(gateway cpus, load cpus): the gateway gets one core, the load the others."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    if len(cpus) < 2:
        return {cpus[0]}, {cpus[0]}
    return {cpus[0]}, set(cpus[1:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_nofile(need: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit towards ``need`` (never above the hard limit).

    Returns (soft limit now, hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run_wait_seconds(pid: int) -> float:
    """Seconds the process's main thread spent runnable but waiting for a CPU
    (/proc/<pid>/schedstat): high when other work competes for its core."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine skews every figure)."""
    with contextlib.suppress(OSError):
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    return "?"


class CpuMeter:
    """CPU% of a set of processes between two ``read`` calls (100% = one core); with
    ``read=run_wait_seconds``, the share of time they waited for a CPU instead."""

    def __init__(self, pids: Iterable[int], read: Callable[[int], float] = cpu_seconds) -> None:
        self.pids, self._read = list(pids), read
        self.t, self.cpu = time.monotonic(), self._total()

    def _total(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += self._read(pid)
        return total

    def read(self) -> float:
        t, cpu = time.monotonic(), self._total()
        pct = 100.0 * (cpu - self.cpu) / max(t - self.t, 1e-9)
        self.t, self.cpu = t, cpu
        return pct


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain, right-aligned text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


# -- the test-pattern stream, pre-packetized -------------------------------------------
@dataclass(frozen=True)
class Cycle:
    """A few seconds of the H.264 test pattern as JT/T 1078 packets, one entry per frame.

    Attributes:
        frames: each frame's packets, concatenated as a device sends them.
        offsets: where each packet of each frame starts (to patch SIM, sequence, timestamp).
        timestamps: each frame's timestamp as encoded (ms).
        fps: frames per second.
    """

    frames: tuple[bytes, ...]
    offsets: tuple[tuple[int, ...], ...]
    timestamps: tuple[int, ...]
    fps: int

    @property
    def blob(self) -> bytes:
        return b"".join(self.frames)

    @property
    def packets(self) -> int:
        return sum(len(o) for o in self.offsets)


def encode_cycle(seconds: float = 2.0, *, fps: int = 25, bitrate: int = 1_000_000,
                 width: int = 640, height: int = 360, device: int = 0) -> Cycle:
    """Encode the test pattern once and packetize it as device ``device`` would send it."""
    from fleetcam.media.testpattern import encode_pattern
    from fleetcam.protocol.jt1078.nal import packetize
    from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet

    frames, offsets, stamps = [], [], []
    seq = last_i = 0
    for f in encode_pattern("h264", width, height, fps, start_time=1_700_000_000.0,
                            seconds=seconds, bitrate=bitrate):
        last_i = f.pts_ms if f.keyframe else last_i
        packets = packetize(f.data, sim=sim(device), channel=1,
                            data_type=DataType.I_FRAME if f.keyframe else DataType.P_FRAME,
                            payload_type=PayloadType.H264, timestamp=int(f.time * 1000),
                            sequence_start=seq, last_i_interval=f.pts_ms - last_i,
                            last_frame_interval=1000 // fps)
        seq = (seq + len(packets)) & 0xFFFF
        encoded = [encode_packet(p) for p in packets]
        starts, pos = [], 0
        for e in encoded:
            starts.append(pos)
            pos += len(e)
        frames.append(b"".join(encoded))
        offsets.append(tuple(starts))
        stamps.append(int(f.time * 1000))
    return Cycle(tuple(frames), tuple(offsets), tuple(stamps), fps)


def patch_frame(cycle: Cycle, index: int, sim6: bytes, seq: int, ts: int) -> tuple[bytearray, int]:
    """Frame ``index`` of the cycle re-addressed: SIM, consecutive sequence numbers from
    ``seq``, timestamp ``ts``. Returns (bytes, next sequence)."""
    buf = bytearray(cycle.frames[index])
    for off in cycle.offsets[index]:
        _U16.pack_into(buf, off + 6, seq)
        buf[off + 8:off + 14] = sim6
        _U64.pack_into(buf, off + 16, ts)
        seq = (seq + 1) & 0xFFFF
    return buf, seq


# -- the server process: a byte counter, a header parser, or the real gateway ------------
class CountingProtocol(asyncio.Protocol):
    """The ceiling: read and count bytes, nothing else."""

    counts = {"bytes": 0, "packets": 0, "conns": 0}

    def connection_made(self, transport: Any) -> None:
        self.counts["conns"] += 1

    def data_received(self, data: bytes) -> None:
        self.counts["bytes"] += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts["conns"] -= 1


class HeaderParseProtocol(CountingProtocol):
    """The second reference: count bytes, find each ``30 31 63 64`` header and skip the body
    by its length field (buffered, one find and one unpack a packet)."""

    def __init__(self) -> None:
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        counts = self.counts
        counts["bytes"] += len(data)
        buf = self.buf + data if self.buf else data
        pos, end, n = 0, len(buf), 0
        while True:
            pos = buf.find(MAGIC, pos)
            if pos < 0:
                pos = max(0, end - 3)
                break
            at = _LENGTH_AT.get(buf[pos + 15] >> 4, 16) if pos + 16 <= end else end
            if at + pos + 2 > end:
                break
            (length,) = _U16.unpack_from(buf, pos + at)
            if pos + at + 2 + length > end:
                break
            pos += at + 2 + length
            n += 1
        counts["packets"] += n
        self.buf = buf[pos:]


class CountingSink:
    """A MediaSink that counts frames and checks each connection's frames arrive in order,
    none missing (``follows(prev_ts, ts)``), and how late they arrive (``ts`` is epoch ms)."""

    def __init__(self, follows: Callable[[int, int], bool], lag: bool) -> None:
        self.follows = follows
        self.lag = lag
        self.last: dict[int, int] = {}
        self.frames = 0
        self.out_of_order = 0
        self.closed = 0
        self.lags: list[float] = []

    def attach(self, request: Any, device: Any, connection_id: int) -> bool:
        return True

    def on_frame(self, device: Any, connection_id: int, frame: Any) -> None:
        self.frames += 1
        ts = frame.timestamp
        prev = self.last.get(connection_id)
        if prev is not None and not self.follows(prev, ts):
            self.out_of_order += 1
        self.last[connection_id] = ts
        if self.lag:
            self.lags.append(time.time() * 1000.0 - ts)

    def on_close(self, device: Any, connection_id: int, reason: str) -> None:
        self.closed += 1
        self.last.pop(connection_id, None)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"lag_p50": 0.0, "lag_p99": 0.0, "lag_max": 0.0}
    values.sort()
    return {"lag_p50": values[len(values) // 2], "lag_p99": values[int(len(values) * 0.99)],
            "lag_max": values[-1]}


def server_main(conn: Connection, mode: str, options: dict[str, Any]) -> None:
    """Child process: run one server, answer ``mark`` with its counters, end on ``stop``."""
    where = pin(set(options.get("cpus", {0})))
    if mode == "gateway":
        raise_nofile(options.get("nofile", 4096))
    asyncio.run(_serve(conn, mode, options, where))


async def _serve(conn: Connection, mode: str, options: dict[str, Any], where: str) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    tmp = Path(tempfile.mkdtemp(prefix="fleetcam-bench-"))
    gw: Any = None
    sink: CountingSink | None = None
    try:
        if mode == "gateway":
            gw, sink = await _start_gateway(tmp, options)
            port808, port1078 = gw.port_808, gw.port_1078
        else:
            factory = CountingProtocol if mode == "count" else HeaderParseProtocol
            server = await loop.create_server(factory, "127.0.0.1", 0, backlog=1024)
            port808 = port1078 = server.sockets[0].getsockname()[1]

        async def answer(cmd: str) -> None:
            registered = None
            if cmd == "registry":  # a store query: off the event loop, like the gateway's own
                registered = len(await gw.call(gw.connections.registry.of_gateway,
                                               gw.gateway_id))
            conn.send({**_mark(mode, gw, sink), "registered": registered})

        def on_control() -> None:
            try:
                cmd = conn.recv()
            except EOFError:
                cmd = "stop"
            if cmd == "stop":
                stopped.set()
            else:
                tasks.add(task := loop.create_task(answer(cmd)))
                task.add_done_callback(tasks.discard)

        tasks: set[asyncio.Task[None]] = set()

        loop.add_reader(conn.fileno(), on_control)
        conn.send({"port_808": port808, "port_1078": port1078, "pinned": where,
                   "pid": os.getpid()})
        await stopped.wait()
        loop.remove_reader(conn.fileno())
        if gw is not None:
            await gw.stop()
        else:
            server.close()
        conn.send({"stopped": True})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _start_gateway(tmp: Path, options: dict[str, Any]) -> tuple[Any, CountingSink]:
    import logging

    from fleetcam.config import Settings
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.local import build_local

    logging.basicConfig(level=logging.ERROR)
    settings = Settings(data_dir=tmp, gateway_host="127.0.0.1", jt808_port=0, jt1078_port=0,
                        attachment_port=0, teltonika_port=0, teltonika_camera_port=0,
                        admin_token="B" * 64, default_media_ttl=0,
                        idle_timeout=float(options.get("idle_timeout", 180.0)),
                        max_connections_per_address=0)  # all the load comes from 127.0.0.1
    container = build_local(settings)
    repo = container.device_repo
    from fleetcam.domain.identity import PROVISIONED, Identity

    devices = [repo.create({"ident": sim(i), "name": f"bench-{i}",  # provisioned codes (hashed)
                            "identity": Identity().with_code(auth_code(i), PROVISIONED, 0.0)})
               for i in range(options.get("devices", 0))]
    cycle_next: dict[int, int] | None = options.get("cycle_next")
    step = options.get("step_ms", 0)
    if cycle_next is not None:
        sink = CountingSink(lambda prev, ts: cycle_next.get(prev) == ts, lag=False)
    else:
        sink = CountingSink(lambda prev, ts: ts - prev == step, lag=True)
    gw = Gateway(container)
    # every device has an outstanding request for channel 1 (its media is admitted, as a
    # live stream's is), served by the counting sink
    gw.register_media_kind("bench", sink)
    for d in devices:
        gw.media_admission.request(kind="bench", device_id=d.id, channel=1, ref=f"bench:{d.id}",
                             holder=gw.gateway_id, source="127.0.0.1:0",
                             expires=time.time() + 86400)
    await gw.start()
    return gw, sink


def auth_code(i: int) -> str:
    """The JT/T 808 authentication code given to simulated device ``i``."""
    return f"bench-code-{i:08d}"


def _mark(mode: str, gw: Any, sink: CountingSink | None) -> dict[str, Any]:
    now = time.monotonic()
    if gw is None:
        c = CountingProtocol.counts
        return {"t": now, "bytes": c["bytes"], "packets": c["packets"], "sessions": c["conns"]}
    assert sink is not None
    lags, sink.lags = sink.lags, []
    return {"t": now, "bytes": sum(s.bytes for s in gw.sessions_1078),
            "frames": gw.stats["frames"], "frame_bytes": gw.stats["frame_bytes"],
            "dropped": gw.stats["dropped_frames"], "delivered": sink.frames,
            "out_of_order": sink.out_of_order,
            "sessions": len(gw.sessions_1078), "sessions_808": len(gw.sessions_808),
            "authenticated": len(gw.sessions_by_device),
            **_percentiles(lags)}


class ServerProcess:
    """A server child process (``count``, ``parse`` or ``gateway``) and its control pipe."""

    def __init__(self, mode: str, timeout: float = 120.0, **options: Any) -> None:
        self.mode = mode
        self.conn, child = MP.Pipe()
        self.proc = MP.Process(target=server_main, args=(child, mode, options), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(timeout):
            self.close()
            raise RuntimeError(f"{mode} server did not start within {timeout} s")
        self.info: dict[str, Any] = self.conn.recv()
        self.pid: int = self.info["pid"]

    def mark(self, what: str = "mark") -> dict[str, Any]:
        """The server's counters now; ``what="registry"`` also counts the connections the
        ConnectionRegistry lists for this gateway (a store query)."""
        self.conn.send(what)
        if not self.conn.poll(60):
            raise RuntimeError(f"{self.mode} server did not answer")
        return self.conn.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.conn.send("stop")
            if self.conn.poll(30):
                self.conn.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LoadProcess:
    """A load-generating child process running ``target(conn, *args)``; it reports through
    the pipe and must stop by itself (every load loop is bounded)."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.conn, child = MP.Pipe()
        self.proc = MP.Process(target=target, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.pid = self.proc.pid or 0

    def recv(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"load process {self.pid} did not report within {timeout} s")
        return self.conn.recv()

    def send(self, value: Any) -> None:
        self.conn.send(value)

    def join(self, timeout: float = 30.0) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive():
            print(f"load process {self.pid} still running; terminating it", file=sys.stderr)
            self.proc.terminate()
            self.proc.join(5)
