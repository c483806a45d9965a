"""gateway.limits: rate limits, the quiet log and admission (issue 10)."""
from __future__ import annotations

import logging

import pytest

from fleetcam.gateway.limits import Admission, QuietLog, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_limiter_per_key_and_refill() -> None:
    clock = Clock()
    rl = RateLimiter(6, burst=3, clock=clock)
    assert [rl.allow("a") for _ in range(4)] == [True, True, True, False]
    assert rl.exhausted("a") and not rl.exhausted("b") and rl.allow("b")
    clock.t += 10  # one token a 10 s
    assert not rl.exhausted("a") and rl.allow("a") and not rl.allow("a")


def test_quiet_log_once_per_interval_and_counts_what_it_held(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    quiet = QuietLog(logging.getLogger("test.quiet"), interval=10, per_second=100, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        for _ in range(1000):
            quiet.warning(("k", "1.2.3.4"), "refused %s", "1.2.3.4")
        quiet.warning(("k", "5.6.7.8"), "refused %s", "5.6.7.8")
        clock.t += 11
        quiet.warning(("k", "1.2.3.4"), "refused %s", "1.2.3.4")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused 1.2.3.4", "refused 5.6.7.8",
                     "refused 1.2.3.4 (and 999 more like it since)"]
    assert quiet.suppressed == 999


def test_quiet_log_total_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    quiet = QuietLog(logging.getLogger("test.quiet2"), per_second=5, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.quiet2"):
        for i in range(10_000):  # a different key each time: an attacker rotating addresses
            quiet.warning(("k", i), "refused %d", i)
    assert len(caplog.records) == 5


def test_admission_caps_and_release() -> None:
    adm = Admission(max_total=4, max_per_address=2, reserve=0, limit=1_000_000)
    assert adm.admit("a") is None and adm.admit("a") is None
    assert "address a" in (adm.admit("a") or "")
    assert adm.admit("b") is None and adm.admit("c") is None
    assert "maximum of 4" in (adm.admit("d") or "")
    adm.release("a")
    assert adm.admit("d") is None
    assert adm.total == 4 and adm.per_address == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_admission_keeps_descriptors_in_reserve() -> None:
    adm = Admission(max_total=0, max_per_address=0, reserve=100, limit=10_000)
    adm._measured = 9_898
    assert adm.admit("a") is None and adm.admit("a") is None
    reason = adm.admit("a") or ""
    assert "file-descriptor limit" in reason
    assert adm.refused == {"near": 1}


_EMFILE_SERVER = r"""
import asyncio, logging, os, resource, sys
from fleetcam.gateway.limits import QuietLog, quiet_accept_errors

logging.basicConfig(level=logging.INFO, stream=sys.stdout)

async def main():
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop, QuietLog(logging.getLogger("fleetcam.gateway")))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(2.5)
    loop.call_exception_handler({"message": "something else", "exception": ValueError("x")})
    for fd in held:
        os.close(fd)
    await asyncio.sleep(0.5)

asyncio.run(main())
"""


def test_listener_out_of_descriptors_logs_one_line_not_tracebacks(tmp_path) -> None:
    """A listener with no descriptor left: asyncio logged a traceback per failed accept (up to
    100 a tick, CI saw the log flood in the 1,100-connection test); now one warning line per
    listener per interval, and other loop errors still reach asyncio's handler."""
    import socket
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _EMFILE_SERVER], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PORT"), line + proc.stdout.read()  # type: ignore[union-attr]
        port = int(line.split()[1])
        clients = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and len(clients) < 40:
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            time.sleep(0.005)
        out = proc.communicate(timeout=20)[0]
    finally:
        proc.kill()
        for c in locals().get("clients", []):
            c.close()
    assert proc.returncode == 0, out
    lines = [x for x in out.splitlines() if "cannot accept connections" in x]
    assert 1 <= len(lines) <= 3, out[-3000:]  # one per 10 s interval; the run lasts 3 s
    assert "Too many open files" in lines[0]
    assert "socket.accept() out of system resource" not in out, out[-3000:]
    assert "something else" in out  # the default handler still logs other reports
