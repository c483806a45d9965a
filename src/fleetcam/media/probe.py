"""Probe images and clips and make their JPEG thumbnails with PyAV."""
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


@dataclass(frozen=True)
class VideoInfo:
    """What a clip turned out to be (the ``meta`` of a video media file).

    Attributes:
        width, height: picture size in pixels; duration: seconds; codec: of the result
        (``"h264"``); fps: average frames per second; frames: video frames in the result;
        has_audio: the result carries an audio track; transcoded: the video was re-encoded;
        source_codec: the codec the device sent (``"h264"`` or ``"hevc"``).
    """

    width: int
    height: int
    duration: float
    codec: str
    fps: float
    frames: int
    has_audio: bool
    transcoded: bool
    source_codec: str


def probe_video(path: str) -> tuple[VideoInfo, bytes]:
    """Read a clip's stream properties and make a JPEG preview from its first keyframe.

    Only the packets up to the first keyframe are read and only that one picture is
    decoded, so the cost does not grow with the clip's length.

    Returns:
        The clip's VideoInfo (``transcoded=False``, ``source_codec`` = its codec) and the
        JPEG bytes (longest side THUMB_MAX pixels).

    Raises:
        CorruptMedia: not a media file PyAV can read, no video stream, or no keyframe.
    """
    try:
        with av.open(path, mode="r") as container:
            if not container.streams.video:
                raise CorruptMedia("the file has no video stream")
            stream = container.streams.video[0]
            frame = _first_keyframe(container, stream)
            info = _video_info(container, stream)
            jpeg = _thumbnail(frame)
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"unreadable video: {e}") from e
    return info, jpeg


def _first_keyframe(container: Any, stream: Any) -> av.VideoFrame:
    ctx = stream.codec_context
    for packet in container.demux(stream):
        if packet.size and packet.is_keyframe:
            frames = [*ctx.decode(packet), *ctx.decode(None)]  # flush: delayed output
            if frames:
                return frames[0]
            break
    raise CorruptMedia("the video has no decodable keyframe")


def _video_info(container: Any, stream: Any) -> VideoInfo:
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = stream.frames
    rate = stream.average_rate
    fps = float(rate) if rate else (frames / duration if duration else 0.0)
    if not frames and duration and fps:
        frames = round(duration * fps)
    codec = stream.codec_context.name
    return VideoInfo(
        width=stream.codec_context.width, height=stream.codec_context.height,
        duration=duration, codec=codec, fps=fps, frames=frames,
        has_audio=bool(container.streams.audio), transcoded=False, source_codec=codec,
    )  # fmt: skip
