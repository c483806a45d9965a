"""A sans-IO MQTT 3.1.1 and 5.0 codec for the broker side: bytes in, packets out, and back.

It decodes what a client sends (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ,
DISCONNECT) and encodes what a broker answers (CONNACK, PUBLISH, PUBACK, SUBACK, UNSUBACK,
PINGRESP, DISCONNECT). Why not a library: ``mqtt5`` (PyPI) is 5.0 only, rejects a whole
SUBSCRIBE when one filter is invalid (so no per-filter SUBACK refusal), and panics (a Rust
backtrace on stderr for every packet) on invalid UTF-8; amqtt's codec is 3.1.1 only and
async. The tests check this codec against ``mqtt5`` and paho-mqtt both ways.

Bounded by construction: a packet whose remaining length exceeds ``max_packet`` is refused
from its fixed header, before its body is buffered.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

# packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# MQTT 5 reason codes used by the broker (3.1.1 equivalents are mapped when encoding)
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_ID_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_IN_USE = 0x91
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

_CONNACK_V4 = {SUCCESS: 0, UNSUPPORTED_PROTOCOL_VERSION: 1, CLIENT_ID_NOT_VALID: 2,
               SERVER_UNAVAILABLE: 3, SERVER_BUSY: 3, BAD_USER_NAME_OR_PASSWORD: 4,
               NOT_AUTHORIZED: 5}

# MQTT 5 properties: id -> (name, type); repeatable ones are listed in _REPEATABLE
_PROPS: dict[int, tuple[str, str]] = {
    0x01: ("payload_format_indicator", "byte"), 0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "str"), 0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"), 0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"), 0x12: ("assigned_client_identifier", "str"),
    0x13: ("server_keep_alive", "u16"), 0x15: ("authentication_method", "str"),
    0x16: ("authentication_data", "bin"), 0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"), 0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "str"), 0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"), 0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"), 0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"), 0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"), 0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
_PROP_IDS = {name: (pid, kind) for pid, (name, kind) in _PROPS.items()}
_REPEATABLE = {"user_property", "subscription_identifier"}


class MqttError(Exception):
    """Bytes that are not MQTT, or MQTT this broker refuses; ``reason_code`` is MQTT 5's."""

    def __init__(self, message: str, reason_code: int = MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PacketTooLarge(MqttError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"packet of {size} bytes exceeds {limit}", PACKET_TOO_LARGE)


# ------------------------------------------------------------------ packets (client -> broker)
@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class Connect:
    protocol_level: int  # 4 (3.1.1) or 5
    client_id: str
    clean_start: bool
    keep_alive: int
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class PubAck:
    packet_id: int
    reason_code: int = SUCCESS


@dataclass
class Subscription:
    """One filter of a SUBSCRIBE; ``error`` is set when the filter itself is unreadable."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    error: int | None = None


@dataclass
class Subscribe:
    packet_id: int
    subscriptions: list[Subscription]
    subscription_id: int | None = None
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]


@dataclass
class PingReq:
    pass


@dataclass
class Disconnect:
    reason_code: int = SUCCESS
    properties: dict[str, object] = field(default_factory=dict)


@dataclass
class Other:
    """A packet a client may send but this broker does not take (PUBREC, PUBREL, AUTH...)."""

    packet_type: int


Packet = Union[Connect, Publish, PubAck, Subscribe, Unsubscribe, PingReq, Disconnect, Other]


# ------------------------------------------------------------------ reading
class _Cursor:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise MqttError("packet shorter than its fields")

    def u8(self) -> int:
        self.need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        self.need(2)
        v: int = struct.unpack_from(">H", self.buf, self.pos)[0]
        self.pos += 2
        return v

    def u32(self) -> int:
        self.need(4)
        v: int = struct.unpack_from(">I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            b = self.u8()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise MqttError("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        n = self.u16()
        self.need(n)
        v = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return v

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttError("string is not UTF-8") from None
        if "\x00" in text:
            raise MqttError("string contains U+0000")
        return text

    def rest(self) -> bytes:
        v = bytes(self.buf[self.pos:self.end])
        self.pos = self.end
        return v

    def properties(self) -> dict[str, object]:
        length = self.varint()
        self.need(length)
        stop = self.pos + length
        out: dict[str, object] = {}
        while self.pos < stop:
            pid = self.varint()
            if pid not in _PROPS:
                raise MqttError(f"unknown property 0x{pid:02x}")
            name, kind = _PROPS[pid]
            value: object
            if kind == "byte":
                value = self.u8()
            elif kind == "u16":
                value = self.u16()
            elif kind == "u32":
                value = self.u32()
            elif kind == "varint":
                value = self.varint()
            elif kind == "str":
                value = self.string()
            elif kind == "bin":
                value = self.binary()
            else:
                value = (self.string(), self.string())
            if name in _REPEATABLE:
                out.setdefault(name, []).append(value)  # type: ignore[union-attr]
            elif name in out:
                raise MqttError(f"property {name} given twice", PROTOCOL_ERROR)
            else:
                out[name] = value
        if self.pos != stop:
            raise MqttError("properties overrun their length")
        return out


def _decode_connect(c: _Cursor) -> Connect:
    name = c.string()
    level = c.u8()
    if name != "MQTT" or level not in (4, 5):
        raise MqttError(f"protocol {name!r} level {level} is not MQTT 3.1.1 or 5",
                        UNSUPPORTED_PROTOCOL_VERSION)
    flags = c.u8()
    if flags & 0x01:
        raise MqttError("reserved CONNECT flag set")
    keep_alive = c.u16()
    props = c.properties() if level == 5 else {}
    client_id = c.string()
    will = None
    if flags & 0x04:
        will_props = c.properties() if level == 5 else {}
        topic = c.string()
        will = Will(topic, c.binary(), (flags >> 3) & 3, bool(flags & 0x20), will_props)
        if will.qos > 2:
            raise MqttError("will QoS 3")
    elif flags & 0x38:
        raise MqttError("will flags without a will")
    username = c.string() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    return Connect(level, client_id, bool(flags & 0x02), keep_alive, username, password, will,
                   props)


def _decode_publish(c: _Cursor, flags: int, level: int) -> Publish:
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MqttError("PUBLISH with QoS 3")
    topic = c.string()
    packet_id = c.u16() if qos else None
    if packet_id == 0:
        raise MqttError("packet id 0")
    props = c.properties() if level == 5 else {}
    return Publish(topic, c.rest(), qos, bool(flags & 1), bool(flags & 8), packet_id, props)


def _decode_subscribe(c: _Cursor, level: int) -> Subscribe:
    packet_id = c.u16()
    props = c.properties() if level == 5 else {}
    ids = props.get("subscription_identifier")
    sub_id = None
    if ids:
        if len(ids) > 1 or not 1 <= ids[0] <= 268_435_455:  # type: ignore[arg-type,index]
            raise MqttError("bad subscription identifier", PROTOCOL_ERROR)
        sub_id = ids[0]  # type: ignore[index]
    subs: list[Subscription] = []
    while c.pos < c.end:
        raw = c.binary()
        options = c.u8()
        sub = Subscription("", options & 3, bool(options & 4), bool(options & 8),
                           (options >> 4) & 3)
        try:
            sub.topic_filter = raw.decode("utf-8")
            if "\x00" in sub.topic_filter:
                raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL")
        except UnicodeDecodeError:
            sub.error = TOPIC_FILTER_INVALID  # answered in the SUBACK, the session goes on
        if options & 0xC0 or sub.qos == 3 or sub.retain_handling == 3 or (
                level == 4 and options & 0xFC):
            raise MqttError("reserved subscription option bits", PROTOCOL_ERROR)
        subs.append(sub)
    if not subs:
        raise MqttError("SUBSCRIBE without a filter", PROTOCOL_ERROR)
    return Subscribe(packet_id, subs, sub_id, props)  # type: ignore[arg-type]


def _decode_unsubscribe(c: _Cursor, level: int) -> Unsubscribe:
    packet_id = c.u16()
    if level == 5:
        c.properties()
    filters: list[str] = []
    while c.pos < c.end:
        filters.append(c.string())
    if not filters:
        raise MqttError("UNSUBSCRIBE without a filter", PROTOCOL_ERROR)
    return Unsubscribe(packet_id, filters)


_FIXED_FLAGS = {PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2, UNSUBSCRIBE: 2,
                PINGREQ: 0, DISCONNECT: 0, AUTH: 0, CONNECT: 0}


def decode(packet_type: int, flags: int, body: memoryview, level: int) -> Packet:
    """One whole packet's body (after the fixed header) as a packet object."""
    if packet_type != PUBLISH and _FIXED_FLAGS.get(packet_type, flags) != flags:
        raise MqttError(f"bad fixed-header flags for packet type {packet_type}")
    c = _Cursor(body)
    p: Packet
    if packet_type == PUBLISH:
        return _decode_publish(c, flags, level)
    if packet_type == SUBSCRIBE:
        return _decode_subscribe(c, level)
    if packet_type == UNSUBSCRIBE:
        return _decode_unsubscribe(c, level)
    if packet_type == PUBACK:
        p = PubAck(c.u16(), c.u8() if c.pos < c.end else SUCCESS)
        if c.pos < c.end and level == 5:
            c.properties()
    elif packet_type == PINGREQ:
        p = PingReq()
    elif packet_type == DISCONNECT:
        code = c.u8() if c.pos < c.end else SUCCESS
        p = Disconnect(code, c.properties() if c.pos < c.end else {})
    elif packet_type == CONNECT:
        p = _decode_connect(c)
    elif packet_type in (PUBREC, PUBREL, PUBCOMP, AUTH):
        return Other(packet_type)
    else:
        raise MqttError(f"packet type {packet_type} may not come from a client", PROTOCOL_ERROR)
    if c.pos != c.end:
        raise MqttError("trailing bytes after the packet")
    return p


class Reader:
    """Frames a byte stream into packets: ``receive_data(bytes)``, then ``next_packet()`` until
    it returns None. The first packet must be CONNECT; it fixes the protocol level."""

    def __init__(self, max_packet: int = 65536, max_buffer: int | None = None) -> None:
        self.max_packet = max_packet
        self.max_buffer = max_buffer
        self.level = 0  # 0 until CONNECT was read
        self._buf = bytearray()
        self._pos = 0  # packets before this offset were read (compacted on receive_data)

    def receive_data(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data
        limit = self.max_buffer or (self.max_packet + 5) * 4
        if len(self._buf) > limit:
            raise MqttError(f"more than {limit} bytes unread", QUOTA_EXCEEDED)

    def next_packet(self) -> Packet | None:
        buf, start = self._buf, self._pos
        if len(buf) - start < 2:
            return None
        length, shift, i = 0, 0, start + 1
        while True:
            if i >= len(buf):
                return None
            b = buf[i]
            length |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                break
            shift += 7
            if i - start > 4:
                raise MqttError("remaining length longer than 4 bytes")
        if length + i - start > self.max_packet:
            raise PacketTooLarge(length + i - start, self.max_packet)
        if len(buf) < i + length:
            return None
        packet_type, flags = buf[start] >> 4, buf[start] & 0x0F
        if self.level == 0 and packet_type != CONNECT:
            raise MqttError("the first packet must be CONNECT", PROTOCOL_ERROR)
        if self.level and packet_type == CONNECT:
            raise MqttError("a second CONNECT", PROTOCOL_ERROR)
        body = memoryview(bytes(buf[i:i + length]))
        self._pos = i + length
        packet = decode(packet_type, flags, body, self.level or 5)
        if isinstance(packet, Connect):
            self.level = packet.protocol_level
        return packet


# ------------------------------------------------------------------ writing
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def _props(props: dict[str, object]) -> bytes:
    out = bytearray()
    for name, value in props.items():
        if value is None:
            continue
        pid, kind = _PROP_IDS[name]
        values = value if name in _REPEATABLE else [value]
        for v in values:  # type: ignore[union-attr]
            out += _varint(pid)
            if kind == "byte":
                out.append(int(v))
            elif kind == "u16":
                out += struct.pack(">H", v)
            elif kind == "u32":
                out += struct.pack(">I", v)
            elif kind == "varint":
                out += _varint(v)
            elif kind == "str":
                out += _str(v)
            elif kind == "bin":
                out += struct.pack(">H", len(v)) + v
            else:
                out += _str(v[0]) + _str(v[1])
    return _varint(len(out)) + bytes(out)


def _packet(packet_type: int, flags: int, body: bytes) -> bytes:
    return bytes([packet_type << 4 | flags]) + _varint(len(body)) + body


def connack(level: int, reason_code: int, session_present: bool = False,
            properties: dict[str, object] | None = None) -> bytes:
    if level == 5:
        return _packet(CONNACK, 0, bytes([int(session_present), reason_code])
                       + _props(properties or {}))
    code = _CONNACK_V4.get(reason_code, 5 if reason_code >= 0x80 else 0)
    return _packet(CONNACK, 0, bytes([int(session_present and code == 0), code]))


def publish(level: int, topic: bytes, payload: bytes, qos: int = 0, retain: bool = False,
            packet_id: int | None = None, subscription_ids: list[int] | tuple[int, ...] = (),
            dup: bool = False) -> bytes:
    """``topic`` is already UTF-8 (the broker encodes each topic once for all subscribers)."""
    head = struct.pack(">H", len(topic)) + topic
    if qos:
        head += struct.pack(">H", packet_id)
    if level == 5:
        if subscription_ids:
            props = b"".join(b"\x0b" + _varint(i) for i in subscription_ids)
            head += _varint(len(props)) + props
        else:
            head += b"\x00"
    return _packet(PUBLISH, (8 if dup else 0) | qos << 1 | int(retain), head + payload)


def puback(level: int, packet_id: int, reason_code: int = SUCCESS,
           reason_string: str | None = None) -> bytes:
    body = struct.pack(">H", packet_id)
    if level == 5 and (reason_code or reason_string):
        body += bytes([reason_code])
        if reason_string:
            body += _props({"reason_string": reason_string})
    return _packet(PUBACK, 0, body)


def suback(level: int, packet_id: int, codes: list[int],
           reason_string: str | None = None) -> bytes:
    if level == 5:
        body = struct.pack(">H", packet_id) + _props({"reason_string": reason_string})
        return _packet(SUBACK, 0, body + bytes(codes))
    v4 = bytes(c if c <= 2 else 0x80 for c in codes)
    return _packet(SUBACK, 0, struct.pack(">H", packet_id) + v4)


def unsuback(level: int, packet_id: int, codes: list[int]) -> bytes:
    if level == 5:
        return _packet(UNSUBACK, 0, struct.pack(">H", packet_id) + b"\x00" + bytes(codes))
    return _packet(UNSUBACK, 0, struct.pack(">H", packet_id))


def pingresp() -> bytes:
    return b"\xd0\x00"


def disconnect(level: int, reason_code: int, reason_string: str | None = None) -> bytes:
    """MQTT 5 only: a 3.1.1 server closes the connection without a packet (empty bytes)."""
    if level != 5:
        return b""
    return _packet(DISCONNECT, 0, bytes([reason_code])
                   + _props({"reason_string": reason_string}))
