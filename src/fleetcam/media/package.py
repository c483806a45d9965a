"""Package a raw clip into an MP4 a browser plays while it downloads (PyAV, streamed)."""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any, BinaryIO

import av
import av.error

from fleetcam.domain.rawclip import RawClipError, RawFrame, read_frames, read_header
from fleetcam.errors import CorruptMedia
from fleetcam.media.probe import VideoInfo
from fleetcam.protocol.jt1078.nal import nal_type, split_annexb

__all__ = ["VideoInfo", "package_raw"]

FASTSTART = "+faststart"
"""moov before mdat (the default): a browser knows the duration and every seek point from the
first bytes. bench/package_clip.py and package_memory.py measured it against FRAGMENTED: about
10% more CPU (the muxer rewrites the file once to move the moov up) and 6 MiB more peak RSS
(the sample tables of a 1-hour clip). Both are small next to the gain in seeking."""
FRAGMENTED = "+frag_keyframe+empty_moov+default_base_moof"
"""Fragmented MP4 (a moof per GOP): no index up front, so seeking means scanning fragments."""
CRF = 23  # libx264's default quality: the 720p test pattern lands near 1 Mbit/s, as sent
MAX_GAP_MS = 10_000  # a longer jump forward is a clock jump, not a pause in the recording
PEEK_VIDEO_FRAMES = 50  # look this far past the first keyframe for the first audio frame
MS = Fraction(1, 1000)
_VIDEO_CODECS = {"h264": "h264", "avc": "h264", "hevc": "hevc", "h265": "hevc"}
# H.264 SPS/PPS, H.265 VPS/SPS/PPS (ITU-T H.264 / H.265 table 7-1), and the slice ranges.
_PARAMS = {"h264": (7, 8), "hevc": (32, 33, 34)}
_VCL = {"h264": range(1, 6), "hevc": range(0, 32)}
# JT/T 1078 table 12 codes or names, as a header's "audio" may give them.
_AUDIO_CODECS = {
    "g711a": "pcm_alaw", "alaw": "pcm_alaw", "pcm_alaw": "pcm_alaw", 6: "pcm_alaw",
    "g711u": "pcm_mulaw", "ulaw": "pcm_mulaw", "pcm_mulaw": "pcm_mulaw", 7: "pcm_mulaw",
    "aac": "aac", 19: "aac", 24: "aac",
}  # fmt: skip


def package_raw(src: BinaryIO, dst_path: str, *, preset: str = "veryfast") -> VideoInfo:
    """Turn a raw clip into a progressive MP4 (moov first) with an H.264 video track.

    H.264 is copied frame for frame; H.265 is decoded (frame threads) and re-encoded with
    libx264 (yuv420p, ``preset``, CRF 23), since browsers do not play H.265. The clip starts
    at its first keyframe; timestamps are the frames' own, relative to that keyframe, made
    strictly increasing where the device repeated or reversed them. G.711 or AAC audio
    (header ``"audio"``: ``"g711a"``, ``"g711u"``, ``"aac"`` or JT/T 1078 codes 6, 7, 19)
    becomes AAC; other or undecodable audio is dropped (``has_audio=False``).

    Args:
        src: the raw clip, read once from its current position, a frame at a time.
        dst_path: where to write the MP4 (a path: the moov is moved to the front there).
        preset: libx264 preset used when transcoding.

    Raises:
        CorruptMedia: not a raw clip, a truncated or corrupt stream, no keyframe, or a
            codec other than H.264/H.265.
    """
    return _package(src, dst_path, preset=preset, movflags=FASTSTART)


def _package(src: BinaryIO, dst_path: str, *, preset: str, movflags: str) -> VideoInfo:
    try:
        header = read_header(src)
        codec = _VIDEO_CODECS.get(str(header.get("codec", "")).lower())
        if codec is None:
            raise CorruptMedia(f"unknown video codec {header.get('codec')!r} in the raw clip")
        frames = read_frames(src)
        start, peeked = _start(codec, frames)
        width, height = _picture_size(codec, start.data)
        audio = _AudioIn.open(header, peeked)
        with _Writer(dst_path, codec, width, height, preset, movflags, audio) as writer:
            for frame in (start, *peeked):
                writer.add(frame)
            for frame in frames:
                writer.add(frame)
            return writer.finish()
    except RawClipError as e:
        raise CorruptMedia(f"broken raw clip: {e}") from e
    except av.error.InvalidDataError as e:
        raise CorruptMedia(f"undecodable video: {e}") from e


def _nal_types(codec: str, data: bytes) -> list[int]:
    return [nal_type(codec, nal) for nal in split_annexb(data)]


def _start(codec: str, frames: Iterator[RawFrame]) -> tuple[RawFrame, list[RawFrame]]:
    """The first keyframe that carries (or is preceded by) its parameter sets, and the
    frames just after it (to look for audio); everything before it is dropped."""
    params: dict[int, bytes] = {}
    wanted = _PARAMS[codec]
    for frame in frames:
        if not frame.video or frame.kind != 0:
            continue
        nals = split_annexb(frame.data)
        types = [nal_type(codec, nal) for nal in nals]
        params.update((t, nal) for t, nal in zip(types, nals) if t in wanted)
        if not any(t in _VCL[codec] for t in types) or any(t not in params for t in wanted):
            continue  # parameter sets only (kept for the next one), or no way to decode it
        missing = b"".join(b"\x00\x00\x00\x01" + params[t] for t in wanted if t not in types)
        start = RawFrame(frame.kind, frame.timestamp, missing + frame.data)
        return start, _peek(frames)
    raise CorruptMedia("the clip has no keyframe with its parameter sets")


def _peek(frames: Iterator[RawFrame]) -> list[RawFrame]:
    peeked: list[RawFrame] = []
    video = 0
    for frame in frames:
        peeked.append(frame)
        video += frame.video
        if not frame.video or video >= PEEK_VIDEO_FRAMES:
            break
    return peeked


def _picture_size(codec: str, data: bytes) -> tuple[int, int]:
    """Decode the first keyframe alone: its size, and proof the stream is decodable."""
    ctx = av.CodecContext.create(codec, "r")
    try:
        pictures = [*ctx.decode(av.Packet(data)), *ctx.decode(None)]
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"the first keyframe does not decode: {e}") from e
    if not pictures:
        raise CorruptMedia("the first keyframe does not decode to a picture")
    return pictures[0].width, pictures[0].height


class _Timeline:
    """Device milliseconds → output milliseconds from the first keyframe, strictly
    increasing: a repeated, backward or implausibly long step becomes one frame interval
    and shifts what follows, so the frames keep their own spacing after it."""

    def __init__(self, first: int) -> None:
        self.offset = -first
        self.last: int | None = None
        self.step = 40  # 25 fps until the clip says otherwise
        self.repaired = 0

    def __call__(self, timestamp: int) -> int:
        t = timestamp + self.offset
        if self.last is not None:
            delta = t - self.last
            if 0 < delta <= MAX_GAP_MS:
                self.step = min(delta, 1000)
            else:
                self.offset += self.last + self.step - t
                t = self.last + self.step
                self.repaired += 1
        self.last = t
        return t


class _AudioIn:
    """The clip's audio, if its codec is known and its first frame decodes."""

    def __init__(self, ctx: Any, rate: int) -> None:
        self.ctx = ctx
        self.rate = rate

    @classmethod
    def open(cls, header: dict[str, Any], peeked: list[RawFrame]) -> _AudioIn | None:
        first = next((f for f in peeked if not f.video), None)
        if first is None:
            return None
        name = _AUDIO_CODECS.get(header.get("audio"))  # type: ignore[arg-type]
        if name is None and first.data[:2] in (b"\xff\xf1", b"\xff\xf9"):
            name = "aac"  # ADTS sync word
        if name is None:
            return None
        ctx = av.CodecContext.create(name, "r")
        if name != "aac":
            ctx.sample_rate = int(header.get("audio_rate") or 8000)
            ctx.layout = "stereo" if header.get("audio_channels") == 2 else "mono"
        audio = cls(ctx, 0)
        try:
            decoded = audio.decode(first.data)
        except av.error.FFmpegError:
            return None
        if not decoded:
            return None
        audio.ctx = av.CodecContext.create(name, "r")  # fresh: the writer decodes it again
        if name != "aac":
            audio.ctx.sample_rate, audio.ctx.layout = ctx.sample_rate, ctx.layout
        audio.rate = decoded[0].sample_rate
        return audio

    def decode(self, data: bytes) -> list[av.AudioFrame]:
        # HiSilicon devices prefix audio with 00 01 <half length> 00 (JT/T 1078 practice).
        if len(data) > 4 and data[:2] == b"\x00\x01" and data[2] * 2 == len(data) - 4:
            data = data[4:]
        return list(self.ctx.decode(av.Packet(data)))


class _Writer:
    """The output MP4 and the per-frame work: copy H.264, or decode H.265 and encode."""

    def __init__(self, path: str, codec: str, width: int, height: int, preset: str,
                 movflags: str, audio: _AudioIn | None) -> None:  # fmt: skip
        self.codec, self.audio = codec, audio
        self.width, self.height = width, height
        self.out = av.open(path, "w", format="mp4", options={"movflags": movflags})
        self.timeline: _Timeline | None = None
        self.frames = 0
        self.audio_pts: int | None = None
        self.encoded_pts = -1
        if codec == "h264":
            self.video = self.out.add_mux_stream("h264", width=width, height=height)
            self.video.time_base = MS
        else:
            self.decoder = av.CodecContext.create("hevc", "r")
            self.decoder.thread_type = "FRAME"  # 1.7x slice threading on this job
            self.decoder.thread_count = 0
            self.video = self.out.add_stream("libx264", rate=25, options={
                "preset": preset, "crf": str(CRF), "profile": "high",
            })  # fmt: skip
            self.video.width, self.video.height = width, height
            self.video.pix_fmt = "yuv420p"
            # x264's frame threads, as the ffmpeg CLI uses: PyAV's default (slice) makes
            # x264 cut each picture in slices, which measured twice the bytes at the same CRF.
            self.video.codec_context.thread_type = "FRAME"
            self.video.codec_context.thread_count = 0
            self.video.codec_context.time_base = MS
            self.video.time_base = MS
        if audio is not None:
            self.sound = self.out.add_stream("aac", rate=audio.rate)
            self.sound.codec_context.layout = audio.ctx.layout
            self.sound.codec_context.time_base = Fraction(1, audio.rate)
            self.sound.codec_context.bit_rate = 32_000 if audio.rate <= 16_000 else 64_000
            self.sound.time_base = Fraction(1, audio.rate)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.close()

    def add(self, frame: RawFrame) -> None:
        if not frame.data:
            return
        if not frame.video:
            if self.audio is not None and self.timeline is not None:
                self._audio(frame)
            return
        if self.timeline is None:
            self.timeline = _Timeline(frame.timestamp)
        pts = self.timeline(frame.timestamp)
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = MS
        if self.codec == "h264":
            packet.duration = self.timeline.step
            packet.is_keyframe = frame.kind == 0
            packet.stream = self.video
            self.out.mux_one(packet)
            self.frames += 1
        else:
            self._encode(self.decoder.decode(packet))

    def _encode(self, pictures: list[av.VideoFrame]) -> None:
        assert self.timeline is not None
        for picture in pictures:
            if picture.format.name != "yuv420p" or picture.width != self.width:
                picture = picture.reformat(self.width, self.height, "yuv420p")
            pts = picture.pts if picture.pts is not None else self.encoded_pts + 1
            picture.pts = max(pts, self.encoded_pts + 1)
            picture.time_base = MS
            picture.duration = self.timeline.step
            picture.pict_type = 0  # AV_PICTURE_TYPE_NONE: x264 places keyframes, as ffmpeg's CLI
            self.encoded_pts = picture.pts
            self.out.mux(self.video.encode(picture))
            self.frames += 1

    def _audio(self, frame: RawFrame) -> None:
        assert self.audio is not None and self.timeline is not None
        try:
            decoded = self.audio.decode(frame.data)
        except av.error.FFmpegError:
            return  # one bad audio frame: a short silence, not a failed clip
        for samples in decoded:
            if self.audio_pts is None:  # later audio follows the sample count, not the clock
                start = frame.timestamp + self.timeline.offset
                self.audio_pts = max(0, start) * self.audio.rate // 1000
            samples.pts, samples.time_base = self.audio_pts, Fraction(1, self.audio.rate)
            self.audio_pts += samples.samples
            self.out.mux(self.sound.encode(samples))

    def finish(self) -> VideoInfo:
        assert self.timeline is not None and self.timeline.last is not None
        if self.codec != "h264":
            self._encode(self.decoder.decode(None))
            self.out.mux(self.video.encode(None))
        if self.audio is not None and self.audio_pts is not None:
            self.out.mux(self.sound.encode(None))
        duration = (self.timeline.last + self.timeline.step) / 1000
        return VideoInfo(
            width=self.width, height=self.height, duration=duration, codec="h264",
            fps=self.frames / duration, frames=self.frames,
            has_audio=self.audio is not None and self.audio_pts is not None,
            transcoded=self.codec != "h264", source_codec=self.codec,
        )  # fmt: skip
