"""Teltonika FMB/FMC/FMM over TCP: the IMEI handshake, Codec 8 and 8 Extended AVL packets
and Codec 12 GPRS commands (sans-IO).

Wire (wiki.teltonika-gps.com "Codec"): the device first sends ``len WORD | IMEI ASCII``; the
server answers one byte, 01 accept or 00 refuse. Then each packet is
``00000000 | data length DWORD | codec BYTE | count BYTE | records | count BYTE | CRC DWORD``
with CRC-16/ARC (poly 0xA001 reflected, init 0) over codec..last count; the server answers
every AVL packet with the record count as a DWORD. Codec 12 uses the same envelope with
command type 5 (server -> device) and 6 (device's response), text payloads.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from fleetcam.protocol.errors import BadChecksum, FrameTooLarge, ProtocolError

CODEC_8: Final = 0x08
CODEC_8E: Final = 0x8E
CODEC_12: Final = 0x0C
MAX_PACKET: Final = 64 * 1024
"""Largest data field accepted (an FMB packet is at most a few KB; Codec 8E with NX IO maybe
more)."""
MAX_IMEI_LEN: Final = 17


def _table(poly: int) -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_ARC = _table(0xA001)
_KERMIT = _table(0x8408)


def _crc(table: tuple[int, ...], data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (IBM; poly 0xA001 reflected, init 0): the AVL packet checksum."""
    return _crc(_ARC, data)


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (poly 0x8408 reflected, init 0): the camera's data-chunk checksum, as
    the DualCam wiki states and Traccar's real capture (DualcamProtocolDecoderTest) confirms."""
    return _crc(_KERMIT, data)


@dataclass(frozen=True)
class AvlRecord:
    """One AVL record. ``io`` keeps every IO element raw: ints for the 1/2/4/8-byte groups,
    bytes for Codec 8E's variable-length (NX) ones."""

    timestamp_ms: int
    priority: int
    longitude: float
    latitude: float
    altitude: int
    angle: int
    satellites: int
    speed: int
    event_id: int
    io: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command12:
    """A Codec 12 message: type 5 is a command to the device, 6 the device's response."""

    type: int
    text: str


_S32 = struct.Struct(">i")


def _records(codec: int, data: memoryview) -> tuple[list[AvlRecord], int]:
    count = data[0]
    pos = 1
    wide = codec == CODEC_8E
    out: list[AvlRecord] = []
    for _ in range(count):
        ts = int.from_bytes(data[pos:pos + 8], "big")
        prio = data[pos + 8]
        lon = _S32.unpack_from(data, pos + 9)[0] / 1e7
        lat = _S32.unpack_from(data, pos + 13)[0] / 1e7
        alt = int.from_bytes(data[pos + 17:pos + 19], "big", signed=True)
        angle = int.from_bytes(data[pos + 19:pos + 21], "big")
        sats = data[pos + 21]
        speed = int.from_bytes(data[pos + 22:pos + 24], "big")
        pos += 24
        n = 2 if wide else 1
        event_id = int.from_bytes(data[pos:pos + n], "big")
        pos += n * 2  # event id, total count
        io: dict[int, Any] = {}
        for size in (1, 2, 4, 8):
            k = int.from_bytes(data[pos:pos + n], "big")
            pos += n
            for _ in range(k):
                io_id = int.from_bytes(data[pos:pos + n], "big")
                io[io_id] = int.from_bytes(data[pos + n:pos + n + size], "big")
                pos += n + size
        if wide:
            k = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2
            for _ in range(k):
                io_id = int.from_bytes(data[pos:pos + 2], "big")
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                io[io_id] = bytes(data[pos + 4:pos + 4 + length])
                pos += 4 + length
        if pos > len(data) - 1:
            raise ProtocolError("AVL record runs past the packet")
        out.append(AvlRecord(ts, prio, lon, lat, alt, angle, sats, speed, event_id, io))
    if data[pos] != count:
        raise ProtocolError(f"record counts disagree ({count} and {data[pos]})")
    if pos + 1 != len(data):
        raise ProtocolError(f"{len(data) - pos - 1} bytes after the last record")
    return out, count


def decode_data(data: bytes) -> tuple[int, list[AvlRecord] | Command12]:
    """Decode a packet's data field (codec .. second count); CRC already checked.

    Raises:
        ProtocolError: unknown codec, truncated or inconsistent records.
    """
    if not data:
        raise ProtocolError("empty packet")
    codec = data[0]
    view = memoryview(data)[1:]
    try:
        if codec in (CODEC_8, CODEC_8E):
            return codec, _records(codec, view)[0]
        if codec == CODEC_12:
            qty, kind = view[0], view[1]
            size = int.from_bytes(view[2:6], "big")
            text = bytes(view[6:6 + size])
            if len(text) != size or view[6 + size] != qty:
                raise ProtocolError("Codec 12 lengths disagree")
            return codec, Command12(kind, text.decode("latin-1"))
    except (IndexError, struct.error) as e:
        raise ProtocolError(f"truncated codec {codec:#04x} packet") from e
    raise ProtocolError(f"unsupported codec {codec:#04x}")


def envelope(data: bytes) -> bytes:
    """Preamble, length, data, CRC."""
    return (b"\x00\x00\x00\x00" + len(data).to_bytes(4, "big") + data
            + crc16_arc(data).to_bytes(4, "big"))


def encode_command(text: str, kind: int = 5) -> bytes:
    """A Codec 12 command (type 5) or response (type 6) packet."""
    payload = text.encode("latin-1")
    data = (bytes((CODEC_12, 1, kind)) + len(payload).to_bytes(4, "big") + payload
            + bytes((1,)))
    return envelope(data)


def encode_avl(records: list[AvlRecord], codec: int = CODEC_8E) -> bytes:
    """An AVL packet (the simulator's side). IO values: int (size from its magnitude) or
    bytes (Codec 8E only)."""
    wide = codec == CODEC_8E
    n = 2 if wide else 1
    out = bytearray((codec, len(records)))
    for r in records:
        out += r.timestamp_ms.to_bytes(8, "big") + bytes((r.priority,))
        out += _S32.pack(round(r.longitude * 1e7)) + _S32.pack(round(r.latitude * 1e7))
        out += r.altitude.to_bytes(2, "big", signed=True) + r.angle.to_bytes(2, "big")
        out += bytes((r.satellites,)) + r.speed.to_bytes(2, "big")
        groups: dict[int, list[tuple[int, Any]]] = {1: [], 2: [], 4: [], 8: [], 0: []}
        for io_id, v in r.io.items():
            if isinstance(v, bytes):
                if not wide:
                    raise ProtocolError("variable-length IO needs Codec 8E")
                groups[0].append((io_id, v))
            else:
                size = next(s for s in (1, 2, 4, 8) if v < 1 << (8 * s))
                groups[size].append((io_id, v))
        out += r.event_id.to_bytes(n, "big") + len(r.io).to_bytes(n, "big")
        for size in (1, 2, 4, 8):
            out += len(groups[size]).to_bytes(n, "big")
            for io_id, v in groups[size]:
                out += io_id.to_bytes(n, "big") + int(v).to_bytes(size, "big")
        if wide:
            out += len(groups[0]).to_bytes(2, "big")
            for io_id, v in groups[0]:
                out += io_id.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v
    out.append(len(records))
    return envelope(bytes(out))


def encode_imei(imei: str) -> bytes:
    raw = imei.encode("ascii")
    return len(raw).to_bytes(2, "big") + raw


@dataclass(frozen=True)
class Imei:
    imei: str


@dataclass(frozen=True)
class Packet:
    codec: int
    body: list[AvlRecord] | Command12


class TeltonikaStream:
    """Splits a tracker's TCP bytes: first the IMEI, then packets. ``feed`` returns ``Imei``
    and ``Packet`` events; a bad CRC raises ``BadChecksum`` (the session answers nothing, so
    the device sends the packet again), anything malformed ``ProtocolError``."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self.max_packet = max_packet
        self.imei: str | None = None
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Imei | Packet]:
        self._buf += data
        out: list[Imei | Packet] = []
        buf = self._buf
        pos = 0
        try:
            while True:
                if self.imei is None:
                    if len(buf) - pos < 2:
                        break
                    n = int.from_bytes(buf[pos:pos + 2], "big")
                    if not 1 <= n <= MAX_IMEI_LEN:
                        raise ProtocolError(f"IMEI length {n}")
                    if len(buf) - pos < 2 + n:
                        break
                    imei = bytes(buf[pos + 2:pos + 2 + n]).decode("ascii", "replace")
                    if not imei.isdigit():
                        raise ProtocolError("IMEI is not digits")
                    self.imei = imei
                    out.append(Imei(imei))
                    pos += 2 + n
                    continue
                if len(buf) - pos < 8:
                    break
                if buf[pos:pos + 4] != b"\x00\x00\x00\x00":
                    raise ProtocolError("packet without the zero preamble")
                size = int.from_bytes(buf[pos + 4:pos + 8], "big")
                if size > self.max_packet or size < 2:
                    raise FrameTooLarge(f"packet data length {size}")
                if len(buf) - pos < 12 + size:
                    break
                data = bytes(buf[pos + 8:pos + 8 + size])
                crc = int.from_bytes(buf[pos + 8 + size:pos + 12 + size], "big")
                pos += 12 + size
                if crc16_arc(data) != crc:
                    raise BadChecksum(f"CRC {crc:#06x} != {crc16_arc(data):#06x}")
                codec, body = decode_data(data)
                out.append(Packet(codec, body))
        finally:
            del buf[:pos]
        return out


# IO elements fleetcam names (FMB AVL IDs, wiki "FMB AVL ID"); every element is also kept
# raw as ``io.<id>``.
IO_NAMES: Final = {
    239: ("engine.ignition.status", bool), 240: ("movement.status", bool),
    21: ("gsm.signal.level", int), 69: ("gnss.status", int), 200: ("sleep.mode", int),
    181: ("position.pdop", lambda v: v / 10), 182: ("position.hdop", lambda v: v / 10),
    66: ("external.powersource.voltage", lambda v: v / 1000),
    67: ("battery.voltage", lambda v: v / 1000), 68: ("battery.current", lambda v: v / 1000),
    16: ("vehicle.mileage", lambda v: v / 1000), 199: ("trip.mileage", lambda v: v / 1000),
    241: ("gsm.operator.code", int), 1: ("din.1", bool), 2: ("din.2", bool),
    3: ("din.3", bool), 179: ("dout.1", bool), 180: ("dout.2", bool),
    9: ("ain.1", lambda v: v / 1000), 24: ("io.speed", int), 80: ("data.mode", int),
    113: ("battery.level", int), 78: ("ibutton.code", lambda v: f"{v:016X}"),
}


def record_message(r: AvlRecord) -> dict[str, Any]:
    """A record as flat flespi-style fields (raw IO as ``io.<id>``)."""
    msg: dict[str, Any] = {
        "timestamp": r.timestamp_ms / 1000, "position.latitude": r.latitude,
        "position.longitude": r.longitude, "position.altitude": r.altitude,
        "position.direction": r.angle, "position.satellites": r.satellites,
        "position.speed": r.speed, "position.valid": r.satellites > 0,
        "event.enum": r.event_id, "priority.enum": r.priority}
    for io_id, value in r.io.items():
        msg[f"io.{io_id}"] = value.hex() if isinstance(value, bytes) else value
        named = IO_NAMES.get(io_id)
        if named is not None and not isinstance(value, bytes):
            msg[named[0]] = named[1](value)
    return msg
