"""Cut a live Annex-B frame stream into HLS MPEG-TS segments (H.264 copied, H.265 re-encoded)."""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error

from fleetcam.errors import CorruptMedia
from fleetcam.protocol.jt1078.nal import split_annexb

__all__ = ["CONTAINER", "Segment", "HlsSegmenter"]

CONTAINER = "mpegts"
"""Segment format: MPEG-TS (hls.js, Safari and ffmpeg play it with no init segment; measured
against fragmented MP4 in bench/live_cpu.py)."""
TS_CLOCK = Fraction(1, 90_000)
MS = Fraction(1, 1000)
DEFAULT_INTERVAL_MS = 40  # 25 fps, until the stream shows its own frame interval
MAX_GAP_MS = 10_000  # a longer jump forward is a clock jump, not a pause in the stream
MAX_BACKSTEP_MS = 1_000  # a shorter step back is jitter (nudged); a longer one, a clock reset
DECODE_THREADS = 1
"""One decoding thread a live stream: streams run side by side, so frame threads add no
throughput here, and tearing down a frame-threaded HEVC decoder once hung the test run in
avcodec_free_context (FFmpeg 8 in PyAV 18)."""
MAX_SILENT_PACKETS = 50  # H.265 packets the decoder may swallow in a row before we give up
# ITU-T H.264 table 7-1: 0 and 24..31 unspecified, 16..18 and 22..23 reserved, 2..4 data
# partitioning (Extended profile only; H.265 parameter sets and slices look like them).
_H264_OK = frozenset((1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, 20, 21))
_H264_SPS = 7
# ITU-T H.265 table 7-1: 10..15 and 22..31 reserved VCL, 41..47 reserved, 48..63 unspecified
# (H.264 parameter sets and slices land there).
_H265_OK = frozenset((*range(0, 10), *range(16, 22), *range(32, 41)))
_CODECS = {"h264": "h264", "avc": "h264", "hevc": "hevc", "h265": "hevc"}


@dataclass(frozen=True)
class Segment:
    """One HLS media segment.

    Attributes:
        sequence: 0, 1, 2... per segmenter (the playlist's media sequence numbers).
        start_ms: device timestamp (ms) of its first frame.
        duration: seconds, from frame timestamps (to the next segment's first frame; for
            the last one, its last frame lasts the stream's frame interval).
        data: a complete MPEG-TS segment (PAT, PMT, then a keyframe with its parameter
            sets), decodable on its own; timestamps continue across segments.
        frames: video frames in it.
    """

    sequence: int
    start_ms: int
    duration: float
    data: bytes
    frames: int


class ByteSink:
    """A muxer's output file: collects the bytes written until ``take`` hands them on (the
    HLS segmenter's segments, the DVR's MPEG-TS downloads)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


class HlsSegmenter:
    """Turn one camera's frames, as they arrive, into HLS segments that start on keyframes.

    One long-lived MPEG-TS muxer writes every frame (its output flushed per packet), and a
    segment is cut right before the keyframe that opens the next one; the muxer repeats PAT
    and PMT before each keyframe, so every segment stands alone while the continuity
    counters and timestamps run on (one timeline for the player). PTS = DTS = the device
    timestamp relative to the first keyframe (90 kHz), made strictly increasing: a repeated
    or slightly earlier timestamp is nudged 1 ms past the previous frame, and a clock jump
    (more than 1 s back or 10 s forward) continues one frame interval after it.

    H.264 is copied packet for packet (never decoded, except each new SPS's keyframe once, to
    prove it decodes). H.265 is decoded with frame threads and re-encoded with libx264
    (yuv420p, ``preset``, tune zerolatency, CRF 23); the segmenter forces an IDR wherever it
    cuts, so transcoded segments are cut at the first frame at or after ``target`` seconds
    whatever the source's GOP.

    Attributes:
        codec: ``"h264"`` or ``"hevc"`` (the input's).
        transcoding: True for H.265 input.
        dropped: frames dropped before the first usable keyframe.
        long_gop: a copied H.264 segment ran past ``max_segment`` for want of a keyframe.
        width, height: picture size (known from the first keyframe on).
    """

    def __init__(self, codec: str, *, target: float = 1.0, preset: str = "veryfast",
                 max_segment: float = 4.0) -> None:  # fmt: skip
        try:
            self.codec = _CODECS[codec.lower()]
        except KeyError:
            raise ValueError(f"codec must be 'h264' or 'hevc', not {codec!r}") from None
        if not 0 < target <= max_segment:
            raise ValueError("need 0 < target <= max_segment")
        self.transcoding = self.codec == "hevc"
        self.target_ms, self.max_ms = round(target * 1000), round(max_segment * 1000)
        self.preset = preset
        self.dropped = 0
        self.long_gop = False
        self.width: int | None = None
        self.height: int | None = None
        self._sequence = 0
        self._finished = False
        # timeline (ms, relative to the first keyframe)
        self._origin: int | None = None
        self._shift = 0
        self._last: int | None = None
        self._deltas: deque[int] = deque([DEFAULT_INTERVAL_MS], maxlen=25)
        # the segment being written
        self._seg_pts: int | None = None
        self._seg_device = 0
        self._seg_frames = 0
        self._seg_last = 0
        # output
        self._sink = ByteSink()
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        # H.264 copy
        self._sps: bytes | None = None
        self._params: dict[int, bytes] = {}
        # H.265 transcode
        self._decoder: av.CodecContext | None = None
        self._encoder: av.CodecContext | None = None
        self._device_of: deque[tuple[int, int]] = deque()  # (pts, device ms) awaiting output
        self._silent = 0

    # -- public ---------------------------------------------------------------------------
    def push(self, data: bytes, timestamp_ms: int, keyframe: bool) -> list[Segment]:
        """Add one access unit; returns the segments it completed (none or one, usually).

        Raises:
            CorruptMedia: the data is not of the stream's codec or cannot be decoded.
        """
        if self._finished:
            raise RuntimeError("push after flush")
        nals = _check_nals(self.codec, data)
        if self._origin is None:
            if not keyframe or not self._starts_stream(nals):
                self.dropped += 1
                return []
            self._origin = timestamp_ms
        pts = self._timeline(timestamp_ms)
        try:
            if self.transcoding:
                return self._transcode(data, pts, timestamp_ms)
            return self._copy(data, nals, pts, timestamp_ms, keyframe)
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"unusable {self.codec} frame at {timestamp_ms}: {e}") from e

    def flush(self) -> list[Segment]:
        """End of stream: the last, partial segment (if it has frames). Call once."""
        if self._finished:
            return []
        self._finished = True
        segments: list[Segment] = []
        try:
            if self._decoder is not None:
                for picture in self._decoder.decode(None):
                    segments += self._encode(picture)
            if self._encoder is not None:
                for packet in self._encoder.encode(None):
                    segments += self._mux(packet, cut=False)
            if self._out is not None:
                self._out.close()
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"unusable {self.codec} stream at its end: {e}") from e
        if self._seg_frames and self._seg_pts is not None:
            end = self._seg_last + self.frame_interval
            segments.append(self._segment(end))
        return segments

    @property
    def frame_interval(self) -> int:
        """The stream's frame interval in ms (median of the recent ones)."""
        return max(1, round(statistics.median(self._deltas)))

    # -- timeline -------------------------------------------------------------------------
    def _timeline(self, timestamp_ms: int) -> int:
        assert self._origin is not None
        pts = timestamp_ms - self._origin + self._shift
        last = self._last
        if last is not None:
            step = pts - last
            if 0 < step <= MAX_GAP_MS:
                self._deltas.append(step)
            elif -MAX_BACKSTEP_MS < step <= 0:
                pts = last + 1  # jitter: keep the clock, nudge this frame
            else:  # the device's clock jumped: continue where the stream was
                target = last + self.frame_interval
                self._shift += target - pts
                pts = target
        self._last = pts
        return pts

    # -- H.264 copy -----------------------------------------------------------------------
    def _starts_stream(self, nals: list[bytes]) -> bool:
        """Whether a keyframe can open the stream (H.264: we have its SPS and PPS)."""
        if self.transcoding:
            return True
        types = {n[0] & 0x1F for n in nals}
        return (_H264_SPS in types or _H264_SPS in self._params) and (
            8 in types or 8 in self._params
        )

    def _copy(self, data: bytes, nals: list[bytes], pts: int, device_ms: int,
              keyframe: bool) -> list[Segment]:  # fmt: skip
        if keyframe:
            data = self._with_parameter_sets(data, nals)
        if self._out is None:
            self._open()
        elapsed = pts - self._seg_pts if self._seg_pts is not None else 0
        if not keyframe and elapsed >= self.max_ms:
            self.long_gop = True
        cut = keyframe and elapsed >= self.target_ms - self.frame_interval // 2
        packet = av.Packet(data)
        packet.pts = packet.dts = pts * 90
        packet.is_keyframe = keyframe
        return self._mux(packet, cut=cut, pts=pts, device_ms=device_ms)

    def _with_parameter_sets(self, data: bytes, nals: list[bytes]) -> bytes:
        """Check a keyframe's (new) SPS decodes; prepend remembered SPS/PPS when missing."""
        present = {}
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind in (7, 8) and kind not in present:
                present[kind] = nal
        sps = present.get(7)
        if sps is not None and sps != self._sps:
            self._probe_h264(data)
            self._sps = sps
        self._params.update(present)
        missing = [self._params[k] for k in (7, 8) if k not in present and k in self._params]
        return b"".join(b"\x00\x00\x00\x01" + n for n in missing) + data

    def _probe_h264(self, data: bytes) -> None:
        """Decode one keyframe (only when its SPS is new): a codec change or garbage fails."""
        try:
            ctx = av.CodecContext.create("h264", "r")
            ctx.thread_count = 1
            pictures = [*ctx.decode(av.Packet(data)), *ctx.decode(None)]
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"an H.264 keyframe does not decode: {e}") from e
        if not pictures:
            raise CorruptMedia("an H.264 keyframe does not decode to a picture")
        self.width, self.height = pictures[0].width, pictures[0].height

    # -- H.265 transcode ------------------------------------------------------------------
    def _transcode(self, data: bytes, pts: int, device_ms: int) -> list[Segment]:
        if self._decoder is None:
            self._decoder = av.CodecContext.create("hevc", "r")
            self._decoder.thread_count = DECODE_THREADS
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = MS
        self._device_of.append((pts, device_ms))
        pictures = self._decoder.decode(packet)
        if pictures:
            self._silent = 0
        else:
            self._silent += 1
            if self._silent > MAX_SILENT_PACKETS:
                raise CorruptMedia(f"{self._silent} H.265 frames in a row gave no picture")
        segments: list[Segment] = []
        for picture in pictures:
            segments += self._encode(picture)
        return segments

    def _encode(self, picture: av.VideoFrame) -> list[Segment]:
        if self._encoder is None:
            self.width, self.height = picture.width, picture.height
            self._encoder = self._make_encoder(picture.width, picture.height)
            self._open()
        if picture.format.name != "yuv420p" or (picture.width, picture.height) != (
            self.width, self.height
        ):  # fmt: skip
            pts = picture.pts
            picture = picture.reformat(self.width, self.height, "yuv420p")
            picture.pts = pts
        pts = picture.pts
        if self._seg_pts is None or pts - self._seg_pts >= self.target_ms - (
            self.frame_interval // 2
        ):  # fmt: skip
            picture.pict_type = av.video.frame.PictureType.I  # an IDR opens each segment
        else:
            picture.pict_type = av.video.frame.PictureType.NONE
        picture.time_base = MS
        segments: list[Segment] = []
        for packet in self._encoder.encode(picture):
            segments += self._mux(packet, cut=packet.is_keyframe)
        return segments

    def _make_encoder(self, width: int, height: int) -> av.CodecContext:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = MS
        ctx.framerate = Fraction(1000, self.frame_interval)
        ctx.thread_count = 1
        ctx.options = {
            "preset": self.preset, "tune": "zerolatency", "crf": "23", "forced-idr": "1",
            "x264-params": "keyint=infinite:scenecut=0:repeat-headers=1",
        }  # fmt: skip
        return ctx

    # -- muxing and cutting ---------------------------------------------------------------
    def _open(self) -> None:
        self._out = av.open(self._sink, "w", format=CONTAINER, options={"flush_packets": "1"})
        self._stream = self._out.add_mux_stream(
            "h264", width=self.width or 0, height=self.height or 0
        )
        self._stream.time_base = TS_CLOCK

    def _mux(self, packet: av.Packet, *, cut: bool, pts: int | None = None,
             device_ms: int | None = None) -> list[Segment]:  # fmt: skip
        """Write one H.264 packet, cutting the segment before it when ``cut``."""
        assert self._out is not None and self._stream is not None
        if pts is None:  # an encoder's packet (1/1000): find the device time of its frame
            pts = int(packet.pts)
            while self._device_of and self._device_of[0][0] < pts:
                self._device_of.popleft()
            device_ms = self._device_of.popleft()[1] if self._device_of else pts + (
                self._origin or 0
            )
            packet.pts = packet.dts = pts * 90
        packet.time_base = TS_CLOCK
        packet.stream = self._stream
        segments = []
        if self._seg_pts is None:
            self._seg_pts, self._seg_device = pts, int(device_ms or 0)
        elif cut and self._seg_frames:
            segments.append(self._segment(pts))
            self._seg_pts, self._seg_device = pts, int(device_ms or 0)
        self._out.mux_one(packet)
        self._seg_frames += 1
        self._seg_last = pts
        return segments

    def _segment(self, end_pts: int) -> Segment:
        assert self._seg_pts is not None
        segment = Segment(
            sequence=self._sequence, start_ms=self._seg_device,
            duration=(end_pts - self._seg_pts) / 1000, data=self._sink.take(),
            frames=self._seg_frames,
        )  # fmt: skip
        self._sequence += 1
        self._seg_frames = 0
        return segment


def _check_nals(codec: str, data: bytes) -> list[bytes]:
    """The access unit's NAL units; CorruptMedia unless all are valid units of ``codec``."""
    nals = split_annexb(data)
    if not nals:
        raise CorruptMedia(f"not an Annex-B {codec} access unit (no start code)")
    for nal in nals:
        if nal[0] & 0x80:
            raise CorruptMedia(f"not a {codec} NAL unit (forbidden bit set)")
        if codec == "h264":
            ok = (nal[0] & 0x1F) in _H264_OK
        else:
            ok = len(nal) > 1 and (nal[0] >> 1) & 0x3F in _H265_OK and nal[1] & 0x07 != 0
        if not ok:
            raise CorruptMedia(f"not a {codec} NAL unit (type byte {nal[0]:#04x}): codec change?")
    return nals
