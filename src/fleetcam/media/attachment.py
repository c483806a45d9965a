"""Package a video file a device uploaded by itself (an alarm attachment) into a browser MP4.

Cameras send MP4, AVI or bare H.264/H.265 elementary streams. H.264 in a container with
time stamps is copied packet for packet; anything else (H.265, or a bare stream without time
stamps) is decoded and re-encoded with libx264, since browsers do not play H.265. Audio that
PyAV decodes becomes AAC (copied when it is AAC already). The result has its index first.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, BinaryIO

import av
import av.error

from fleetcam.errors import CorruptMedia
from fleetcam.media.probe import VideoInfo

CRF = 23
DEFAULT_FPS = 25
_CONTAINERS_WITH_TIME = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv", "mpegts"}


def package_file(src: BinaryIO, dst_path: str, *, preset: str = "veryfast") -> VideoInfo:
    """Write ``src`` (any video file PyAV reads) to ``dst_path`` as a faststart MP4, H.264.

    Raises:
        CorruptMedia: not a readable video, no video stream, or no decodable picture.
    """
    try:
        with av.open(src, mode="r") as inp:
            return _package(inp, dst_path, preset)
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"unreadable video file: {e}") from e


def _package(inp: Any, dst_path: str, preset: str) -> VideoInfo:
    if not inp.streams.video:
        raise CorruptMedia("the file has no video stream")
    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio else None
    source = vin.codec_context.name
    copy = source == "h264" and inp.format.name in _CONTAINERS_WITH_TIME
    rate = vin.average_rate or vin.guessed_rate or Fraction(DEFAULT_FPS)
    with av.open(dst_path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
        if copy:
            vout = out.add_stream_from_template(vin)
        else:
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.options = {"preset": preset, "crf": str(CRF)}
            vout.codec_context.time_base = 1 / Fraction(rate)
        aout = None
        resampler = None
        if ain is not None:
            try:
                aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 8000)
                aout.layout = "mono"
                resampler = av.AudioResampler(format="fltp", layout="mono",
                                              rate=aout.codec_context.sample_rate)
            except (av.error.FFmpegError, ValueError):
                aout = None
        streams = [vin] + ([ain] if aout is not None else [])
        frames = 0
        first_pts: int | None = None
        last_pts = -1
        width, height = vin.codec_context.width, vin.codec_context.height
        for packet in inp.demux(*streams):
            if packet.stream is vin:
                if copy:
                    if packet.dts is None or packet.size == 0:
                        continue
                    if first_pts is None:
                        if not packet.is_keyframe:
                            continue
                        first_pts = packet.pts or 0
                    packet.stream = vout
                    out.mux(packet)
                    frames += 1
                    continue
                for frame in _decode(vin, packet):
                    frames += 1
                    width, height = frame.width, frame.height
                    pts = frames - 1  # in 1/rate units: devices' bare streams carry no times
                    frame = frame.reformat(format="yuv420p")
                    frame.pts = max(pts, last_pts + 1)
                    last_pts = frame.pts
                    frame.time_base = vout.codec_context.time_base
                    out.mux(vout.encode(frame))
            elif aout is not None and resampler is not None:
                try:
                    decoded = ain.codec_context.decode(packet)
                except av.error.FFmpegError:
                    continue  # damaged audio never costs the picture
                for af in decoded:
                    for rf in resampler.resample(af):
                        rf.pts = None
                        out.mux(aout.encode(rf))
        if not copy:
            for frame in _decode(vin, None):
                frames += 1
                frame = frame.reformat(format="yuv420p")
                frame.pts = last_pts + 1
                last_pts = frame.pts
                out.mux(vout.encode(frame))
            out.mux(vout.encode(None))
        if aout is not None:
            out.mux(aout.encode(None))
        if frames == 0:
            raise CorruptMedia("the video has no decodable picture")
    fps = float(rate)
    return VideoInfo(width=width, height=height, duration=frames / fps if fps else 0.0,
                     codec="h264", fps=fps, frames=frames, has_audio=aout is not None,
                     transcoded=not copy, source_codec=source)


def _decode(stream: Any, packet: Any) -> list[Any]:
    try:
        return list(stream.codec_context.decode(packet))
    except av.error.InvalidDataError:
        return []  # a damaged packet: skip it, the decoder resyncs at the next keyframe
    except av.error.EOFError:
        return []  # flushed already (demux ends with an empty packet)
