"""Generate small test images and clips with PyAV (no media files are committed)."""
from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av


def _frame(width: int, height: int, seed: int = 0) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    row = bytearray()
    for x in range(width):
        row += bytes(((x + seed) % 256, (x * 2 + seed) % 256, (seed * 7) % 256))
    row += bytes(plane.line_size - len(row))
    plane.update(bytes(row) * height)
    return frame


def make_image(width: int = 640, height: int = 480, fmt: str = "jpeg", seed: int = 0) -> bytes:
    """A JPEG (``fmt='jpeg'``) or PNG image of a colour gradient."""
    codec, pix = ("mjpeg", "yuvj420p") if fmt == "jpeg" else ("png", "rgb24")
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = width, height, pix
    enc.time_base = Fraction(1, 25)
    frame = _frame(width, height, seed).reformat(format=pix)
    frame.pts = 0
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def probe_streams(path: Path) -> dict[str, dict[str, Any]]:
    """ffprobe's streams of a file by codec type (``video``, ``audio``): codec, sample rate,
    channels, start time, duration and decoded frame count, plus the container's duration
    as ``format_duration``."""
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                        "stream=codec_type,codec_name,sample_rate,channels,start_time,"
                        "duration,nb_read_frames:format=duration", "-of", "json", str(path)],
                       capture_output=True, text=True, timeout=60, check=True)
    info = json.loads(r.stdout)
    return {s["codec_type"]: {**s, "format_duration": info.get("format", {}).get("duration")}
            for s in info["streams"]}


def decode_errors(path: Path) -> str:
    """What ffmpeg reports decoding the whole file (empty: it decodes cleanly)."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stderr.strip()
