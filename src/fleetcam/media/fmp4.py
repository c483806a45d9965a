"""Fragmented MP4 for the DVR: init segments and fixed-layout fragments (docs/dvr.md).

Pure Python, no PyAV: the gateway writes a fragment per GOP for every recorded channel, and
the read side rewrites two fields of stored fragments; both are byte layouts, so they are
written here directly (ISO/IEC 14496-12 box syntax, ISO/IEC 14496-15 ``avcC``).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetcam.domain.dvr import AUDIO_TRACK, TIMESCALE, VIDEO_TRACK

SEQUENCE_OFFSET = 20
"""Fragment offset of ``mfhd.sequence_number`` (u32)."""
TFDT_OFFSET = 60
"""Fragment offset of ``tfdt.baseMediaDecodeTime`` (u64, version 1)."""
DATA_OFFSET_OFFSET = 84
"""Fragment offset of ``trun.data_offset`` (s32; always moof_size + 8)."""
MOOF_BASE = 88
SAMPLE_ENTRY = 12
KEY_FLAGS = 0x02000000
"""sample_depends_on = 2 (an I picture)."""
NON_KEY_FLAGS = 0x01010000
"""sample_depends_on = 1, sample_is_non_sync_sample = 1."""


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


AUDIO_TRAF_BASE = 64
"""Bytes of the audio ``traf`` with no sample: traf 8 + tfhd 16 + tfdt 20 + trun 20."""
AUDIO_ENTRY = 8
"""Per audio sample in its ``trun``: duration and size (u32 each)."""


def moof_size(frames: int, audio_frames: int = 0) -> int:
    """Bytes of a fragment's ``moof``: the video ``traf`` of ``frames`` samples, then the audio
    ``traf`` when it has samples."""
    audio = AUDIO_TRAF_BASE + AUDIO_ENTRY * audio_frames if audio_frames else 0
    return MOOF_BASE + SAMPLE_ENTRY * frames + audio


@dataclass(frozen=True)
class Sample:
    """One access unit: ``data`` length-prefixed NAL units (4-byte lengths)."""

    data: bytes
    duration: int
    keyframe: bool


@dataclass(frozen=True)
class AudioRun:
    """The audio of one fragment: AAC frames from ``base`` (in the track's timescale, the
    sample rate: UTC ms x rate / 1000), ``(data, duration)`` each."""

    base: int
    samples: Sequence[tuple[bytes, int]]


def fragment(sequence: int, base_ms: int, samples: Sequence[Sample],
             audio: AudioRun | None = None) -> bytes:
    """One ``moof`` + ``mdat`` in the fixed layout of docs/dvr.md: the video ``traf`` first
    (its offsets do not depend on audio), then the audio ``traf`` (track 2) when ``audio`` has
    samples; the ``mdat`` holds the video samples, then the audio ones."""
    n = len(samples)
    m = len(audio.samples) if audio is not None else 0
    msize = moof_size(n, m)
    entries = b"".join(struct.pack(">III", s.duration, len(s.data),
                                   KEY_FLAGS if s.keyframe else NON_KEY_FLAGS) for s in samples)
    video_bytes = sum(len(s.data) for s in samples)
    trafs = [box(b"traf",
                 full_box(b"tfhd", 0, 0x020000, struct.pack(">I", VIDEO_TRACK)),
                 full_box(b"tfdt", 1, 0, struct.pack(">Q", base_ms)),
                 full_box(b"trun", 0, 0x000701, struct.pack(">Ii", n, msize + 8), entries))]
    payload = [s.data for s in samples]
    if audio is not None and m:
        rows = b"".join(struct.pack(">II", d, len(a)) for a, d in audio.samples)
        trafs.append(box(b"traf",
                         full_box(b"tfhd", 0, 0x020000, struct.pack(">I", AUDIO_TRACK)),
                         full_box(b"tfdt", 1, 0, struct.pack(">Q", audio.base)),
                         full_box(b"trun", 0, 0x000301,
                                  struct.pack(">Ii", m, msize + 8 + video_bytes), rows)))
        payload += [a for a, _ in audio.samples]
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)
    assert len(moof) == msize
    body = b"".join(payload)
    return moof + struct.pack(">I4s", 8 + len(body), b"mdat") + body


def rewrite_fragment_header(head: bytearray | memoryview, sequence: int, base_time: int) -> None:
    """Set a stored fragment's sequence number and decode time in place (its first 68 bytes
    suffice): how a download re-times copied fragments."""
    struct.pack_into(">I", head, SEQUENCE_OFFSET, sequence)
    struct.pack_into(">Q", head, TFDT_OFFSET, base_time)


def shift_fragment(data: bytearray, sequence: int, delta_ms: int,
                   timescales: dict[int, int]) -> None:
    """Set a stored fragment's sequence number and move every ``traf``'s decode time by
    ``delta_ms`` (in each track's timescale, ``timescales[track_id]``; 1000 if unknown): the
    video track's and the audio track's times move together.

    Raises:
        ValueError: not this module's layout.
    """
    if len(data) < MOOF_BASE or data[4:8] != b"moof":
        raise ValueError("not a DVR fragment")
    struct.pack_into(">I", data, SEQUENCE_OFFSET, sequence)
    end = struct.unpack_from(">I", data, 0)[0]
    pos = 24
    while pos + 44 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:
            raise ValueError("bad box in a DVR fragment")
        if kind == b"traf" and data[pos + 28:pos + 32] == b"tfdt" and data[pos + 32] == 1:
            track = struct.unpack_from(">I", data, pos + 20)[0]
            old = struct.unpack_from(">Q", data, pos + 36)[0]
            new = old + delta_ms * timescales.get(track, TIMESCALE) // 1000
            struct.pack_into(">Q", data, pos + 36, max(0, new))
        pos += size


@dataclass(frozen=True)
class FragmentInfo:
    """What ``parse_fragment`` reads back from a stored fragment's moof."""

    sequence: int
    base_ms: int
    durations: tuple[int, ...]
    sizes: tuple[int, ...]
    keyframes: tuple[bool, ...]
    moof_size: int


def parse_fragment(moof: bytes) -> FragmentInfo:
    """Read a fragment's moof written by ``fragment`` (its sample table).

    Raises:
        ValueError: not this module's layout.
    """
    if len(moof) < MOOF_BASE or moof[4:8] != b"moof" or moof[52:56] != b"tfdt":
        raise ValueError("not a DVR fragment")
    size = struct.unpack_from(">I", moof, 0)[0]
    n = struct.unpack_from(">I", moof, 80)[0]
    audio = size - moof_size(n)
    m = (audio - AUDIO_TRAF_BASE) // AUDIO_ENTRY if audio else 0
    if size != moof_size(n, m) or len(moof) < size:
        raise ValueError("fragment moof truncated or of another layout")
    seq = struct.unpack_from(">I", moof, SEQUENCE_OFFSET)[0]
    base = struct.unpack_from(">Q", moof, TFDT_OFFSET)[0]
    rows = [struct.unpack_from(">III", moof, MOOF_BASE + SAMPLE_ENTRY * i) for i in range(n)]
    return FragmentInfo(seq, base, tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                        tuple(r[2] == KEY_FLAGS for r in rows), size)


# -- H.264 ------------------------------------------------------------------------------------
def to_length_prefixed(nals: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(n)) + n for n in nals)


def avc_config(sps: bytes, pps: bytes) -> bytes:
    """An ``AVCDecoderConfigurationRecord`` (ISO/IEC 14496-15 §5.3.3.1)."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
            + bytes([1]) + struct.pack(">H", len(pps)) + pps)


def codec_string(sps: bytes) -> str:
    """RFC 6381: ``avc1.PPCCLL``."""
    return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def bit(self) -> int:
        if self.pos >= len(self.data) * 8:
            raise ValueError("SPS truncated")
        b = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        v = self.ue()
        return (v + 1) // 2 if v & 1 else -(v // 2)


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def h264_dimensions(sps: bytes) -> tuple[int, int]:
    """Picture width and height from an H.264 SPS NAL unit (ITU-T H.264 §7.3.2.1.1).

    Raises:
        ValueError: not a decodable SPS.
    """
    if not sps or sps[0] & 0x1F != 7 or len(sps) < 4:
        raise ValueError("not an H.264 SPS")
    r = _Bits(_unescape(sps[4:]))
    profile = sps[1]
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            r.bit()
        r.ue(), r.ue(), r.bit()  # bit depths, qpprime_y_zero_transform_bypass
        if r.bit():  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if r.bit():
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se()) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num
    poc = r.ue()
    if poc == 0:
        r.ue()
    elif poc == 1:
        r.bit(), r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue(), r.bit()  # max_num_ref_frames, gaps_in_frame_num_allowed
    w_mbs, h_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()
    r.bit()  # direct_8x8_inference
    width, height = w_mbs * 16, h_units * 16 * (2 - frame_mbs_only)
    if r.bit():  # frame_cropping
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        cx = 1 if chroma in (0, 3) else 2
        cy = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= (left + right) * cx
        height -= (top + bottom) * cy
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ValueError("SPS picture size out of range")
    return width, height


# -- AAC ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioConfig:
    """The recorded audio track: AAC-LC at ``rate`` Hz (also its timescale), ``channels``,
    ``asc`` the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) the encoder made."""

    rate: int
    channels: int
    asc: bytes
    silence: bytes = field(default=b"", compare=False)
    """One AAC frame of silence in this configuration (fills holes in the track)."""

    codec = "mp4a.40.2"
    """RFC 6381: MPEG-4 audio, AAC-LC."""


def _descriptor(tag: int, body: bytes) -> bytes:
    if len(body) > 0x0FFFFFFF:
        raise ValueError("descriptor too large")
    n = len(body)  # ISO/IEC 14496-1 expandable size, 4 bytes
    size = bytes([0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F,
                  n & 0x7F])
    return bytes([tag]) + size + body


def _audio_trak(audio: AudioConfig) -> bytes:
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    tkhd = full_box(b"tkhd", 0, 7, struct.pack(">IIIII", 0, 0, AUDIO_TRACK, 0, 0), bytes(8),
                    struct.pack(">hhHH", 0, 1, 0x0100, 0), matrix, struct.pack(">II", 0, 0))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, audio.rate, 0),
                    struct.pack(">HH", 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"soun"), bytes(12),
                    b"SoundHandler\x00")
    decoder = _descriptor(0x04, bytes([0x40, 0x15]) + bytes(3)
                          + struct.pack(">II", 0, 0) + _descriptor(0x05, audio.asc))
    esds = full_box(b"esds", 0, 0, _descriptor(0x03, struct.pack(">HB", 0, 0) + decoder
                                               + _descriptor(0x06, b"\x02")))
    rate = audio.rate if audio.rate < 65536 else 0
    mp4a = box(b"mp4a", bytes(6), struct.pack(">H", 1), bytes(8),
               struct.pack(">HHHHI", audio.channels, 16, 0, 0, rate << 16), esds)
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), mp4a),
               full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
               full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
    minf = box(b"minf", full_box(b"smhd", 0, 0, bytes(4)),
               box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                     full_box(b"url ", 0, 1))), stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def audio_of(init: bytes) -> tuple[int, int] | None:
    """(sample rate, channels) of an init segment's AAC track (``mp4a``), or None."""
    at = init.find(b"mp4a")
    while at >= 4:
        size = struct.unpack_from(">I", init, at - 4)[0]
        if size >= 36 and at - 4 + size <= len(init):
            channels, _, _, _, rate = struct.unpack_from(">HHHHI", init, at + 20)
            return rate >> 16, channels
        at = init.find(b"mp4a", at + 4)
    return None


def audio_config_of(init: bytes) -> AudioConfig | None:
    """The AAC track's configuration (rate, channels, AudioSpecificConfig from its ``esds``)
    of an init segment, or None when it has none (``silence`` left empty)."""
    got = audio_of(init)
    at = init.find(b"esds")
    if got is None or at < 4:
        return None
    end = min(len(init), at - 4 + struct.unpack_from(">I", init, at - 4)[0])
    pos = at + 8  # past the type, version and flags

    def descriptor(pos: int) -> tuple[int, int, int]:
        """(tag, body start, body end) at ``pos`` (ISO/IEC 14496-1 expandable sizes)."""
        tag, pos, n = init[pos], pos + 1, 0
        for _ in range(4):
            if pos >= end:
                raise ValueError("truncated descriptor")
            b, pos = init[pos], pos + 1
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if pos + n > end:
            raise ValueError("descriptor past its box")
        return tag, pos, pos + n

    try:
        tag, body, stop = descriptor(pos)  # ES_Descriptor
        if tag != 0x03:
            return None
        flags = init[body + 2]
        pos = body + 3 + (2 if flags & 0x80 else 0)
        if flags & 0x40:
            pos += 1 + init[pos]
        if flags & 0x20:
            pos += 2
        tag, body, stop = descriptor(pos)  # DecoderConfigDescriptor
        if tag != 0x04:
            return None
        tag, body, stop = descriptor(body + 13)  # DecoderSpecificInfo
        if tag != 0x05 or stop <= body:
            return None
    except (ValueError, IndexError):
        return None
    return AudioConfig(got[0], got[1], bytes(init[body:stop]))


def init_segment(sps: bytes, pps: bytes, audio: AudioConfig | None = None) -> bytes:
    """``ftyp`` + ``moov`` for one H.264 track (track 1, timescale 1000) with these
    parameter sets, and an AAC track (track 2, timescale its sample rate) when ``audio``.

    Raises:
        ValueError: the SPS cannot be read.
    """
    width, height = h264_dimensions(sps)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0),
                    struct.pack(">IH", 0x10000, 0x100), bytes(10), matrix, bytes(24),
                    struct.pack(">I", (AUDIO_TRACK if audio else VIDEO_TRACK) + 1))
    tkhd = full_box(b"tkhd", 0, 7, struct.pack(">IIIII", 0, 0, VIDEO_TRACK, 0, 0), bytes(8),
                    struct.pack(">hhHH", 0, 0, 0, 0), matrix,
                    struct.pack(">II", width << 16, height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0),
                    struct.pack(">HH", 0x55C4, 0))  # language "und"
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide"), bytes(12),
                    b"VideoHandler\x00")
    avc1 = box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16),
               struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1), bytes(32),
               struct.pack(">Hh", 0x18, -1), box(b"avcC", avc_config(sps, pps)))
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
               full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
               full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
    minf = box(b"minf", full_box(b"vmhd", 0, 1, bytes(8)),
               box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                     full_box(b"url ", 0, 1))), stbl)
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))
    trex = [full_box(b"trex", 0, 0, struct.pack(">IIIII", VIDEO_TRACK, 1, 0, 0, 0))]
    traks = [trak]
    if audio is not None:
        traks.append(_audio_trak(audio))
        trex.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", AUDIO_TRACK, 1, 0, 0, 0)))
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso6", b"avc1", b"mp41")
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trex))


def init_digest(init: bytes) -> str:
    """The content address of an init segment (16 hex characters of its SHA-1)."""
    return hashlib.sha1(init).hexdigest()[:16]
