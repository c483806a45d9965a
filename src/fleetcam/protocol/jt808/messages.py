"""JT/T 808 and JT/T 1078 signalling bodies as frozen dataclasses, keyed by ``MsgId``.

Field layouts follow PROTOCOLS.md §1.3-1.6 and §2.1.  Times are unix seconds (UTC); the wire
carries BCD[6] in GMT+8, and 0 stands for an all-zero field ("no limit").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fleetcam.protocol.bcd import Reader, Writer
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import extras
from fleetcam.protocol.jt808.av import (
    AV_MESSAGES,
    AvAttributes,
    FileUpload,
    FileUploadControl,
    FileUploadDone,
    PlaybackControl,
    PlaybackRequest,
    RealtimeControl,
    RealtimeRequest,
    ResourceItem,
    ResourceList,
    ResourceListQuery,
)
from fleetcam.protocol.jt808.ids import MsgId, Result


class Body(Protocol):
    """What every message dataclass provides."""

    def encode(self, w: Writer, v2019: bool) -> None: ...


B = TypeVar("B")
DECODERS: dict[int, Any] = {}
ENCODE_IDS: dict[type, int] = {}


def _message(*ids: int) -> Any:
    """Register a dataclass as the decoder of ``ids``; the first id is the one it encodes as."""
    def register(cls: type[B]) -> type[B]:
        for msg_id in ids:
            DECODERS[msg_id] = cls
        ENCODE_IDS[cls] = ids[0]
        return cls
    return register


@dataclass(frozen=True)
class _Empty:
    """A message with an empty body."""

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> Any:
        return cls()

    def encode(self, w: Writer, v2019: bool) -> None:
        return None


@_message(MsgId.PLATFORM_RESPONSE, MsgId.TERMINAL_RESPONSE)
@dataclass(frozen=True)
class GeneralResponse:
    """0x8001 / 0x0001: answer to ``reply_serial``/``reply_id`` (the header's id says which)."""

    reply_serial: int
    reply_id: int
    result: int = Result.SUCCESS

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> GeneralResponse:
        return cls(r.u16(), r.u16(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u16(self.reply_id).u8(self.result)


@_message(MsgId.HEARTBEAT)
@dataclass(frozen=True)
class Heartbeat(_Empty):
    """0x0002: keep-alive, empty body."""


@_message(MsgId.UNREGISTER)
@dataclass(frozen=True)
class Unregister(_Empty):
    """0x0003: terminal logout, empty body."""


@_message(MsgId.QUERY_PARAMETERS)
@dataclass(frozen=True)
class QueryParameters(_Empty):
    """0x8104: ask for every terminal parameter (answered by 0x0104)."""


@_message(MsgId.LOCATION_QUERY)
@dataclass(frozen=True)
class LocationQuery(_Empty):
    """0x8201: ask for the current position (answered by 0x0201)."""


@_message(MsgId.AV_ATTRIBUTES_QUERY)
@dataclass(frozen=True)
class AvAttributesQuery(_Empty):
    """0x9003: ask for the audio/video attributes (answered by 0x1003)."""


# (manufacturer, model, terminal id) widths per edition, PROTOCOLS.md §1.4.  The fixed parts are
# 25 (2011), 37 (2013) and 76 (2019) bytes before the plate; PROTOCOLS.md's 33/45 include an
# 8-byte plate such as 粤B88888.
_REGISTER_2013_MIN = 37
_REGISTER_2011 = (5, 8, 7)
_REGISTER_2013 = (5, 20, 7)
_REGISTER_2019 = (11, 30, 30)


@_message(MsgId.REGISTER)
@dataclass(frozen=True)
class Register:
    """0x0100: terminal registration; the 2011 layout is decoded, never encoded.

    Without bit 14 a body shorter than the 2013 fixed part (37 bytes) is taken as 2011, so a
    2011 body with a plate of 12 bytes or more would be misread (plates are 7-9 bytes).
    """

    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> Register:
        if v2019:
            widths = _REGISTER_2019
        else:
            widths = _REGISTER_2013 if r.remaining >= _REGISTER_2013_MIN else _REGISTER_2011
        province, city = r.u16(), r.u16()
        manufacturer, model, terminal = (r.text(n) for n in widths)
        return cls(province, city, manufacturer, model, terminal, r.u8(), r.text(r.remaining))

    def encode(self, w: Writer, v2019: bool) -> None:
        widths = _REGISTER_2019 if v2019 else _REGISTER_2013
        w.u16(self.province).u16(self.city)
        values = (self.manufacturer, self.model, self.terminal_id)
        for value, width in zip(values, widths, strict=True):
            w.text(value, width)
        w.u8(self.plate_color).text(self.plate)


@_message(MsgId.REGISTER_RESPONSE)
@dataclass(frozen=True)
class RegisterResponse:
    """0x8100: result 0 OK, 1 vehicle registered, 2 no vehicle, 3 terminal registered, 4 none."""

    reply_serial: int
    result: int
    auth_code: str = ""

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> RegisterResponse:
        serial, result = r.u16(), r.u8()
        return cls(serial, result, r.text(r.remaining) if result == 0 else "")

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u8(self.result)
        if self.result == 0:
            w.text(self.auth_code)


@_message(MsgId.AUTHENTICATE)
@dataclass(frozen=True)
class Authenticate:
    """0x0102: 2013 body is the bare code; 2019 adds a length byte, IMEI[15] and version[20]."""

    auth_code: str
    imei: str = ""
    software_version: str = ""

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> Authenticate:
        if v2019 and r.remaining and r.remaining == 1 + r.data[r.pos] + 35:
            return cls(r.text8(), r.text(15), r.text(20))
        return cls(r.text(r.remaining))  # 2013, or a 2019 header over a 2013 body

    def encode(self, w: Writer, v2019: bool) -> None:
        if v2019:
            w.text8(self.auth_code).text(self.imei, 15).text(self.software_version, 20)
        else:
            w.text(self.auth_code)


_SOUTH, _WEST = 1 << 2, 1 << 3


@dataclass(frozen=True)
class Location:
    """The 0x0200 body: basic block (28 bytes) plus additional-information items.

    Attributes:
        alarm: alarm flags DWORD (PROTOCOLS.md §1.5 table).
        status: status flags DWORD; bits 2/3 give the hemispheres, mirrored in the signs below.
        latitude: signed degrees (negative = south).
        longitude: signed degrees (negative = west).
        altitude: metres.
        speed: km/h.
        direction: degrees clockwise from north.
        time: unix seconds, UTC (the wire carries GMT+8).
        extras: raw additional items, id -> value bytes, in wire order.
    """

    alarm: int
    status: int
    latitude: float
    longitude: float
    altitude: int
    speed: float
    direction: int
    time: int
    extras: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> Location:
        basic = cls.read_basic(r)
        return cls(*basic, extras=extras.parse_items(r.rest()))

    @staticmethod
    def read_basic(r: Reader) -> tuple[int, int, float, float, int, float, int, int]:
        """The 28-byte basic block as constructor arguments (hemispheres applied)."""
        alarm, status, lat, lon = r.u32(), r.u32(), r.u32(), r.u32()
        altitude, speed, direction = r.u16(), r.u16(), r.u16()
        latitude = -lat / 1e6 if status & _SOUTH else lat / 1e6
        longitude = -lon / 1e6 if status & _WEST else lon / 1e6
        return alarm, status, latitude, longitude, altitude, speed / 10, direction, r.time()

    def write_basic(self, w: Writer) -> None:
        status = self.status & ~(_SOUTH | _WEST)
        status |= _SOUTH if math.copysign(1, self.latitude) < 0 else 0
        status |= _WEST if math.copysign(1, self.longitude) < 0 else 0
        w.u32(self.alarm).u32(status)
        w.u32(round(abs(self.latitude) * 1e6)).u32(round(abs(self.longitude) * 1e6))
        w.u16(self.altitude).u16(round(self.speed * 10)).u16(self.direction).time(self.time)

    def encode(self, w: Writer, v2019: bool) -> None:
        self.write_basic(w)
        for item, value in self.extras.items():
            w.u8(item).u8(len(value)).raw(value)

    @property
    def attributes(self) -> dict[str, Any]:
        """The additional items decoded to flat flespi-style fields (``vehicle.mileage``...)."""
        return extras.decode_items(self.extras)

    def flat(self) -> dict[str, Any]:
        """Position, flags and decoded items as one flat flespi-style dict."""
        out: dict[str, Any] = {
            "timestamp": self.time, "position.latitude": self.latitude,
            "position.longitude": self.longitude, "position.altitude": self.altitude,
            "position.speed": self.speed, "position.direction": self.direction,
            "position.valid": bool(self.status & 0x2), "engine.ignition.status":
            bool(self.status & 0x1), "jt808.alarm": self.alarm, "jt808.status": self.status,
        }
        out.update(self.attributes)
        return out


_message(MsgId.LOCATION)(Location)


@_message(MsgId.LOCATION_QUERY_RESPONSE)
@dataclass(frozen=True)
class LocationQueryResponse:
    """0x0201: reply serial WORD then a 0x0200 body."""

    reply_serial: int
    location: Location

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> LocationQueryResponse:
        return cls(r.u16(), Location.decode(r, v2019))

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial)
        self.location.encode(w, v2019)


@_message(MsgId.BATCH_LOCATION)
@dataclass(frozen=True)
class BatchLocation:
    """0x0704: ``kind`` 0 = normal batch, 1 = blind-area re-upload; WORD-length records."""

    kind: int
    locations: tuple[Location, ...]

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> BatchLocation:
        count, kind = r.u16(), r.u8()
        return cls(kind, tuple(Location.decode(Reader(r.take(r.u16())), v2019)
                               for _ in range(count)))

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(len(self.locations)).u8(self.kind)
        for location in self.locations:
            inner = Writer()
            location.encode(inner, v2019)
            w.u16(len(inner.out)).raw(inner.bytes())


@_message(MsgId.MULTIMEDIA_EVENT)
@dataclass(frozen=True)
class MultimediaEvent:
    """0x0800: media type 0 image/1 audio/2 video; format 0 JPEG...; event 0 platform, 1 timed..."""

    media_id: int
    media_type: int
    media_format: int
    event: int
    channel: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> MultimediaEvent:
        return cls(r.u32(), r.u8(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u32(self.media_id).u8(self.media_type).u8(self.media_format).u8(self.event)
        w.u8(self.channel)


@_message(MsgId.MULTIMEDIA_DATA)
@dataclass(frozen=True)
class MultimediaData:
    """0x0801: the 0x0800 fields, a 28-byte location block (all zeros = None), then the data."""

    media_id: int
    media_type: int
    media_format: int
    event: int
    channel: int
    location: Location | None
    data: bytes

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> MultimediaData:
        head = MultimediaEvent.decode(r, v2019)
        block = r.take(28)
        location = Location(*Location.read_basic(Reader(block))) if any(block) else None
        return cls(head.media_id, head.media_type, head.media_format, head.event, head.channel,
                   location, r.rest())

    def encode(self, w: Writer, v2019: bool) -> None:
        MultimediaEvent(self.media_id, self.media_type, self.media_format, self.event,
                        self.channel).encode(w, v2019)
        if self.location is None:
            w.raw(bytes(28))
        else:
            self.location.write_basic(w)
        w.raw(self.data)


def _word_list(r: Reader, count: int) -> tuple[int, ...]:
    return tuple(r.u16() for _ in range(count))


@_message(MsgId.MULTIMEDIA_UPLOAD_RESPONSE)
@dataclass(frozen=True)
class MultimediaUploadResponse:
    """0x8800: media id, then the packet ids to send again (empty = all received)."""

    media_id: int
    retransmit: tuple[int, ...] = ()

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> MultimediaUploadResponse:
        media_id = r.u32()
        return cls(media_id, _word_list(r, r.u8()) if r.remaining else ())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u32(self.media_id).u8(len(self.retransmit))
        for packet in self.retransmit:
            w.u16(packet)


@_message(MsgId.RESEND_REQUEST)
@dataclass(frozen=True)
class ResendRequest:
    """0x8003: serial of the first sub-packet, then the missing packet numbers.

    The count is a BYTE in both editions, as go-jt808 and SmallChi/JT808 encode it.
    """

    original_serial: int
    packet_ids: tuple[int, ...]

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> ResendRequest:
        serial = r.u16()
        return cls(serial, _word_list(r, r.u8()))

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.original_serial).u8(len(self.packet_ids))
        for packet in self.packet_ids:
            w.u16(packet)


@_message(MsgId.SNAPSHOT)
@dataclass(frozen=True)
class Snapshot:
    """0x8801: command 0 stop, 0xFFFF record video, N = take N photos; save 1 = keep on device."""

    channel: int
    command: int
    interval: int
    save: int
    resolution: int
    quality: int = 5
    brightness: int = 128
    contrast: int = 64
    saturation: int = 64
    chroma: int = 128

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> Snapshot:
        return cls(r.u8(), r.u16(), r.u16(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8(),
                   r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.channel).u16(self.command).u16(self.interval)
        for value in (self.save, self.resolution, self.quality, self.brightness, self.contrast,
                      self.saturation, self.chroma):
            w.u8(value)


@_message(MsgId.SNAPSHOT_RESPONSE)
@dataclass(frozen=True)
class SnapshotResponse:
    """0x0805: result 0 OK (then the media ids), 1 failure, 2 channel not supported."""

    reply_serial: int
    result: int
    media_ids: tuple[int, ...] = ()

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> SnapshotResponse:
        serial, result = r.u16(), r.u8()
        ids = tuple(r.u32() for _ in range(r.u16())) if r.remaining else ()
        return cls(serial, result, ids)

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u8(self.result)
        if self.result == 0:
            w.u16(len(self.media_ids))
            for media_id in self.media_ids:
                w.u32(media_id)


@_message(MsgId.TEXT)
@dataclass(frozen=True)
class TextMessage:
    """0x8300: flag bits (emergency, display, TTS...), 2019 text type (1 notice, 2 service)."""

    flags: int
    text: str
    text_type: int = 1

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> TextMessage:
        flags = r.u8()
        text_type = r.u8() if v2019 else 1
        return cls(flags, r.text(r.remaining), text_type)

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.flags)
        if v2019:
            w.u8(self.text_type)
        w.text(self.text)


def _read_params(r: Reader) -> dict[int, bytes]:
    return {r.u32(): r.take(r.u8()) for _ in range(r.u8())}


def _write_params(w: Writer, params: dict[int, bytes]) -> None:
    w.u8(len(params))
    for key, value in params.items():
        w.u32(key).u8(len(value)).raw(value)


@_message(MsgId.SET_PARAMETERS)
@dataclass(frozen=True)
class SetParameters:
    """0x8103: parameter id DWORD -> raw value (BYTE length on the wire)."""

    params: dict[int, bytes]

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> SetParameters:
        return cls(_read_params(r))

    def encode(self, w: Writer, v2019: bool) -> None:
        _write_params(w, self.params)


@_message(MsgId.PARAMETERS)
@dataclass(frozen=True)
class ParametersResponse:
    """0x0104: reply serial, then the parameters as in 0x8103."""

    reply_serial: int
    params: dict[int, bytes]

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> ParametersResponse:
        return cls(r.u16(), _read_params(r))

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial)
        _write_params(w, self.params)


@dataclass(frozen=True)
class UnknownMessage:
    """A message id this codec does not know; the session answers 0x8001 "not supported"."""

    msg_id: int
    body: bytes

    def encode(self, w: Writer, v2019: bool) -> None:
        w.raw(self.body)


for _msg_id, _cls in AV_MESSAGES.items():
    _message(_msg_id)(_cls)

from fleetcam.protocol.jt808.subiao import SUBIAO_MESSAGES  # noqa: E402

for _msg_id, _cls in SUBIAO_MESSAGES.items():
    _message(_msg_id)(_cls)

__all__ = [
    "AvAttributes", "AvAttributesQuery", "BatchLocation", "FileUpload", "FileUploadControl",
    "FileUploadDone", "GeneralResponse", "Heartbeat", "Location", "LocationQuery",
    "LocationQueryResponse", "MultimediaData", "MultimediaEvent",
    "MultimediaUploadResponse", "ParametersResponse", "PlaybackControl", "PlaybackRequest",
    "QueryParameters", "RealtimeControl", "RealtimeRequest", "Register", "RegisterResponse",
    "ResendRequest", "ResourceItem", "ResourceList", "ResourceListQuery", "SetParameters",
    "Snapshot", "SnapshotResponse", "TextMessage", "UnknownMessage", "Unregister",
    "decode_body", "encode_body",
]

def decode_body(msg_id: int, body: bytes, version2019: bool) -> Any:
    """Decode a (reassembled) body; unknown ids give ``UnknownMessage`` and never raise.

    Raises:
        ProtocolError: a known id whose body is truncated or malformed.
    """
    cls = DECODERS.get(msg_id)
    if cls is None:
        return UnknownMessage(msg_id, body)
    return cls.decode(Reader(body), version2019)


def encode_body(msg: Any, version2019: bool) -> tuple[int, bytes]:
    """The message id and body bytes for ``msg`` (``GeneralResponse`` encodes as 0x8001).

    Raises:
        ProtocolError: a field does not fit its wire type.
    """
    if isinstance(msg, UnknownMessage):
        return msg.msg_id, msg.body
    msg_id = ENCODE_IDS.get(type(msg))
    if msg_id is None:
        raise ProtocolError(f"{type(msg).__name__} is not a JT/T 808 message")
    w = Writer()
    msg.encode(w, version2019)
    return msg_id, w.bytes()
