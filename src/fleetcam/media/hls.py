"""Cut a live Annex-B frame stream into HLS MPEG-TS segments (H.264 copied, H.265 re-encoded),
with the channel's audio as AAC (ADTS) when the device sends it."""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.error

from fleetcam.errors import CorruptMedia
from fleetcam.media.dvraudio import ADTS_RATES
from fleetcam.protocol.jt1078.nal import split_annexb

if TYPE_CHECKING:
    from fleetcam.media.dvraudio import AacPacket
    from fleetcam.media.fmp4 import AudioConfig

__all__ = ["CONTAINER", "Segment", "HlsSegmenter"]

CONTAINER = "mpegts"
"""Segment format: MPEG-TS (hls.js, Safari and ffmpeg play it with no init segment; measured
against fragmented MP4 in bench/live_cpu.py)."""
MUX_OPTIONS = {"mpegts_flags": "initial_discontinuity"}
"""Each segment has its own muxer (closing it writes out every buffered packet, so a segment
holds exactly its time); the first packet of each PID says its continuity counter starts
afresh, so demuxers reading segment after segment (FFmpeg's HLS) see no continuity error."""
AUDIO_LAG_MS = 1000
"""A closed segment waits this long (of later video) for the audio covering its end; then it
goes out with silence where the audio is missing."""
AUDIO_QUEUE_MAX = 250
"""AAC frames waiting for their segment at most (32 s at 8 kHz, 5 s at 48 kHz); beyond, the
oldest are dropped."""
AAC_FRAME = 1024
MAX_AAC_BYTES = 0x1FFF - 7
"""The largest raw AAC frame an ADTS header can carry (AAC-LC never comes near it: 768
bytes a channel)."""
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
        audio_frames: AAC frames in it (silence filled in included).
    """

    sequence: int
    start_ms: int
    duration: float
    data: bytes
    frames: int
    audio_frames: int = 0


@dataclass
class _Closed:
    """A segment's video, cut, waiting for the audio that covers its time."""

    start: int  # ms on the stream's timeline
    end: int
    device_ms: int
    packets: list[av.Packet]


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

    A segment is cut right before the keyframe that opens the next one and muxed on its own
    (PAT, PMT, then the keyframe), so every segment stands alone while the timestamps run on
    (one timeline for the player). PTS = DTS = the device
    timestamp relative to the first keyframe (90 kHz), made strictly increasing: a repeated
    or slightly earlier timestamp is nudged 1 ms past the previous frame, and a clock jump
    (more than 1 s back or 10 s forward) continues one frame interval after it.

    H.264 is copied packet for packet (never decoded, except each new SPS's keyframe once, to
    prove it decodes). H.265 is decoded with frame threads and re-encoded with libx264
    (yuv420p, ``preset``, tune zerolatency, CRF 23); the segmenter forces an IDR wherever it
    cuts, so transcoded segments are cut at the first frame at or after ``target`` seconds
    whatever the source's GOP.

    Audio (``push_audio``: AAC-LC packets from ``media.dvraudio.AudioTranscoder``, stamped
    with the device's timestamps like the video) goes into the same segments as ADTS, placed
    by the same timeline: a packet belongs to the segment its middle falls in, so each
    segment's audio starts within half an AAC frame of its video. Whether the stream has an
    audio track is settled when the first segment goes out (audio that starts later is
    counted in ``audio_dropped``: the track cannot appear mid-stream for MSE players). A cut
    segment waits for the audio covering its end up to ``AUDIO_LAG_MS`` of later video, then
    goes out with silent AAC frames where audio is missing; holes between packets are filled
    with silence as well, so players never stall on the audio track.

    Attributes:
        codec: ``"h264"`` or ``"hevc"`` (the input's).
        transcoding: True for H.265 input.
        dropped: frames dropped before the first usable keyframe.
        long_gop: a copied H.264 segment ran past ``max_segment`` for want of a keyframe.
        width, height: picture size (known from the first keyframe on).
        audio: the audio track's configuration (None: video only, or not settled yet).
        audio_frames: AAC packets the segments carry (device audio, without filled silence).
        audio_dropped: AAC packets left out (late, out of order, of another configuration,
            after a video-only start, or over ``AUDIO_QUEUE_MAX``); packets from before the
            first keyframe are left out silently.
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
        self._seg_last = 0
        # output: the open segment's packets, and closed segments waiting for audio
        self._packets: list[av.Packet] = []
        self._closed: deque[_Closed] = deque()
        # audio
        self.audio: AudioConfig | None = None
        self.audio_frames = 0
        self.audio_dropped = 0
        self._audio_settled = False
        self._audio_q: deque[tuple[int, bytes]] = deque()  # (pts in 1/90000, raw AAC)
        self._audio_seen: AudioConfig | None = None
        self._audio_cursor: int | None = None  # where the next segment's audio starts
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

    def push_audio(self, packets: list[AacPacket]) -> list[Segment]:
        """Add AAC-LC packets (in order, ``pts`` in samples of their rate on the device's
        millisecond clock, as ``AudioTranscoder`` makes them); returns the segments that
        were waiting for this audio. Packets that cannot be placed are counted in
        ``audio_dropped``, never raised: the video goes on.

        Raises:
            CorruptMedia: a segment this audio completed does not mux (it is lost).
        """
        if self._finished:
            raise RuntimeError("push after flush")
        for p in packets:
            cfg = p.config
            if self._audio_settled and (self.audio is None or cfg != self.audio):
                self.audio_dropped += 1  # no track, or a configuration the track is not
                continue
            if self._origin is None:
                continue  # before the first keyframe: not part of the stream
            if cfg.rate not in ADTS_RATES or cfg.channels not in (1, 2) \
                    or not 0 < len(p.data) <= MAX_AAC_BYTES:
                self.audio_dropped += 1
                continue
            if self._audio_seen is not None and cfg != self._audio_seen:
                self._audio_q.clear()  # a new configuration before the track is settled
            self._audio_seen = cfg
            pts = p.pts * 90_000 // cfg.rate - (self._origin - self._shift) * 90
            if pts + self._half_frame(cfg) < 0:
                continue  # before the stream's first keyframe
            if self._audio_q and pts <= self._audio_q[-1][0]:
                self.audio_dropped += 1  # out of order
                continue
            self._audio_q.append((pts, p.data))
            if len(self._audio_q) > AUDIO_QUEUE_MAX:
                self._audio_q.popleft()
                self.audio_dropped += 1
        return self._emit()

    def flush(self) -> list[Segment]:
        """End of stream: the last, partial segment (if it has frames). Call once."""
        if self._finished:
            return []
        segments: list[Segment] = []
        try:
            if self._decoder is not None:
                for picture in self._decoder.decode(None):
                    segments += self._encode(picture)
            if self._encoder is not None:
                for packet in self._encoder.encode(None):
                    segments += self._mux(packet, cut=False)
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"unusable {self.codec} stream at its end: {e}") from e
        finally:
            self._finished = True
        if self._packets and self._seg_pts is not None:
            self._close_segment(self._seg_last + self.frame_interval)
        return segments + self._emit(final=True)

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

    # -- cutting and muxing ---------------------------------------------------------------
    def _mux(self, packet: av.Packet, *, cut: bool, pts: int | None = None,
             device_ms: int | None = None) -> list[Segment]:  # fmt: skip
        """Add one H.264 packet to the open segment, closing it before the packet when
        ``cut``; returns the segments ready to go."""
        if pts is None:  # an encoder's packet (1/1000): find the device time of its frame
            pts = int(packet.pts)
            while self._device_of and self._device_of[0][0] < pts:
                self._device_of.popleft()
            device_ms = self._device_of.popleft()[1] if self._device_of else pts + (
                self._origin or 0
            )
            packet.pts = packet.dts = pts * 90
        packet.time_base = TS_CLOCK
        if self._seg_pts is None:
            self._seg_pts, self._seg_device = pts, int(device_ms or 0)
        elif cut and self._packets:
            self._close_segment(pts)
            self._seg_pts, self._seg_device = pts, int(device_ms or 0)
        self._packets.append(packet)
        self._seg_last = pts
        return self._emit() if self._closed else []

    def _close_segment(self, end: int) -> None:
        assert self._seg_pts is not None
        self._closed.append(_Closed(self._seg_pts, end, self._seg_device, self._packets))
        self._packets = []

    def _emit(self, final: bool = False) -> list[Segment]:
        """The closed segments whose audio is complete (all of them without audio; at the
        end of the stream, all of them)."""
        out: list[Segment] = []
        while self._closed:
            seg = self._closed[0]
            if not self._audio_settled:  # the first segment settles whether there is audio
                self._audio_settled = True
                self.audio = self._audio_seen
                if self.audio is None:
                    self._audio_q.clear()
            cfg = self.audio
            if cfg is not None and not final:
                covered = bool(self._audio_q) and \
                    self._audio_q[-1][0] + self._half_frame(cfg) >= seg.end * 90
                if not covered and self._seg_last - seg.end < AUDIO_LAG_MS:
                    break
            self._closed.popleft()
            audio = self._take_audio(seg, cfg) if cfg is not None else []
            out.append(self._segment(seg, audio))
        return out

    def _half_frame(self, cfg: AudioConfig) -> int:
        return AAC_FRAME * 45_000 // cfg.rate

    def _take_audio(self, seg: _Closed, cfg: AudioConfig) -> list[tuple[int, bytes]]:
        """The AAC frames of ``seg``: those whose middle falls in it, on a continuous track
        (holes, and the end when the audio is late, filled with silence)."""
        step = AAC_FRAME * 90_000 / cfg.rate
        half, start, end = self._half_frame(cfg), seg.start * 90, seg.end * 90
        cursor = self._audio_cursor
        if cursor is None or not start - step < cursor < end:
            cursor = None  # the first segment with audio (or the track lost its way)
        out: list[tuple[int, bytes]] = []
        queue = self._audio_q
        while queue and queue[0][0] + half < end:
            pts, data = queue.popleft()
            if cursor is not None and pts < cursor - half:
                self.audio_dropped += 1  # time already covered (late, or overlapping)
                continue
            if cursor is None:
                cursor = pts
            out += self._silence(cursor, pts - half, cfg)
            out.append((pts, data))
            self.audio_frames += 1
            cursor = round(pts + step)
        if cursor is None:  # no audio for this segment: silence from its start
            cursor = start
        out += self._silence(cursor, end - half, cfg)
        self._audio_cursor = round(out[-1][0] + step) if out else cursor
        return out

    @staticmethod
    def _silence(cursor: int, until: int, cfg: AudioConfig) -> list[tuple[int, bytes]]:
        """Silent frames from ``cursor`` on, as long as one starts before ``until``."""
        if not cfg.silence:
            return []
        step = AAC_FRAME * 90_000 / cfg.rate
        out, at = [], float(cursor)
        while at < until:
            out.append((round(at), cfg.silence))
            at += step
        return out

    def _segment(self, seg: _Closed, audio: list[tuple[int, bytes]]) -> Segment:
        """Mux one segment: its own MPEG-TS muxer, closed at its end (nothing left behind)."""
        sink = ByteSink()
        try:
            with av.open(sink, "w", format=CONTAINER, options=MUX_OPTIONS) as out:  # type: ignore[arg-type]
                video = out.add_mux_stream("h264", width=self.width or 0,
                                           height=self.height or 0)
                video.time_base = TS_CLOCK
                sound = None
                cfg = self.audio
                if cfg is not None:
                    sound = out.add_mux_stream("aac", rate=cfg.rate)
                    sound.time_base = TS_CLOCK
                i = 0
                for packet in seg.packets:
                    while sound is not None and i < len(audio) and audio[i][0] < packet.dts:
                        self._mux_audio(out, sound, *audio[i])
                        i += 1
                    packet.stream = video
                    out.mux_one(packet)
                while sound is not None and i < len(audio):
                    self._mux_audio(out, sound, *audio[i])
                    i += 1
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"segment {self._sequence} does not mux: {e}") from e
        segment = Segment(
            sequence=self._sequence, start_ms=seg.device_ms,
            duration=(seg.end - seg.start) / 1000, data=sink.take(),
            frames=len(seg.packets), audio_frames=len(audio),
        )  # fmt: skip
        self._sequence += 1
        return segment

    def _mux_audio(self, out: av.container.OutputContainer, stream: av.stream.Stream,
                   pts: int, raw: bytes) -> None:
        assert self.audio is not None
        packet = av.Packet(adts(raw, self.audio.rate, self.audio.channels))
        packet.pts = packet.dts = pts
        packet.time_base = TS_CLOCK
        packet.stream = stream
        out.mux_one(packet)


def adts(raw: bytes, rate: int, channels: int) -> bytes:
    """One raw AAC-LC frame behind its ADTS header (ISO/IEC 13818-7 §6.2: no CRC, one raw
    data block), as MPEG-TS carries AAC."""
    size = len(raw) + 7
    if size > 0x1FFF:
        raise ValueError("AAC frame too large for ADTS")
    sfi = ADTS_RATES.index(rate)
    return bytes([0xFF, 0xF1, (1 << 6) | (sfi << 2) | (channels >> 2),
                  ((channels & 3) << 6) | (size >> 11), (size >> 3) & 0xFF,
                  ((size & 7) << 5) | 0x1F, 0xFC]) + raw


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
