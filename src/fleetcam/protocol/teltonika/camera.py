"""Teltonika DualCam/DashCam camera connection (sans-IO): PROTOCOLS.md §4, Traccar's
``DualcamProtocolDecoder`` and its real capture.

Every message is ``command WORD | payload``; all but the device's INIT carry a length WORD
first. Device -> server: INIT (0x0000: protocol id WORD, IMEI as a QWORD, settings DWORD),
START (0x0001: packet count DWORD + 2 bytes), SYNC (0x0003: packet index DWORD), DATA (0x0004:
up to 1024 bytes + CRC-16/KERMIT), STATUS (0x0005), METADATA (0x000B). Server -> device:
FILE REQUEST (0x0008: path such as ``%photof``), RESUME (0x0002: packet index to send from,
1-based), METADATA REQUEST (0x000A), CLOSE (0x0000 with length 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.teltonika.codec import crc16_kermit

INIT, START, RESUME, SYNC, DATA, STATUS = 0, 1, 2, 3, 4, 5
FILE_REQUEST, METADATA_REQUEST, METADATA = 8, 0x0A, 0x0B
CHUNK: Final = 1024
FILES: Final = {("photo", 1): "%photof", ("photo", 2): "%photor",
                ("video", 1): "%videof", ("video", 2): "%videor"}
# INIT settings flags: which files the camera holds (Traccar: bits 26/27 photos)
FLAG_PHOTO_FRONT, FLAG_PHOTO_REAR = 1 << 26, 1 << 27
FLAG_VIDEO_FRONT, FLAG_VIDEO_REAR = 1 << 28, 1 << 29
FLAG_FILES: Final = {("photo", 1): FLAG_PHOTO_FRONT, ("photo", 2): FLAG_PHOTO_REAR,
                     ("video", 1): FLAG_VIDEO_FRONT, ("video", 2): FLAG_VIDEO_REAR}


@dataclass(frozen=True)
class Init:
    protocol: int
    imei: str
    settings: int

    def available(self) -> list[tuple[str, int]]:
        """(kind, camera) of the files the settings announce."""
        return [key for key, flag in FLAG_FILES.items() if self.settings & flag]


@dataclass(frozen=True)
class Start:
    packets: int


@dataclass(frozen=True)
class Sync:
    index: int


@dataclass(frozen=True)
class Data:
    payload: bytes
    crc: int

    @property
    def valid(self) -> bool:
        return crc16_kermit(self.payload) == self.crc


@dataclass(frozen=True)
class Other:
    command: int
    payload: bytes


Event = Init | Start | Sync | Data | Other


class CameraStream:
    """Device -> server messages from a byte stream, bounded by ``max_message``."""

    def __init__(self, max_message: int = CHUNK + 64) -> None:
        self.max_message = max_message
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        buf = self._buf
        out: list[Event] = []
        pos = 0
        try:
            while len(buf) - pos >= 2:
                cmd = int.from_bytes(buf[pos:pos + 2], "big")
                if cmd == INIT:
                    if len(buf) - pos < 16:
                        break
                    proto = int.from_bytes(buf[pos + 2:pos + 4], "big")
                    imei = str(int.from_bytes(buf[pos + 4:pos + 12], "big"))
                    settings = int.from_bytes(buf[pos + 12:pos + 16], "big")
                    out.append(Init(proto, imei, settings))
                    pos += 16
                    continue
                if len(buf) - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2:pos + 4], "big")
                if size > self.max_message:
                    raise ProtocolError(f"camera message {cmd:#06x} of {size} bytes")
                if len(buf) - pos < 4 + size:
                    break
                body = bytes(buf[pos + 4:pos + 4 + size])
                pos += 4 + size
                if cmd == START:
                    if size < 4:
                        raise ProtocolError("START without a packet count")
                    out.append(Start(int.from_bytes(body[:4], "big")))
                elif cmd == SYNC:
                    if size < 4:
                        raise ProtocolError("SYNC without an index")
                    out.append(Sync(int.from_bytes(body[:4], "big")))
                elif cmd == DATA:
                    if size < 3:
                        raise ProtocolError("DATA without payload and CRC")
                    out.append(Data(body[:-2], int.from_bytes(body[-2:], "big")))
                else:
                    out.append(Other(cmd, body))
        finally:
            del buf[:pos]
        return out


def message(cmd: int, payload: bytes = b"") -> bytes:
    return cmd.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload


def file_request(path: str) -> bytes:
    return message(FILE_REQUEST, path.encode("ascii"))


def resume(index: int) -> bytes:
    return message(RESUME, index.to_bytes(4, "big"))


def close() -> bytes:
    return message(INIT)


# -- the device's side (the simulator) ---------------------------------------------------------

def encode_init(imei: str, settings: int, protocol: int = 5) -> bytes:
    return (INIT.to_bytes(2, "big") + protocol.to_bytes(2, "big") + int(imei).to_bytes(8, "big")
            + settings.to_bytes(4, "big"))


def encode_start(packets: int) -> bytes:
    return message(START, packets.to_bytes(4, "big") + b"\x00\x00")


def encode_sync(index: int) -> bytes:
    return message(SYNC, index.to_bytes(4, "big"))


def encode_data(chunk: bytes, *, corrupt: bool = False) -> bytes:
    crc = crc16_kermit(chunk) ^ (0xFFFF if corrupt else 0)
    return message(DATA, chunk + crc.to_bytes(2, "big"))


@dataclass(frozen=True)
class ServerMessage:
    command: int
    payload: bytes


class ServerStream:
    """Server -> device messages (all carry a length), for the simulator."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ServerMessage]:
        self._buf += data
        out = []
        while len(self._buf) >= 4:
            size = int.from_bytes(self._buf[2:4], "big")
            if len(self._buf) < 4 + size:
                break
            out.append(ServerMessage(int.from_bytes(self._buf[:2], "big"),
                                     bytes(self._buf[4:4 + size])))
            del self._buf[:4 + size]
        return out
