"""Issue 10: 1,100 silent connections against ``fleetcam serve`` run under ``ulimit -n 1024``.

The server refuses device connections near its descriptor limit (one rate-limited log line),
so the REST API, the broker and an established device keep working, and the log stays small.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from fleetcam.protocol.jt808 import messages as m
from tests.e2e_local import TOKEN, free_port, run
from tests.gateway import RawDevice

PHONE = "013912340001"
CODE = "fd-limit-provisioned-code"
FLOOD = 1100
SERVER_NOFILE = 1024


def _limit_server() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_NOFILE, SERVER_NOFILE))


@pytest.fixture
def client_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 512
    if soft < want:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
        try:  # raising the hard limit works as root (CI)
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
        except (ValueError, OSError):
            pytest.skip(f"this test opens {FLOOD} sockets; RLIMIT_NOFILE is {soft}/{hard}")
    yield
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1100_connections_under_ulimit_1024(tmp_path: Path, client_nofile: None) -> None:
    ports = {name: free_port() for name in ("http", "mqtt", "808", "1078")}
    env = {**os.environ, "FLEETCAM_DATA_DIR": str(tmp_path / "data"),
           "FLEETCAM_HTTP_HOST": "127.0.0.1", "FLEETCAM_HTTP_PORT": str(ports["http"]),
           "FLEETCAM_MQTT_PORT": str(ports["mqtt"]), "FLEETCAM_JT808_PORT": str(ports["808"]),
           "FLEETCAM_JT1078_PORT": str(ports["1078"]), "FLEETCAM_GATEWAY_HOST": "127.0.0.1",
           "FLEETCAM_ATTACHMENT_PORT": "0", "FLEETCAM_TELTONIKA_PORT": "0",
           "FLEETCAM_TELTONIKA_CAMERA_PORT": "0",
           "FLEETCAM_ADMIN_TOKEN": TOKEN, "FLEETCAM_MAX_CONNECTIONS_PER_ADDRESS": "0",
           "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "fleetcam", "serve"], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_limit_server)
    try:
        run(_scenario(ports, log_path, proc), timeout=240)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _health_ms(api: httpx.AsyncClient) -> float:
    t = time.perf_counter()
    r = await api.get("/health")
    assert r.status_code == 200, r.text
    return (time.perf_counter() - t) * 1000


async def _scenario(ports: dict[str, int], log_path: Path, proc: subprocess.Popen[bytes]
                    ) -> None:
    base = f"http://127.0.0.1:{ports['http']}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0,
                                 headers={"Authorization": f"FlespiToken {TOKEN}"}) as api:
        for _ in range(300):
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if (await api.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        r = await api.post("/gw/devices", json=[{"ident": PHONE,
                                                 "configuration": {"auth_code": CODE}}])
        assert r.status_code == 200, r.text
        device = await RawDevice(ports["808"], PHONE).connect()
        await device.send(m.Authenticate(auth_code=CODE))
        assert (await device.expect(m.GeneralResponse)).body.result == 0

        log_before = log_path.stat().st_size
        writers: list[asyncio.StreamWriter] = []
        failed = 0
        for _ in range(FLOOD):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", ports["808"])
                writers.append(w)
            except OSError:
                failed += 1
        await asyncio.sleep(1.0)  # the server has seen them all; it holds what it admitted
        try:
            assert proc.poll() is None
            latencies = [await _health_ms(api) for _ in range(5)]
            assert min(latencies) < 100, latencies
            assert statistics.median(latencies) < 1000, latencies
            r = await api.get("/gw/devices/all/connections/all")
            assert r.status_code == 200 and len(r.json()["result"]) == 1
            serial = await device.send(m.Heartbeat())  # the established device is served
            ack = await device.expect(m.GeneralResponse)
            assert ack.body.reply_serial == serial
            async with aiomqtt.Client("127.0.0.1", ports["mqtt"],  # so is the broker
                                      username=f"FlespiToken {TOKEN}") as mq:
                await mq.subscribe("fleetcam/#")
            # the connections beyond the limit were refused at once, not left hanging
            closed = 0
            for w in writers[-50:]:
                reader = w.transport.get_protocol()._stream_reader  # type: ignore[attr-defined]
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    if await asyncio.wait_for(reader.read(1), 2) == b"":
                        closed += 1
            assert closed == 50, "connections beyond the descriptor limit were not refused"
        finally:
            for w in writers:
                w.close()
        await asyncio.sleep(0.5)
        grown = log_path.stat().st_size - log_before
        assert grown < 1_000_000, grown
        text = log_path.read_text(errors="replace")
        assert "refused" in text and "file-descriptor limit" in text
        assert "Traceback" not in text, text[-5000:]
        assert text.count("file-descriptor limit") <= 5
        await device.close()
