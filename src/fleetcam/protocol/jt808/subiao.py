"""Active-safety extension of JT/T 808 (Jiangsu T/JSATL12-2017 "Su-biao", and Guangdong's
"Yue-biao" variant, SmallChi's JT808.Protocol.Extensions.YueBiao): the 0x0200 alarm items 0x64-0x67, the attachment signalling (0x9208,
0x1210, 0x1211, 0x1212, 0x9212) and the raw file-data stream of the attachment connection.

PROTOCOLS.md §3.  Vectors: SmallChi/JT808 ``JT808.Protocol.Extensions.SuBiao.Test``.

The alarm identification is 16 bytes in Jiangsu's layout (terminal id BYTE[7], one reserved
byte) and 40 in Guangdong's (terminal id BYTE[30], two reserved bytes).  The item lengths differ by exactly 24 bytes, and no item
length is valid in both layouts, so the layout is detected from the item's length unless the
device's configuration names one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from fleetcam.protocol.bcd import Reader, Writer, bcd_time_to_unix, gbk_decode
from fleetcam.protocol.errors import ProtocolError

Fields = dict[str, Any]

JIANGSU: Final = "jiangsu"
GUANGDONG: Final = "guangdong"
IDENT_SIZE: Final = {JIANGSU: 16, GUANGDONG: 40}
_TERMINAL_SIZE: Final = {JIANGSU: 7, GUANGDONG: 30}

ADAS, DSM, TPMS, BSD = 0x64, 0x65, 0x66, 0x67
KINDS: Final = {ADAS: "adas", DSM: "dsm", TPMS: "tpms", BSD: "bsd"}

# Alarm/event types (T/JSATL12-2017 tables 4-1, 4-3, 4-6, 4-8), for ``*.alarm.type.name``.
ADAS_TYPES: Final = {1: "forward_collision", 2: "lane_departure", 3: "vehicle_too_close",
                     4: "pedestrian_collision", 5: "frequent_lane_change",
                     6: "road_sign_overlimit", 7: "obstacle", 16: "road_sign_recognition",
                     17: "active_capture"}
DSM_TYPES: Final = {1: "fatigue", 2: "phone_call", 3: "smoking", 4: "distracted",
                    5: "driver_abnormal", 16: "automatic_capture", 17: "driver_change"}
BSD_TYPES: Final = {1: "rear_approach", 2: "left_rear_approach", 3: "right_rear_approach"}
TPMS_TYPES: Final = {0: "pressure_high", 1: "pressure_low", 2: "temperature_high",
                     3: "sensor_fault", 4: "pressure_unbalanced", 5: "slow_leak",
                     6: "battery_low"}
STATUS_NAMES: Final = {0: "unavailable", 1: "start", 2: "end"}


@dataclass(frozen=True)
class AlarmIdentification:
    """Who raised an alarm, when, which of that second's alarms, and how many files follow."""

    terminal_id: str
    time: int
    serial: int
    attachments: int
    reserved: int = 0
    layout: str = JIANGSU

    @classmethod
    def decode(cls, r: Reader, layout: str = JIANGSU) -> AlarmIdentification:
        terminal = gbk_decode(r.take(_TERMINAL_SIZE[layout]))
        time, serial, count = bcd_time_to_unix(r.take(6)), r.u8(), r.u8()
        # Guangdong keeps two reserved bytes (SmallChi's YueBiao AlarmIdentificationProperty)
        reserved = r.u16() if layout == GUANGDONG else r.u8()
        return cls(terminal, time, serial, count, reserved, layout)

    def encode(self, w: Writer) -> None:
        w.text(self.terminal_id, _TERMINAL_SIZE[self.layout]).time(self.time)
        w.u8(self.serial).u8(self.attachments)
        if self.layout == GUANGDONG:
            w.u16(self.reserved)
        else:
            w.u8(self.reserved)

    @property
    def key(self) -> str:
        """A stable text id of the alarm: terminal, device time and serial."""
        return f"{self.terminal_id}-{self.time}-{self.serial}"

    def fields(self) -> Fields:
        return {"alarm.id": self.key, "alarm.terminal.id": self.terminal_id,
                "alarm.time": self.time, "alarm.serial": self.serial,
                "alarm.attachments": self.attachments}


def _layout_for(length: int, jiangsu: int, forced: str | None) -> str | None:
    if forced in IDENT_SIZE:
        return forced if length == jiangsu + IDENT_SIZE[forced] - 16 else None
    if length == jiangsu:
        return JIANGSU
    if length == jiangsu + 24:
        return GUANGDONG
    return None


def _position(prefix: str, r: Reader) -> Fields:
    speed, altitude = r.u8(), r.u16()
    lat, lon = r.u32() / 1e6, r.u32() / 1e6
    return {f"{prefix}.speed": speed, f"{prefix}.altitude": altitude,
            f"{prefix}.latitude": lat, f"{prefix}.longitude": lon,
            f"{prefix}.time": r.time(), f"{prefix}.vehicle.status": r.u16()}


def _head(kind: str, r: Reader, names: dict[int, str] | None, *, typed: bool = True) -> Fields:
    out: Fields = {f"{kind}.alarm.event.id": r.u32()}
    status = r.u8()
    out[f"{kind}.alarm.status"] = status
    out[f"{kind}.alarm.status.name"] = STATUS_NAMES.get(status, str(status))
    if typed:
        kind_type, level = r.u8(), r.u8()
        out[f"{kind}.alarm.type"] = kind_type
        if names is not None:
            out[f"{kind}.alarm.type.name"] = names.get(kind_type, str(kind_type))
        out[f"{kind}.alarm.level"] = level
    return out


def _decode_adas(r: Reader) -> Fields:
    out = _head("adas", r, ADAS_TYPES)
    out.update({"adas.front.vehicle.speed": r.u8(), "adas.front.distance": r.u8(),
                "adas.lane.departure.type": r.u8(), "adas.road.sign.type": r.u8(),
                "adas.road.sign.data": r.u8()})
    out.update(_position("adas.alarm", r))
    return out


def _decode_dsm(r: Reader) -> Fields:
    out = _head("dsm", r, DSM_TYPES)
    out["dsm.fatigue.level"] = r.u8()
    r.take(4)  # reserved
    out.update(_position("dsm.alarm", r))
    return out


def _decode_bsd(r: Reader) -> Fields:
    out = _head("bsd", r, BSD_TYPES)
    out.update(_position("bsd.alarm", r))
    return out


def _decode_tpms_head(r: Reader) -> Fields:
    out = _head("tpms", r, None, typed=False)
    out.update(_position("tpms.alarm", r))
    return out


@dataclass(frozen=True)
class TireEvent:
    position: int
    alarm_type: int
    pressure: int
    temperature: int
    battery: int


def _decode_tpms_events(r: Reader) -> list[TireEvent]:
    return [TireEvent(r.u8(), r.u16(), r.u16(), r.u16(), r.u16()) for _ in range(r.u8())]


_JIANGSU_LENGTHS: Final = {ADAS: 47, DSM: 47, BSD: 42}
_HEAD: Final[dict[int, Callable[[Reader], Fields]]] = {
    ADAS: _decode_adas, DSM: _decode_dsm, BSD: _decode_bsd}


def decode_alarm_item(item: int, value: bytes, layout: str | None = None) -> Fields:
    """Flat fields of an alarm item (0x64-0x67); ``{}`` when its length fits no layout.

    ``layout`` forces Jiangsu's or Guangdong's identification; None detects it by length.
    Every alarm's identification gives ``alarm.id`` and friends; ``alarm.source`` names the
    item (adas, dsm, tpms, bsd).
    """
    kind = KINDS[item]
    try:
        r = Reader(value)
        if item == TPMS:
            found = None
            for candidate in (JIANGSU, GUANGDONG):
                if layout not in (None, candidate):
                    continue
                rest = len(value) - 24 - IDENT_SIZE[candidate] - 1
                if rest >= 0 and rest % 9 == 0:
                    found = candidate
                    break
            if found is None:
                return {}
            out = _decode_tpms_head(r)
            ident = AlarmIdentification.decode(r, found)
            events = _decode_tpms_events(r)
            for i, ev in enumerate(events):
                out.update({f"tpms.tire.{i}.position": ev.position,
                            f"tpms.tire.{i}.alarm.type": ev.alarm_type,
                            f"tpms.tire.{i}.pressure": ev.pressure,
                            f"tpms.tire.{i}.temperature": ev.temperature,
                            f"tpms.tire.{i}.battery": ev.battery})
            out["tpms.tires.count"] = len(events)
        else:
            found = _layout_for(len(value), _JIANGSU_LENGTHS[item], layout)
            if found is None:
                return {}
            out = _HEAD[item](r)
            ident = AlarmIdentification.decode(r, found)
    except ProtocolError:
        return {}
    out.update(ident.fields())
    out["alarm.source"] = kind
    out["alarm.layout"] = found
    return out


def alarm_identification(items: dict[int, bytes], layout: str | None = None,
                         ) -> list[tuple[int, AlarmIdentification]]:
    """The identification of every alarm item of a 0x0200 (item id, identification)."""
    found: list[tuple[int, AlarmIdentification]] = []
    for item in (ADAS, DSM, TPMS, BSD):
        value = items.get(item)
        if value is None:
            continue
        fields = decode_alarm_item(item, value, layout)
        if not fields:
            continue
        size = IDENT_SIZE[fields["alarm.layout"]]
        start = 24 if item == TPMS else len(value) - size
        try:
            ident = AlarmIdentification.decode(Reader(value[start:start + size]),
                                               fields["alarm.layout"])
        except ProtocolError:
            continue
        found.append((item, ident))
    return found


# --- attachment signalling (JT/T 808 framing) -------------------------------------------------

ALARM_NUMBER_SIZE: Final = 32


def _alarm_number(r: Reader) -> str:
    return r.take(ALARM_NUMBER_SIZE).rstrip(b"\x00 ").decode("ascii", "replace")


def _write_alarm_number(w: Writer, number: str) -> None:
    data = number.encode("ascii")
    if len(data) > ALARM_NUMBER_SIZE:
        raise ProtocolError(f"alarm number {number!r} is longer than {ALARM_NUMBER_SIZE} bytes")
    w.raw(data.ljust(ALARM_NUMBER_SIZE, b"\x00"))


@dataclass(frozen=True)
class AttachmentUploadRequest:
    """0x9208: platform -> terminal: upload the alarm's files to ip:port under ``alarm_number``."""

    ip: str
    tcp_port: int
    udp_port: int
    ident: AlarmIdentification
    alarm_number: str

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> AttachmentUploadRequest:
        ip, tcp, udp = r.text8(), r.u16(), r.u16()
        layout = GUANGDONG if r.remaining >= 40 + 32 + 16 else JIANGSU
        ident = AlarmIdentification.decode(r, layout)
        number = _alarm_number(r)
        r.take(min(16, r.remaining))
        return cls(ip, tcp, udp, ident, number)

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text8(self.ip).u16(self.tcp_port).u16(self.udp_port)
        self.ident.encode(w)
        _write_alarm_number(w, self.alarm_number)
        w.raw(bytes(16))


@dataclass(frozen=True)
class AttachmentItem:
    name: str
    size: int


@dataclass(frozen=True)
class AlarmAttachmentInfo:
    """0x1210: terminal -> attachment server: which alarm, and the files that follow."""

    terminal_id: str
    ident: AlarmIdentification
    alarm_number: str
    info_type: int
    items: tuple[AttachmentItem, ...] = field(default_factory=tuple)

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> AlarmAttachmentInfo:
        # Guangdong widens both the terminal id and the identification's terminal id to 30.
        layout = GUANGDONG if _looks_guangdong(r.data) else JIANGSU
        terminal = gbk_decode(r.take(_TERMINAL_SIZE[layout]))
        ident = AlarmIdentification.decode(r, layout)
        number = _alarm_number(r)
        info_type, count = r.u8(), r.u8()
        items = tuple(AttachmentItem(r.text8(), r.u32()) for _ in range(count))
        return cls(terminal, ident, number, info_type, items)

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text(self.terminal_id, _TERMINAL_SIZE[self.ident.layout])
        self.ident.encode(w)
        _write_alarm_number(w, self.alarm_number)
        w.u8(self.info_type).u8(len(self.items))
        for item in self.items:
            w.text8(item.name).u32(item.size)


def _looks_guangdong(body: bytes) -> bool:
    """True when the body parses completely with 30-byte terminal ids and not with 7."""
    def fits(term: int, ident: int) -> bool:
        pos = term + ident + ALARM_NUMBER_SIZE + 1
        if pos >= len(body):
            return False
        count = body[pos]
        pos += 1
        for _ in range(count):
            if pos >= len(body):
                return False
            pos += 1 + body[pos] + 4
        return pos == len(body)
    return not fits(7, 16) and fits(30, 40)


FILE_TYPES: Final = {0: "image", 1: "audio", 2: "video", 3: "text", 4: "other"}


@dataclass(frozen=True)
class AttachmentFileInfo:
    """0x1211 (file info, before the data) and 0x1212 (upload finished) share this layout."""

    name: str
    file_type: int
    size: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> AttachmentFileInfo:
        return cls(r.text8(), r.u8(), r.u32())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text8(self.name).u8(self.file_type).u32(self.size)


@dataclass(frozen=True)
class AttachmentFileInfoMsg(AttachmentFileInfo):
    """0x1211: a file is about to be sent."""


@dataclass(frozen=True)
class AttachmentFileDone(AttachmentFileInfo):
    """0x1212: a file was sent; answered by 0x9212."""


@dataclass(frozen=True)
class AttachmentFileResult:
    """0x9212: result 0 = complete, 1 = send ``missing`` (offset, length) again."""

    name: str
    file_type: int
    result: int
    missing: tuple[tuple[int, int], ...] = ()

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> AttachmentFileResult:
        name, kind, result, count = r.text8(), r.u8(), r.u8(), r.u8()
        return cls(name, kind, result, tuple((r.u32(), r.u32()) for _ in range(count)))

    def encode(self, w: Writer, v2019: bool) -> None:
        if len(self.missing) > 255:
            raise ProtocolError("at most 255 ranges fit in one 0x9212")
        w.text8(self.name).u8(self.file_type).u8(self.result).u8(len(self.missing))
        for offset, length in self.missing:
            w.u32(offset).u32(length)


SUBIAO_MESSAGES: Final[dict[int, type]] = {
    0x9208: AttachmentUploadRequest, 0x1210: AlarmAttachmentInfo,
    0x1211: AttachmentFileInfoMsg, 0x1212: AttachmentFileDone, 0x9212: AttachmentFileResult}


# --- the attachment connection's raw file-data packets ------------------------------------------

DATA_MAGIC: Final = b"\x30\x31\x63\x64"
DATA_HEADER: Final = 4 + 50 + 4 + 4


@dataclass(frozen=True)
class FileChunk:
    """One raw file-data packet: ``data`` belongs at ``offset`` of file ``name``."""

    name: str
    offset: int
    data: bytes


def encode_chunk(chunk: FileChunk) -> bytes:
    name = chunk.name.encode("gbk")
    if len(name) > 50:
        raise ProtocolError(f"file name {chunk.name!r} is longer than 50 bytes")
    return (DATA_MAGIC + name.ljust(50, b"\x00") + chunk.offset.to_bytes(4, "big")
            + len(chunk.data).to_bytes(4, "big") + chunk.data)


def parse_chunk_header(header: bytes) -> tuple[str, int, int]:
    """Name, offset and length of a 62-byte data-packet header (magic included)."""
    if header[:4] != DATA_MAGIC:
        raise ProtocolError("not a file-data packet")
    name = gbk_decode(header[4:54])
    return name, int.from_bytes(header[54:58], "big"), int.from_bytes(header[58:62], "big")


class FileAssembly:
    """One attachment file put together by offset (devices send chunks out of order).

    Bytes land in a preallocated buffer of the announced size; overlapping chunks simply
    overwrite.  ``missing()`` lists the gaps to ask for again in 0x9212.
    """

    def __init__(self, name: str, file_type: int, size: int, max_size: int) -> None:
        if size <= 0:
            raise ProtocolError(f"{name}: announced size {size} is not positive")
        if size > max_size:
            raise ProtocolError(f"{name}: announced size {size} exceeds the limit {max_size}")
        self.name = name
        self.file_type = file_type
        self.size = size
        self.buffer = bytearray(size)
        self._have: list[tuple[int, int]] = []  # sorted, merged [start, end)
        self.rounds = 0

    def add(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset < 0 or end > self.size:
            raise ProtocolError(f"{self.name}: chunk [{offset}, {end}) lies outside the "
                                f"announced size {self.size}")
        if not data:
            return
        self.buffer[offset:end] = data
        merged: list[tuple[int, int]] = []
        start, stop = offset, end
        for a, b in self._have:
            if b < start or a > stop:
                merged.append((a, b))
            else:
                start, stop = min(a, start), max(b, stop)
        merged.append((start, stop))
        merged.sort()
        self._have = merged

    @property
    def received(self) -> int:
        return sum(b - a for a, b in self._have)

    def missing(self) -> list[tuple[int, int]]:
        gaps: list[tuple[int, int]] = []
        pos = 0
        for a, b in self._have:
            if a > pos:
                gaps.append((pos, a - pos))
            pos = max(pos, b)
        if pos < self.size:
            gaps.append((pos, self.size - pos))
        return gaps

    @property
    def complete(self) -> bool:
        return self._have == [(0, self.size)]

    def content(self) -> bytes:
        if not self.complete:
            raise ProtocolError(f"{self.name}: incomplete ({self.received} of {self.size} bytes)")
        return bytes(self.buffer)


class AttachmentStream:
    """Sans-IO splitter of an attachment connection's bytes: 0x7E-delimited JT/T 808 frames
    and raw file-data packets (``30 31 63 64`` + header + data), chosen by their first byte.

    ``feed`` returns ``("frame", escaped_frame_with_delimiters)`` and ``("chunk", FileChunk)``
    items in order.  A chunk longer than ``max_chunk`` or a byte that starts neither kind
    raises ``ProtocolError`` (the connection is then closed: the stream cannot be resynced
    safely because file data may hold anything).
    """

    def __init__(self, *, max_chunk: int = 65536, max_frame: int = 4096) -> None:
        self.max_chunk = max_chunk
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        self._buf += data
        out: list[tuple[str, Any]] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            first = buf[pos]
            if first == 0x7E:
                end = buf.find(b"\x7e", pos + 1)
                if end == pos + 1:  # two delimiters in a row: the first closes nothing
                    pos += 1
                    continue
                if end < 0:
                    if len(buf) - pos > self.max_frame:
                        raise ProtocolError("attachment frame longer than allowed")
                    break
                if end + 1 - pos > self.max_frame:
                    raise ProtocolError("attachment frame longer than allowed")
                out.append(("frame", bytes(buf[pos:end + 1])))
                pos = end + 1
            elif first == DATA_MAGIC[0]:
                if len(buf) - pos < DATA_HEADER:
                    if bytes(buf[pos:pos + 4]) != DATA_MAGIC[:len(buf) - pos][:4]:
                        raise ProtocolError("garbage on the attachment connection")
                    break
                name, offset, length = parse_chunk_header(bytes(buf[pos:pos + DATA_HEADER]))
                if length > self.max_chunk:
                    raise ProtocolError(f"file-data packet of {length} bytes exceeds "
                                        f"{self.max_chunk}")
                if len(buf) - pos < DATA_HEADER + length:
                    break
                start = pos + DATA_HEADER
                out.append(("chunk", FileChunk(name, offset, bytes(buf[start:start + length]))))
                pos = start + length
            else:
                raise ProtocolError(f"garbage on the attachment connection (byte {first:#04x})")
        del buf[:pos]
        return out
