"""Thumbnails of archive fragments with PyAV: a JPEG of a fragment's keyframe, and a
one-frame MP4 (the keyframe's packet copied, not re-encoded)."""
from __future__ import annotations

import io

import av
import av.error

from fleetcam.errors import CorruptMedia
from fleetcam.media.probe import _thumbnail


def keyframe_jpeg(init: bytes, fragment: bytes) -> bytes:
    """A JPEG (at most 320 px wide or high) of the first frame of ``init`` + ``fragment``.

    Raises:
        CorruptMedia: nothing decodable.
    """
    try:
        with av.open(io.BytesIO(init + fragment), format="mp4") as c:
            stream = c.streams.video[0]
            stream.thread_count = 1
            for frame in c.decode(stream):
                return _thumbnail(frame)
    except (av.error.FFmpegError, IndexError) as e:
        raise CorruptMedia(f"archive fragment does not decode: {e}") from e
    raise CorruptMedia("archive fragment has no picture")


def keyframe_mp4(init: bytes, fragment: bytes) -> bytes:
    """A one-frame MP4 holding the fragment's keyframe packet as stored.

    Raises:
        CorruptMedia: nothing readable.
    """
    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(init + fragment), format="mp4") as src:
            vin = src.streams.video[0]
            with av.open(out, "w", format="mp4") as dst:
                vout = dst.add_stream_from_template(vin)
                for packet in src.demux(vin):
                    if packet.size == 0:
                        continue
                    packet.stream = vout
                    packet.pts = packet.dts = 0
                    packet.duration = max(1, int(0.04 / float(vin.time_base or 1)))
                    dst.mux(packet)
                    break
                else:
                    raise CorruptMedia("archive fragment has no picture")
    except (av.error.FFmpegError, IndexError) as e:
        raise CorruptMedia(f"archive fragment does not read: {e}") from e
    return out.getvalue()
