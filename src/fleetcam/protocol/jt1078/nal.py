"""H.264/H.265 Annex-B NAL units in JT/T 1078 frames, and splitting frames into packets."""
from __future__ import annotations

from collections.abc import Iterator

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078.packet import (
    MAX_PAYLOAD,
    VIDEO_TYPES,
    DataType,
    Packet,
    PayloadType,
    Subpackage,
)

START_CODE = b"\x00\x00\x01"
# ITU-T H.264 table 7-1: 5 = IDR slice, 7 = SPS. H.265 table 7-1: 16..21 = IRAP, 32 = VPS.
H264_KEY_TYPES = frozenset((5, 7))
H265_KEY_TYPES = frozenset((16, 17, 18, 19, 20, 21, 32))
_CODEC_NAMES = {"h264": PayloadType.H264, "h265": PayloadType.H265, "hevc": PayloadType.H265}


def _codec(codec: int | str) -> int:
    if isinstance(codec, str):
        try:
            return _CODEC_NAMES[codec.lower()]
        except KeyError:
            raise ValueError(f"unknown video codec {codec!r}") from None
    if codec not in (PayloadType.H264, PayloadType.H265):
        raise ValueError(f"payload type {codec} is not H.264 (98) or H.265 (99)")
    return codec


def _nal_starts(data: bytes) -> Iterator[int]:
    """Offsets of the first byte of each NAL unit (just past each start code)."""
    i = data.find(START_CODE)
    while i >= 0:
        i += 3
        yield i
        i = data.find(START_CODE, i)


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units, without start codes.

    Bytes before the first start code are ignored, and trailing zero bytes (the leading
    zero of a 4-byte start code, trailing_zero_8bits) are stripped from each unit.
    """
    starts = list(_nal_starts(data))
    nals = []
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[start:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def nal_type(codec: int | str, nal: bytes) -> int:
    """The NAL unit type from its header.

    Args:
        codec: ``PayloadType.H264``/``H265`` (98/99), or ``"h264"``/``"hevc"``.
        nal: one NAL unit without its start code.

    Raises:
        ProtocolError: ``nal`` is empty.
        ValueError: ``codec`` is not H.264 or H.265.
    """
    if not nal:
        raise ProtocolError("empty NAL unit")
    if _codec(codec) == PayloadType.H264:
        return nal[0] & 0x1F  # forbidden_zero_bit(1) nal_ref_idc(2) nal_unit_type(5)
    return (nal[0] >> 1) & 0x3F  # forbidden_zero_bit(1) nal_unit_type(6) layer id...


def is_keyframe(codec: int | str, data: bytes) -> bool:
    """True when an Annex-B frame holds an IDR/IRAP picture or a parameter set (SPS/VPS)."""
    if _codec(codec) == PayloadType.H264:
        types, shift, mask = H264_KEY_TYPES, 0, 0x1F
    else:
        types, shift, mask = H265_KEY_TYPES, 1, 0x3F
    size = len(data)
    return any(i < size and (data[i] >> shift) & mask in types for i in _nal_starts(data))


def packetize(
    data: bytes,
    *,
    sim: str,
    channel: int,
    data_type: DataType,
    payload_type: int,
    timestamp: int | None,
    sequence_start: int,
    last_i_interval: int | None = None,
    last_frame_interval: int | None = None,
    max_payload: int = MAX_PAYLOAD,
) -> list[Packet]:
    """Split one frame into packets, as a device does (the simulator's sending side).

    A frame that fits goes out ATOMIC; a larger one as FIRST, MIDDLE..., LAST with
    consecutive (wrapping) sequence numbers and the same timestamp on every piece. The M
    bit is set on ATOMIC and LAST packets, as in real captures.

    Args:
        data: the frame (Annex-B for video).
        sim: SIM digits; channel: logical channel; data_type: I/P/B, audio or transparent.
        payload_type: PT code (``PayloadType.H264`` ...).
        timestamp: ms; ignored for transparent data.
        sequence_start: sequence number of the first packet.
        last_i_interval: video only, ms since the last I-frame (0 if None).
        last_frame_interval: video only, ms since the previous frame (0 if None).
        max_payload: body bytes per packet (the standard's limit is 950).

    Returns:
        The packets in sending order; the next free sequence is
        ``(sequence_start + len(result)) & 0xFFFF``.
    """
    if not 0 < max_payload <= MAX_PAYLOAD:
        raise ValueError(f"max_payload must be 1..{MAX_PAYLOAD}")
    video = data_type in VIDEO_TYPES
    i_int = (last_i_interval or 0) if video else None
    f_int = (last_frame_interval or 0) if video else None
    ts = None if data_type == DataType.TRANSPARENT else timestamp
    pieces = [data[i : i + max_payload] for i in range(0, len(data), max_payload)] or [b""]
    last = len(pieces) - 1
    packets = []
    for n, piece in enumerate(pieces):
        if last == 0:
            sub = Subpackage.ATOMIC
        elif n == 0:
            sub = Subpackage.FIRST
        else:
            sub = Subpackage.LAST if n == last else Subpackage.MIDDLE
        packets.append(
            Packet(
                payload_type,
                n == last,
                (sequence_start + n) & 0xFFFF,
                sim,
                channel,
                data_type,
                sub,
                ts,
                i_int,
                f_int,
                piece,
            )
        )
    return packets
