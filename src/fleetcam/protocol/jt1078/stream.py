"""Sans-IO JT/T 1078 media stream decoder: bytes in, ``Packet``/``PacketError`` events out."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError
from fleetcam.protocol.jt1078.packet import MAGIC, MAX_PAYLOAD, Packet, parse_packet


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = _Sentinel.NEED_DATA
"""``next_event`` has nothing more to give until ``receive_data`` is called (h11's sentinel)."""


@dataclass(frozen=True, slots=True)
class PacketError:
    """A run of bytes that held no packet (garbage, a damaged header, a truncated tail).

    Attributes:
        reason: why the run started (the first problem found in it).
        skipped_bytes: how many bytes were discarded.
    """

    reason: str
    skipped_bytes: int


Event = Packet | PacketError


def _magic_prefix_at_end(buf: bytes) -> int:
    """How many trailing bytes of ``buf`` could be the start of a header split by a read."""
    for keep in (3, 2, 1):
        if buf.endswith(MAGIC[:keep]):
            return keep
    return 0


class Jt1078Decoder:
    """Decode one media connection's byte stream into packets.

    Garbage is skipped up to the next ``30 31 63 64`` header and reported as one
    ``PacketError`` per run, just before the packet that ends the run (or at EOF). Call
    ``next_event`` until it returns ``NEED_DATA`` after each ``receive_data``.

    Args:
        max_buffer: cap on bytes held without a packet (undrained input or one garbage run);
            beyond it ``ProtocolError`` is raised and the connection should be closed.
        max_payload: largest accepted packet body (the standard says 950).
    """

    def __init__(self, max_buffer: int = 1 << 20, *, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_buffer = max_buffer
        self._max_payload = max_payload
        # Immutable bytes plus a read offset: one slice per packet, and the unread tail
        # (under one packet when drained) is copied only when more data arrives.
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._garbage = 0
        self._reason = ""

    @property
    def closed(self) -> bool:
        """True once EOF was received and every byte has been turned into an event."""
        return self._eof and self._pos >= len(self._buf) and not self._garbage

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as events."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the connection; ``b""`` means the peer closed it (EOF).

        Raises:
            FrameTooLarge: more than ``max_buffer`` bytes were already waiting undrained.
            ProtocolError: data after EOF.
        """
        if self._eof:
            if data:
                raise ProtocolError("JT/T 1078 data received after EOF")
            return
        if not data:
            self._eof = True
            return
        pending = len(self._buf) - self._pos
        if pending > self.max_buffer:
            raise FrameTooLarge(f"JT/T 1078 buffer holds {pending} bytes without a packet")
        if pending:
            self._buf = self._buf[self._pos :] + bytes(data)
        else:
            self._buf = bytes(data)
        self._pos = 0

    def next_event(self) -> Packet | PacketError | Literal[_Sentinel.NEED_DATA]:
        """Return the next packet, a garbage report, or ``NEED_DATA``.

        Raises:
            ProtocolError: a garbage run or a pending packet exceeds ``max_buffer``.
        """
        buf, pos = self._buf, self._pos
        while True:
            if buf.startswith(MAGIC, pos):
                try:
                    parsed = parse_packet(buf, pos, max_payload=self._max_payload)
                except ProtocolError as exc:
                    # A damaged header, or the magic by chance inside garbage: skip past it.
                    self._reason = self._reason or str(exc)
                    self._garbage += 1
                    pos += 1
                    continue
                if parsed is None:
                    break
                if self._garbage:
                    self._pos = pos
                    return self._flush_garbage()
                packet, self._pos = parsed
                return packet
            end = len(buf)
            if pos >= end:
                break
            found = buf.find(MAGIC, pos)
            if found < 0:
                found = end - _magic_prefix_at_end(buf)
            if found > pos:
                self._reason = self._reason or "bytes before a 30316364 header"
                self._garbage += found - pos
                pos = found
            if found < end and not buf.startswith(MAGIC, pos):
                break  # a possible header split across reads
        self._pos = pos
        return self._need_data()

    def _need_data(self) -> PacketError | Literal[_Sentinel.NEED_DATA]:
        rest = len(self._buf) - self._pos
        if self._eof:
            if rest or self._garbage:
                self._reason = self._reason or "truncated packet at end of stream"
                self._garbage += rest
                self._pos = len(self._buf)
                return self._flush_garbage()
            return NEED_DATA
        if self._garbage > self.max_buffer:
            raise ProtocolError(f"no JT/T 1078 packet in {self._garbage} bytes")
        if rest > self.max_buffer:
            raise FrameTooLarge(f"JT/T 1078 buffer holds {rest} bytes without a packet")
        return NEED_DATA

    def _flush_garbage(self) -> PacketError:
        error = PacketError(self._reason, self._garbage)
        self._garbage, self._reason = 0, ""
        return error
