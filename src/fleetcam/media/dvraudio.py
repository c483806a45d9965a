"""A recorded channel's audio: JT/T 1078 audio frames, as MDVRs send them, to AAC-LC packets
on one continuous sample clock (PyAV; docs/dvr.md "Audio").

Devices send G.711 A-law or mu-law (most), G.726, HiSilicon IMA ADPCM, AAC (ADTS) and a few
others, often behind HiSilicon's 4-byte frame header. Browsers and Flussonic's player play
none of the telephone codecs from MP4/MSE, so those are decoded and encoded to AAC-LC at their
own sample rate (8 kHz: an AAC frame of 1024 samples is exactly 128 ms). AAC-LC in ADTS (one
raw block a frame, 8 to 48 kHz, mono or stereo) is copied as sent once it decodes (decoding
costs a fortieth of encoding); other AAC (HE-AAC, odd rates) and MP3 are re-encoded. The cost
is measured in bench/dvr_record.py.

The clock: the track runs on a sample count anchored at the first frame's UTC time; a device
frame is placed where the count says while its own timestamp agrees (within ``JITTER_MS``);
when the device skips ahead (a pause in its audio), the encoder is fed silence up to it (copied
AAC keeps its frame grid and leaves the hole, which the fragmenter fills with silent frames);
when video goes on without audio (``fill_until``), silence is encoded as well, so the audio
track never has a hole a browser would stall on.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error

from fleetcam.media.fmp4 import AudioConfig

MAX_FRAME_BYTES = 16 * 1024
"""A larger audio frame is refused (a second of 16-bit PCM at 8 kHz; G.711 sends 320 bytes)."""
MAX_FRAME_SECONDS = 2
JITTER_MS = 100
"""A device timestamp this close to the sample clock is jitter: the sample count wins."""
MAX_FILL_MS = 10_000
"""A longer jump (forward or back) between the clock and a device frame starts a new clock."""
AAC_FRAME = 1024
"""Samples per AAC-LC frame."""
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
FALLBACK_RATE = 16000
"""Decoded audio at a rate AAC does not have is resampled to this."""
AAC_CODER = "fast"
"""FFmpeg's AAC coder: ``fast`` costs half of the default ``twoloop`` at 8 kHz (0.09 % against
0.22 % of a core for G.711 at 24 against 32 kbit/s, measured here), and telephone-band input
(4 kHz wide) gains nothing audible from the slower search."""


def _bit_rate(rate: int) -> int:
    """AAC-LC bit rate per channel: 24 kbit/s for 8 kHz speech, 32 up to 16 kHz, else 64."""
    return 24_000 if rate <= 8000 else 32_000 if rate <= 16_000 else 64_000

# JT/T 1078 table 12 payload types -> (FFmpeg decoder, sample rate it needs or None).
DECODERS: dict[int, tuple[str, int | None]] = {
    6: ("pcm_alaw", 8000),        # G.711A
    7: ("pcm_mulaw", 8000),       # G.711U
    8: ("adpcm_g726", 8000),      # G.726
    26: ("adpcm_ima_dk4", 8000),  # ADPCMA: HiSilicon IMA ADPCM (4-byte state header)
    2: ("adpcm_g722", 16000),     # G.722
    19: ("aac", None),            # AAC
    21: ("aac", None),            # HE-AAC
    24: ("aac", None),            # AAC-LC
    27: ("aac", None),            # MPEG-4 audio
    17: ("mp3", None),            # MPEG audio
    25: ("mp3", None),            # MP3
}
_SELF_DESCRIBING = {"aac", "mp3"}


class BadAudio(ValueError):
    """An audio frame that cannot be used (dropped; the video is untouched)."""


@dataclass(frozen=True)
class AacPacket:
    """One AAC frame: ``pts`` in samples of ``config.rate`` since the epoch (UTC ms x rate /
    1000), ``AAC_FRAME`` samples long."""

    pts: int
    data: bytes
    config: AudioConfig


def _silent_frame(rate: int, layout: str, bit_rate: int) -> bytes:
    """One AAC-LC frame of silence as this configuration's encoder makes it (the third: past
    the priming), for the fragmenter to fill holes with."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = rate, layout, "fltp", bit_rate
    ctx.time_base = Fraction(1, rate)
    ctx.options = {"aac_coder": AAC_CODER}
    ctx.open()
    frame = av.AudioFrame(format="s16", layout=layout, samples=AAC_FRAME * 4)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    packets = [bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)] if p.size]
    return packets[min(2, len(packets) - 1)] if packets else b""


def with_silence(config: AudioConfig) -> AudioConfig:
    """``config`` with its frame of silence (one made by the encoder at that rate, channel
    count and the bit rate the recorder uses): what fills a track read from an init segment."""
    layout = "stereo" if config.channels == 2 else "mono"
    return AudioConfig(config.rate, config.channels, config.asc,
                       _silent_frame(config.rate, layout, _bit_rate(config.rate) * config.channels))


ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
              8000, 7350)


def adts_lc(data: bytes) -> tuple[tuple[int, int, bytes], list[bytes]] | None:
    """((rate, channels, AudioSpecificConfig), raw frames) when ``data`` is exactly one or more
    ADTS frames of AAC-LC (ISO/IEC 13818-7 §6.2) with one raw block each, at a rate and a
    channel count the recorder keeps; else None (then it is decoded and encoded)."""
    out: list[bytes] = []
    pos, key = 0, None
    while pos < len(data):
        if len(data) - pos < 7 or data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:
            return None
        head = 7 if data[pos + 1] & 1 else 9
        profile, sfi = data[pos + 2] >> 6, (data[pos + 2] >> 2) & 0x0F
        channels = ((data[pos + 2] & 1) << 2) | (data[pos + 3] >> 6)
        size = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if profile != 1 or sfi >= len(ADTS_RATES) or ADTS_RATES[sfi] not in AAC_RATES \
                or channels not in (1, 2) or data[pos + 6] & 3 or size <= head \
                or pos + size > len(data):
            return None
        asc = bytes([(2 << 3) | (sfi >> 1), ((sfi & 1) << 7) | (channels << 3)])
        this = (ADTS_RATES[sfi], channels, asc)
        if key is not None and this != key:
            return None
        key = this
        out.append(data[pos + head:pos + size])
        pos += size
    return (key, out) if key is not None else None


def strip_hisilicon(data: bytes) -> bytes:
    """Remove HiSilicon's frame header ``00 01 <payload length / 2> 00`` when present."""
    if len(data) > 4 and data[:2] == b"\x00\x01" and data[3] == 0 and \
            data[2] * 2 == len(data) - 4:
        return data[4:]
    return data


class AudioTranscoder:
    """One channel's audio frames in, AAC-LC packets out (``push``, ``fill_until``,
    ``flush``). Not thread-safe: one recording's worker calls it.

    Attributes:
        config: the output's configuration (None until a frame decoded).
        clock: the encoder's next input sample (in ``config.rate`` units), or None.
    """

    def __init__(self, *, bit_rate: int | None = None) -> None:
        self.bit_rate = bit_rate
        self.config: AudioConfig | None = None
        self.clock: int | None = None
        self._decoder: Any = None
        self._decoder_key: tuple[object, ...] | None = None
        self._encoder: Any = None
        self._layout = "mono"
        self._resampler: Any = None
        self._last_ts: int | None = None
        self._last_len = 0
        self._g726_bits = 2
        self._copied: dict[tuple[int, int, bytes], AudioConfig] = {}

    # -- public -------------------------------------------------------------------------------
    def push(self, payload_type: int, data: bytes, utc_ms: int,
             start_ms: int | None = None) -> list[AacPacket]:
        """Decode one device frame and encode it; returns the AAC packets that came out.

        ``start_ms``: where the recording's open video fragment starts; when a new clock
        begins, it begins there (silence up to this frame), so the track starts with the
        video.

        Raises:
            BadAudio: unsupported codec, empty or oversized, or it does not decode.
        """
        codec = DECODERS.get(payload_type)
        if codec is None:
            raise BadAudio(f"unsupported audio payload type {payload_type}")
        if not data or len(data) > MAX_FRAME_BYTES:
            raise BadAudio(f"audio frame of {len(data)} bytes (1 to {MAX_FRAME_BYTES})")
        name, rate = codec
        if name not in _SELF_DESCRIBING:
            data = strip_hisilicon(data)
        if name == "adpcm_g726":
            self._g726_guess(len(data), utc_ms)
        frames = self._decode(name, rate, data, utc_ms)
        adts = adts_lc(data) if name == "aac" else None
        if adts is not None:  # it decodes (above): AAC-LC is kept as sent
            return self._copy(adts[0], adts[1], utc_ms)
        out: list[AacPacket] = []
        for frame in frames:
            out += self._place(frame, utc_ms, start_ms)
            utc_ms += frame.samples * 1000 // frame.sample_rate
        self._last_ts, self._last_len = utc_ms, len(data)
        return out

    def fill_until(self, utc_ms: int) -> list[AacPacket]:
        """Encode silence up to ``utc_ms`` (video went on without audio). A jump longer than
        ``MAX_FILL_MS`` starts a new clock there instead."""
        if self._encoder is None or self.config is None or self.clock is None:
            return []
        target = utc_ms * self.config.rate // 1000
        if target <= self.clock:
            return []
        if target - self.clock > MAX_FILL_MS * self.config.rate // 1000:
            out = self._flush_encoder()
            self._open_encoder(self.config.rate, self._layout)
            self.clock = target
            return out
        return self._silence(target - self.clock)

    def flush(self) -> list[AacPacket]:
        """End of the recording: the encoder's last packets."""
        return self._flush_encoder()

    # -- AAC-LC copied ------------------------------------------------------------------------
    def _copy(self, key: tuple[int, int, bytes], raws: list[bytes],
              utc_ms: int) -> list[AacPacket]:
        """Device AAC-LC frames kept as they are, on the track's clock (a hole is left for
        the fragmenter to fill with silence; a frame whose time has passed is dropped)."""
        rate, channels, asc = key
        out: list[AacPacket] = []
        if self.config is None or self._encoder is not None or \
                (self.config.rate, self.config.channels, self.config.asc) != key:
            out += self._flush_encoder()  # from encoding to copying (or a new configuration)
            cfg = self._copied.get(key)
            if cfg is None:
                cfg = AudioConfig(rate, channels, asc, _silent_frame(
                    rate, "stereo" if channels == 2 else "mono", _bit_rate(rate) * channels))
                self._copied[key] = cfg
            self.config, self.clock = cfg, None
        cfg = self.config
        at = utc_ms * rate // 1000
        jitter, longest = JITTER_MS * rate // 1000, MAX_FILL_MS * rate // 1000
        if self.clock is None or abs(at - self.clock) > longest:
            self.clock = at
        elif at > self.clock + jitter:  # a pause: keep the frame grid, leave the hole
            self.clock += round((at - self.clock) / AAC_FRAME) * AAC_FRAME
        elif at + AAC_FRAME * len(raws) < self.clock - jitter:
            return out  # time already covered
        for raw in raws:
            out.append(AacPacket(self.clock, raw, cfg))
            self.clock += AAC_FRAME
        return out

    # -- decoding -----------------------------------------------------------------------------
    def _g726_guess(self, size: int, utc_ms: int) -> None:
        """G.726 comes at 16, 24, 32 or 40 kbit/s and the packet does not say which: the
        bytes per millisecond between two frames do (HiSilicon's 16 kbit/s until then)."""
        if self._last_ts is None or self._last_len <= 0:
            return
        step = utc_ms - self._last_ts
        if 10 <= step <= 1000:
            bits = round(self._last_len / step)  # bytes/ms = bits per sample at 8 kHz
            if 2 <= bits <= 5 and bits != self._g726_bits:
                self._g726_bits = bits
                self._decoder = None

    def _decode(self, name: str, rate: int | None, data: bytes, utc_ms: int) -> list[Any]:
        key = (name, rate, self._g726_bits if name == "adpcm_g726" else 0)
        try:
            if self._decoder is None or key != self._decoder_key:
                ctx = av.CodecContext.create(name, "r")
                if rate is not None:
                    ctx.sample_rate = rate
                    ctx.layout = "mono"
                if name == "adpcm_g726":  # PyAV has no attribute for it: an AVOption
                    ctx.options = {"bits_per_coded_sample": str(self._g726_bits)}
                self._decoder, self._decoder_key = ctx, key
            frames = list(self._decoder.decode(av.Packet(data)))
        except (av.error.FFmpegError, ValueError) as e:
            self._decoder = None  # a fresh decoder for the next frame
            raise BadAudio(f"audio frame at {utc_ms} does not decode ({name}): {e}") from e
        for f in frames:
            if not (7000 <= f.sample_rate <= 96000) or f.layout.nb_channels not in (1, 2) \
                    or f.samples > f.sample_rate * MAX_FRAME_SECONDS:
                raise BadAudio(f"implausible audio ({f.sample_rate} Hz, "
                               f"{f.layout.nb_channels} channels, {f.samples} samples)")
        return frames

    # -- the clock ----------------------------------------------------------------------------
    def _place(self, frame: Any, utc_ms: int, start_ms: int | None) -> list[AacPacket]:
        rate = frame.sample_rate if frame.sample_rate in AAC_RATES else FALLBACK_RATE
        layout = "stereo" if frame.layout.nb_channels == 2 else "mono"
        out: list[AacPacket] = []
        if self._encoder is None or self.config is None or rate != self.config.rate \
                or layout != self._layout:
            out += self._flush_encoder()
            self._open_encoder(rate, layout)
            self.clock = None
        assert self.config is not None
        if rate != frame.sample_rate or frame.format.name not in ("s16", "fltp", "flt", "s16p"):
            frame = self._resample(frame, rate, layout)
        at = utc_ms * rate // 1000
        jitter, longest = JITTER_MS * rate // 1000, MAX_FILL_MS * rate // 1000
        if self.clock is None or abs(at - self.clock) > longest:
            if self.clock is not None:  # the device's clock jumped: a new clock
                out += self._flush_encoder()
                self._open_encoder(rate, layout)
            begin = at
            if start_ms is not None and 0 < at - start_ms * rate // 1000 <= longest:
                begin = start_ms * rate // 1000
            self.clock = begin
        if at > self.clock + jitter:  # the device paused: silence up to this frame
            out += self._silence(at - self.clock)
        elif at + frame.samples < self.clock - jitter:
            return out  # all of it lies in time already filled (late, or faster than real)
        out += self._encode(frame)
        return out

    def _resample(self, frame: Any, rate: int, layout: str) -> Any:
        if self._resampler is None or self._resampler.rate != rate:
            self._resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        got = self._resampler.resample(frame)
        if not got:
            return frame
        if len(got) == 1:
            return got[0]
        raise BadAudio("resampler split a frame")

    # -- encoding -----------------------------------------------------------------------------
    def _open_encoder(self, rate: int, layout: str) -> None:
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
        channels = 2 if layout == "stereo" else 1
        ctx.bit_rate = self.bit_rate or _bit_rate(rate) * channels
        ctx.time_base = Fraction(1, rate)
        ctx.options = {"aac_coder": AAC_CODER}
        ctx.open()
        self._encoder, self._layout = ctx, layout
        self.config = AudioConfig(rate, channels, bytes(ctx.extradata or b""),
                                  _silent_frame(rate, layout, ctx.bit_rate))

    def _encode(self, frame: Any) -> list[AacPacket]:
        assert self._encoder is not None and self.config is not None and self.clock is not None
        frame.pts, frame.time_base = self.clock, Fraction(1, self.config.rate)
        self.clock += frame.samples
        try:
            packets = self._encoder.encode(frame)
        except av.error.FFmpegError as e:
            raise BadAudio(f"AAC encoding failed: {e}") from e
        return [AacPacket(int(p.pts), bytes(p), self.config) for p in packets
                if p.pts is not None and p.size]

    def _silence(self, samples: int) -> list[AacPacket]:
        assert self.config is not None
        out: list[AacPacket] = []
        while samples > 0:
            n = min(samples, self.config.rate)  # at most a second a frame
            frame = av.AudioFrame(format="s16", layout=self._layout, samples=n)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = self.config.rate
            out += self._encode(frame)
            samples -= n
        return out

    def _flush_encoder(self) -> list[AacPacket]:
        enc, self._encoder = self._encoder, None
        if enc is None or self.config is None:
            return []
        try:
            return [AacPacket(int(p.pts), bytes(p), self.config) for p in enc.encode(None)
                    if p.pts is not None and p.size]
        except av.error.FFmpegError:
            return []
