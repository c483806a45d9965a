"""Generate small test images and clips with PyAV (no media files are committed)."""
from __future__ import annotations

from fractions import Fraction

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
