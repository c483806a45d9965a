"""A virtual Teltonika FMC tracker with a DualCam: Codec 8E positions, Codec 12 answers, and
the camera connection that serves photos and videos (on ``camreq`` and on its own events)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from fleetcam.protocol.teltonika import camera as cam
from fleetcam.protocol.teltonika.codec import (CODEC_8E, AvlRecord, Command12, Packet,
                                               TeltonikaStream, encode_avl, encode_command,
                                               encode_imei)

log = logging.getLogger(__name__)


@dataclass
class TeltonikaConfig:
    imei: str
    host: str = "127.0.0.1"
    port: int = 5027
    camera_port: int = 5028
    report_interval: float = 10.0
    base: tuple[float, float] = (54.6872, 25.2797)  # Vilnius
    width: int = 640
    height: int = 360
    corrupt_first_chunk: bool = False
    """Send the first data chunk of each file with a bad CRC (exercises RESUME)."""
    stats: dict[str, int] = field(default_factory=lambda: {"records": 0, "commands": 0,
                                                           "files": 0, "resumes": 0})


class VirtualTeltonika:
    def __init__(self, cfg: TeltonikaConfig) -> None:
        self.cfg = cfg
        self.connected = asyncio.Event()
        self.accepted: bool | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.started = time.time()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pending: list[tuple[str, int]] = []
        """Files the camera holds and announces at its next connection: (kind, camera)."""

    def record(self, when: float, io: dict[int, Any] | None = None) -> AvlRecord:
        t = when - self.started
        angle = (t * 50 / 3.6 / 1000) % (2 * math.pi)
        return AvlRecord(int(when * 1000), 0, self.cfg.base[1] + 0.0147 * math.cos(angle),
                         self.cfg.base[0] + 0.009 * math.sin(angle), 120,
                         int(math.degrees(angle + math.pi / 2)) % 360, 12, 50, 0,
                         {239: 1, 240: 1, 21: 4, 66: 13800, 16: int(t * 14)} | (io or {}))

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 1.0
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                log.info("teltonika sim %s: %s", self.cfg.imei, e)
            if stop.is_set() or self.accepted is False:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def _session(self, stop: asyncio.Event) -> None:
        reader, self.writer = await asyncio.open_connection(self.cfg.host, self.cfg.port)
        self.writer.write(encode_imei(self.cfg.imei))
        answer = await asyncio.wait_for(reader.readexactly(1), 10)
        self.accepted = answer == b"\x01"
        if not self.accepted:
            self.writer.close()
            return
        self.connected.set()
        stream = TeltonikaStream()
        stream.imei = self.cfg.imei
        reporter = asyncio.get_running_loop().create_task(self._report(stop))
        try:
            while not stop.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                # acks (4-byte counts) and Codec 12 commands share the stream: an ack is
                # never a preamble of zeros followed by a plausible length, so peel them off
                while data[:4] != b"\x00\x00\x00\x00" and len(data) >= 4 and \
                        not stream.buffered:
                    data = data[4:]
                for ev in stream.feed(data):
                    if isinstance(ev, Packet) and isinstance(ev.body, Command12):
                        await self.on_command(ev.body.text)
        finally:
            reporter.cancel()
            self.connected.clear()
            self.writer.close()

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.send_records([self.record(time.time())])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.report_interval)

    def send_records(self, records: list[AvlRecord]) -> None:
        if self.writer is not None:
            self.writer.write(encode_avl(records, CODEC_8E))
            self.cfg.stats["records"] += len(records)

    async def on_command(self, text: str) -> None:
        self.cfg.stats["commands"] += 1
        assert self.writer is not None
        if text.startswith("camreq:"):
            parts = text[len("camreq:"):].split(",")
            kind = "photo" if parts[0] == "1" else "video"
            camera = 2 if len(parts) > 1 and parts[1] == "2" else 1
            self.writer.write(encode_command(f"camreq: {kind} request accepted", kind=6))
            self.pending.append((kind, camera))
            self.spawn(self.serve_camera())
        elif text == "getinfo":
            self.writer.write(encode_command(
                f"RTC:{time.strftime('%Y/%m/%d %H:%M')} INI:{self.cfg.imei} FMC-SIM", kind=6))
        else:
            self.writer.write(encode_command(f"unknown command: {text}", kind=6))

    def spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def event_video(self, camera: int = 1) -> None:
        """The camera recorded an event clip by itself and offers it to the server."""
        self.pending.append(("video", camera))
        self.spawn(self.serve_camera())

    def file(self, kind: str, camera: int) -> bytes:
        from fleetcam.media.testpattern import encode_pattern, snapshot_jpeg

        now = time.time()
        if kind == "photo":
            return snapshot_jpeg(self.cfg.width, self.cfg.height, now)
        return b"".join(f.data for f in encode_pattern("h264", self.cfg.width, self.cfg.height,
                                                       25, start_time=now - 3, seconds=3))

    async def serve_camera(self) -> None:
        """Open the camera connection, announce what is pending, answer file requests."""
        if not self.pending:
            return
        flags = 0
        for key in self.pending:
            flags |= cam.FLAG_FILES[key]
        try:
            reader, writer = await asyncio.open_connection(self.cfg.host, self.cfg.camera_port)
        except OSError as e:
            log.warning("teltonika sim camera: %s", e)
            return
        writer.write(cam.encode_init(self.cfg.imei, flags))
        server = cam.ServerStream()
        data_for: bytes = b""
        corrupted = False
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                if not chunk:
                    break
                for msg in server.feed(chunk):
                    if msg.command == cam.FILE_REQUEST:
                        path = msg.payload.decode("ascii")
                        key = next(k for k, v in cam.FILES.items() if v == path)
                        data_for = await asyncio.to_thread(self.file, *key)
                        with contextlib.suppress(ValueError):
                            self.pending.remove(key)
                        corrupted = False
                        count = (len(data_for) + cam.CHUNK - 1) // cam.CHUNK
                        writer.write(cam.encode_start(count))
                    elif msg.command == cam.RESUME:
                        index = int.from_bytes(msg.payload[:4], "big")
                        if index > 1:
                            self.cfg.stats["resumes"] += 1
                        writer.write(cam.encode_sync(index))
                        for i in range(index, (len(data_for) + cam.CHUNK - 1) // cam.CHUNK + 1):
                            part = data_for[(i - 1) * cam.CHUNK:i * cam.CHUNK]
                            bad = self.cfg.corrupt_first_chunk and not corrupted and i == 2
                            corrupted = corrupted or bad
                            writer.write(cam.encode_data(part, corrupt=bad))
                            if bad:
                                break  # wait for the server's RESUME, as the camera does
                        else:
                            self.cfg.stats["files"] += 1
                    elif msg.command == cam.INIT:  # CLOSE
                        return
                await writer.drain()
        except (OSError, asyncio.TimeoutError) as e:
            log.warning("teltonika sim camera: %s", e)
        finally:
            writer.close()
