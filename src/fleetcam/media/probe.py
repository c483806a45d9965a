"""Probe an image (and later a clip) and make its JPEG thumbnail with PyAV."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO

import av
import av.error

from fleetcam.errors import CorruptMedia

THUMB_MAX = 320
"""Longest side of a preview, in pixels."""

IMAGE_MIMES = {"image/jpeg": "jpg", "image/png": "png"}


@dataclass(frozen=True)
class Probed:
    """What decoding found: the kind of media, its meta and a base64 JPEG thumbnail."""

    mime: str
    meta: dict[str, Any] = field(default_factory=dict)
    jpeg: str = ""


def _thumbnail(frame: av.VideoFrame) -> bytes:
    scale = min(1.0, THUMB_MAX / max(frame.width, frame.height))
    # even dimensions: yuv420 chroma subsampling needs them
    w = max(2, int(frame.width * scale) // 2 * 2)
    h = max(2, int(frame.height * scale) // 2 * 2)
    small = frame.reformat(width=w, height=h, format="yuvj420p")
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"qscale": "4"}
    small.pts = 0
    packets = list(enc.encode(small)) + list(enc.encode(None))
    return b"".join(bytes(p) for p in packets)


_FORMATS = {"jpeg_pipe": "image/jpeg", "png_pipe": "image/png", "image2": "image/jpeg"}


def probe_image(data: BinaryIO | bytes) -> Probed:
    """Decode an image's first frame: width, height and a JPEG thumbnail.

    Raises:
        CorruptMedia: not a JPEG or PNG image PyAV can decode.
    """
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with av.open(src, mode="r") as container:
            fmt = container.format.name
            mime = _FORMATS.get(fmt)
            if mime is None or not container.streams.video:
                raise CorruptMedia(f"not a JPEG or PNG image (detected format {fmt!r})")
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise CorruptMedia("image has no decodable frame")
            jpeg = _thumbnail(frame)
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"unreadable image: {e}") from e
    except StopIteration as e:  # pragma: no cover - defensive
        raise CorruptMedia("image has no decodable frame") from e
    meta = {"type": "image", "width": frame.width, "height": frame.height}
    return Probed(mime=mime, meta=meta, jpeg=base64.b64encode(jpeg).decode("ascii"))
