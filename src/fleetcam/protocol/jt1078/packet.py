"""JT/T 1078 media packet (the RTP-like ``30 31 63 64`` packet): parse and encode, sans-IO."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from struct import Struct

from fleetcam.protocol.errors import ProtocolError

MAGIC = b"01cd"
"""Frame header ``30 31 63 64`` (JT/T 1078-2016 table 19)."""

MAX_PAYLOAD = 950
"""Largest body one packet may carry (JT/T 1078-2016 §5.5.3: data body ≤ 950 bytes)."""

LABEL1 = 0x81
"""V=2, P=0, X=0, CC=1: the only first label byte seen in real captures."""


class DataType(IntEnum):
    """High nibble of byte 15 (JT/T 1078-2016 table 19)."""

    I_FRAME = 0
    P_FRAME = 1
    B_FRAME = 2
    AUDIO = 3
    TRANSPARENT = 4


class Subpackage(IntEnum):
    """Low nibble of byte 15. Note LAST = 2 and MIDDLE = 3, not the other way round."""

    ATOMIC = 0
    FIRST = 1
    LAST = 2
    MIDDLE = 3


class PayloadType(IntEnum):
    """The 7-bit PT field: JT/T 1078-2016 table 12 (audio and video codecs)."""

    G721 = 1
    G722 = 2
    G723 = 3
    G728 = 4
    G729 = 5
    G711A = 6
    G711U = 7
    G726 = 8
    G729A = 9
    DVI4_3 = 10
    DVI4_4 = 11
    DVI4_8K = 12
    DVI4_16K = 13
    LPC = 14
    S16BE_STEREO = 15
    S16BE_MONO = 16
    MPEGAUDIO = 17
    LPCM = 18
    AAC = 19
    WMA9STD = 20
    HEAAC = 21
    PCM_VOICE = 22
    PCM_AUDIO = 23
    AACLC = 24
    MP3 = 25
    ADPCMA = 26
    MP4AUDIO = 27
    AMR = 28
    TRANSPARENT = 91
    H264 = 98
    H265 = 99
    AVS = 100
    SVAC = 101


VIDEO_TYPES = frozenset((DataType.I_FRAME, DataType.P_FRAME, DataType.B_FRAME))


@dataclass(slots=True)  # not frozen: a frozen __init__ cost 29% of parsing (bench/)
class Packet:
    """One media packet.

    Attributes:
        payload_type: PT, usually a ``PayloadType`` (kept as int: unknown codes still parse).
        marker: the M bit; real devices set it on ATOMIC and LAST packets only.
        sequence: packet serial number, +1 per packet, wraps at 65536.
        sim: the SIM as BCD digits, 12 (6-byte form) or 20 (10-byte form), leading zeros kept.
        channel: logical channel number.
        data_type: I/P/B video, audio or transparent data.
        subpackage: ATOMIC, FIRST, MIDDLE or LAST.
        timestamp: ms (often Unix epoch ms, sometimes a relative clock); None for transparent.
        last_i_interval: ms since the last I-frame; video only, else None.
        last_frame_interval: ms since the previous frame; video only, else None.
        payload: the body (at most ``MAX_PAYLOAD`` bytes).
    """

    payload_type: int
    marker: bool
    sequence: int
    sim: str
    channel: int
    data_type: DataType
    subpackage: Subpackage
    timestamp: int | None
    last_i_interval: int | None
    last_frame_interval: int | None
    payload: bytes


CODEC_NAMES = {PayloadType.H264: "h264", PayloadType.H265: "hevc"}
"""Video payload types as FFmpeg/PyAV name their codecs."""

_HEAD = Struct(">IBBH")  # magic, label1, label2 (M|PT), sequence
_VIDEO = Struct(">QHHH")  # timestamp, last I interval, last frame interval, body length
_AUDIO = Struct(">QH")  # timestamp, body length
_TRANSPARENT = Struct(">H")  # body length
_MAGIC_INT = 0x30316364
_DATA_TYPES = tuple(DataType)
_SUBPACKAGES = tuple(Subpackage)


_SIMS: dict[bytes, str] = {}


def _sim_text(raw: bytes) -> str:
    """The SIM's digits; memoised because every packet of a stream repeats them."""
    text = _SIMS.get(raw)
    if text is None:
        if len(_SIMS) > 100_000:  # bounded whatever the peers send
            _SIMS.clear()
        text = _SIMS[raw] = raw.hex()
    return text


def sim_key(sim: str) -> str:
    """The SIM without leading zeros, to match 6- and 10-byte forms and the JT/T 808 phone."""
    return sim.lstrip("0") or "0"


def parse_packet(
    buf: bytes | bytearray | memoryview, offset: int = 0, *, max_payload: int = MAX_PAYLOAD
) -> tuple[Packet, int] | None:
    """Parse the packet that starts at ``buf[offset]``.

    Args:
        buf: received bytes.
        offset: where the packet's ``30 31 63 64`` header starts.
        max_payload: largest accepted body length.

    Returns:
        ``(packet, end)`` where ``end`` is the offset just past the packet, or None when
        ``buf`` does not hold the whole packet yet.

    Raises:
        ProtocolError: the bytes at ``offset`` cannot be the start of a packet.
    """
    n = len(buf)
    if n - offset < 10:
        if bytes(buf[offset : offset + 4]) != MAGIC[: n - offset]:
            raise ProtocolError("JT/T 1078 packet does not start with 30316364")
        return None
    magic, label1, label2, sequence = _HEAD.unpack_from(buf, offset)
    if magic != _MAGIC_INT:
        raise ProtocolError("JT/T 1078 packet does not start with 30316364")
    # Traccar's heuristic: a 2019-edition BCD[10] SIM starts 00 00 where BCD[6] would not.
    p = offset + 8
    sim_end = p + (10 if buf[p] == 0 and buf[p + 1] == 0 else 6)
    if n < sim_end + 2:
        return None
    label3 = buf[sim_end + 1]
    dt, sub = label3 >> 4, label3 & 0x0F
    if dt > 4 or sub > 3:
        raise ProtocolError(f"JT/T 1078 data type/subpackage byte {label3:#04x} is invalid")
    p = sim_end + 2
    # JT/T 1078-2016 table 19: no timestamp for transparent data, intervals only for video.
    if dt <= 2:
        if n < p + 14:
            return None
        ts, i_int, f_int, length = _VIDEO.unpack_from(buf, p)
        p += 14
    elif dt == 3:
        if n < p + 10:
            return None
        ts, length = _AUDIO.unpack_from(buf, p)
        i_int = f_int = None
        p += 10
    else:
        if n < p + 2:
            return None
        (length,) = _TRANSPARENT.unpack_from(buf, p)
        ts = i_int = f_int = None
        p += 2
    if length > max_payload:
        raise ProtocolError(f"JT/T 1078 body length {length} exceeds {max_payload}")
    end = p + length
    if n < end:
        return None
    packet = Packet(
        label2 & 0x7F,
        label2 > 0x7F,
        sequence,
        _sim_text(bytes(buf[offset + 8 : sim_end])),
        buf[sim_end],
        _DATA_TYPES[dt],
        _SUBPACKAGES[sub],
        ts,
        i_int,
        f_int,
        bytes(buf[p:end]),
    )
    return packet, end


def _sim_bytes(sim: str) -> bytes:
    digits = len(sim)
    if not sim.isdigit() or digits > 20:
        raise ValueError(f"SIM {sim!r} is not up to 20 BCD digits")
    padded = sim.zfill(12)
    if digits <= 12 and not padded.startswith("0000"):
        return bytes.fromhex(padded)
    # The 10-byte form is only recognisable when it starts 00 00 (see parse_packet), and a
    # 6-byte SIM starting 00 00 would be misread as the 10-byte form: both go out as BCD[10].
    padded = sim.zfill(20)
    if not padded.startswith("0000"):
        raise ValueError(f"SIM {sim!r}: a 20-digit SIM must start with 0000 to be decodable")
    return bytes.fromhex(padded)


def encode_packet(p: Packet) -> bytes:
    """Serialise a packet (label1 is always 0x81).

    A SIM of up to 12 digits goes out as BCD[6] unless it starts with ``0000``; then, like a
    longer SIM, as BCD[10], which decodes to 20 digits (compare SIMs with ``sim_key``).

    Raises:
        ValueError: the packet cannot be represented (long payload, missing timestamp, ...).
    """
    length = len(p.payload)
    if length > 0xFFFF:
        raise ValueError(f"payload of {length} bytes does not fit a JT/T 1078 packet")
    if not 0 <= p.payload_type <= 0x7F or not 0 <= p.channel <= 0xFF:
        raise ValueError("payload_type must fit 7 bits and channel 8 bits")
    dt = p.data_type
    head = _HEAD.pack(
        _MAGIC_INT, LABEL1, (0x80 if p.marker else 0) | p.payload_type, p.sequence & 0xFFFF
    )
    parts = [head, _sim_bytes(p.sim), bytes((p.channel, (dt << 4) | p.subpackage))]
    if dt == DataType.TRANSPARENT:
        parts.append(_TRANSPARENT.pack(length))
    elif p.timestamp is None:
        raise ValueError("video and audio packets need a timestamp")
    elif dt == DataType.AUDIO:
        parts.append(_AUDIO.pack(p.timestamp, length))
    else:
        parts.append(
            _VIDEO.pack(p.timestamp, p.last_i_interval or 0, p.last_frame_interval or 0, length)
        )
    parts.append(p.payload)
    return b"".join(parts)
