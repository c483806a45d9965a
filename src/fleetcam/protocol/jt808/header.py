"""JT/T 808 message header (2011/2013 and 2019 layouts) with version detection."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from fleetcam.protocol.bcd import bcd_to_digits, digits_to_bcd
from fleetcam.protocol.errors import ProtocolError

MAX_BODY = 0x3FF  # bits 0-9 of the body properties
_SUBPACKAGED = 1 << 13
_VERSION_2019 = 1 << 14
_HEAD_2013 = struct.Struct(">HH6sH")
_HEAD_2019 = struct.Struct(">HHB10sH")
_PACKETS = struct.Struct(">HH")


@dataclass(frozen=True)
class Header:
    """A decoded message header.

    Attributes:
        msg_id: message id (see ``MsgId``; unknown ids are kept as plain ints).
        phone: terminal phone number as sent, leading zeros kept (12 digits 2013, 20 for 2019).
        serial: the sender's message serial number.
        version2019: True when the 2019 layout (version byte, BCD[10] phone) was used.
        protocol_version: the 2019 protocol version byte (1 for 2013 frames).
        encryption: bits 10-12 of the body properties (0 = none, 1 = RSA).
        packet_total: total sub-packets when subpackaged, else None.
        packet_index: this sub-packet's number (from 1) when subpackaged, else None.
    """

    msg_id: int
    phone: str
    serial: int
    version2019: bool
    protocol_version: int = 1
    encryption: int = 0
    packet_total: int | None = None
    packet_index: int | None = None


def _layout_size(version2019: bool, subpackaged: bool) -> int:
    return (17 if version2019 else 12) + (4 if subpackaged else 0)


def parse_header(payload: bytes) -> tuple[Header, bytes]:
    """Split unescaped header+body (check code already removed) into a header and the body.

    Version detection (PROTOCOLS.md §1.2): trust bit 14 first; if the declared body length does
    not add up under that layout, try the other one (SmallChi keeps real frames with bit 14 set
    and a 2013 layout).  If neither adds up the frame is rejected as truncated.

    Raises:
        ProtocolError: the payload is shorter than a header or the lengths do not add up.
    """
    if len(payload) < 12:
        raise ProtocolError(f"frame of {len(payload)} bytes is shorter than a header")
    props = (payload[2] << 8) | payload[3]
    declared = props & MAX_BODY
    subpackaged = bool(props & _SUBPACKAGED)
    flagged = bool(props & _VERSION_2019)
    for version2019 in (flagged, not flagged):
        size = _layout_size(version2019, subpackaged)
        if len(payload) == size + declared:
            return _decode(payload, props, version2019, subpackaged), payload[size:]
    raise ProtocolError(f"body length {declared} does not match a frame of {len(payload)} bytes",
                        reply_result=2)


def _decode(payload: bytes, props: int, version2019: bool, subpackaged: bool) -> Header:
    if version2019:
        msg_id, _, version, phone, serial = _HEAD_2019.unpack_from(payload)
        offset = 17
    else:
        msg_id, _, phone, serial = _HEAD_2013.unpack_from(payload)
        version, offset = 1, 12
    total = index = None
    if subpackaged:
        total, index = _PACKETS.unpack_from(payload, offset)
    return Header(msg_id=msg_id, phone=bcd_to_digits(phone), serial=serial,
                  version2019=version2019, protocol_version=version,
                  encryption=(props >> 10) & 0x7, packet_total=total, packet_index=index)


def encode_header(header: Header, body_length: int) -> bytes:
    """The header bytes for a body of ``body_length`` (at most 1023) bytes.

    Raises:
        ProtocolError: the body is too long for one packet, or a field does not fit.
    """
    if not 0 <= body_length <= MAX_BODY:
        raise ProtocolError(f"body of {body_length} bytes needs subpackaging")
    subpackaged = header.packet_total is not None
    props = body_length | ((header.encryption & 0x7) << 10)
    props |= (_SUBPACKAGED if subpackaged else 0) | (_VERSION_2019 if header.version2019 else 0)
    try:
        if header.version2019:
            phone = digits_to_bcd(header.phone, 10)
            head = _HEAD_2019.pack(header.msg_id, props, header.protocol_version, phone,
                                   header.serial)
        else:
            head = _HEAD_2013.pack(header.msg_id, props, digits_to_bcd(header.phone, 6),
                                   header.serial)
        if subpackaged:
            head += _PACKETS.pack(header.packet_total, header.packet_index or 0)
    except struct.error as exc:
        raise ProtocolError(f"header field out of range: {exc}") from exc
    return head
