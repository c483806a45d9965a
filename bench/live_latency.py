"""Glass-to-glass latency of live HLS: device frame time to decode by a real HLS client.

Usage: ``.venv/bin/python bench/live_latency.py [--seconds 60] [--codec h264|hevc]``

Runs the all-in-one server (API, gateway, broker) on free ports of 127.0.0.1 and one simulated
MDVR streaming channel 1 live (640x360, 25 fps, a keyframe each second). ``start_videostream``
is sent as a real-time command; the client is FFmpeg's HLS demuxer through PyAV, opening the
playlist URL over HTTP at the live edge (``live_start_index=-1``) and decoding frames. Each
decoded frame's burnt-in time (the device's clock when it made the frame) is compared with
the wall clock at decode. The reference, measured in the same run, is the same difference for
the raw frames as they reach the gateway (a MediaSink on ``gw.taps``): the part of the latency
that is not HLS's. Target (issue 7): p95 under 3 s with 1 s segments.
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx

from fleetcam.config import Settings
from fleetcam.domain.models import Device
from fleetcam.media.testpattern import read_burnt_time
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from fleetcam.runtime.dev import LocalServer, start_simulation

TOKEN = "B" * 64
TARGET_P95 = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ArrivalSink:
    """A MediaSink: how late each video frame reaches the gateway (the reference)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.recording = False

    def on_frame(self, device: Device, connection_id: int, frame: MediaFrame) -> None:
        if self.recording and frame.data_type < 3 and frame.timestamp is not None:
            self.lags.append(time.time() - frame.timestamp / 1000)

    def on_close(self, device: Device, connection_id: int, reason: str) -> None:
        return None


def play(url: str, seconds: float) -> tuple[list[float], int, float]:
    """Decode the live playlist for ``seconds``: (latencies, unreadable frames, time of the
    first decoded frame)."""
    lags: list[float] = []
    unreadable = 0
    first = 0.0
    with av.open(url, options={"live_start_index": "-1"}, timeout=15) as c:
        stop = time.monotonic() + seconds
        for frame in c.decode(video=0):
            wall = time.time()
            first = first or wall
            burnt = read_burnt_time(frame)
            if burnt is None:
                unreadable += 1
            else:
                lags.append(wall - burnt)
            if time.monotonic() >= stop:
                break
    return lags, unreadable, first


def row(name: str, lags: list[float]) -> str:
    q = statistics.quantiles(lags, n=100)
    return (f"{name:<34} {len(lags):>7} {q[49]:>8.3f} {q[94]:>8.3f} {max(lags):>8.3f} "
            f"{min(lags):>8.3f}")


async def main(seconds: float, codec: str) -> int:
    with tempfile.TemporaryDirectory(prefix="fleetcam-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), http_port=free_port(), mqtt_port=free_port(),
                            admin_token=TOKEN, sweep_interval=3600, default_media_ttl=0,
                            gateway_host="127.0.0.1", jt808_port=0, jt1078_port=0,
                            attachment_port=0, teltonika_port=0, teltonika_camera_port=0)
        server = LocalServer(settings)
        await server.start()
        assert server.gateway is not None
        sink = ArrivalSink()
        server.gateway.taps.append(sink)
        sim = await start_simulation(server, 1)
        try:
            for d in sim.devices:
                d.cfg.codec = codec
            await sim.wait_authenticated(10)
            headers = {"Authorization": f"FlespiToken {TOKEN}"}
            async with httpx.AsyncClient(base_url=settings.base_url, headers=headers,
                                         timeout=60) as api:
                t0 = time.time()
                r = await api.post("/gw/devices/1/commands", json=[{
                    "name": "start_videostream", "properties": {"channel": 1},
                    "timeout": 30}])
                result: dict[str, Any] = r.json()["result"][0]
                answered = time.time()
                if not result.get("executed"):
                    print(f"start_videostream failed: {result}", file=sys.stderr)
                    return 1
                url = result["response"]["hls"]
                sink.recording = True
                lags, unreadable, first = await asyncio.to_thread(play, url, seconds)
                sink.recording = False
        finally:
            await sim.stop_all()
            await server.stop()
    if len(lags) < seconds * 20:
        print(f"only {len(lags)} readable frames in {seconds:.0f} s", file=sys.stderr)
        return 1
    print(f"live HLS latency, {codec} 640x360 25 fps, 1 s segments, {seconds:.0f} s of play "
          f"(seconds; frame time burnt in by the device vs. wall clock)")
    print(f"{'':<34} {'frames':>7} {'p50':>8} {'p95':>8} {'max':>8} {'min':>8}")
    print(row("gateway arrival (reference)", sink.lags))
    print(row("HLS client decode (glass-to-glass)", lags))
    print(f"command answered after {answered - t0:.2f} s (first segment written); "
          f"first frame decoded {first - t0:.2f} s after the command; {unreadable} frames "
          f"with an unreadable time")
    p95 = statistics.quantiles(lags, n=100)[94]
    print(f"target p95 < {TARGET_P95:.0f} s: {'met' if p95 < TARGET_P95 else 'NOT met'} "
          f"(p95 {p95:.2f} s; HLS adds {p95 - statistics.quantiles(sink.lags, n=100)[94]:.2f} s "
          f"over the arrival p95)")
    return 0 if unreadable <= len(lags) // 100 else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--codec", choices=("h264", "hevc"), default="h264")
    args = ap.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.codec)))
