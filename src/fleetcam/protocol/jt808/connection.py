"""Sans-IO JT/T 808 connection: bytes in, ``Message``/``FrameError`` events out (h11 style).

The gateway feeds ``receive_data`` and drains ``next_event`` until ``NEED_DATA``; it builds its
replies from events and turns them into bytes with ``send``.  Subpackaged messages are
reassembled here (bounded in count and bytes); ``expired`` reports stalled ones so the gateway
can ask for the missing packets with 0x8003.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError
from fleetcam.protocol.jt808.framing import FrameSplitter, checksum, unescape, wrap
from fleetcam.protocol.jt808.header import MAX_BODY, Header, encode_header, parse_header
from fleetcam.protocol.jt808.ids import Result
from fleetcam.protocol.jt808.messages import ResendRequest, UnknownMessage, decode_body, encode_body


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class Message:
    """A decoded message: its header (packet fields cleared after reassembly) and its body."""

    header: Header
    body: Any


@dataclass(frozen=True)
class FrameError:
    """A frame that was dropped; the connection carries on.

    Attributes:
        reason: what was wrong (bad checksum, truncated, undecodable body...).
        raw: the frame as received (escaped, with its delimiters when it had them).
        header: the parsed header when the damage is in the body, so the session can answer
            0x0001/0x8001 with ``reply_result`` for that serial; None otherwise.
        reply_result: the ``Result`` a general response should carry.
    """

    reason: str
    raw: bytes
    header: Header | None = None
    reply_result: int = Result.FAILURE


@dataclass(frozen=True)
class ResendNeeded:
    """A reassembly that stalled: ask for ``missing`` with ``request`` (0x8003).

    ``header`` is the first part's header; when part 1 itself is missing, it is the header of
    the earliest part received with its serial moved back to where part 1's serial should be.
    """

    header: Header
    missing: tuple[int, ...]

    @property
    def request(self) -> ResendRequest:
        return ResendRequest(self.header.serial, self.missing)


class ReassemblyBudget:
    """Bytes that several connections together may hold in unfinished subpackaged messages
    (the gateway shares one among all its connections)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        if n > 0 and self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


FEED_SLICE = 16384
"""Bytes handed to the frame splitter at a time: a large read is parsed piece by piece, so
the splitter holds at most this plus one unfinished frame."""


class _Reassembly:
    __slots__ = ("asked", "header", "last", "parts", "size")

    def __init__(self, header: Header, now: float) -> None:
        self.header = header
        self.parts: dict[int, bytes] = {}
        self.size = 0
        self.last = now
        self.asked = False

    def missing(self) -> tuple[int, ...]:
        total = self.header.packet_total or 0
        return tuple(i for i in range(1, total + 1) if i not in self.parts)


class Jt808Connection:
    """One JT/T 808 connection's codec state (either side: the simulator uses it too).

    Args:
        max_frame: largest escaped frame accepted; longer ones become ``FrameError``.
        max_buffer: ``receive_data`` raises ``ProtocolError`` when more is pending unparsed.
        reassembly_timeout: seconds without progress before a reassembly is reported by
            ``expired``, and again before it is dropped.
        max_reassemblies: concurrent reassemblies; the stalest is dropped to make room.
        max_reassembly_bytes: total body bytes held for reassembly.
        strict_escape: reject illegal ``7D xx`` escapes instead of keeping them literally.
        reassemble: False drops subpackaged messages (a ``FrameError`` each) without holding
            anything: the gateway turns it on only once the terminal authenticated.
        budget: a ``ReassemblyBudget`` shared with other connections, or None.
    """

    __slots__ = ("_held", "_input", "_input_size", "_next_serial", "_now", "_reassemblies",
                 "_splitter", "budget", "closed", "dropped_reassemblies", "last_serial",
                 "max_buffer", "max_reassemblies", "max_reassembly_bytes", "reassemble",
                 "reassembly_timeout", "strict_escape", "version2019")

    def __init__(self, max_frame: int = 8192, max_buffer: int = 65536,
                 reassembly_timeout: float = 30.0, *, max_reassemblies: int = 8,
                 max_reassembly_bytes: int = 8 * 1024 * 1024, strict_escape: bool = False,
                 reassemble: bool = True, budget: ReassemblyBudget | None = None) -> None:
        self.max_buffer = max_buffer
        self.reassembly_timeout = reassembly_timeout
        self.max_reassemblies = max_reassemblies
        self.max_reassembly_bytes = max_reassembly_bytes
        self.strict_escape = strict_escape
        self.reassemble = reassemble
        self.budget = budget
        self.last_serial: int | None = None
        self.version2019: bool | None = None  # edition of the last good frame received
        self.closed = False
        self.dropped_reassemblies = 0
        self._splitter = FrameSplitter(max_frame)
        self._now = 0.0
        self._next_serial = 0
        self._reassemblies: dict[tuple[int, int], _Reassembly] = {}
        self._held = 0
        self._input: list[bytes] = []
        self._input_size = 0

    @property
    def garbage_bytes(self) -> int:
        """Bytes skipped outside frames so far."""
        return self._splitter.garbage

    @property
    def reassembly_bytes(self) -> int:
        return self._held

    @property
    def unparsed(self) -> int:
        """Bytes received and not yet cut into frames."""
        return self._input_size + len(self._splitter.buffer)

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """Feed bytes from the peer; ``b""`` means EOF. Any amount may come at once: it is
        parsed piece by piece by ``next_event``.

        Raises:
            ProtocolError: data after EOF, or more than ``max_buffer`` bytes were still
                unparsed when more came (the caller feeds without draining ``next_event``).
        """
        self._now = now
        if not data:
            self.closed = True
            return
        if self.closed:
            raise ProtocolError("data after EOF")
        if self._input_size > self.max_buffer:
            self._input.clear()
            self._input_size = 0
            raise FrameTooLarge("buffer overflow (data fed faster than it is parsed)")
        self._input.append(bytes(data))
        self._input_size += len(data)

    def _feed_slice(self) -> bool:
        """Move the next slice of received bytes into the splitter; False if none is left."""
        if not self._input:
            return False
        head = self._input[0]
        if len(head) <= FEED_SLICE:
            self._input.pop(0)
        else:
            self._input[0] = head[FEED_SLICE:]
            head = head[:FEED_SLICE]
        self._input_size -= len(head)
        self._splitter.feed(head)
        return True

    def release(self) -> None:
        """Forget unfinished reassemblies and unparsed bytes (the connection is gone)."""
        for key in list(self._reassemblies):
            self._drop(key)
        self._input.clear()
        self._input_size = 0
        self._splitter.buffer.clear()

    def next_event(self) -> Message | FrameError | _NeedData:
        """The next decoded message or dropped frame, or ``NEED_DATA``."""
        while True:
            try:
                frame = self._splitter.next_frame()
            except FrameTooLarge as exc:
                return FrameError(str(exc), b"")
            if frame is None:
                if self._feed_slice():
                    continue
                if self.closed:
                    rest = self._splitter.pending()
                    for key in list(self._reassemblies):  # a half-sent message never surfaces
                        self._drop(key)
                    if rest:
                        return FrameError("truncated frame at EOF", rest)
                return NEED_DATA
            event = self._decode_frame(frame)
            if event is not None:
                return event

    def _decode_frame(self, frame: bytes) -> Message | FrameError | None:
        raw = b"\x7e" + frame + b"\x7e"
        header = None
        try:
            payload = unescape(frame, strict=self.strict_escape)
            if len(payload) < 13:
                raise ProtocolError(f"frame of {len(payload)} bytes is too short")
            if checksum(payload[:-1]) != payload[-1]:
                return FrameError("bad checksum", raw)
            header, body = parse_header(payload[:-1])
            self.version2019 = header.version2019
            if header.packet_total is not None and header.packet_total > 1 \
                    and not self.reassemble:
                return FrameError("subpackaged message before authentication (dropped)",
                                  raw[:64], header)
            if header.packet_total is not None:
                reassembled = self._add_part(header, body)
                if reassembled is None:
                    return None
                header, body = reassembled
            if header.encryption:
                return Message(header, UnknownMessage(header.msg_id, body))
            return Message(header, decode_body(header.msg_id, body, header.version2019))
        except ProtocolError as exc:
            return FrameError(str(exc), raw, header, exc.reply_result)

    def _add_part(self, header: Header, body: bytes) -> tuple[Header, bytes] | None:
        total, index = header.packet_total or 0, header.packet_index or 0
        if not 1 <= index <= total:
            raise ProtocolError(f"packet {index} of {total}", reply_result=Result.MESSAGE_ERROR)
        first = replace(header, serial=(header.serial - index + 1) & 0xFFFF, packet_index=1)
        key = (header.msg_id, total)
        entry = self._reassemblies.get(key)
        if entry is not None and index in entry.parts and entry.header.serial != first.serial:
            self._drop(key)  # a new message with the same id replaces a stale one
            entry = None
        if entry is None:
            if total == 1:
                return replace(header, packet_total=None, packet_index=None), body
            while len(self._reassemblies) >= self.max_reassemblies:
                self._drop(min(self._reassemblies, key=lambda k: self._reassemblies[k].last))
            entry = self._reassemblies[key] = _Reassembly(first, self._now)
        if index == 1:
            entry.header = header
        delta = len(body) - len(entry.parts.get(index, b""))
        if self._held + delta > self.max_reassembly_bytes:
            self._drop(key)
            raise ProtocolError("reassembly exceeds the connection's byte budget")
        if self.budget is not None and not self.budget.take(delta):
            self._drop(key)
            raise ProtocolError("reassembly memory of the gateway is exhausted")
        self._held += delta
        entry.size += delta
        entry.parts[index] = body
        entry.last = self._now
        if len(entry.parts) < total:
            return None
        del self._reassemblies[key]
        self._held -= entry.size
        if self.budget is not None:
            self.budget.give(entry.size)
        merged = b"".join(entry.parts[i] for i in range(1, total + 1))
        return replace(entry.header, packet_total=None, packet_index=None), merged

    def _drop(self, key: tuple[int, int]) -> None:
        entry = self._reassemblies.pop(key)
        self._held -= entry.size
        if self.budget is not None:
            self.budget.give(entry.size)
        self.dropped_reassemblies += 1

    def expired(self, now: float) -> list[ResendNeeded]:
        """Reassemblies idle for ``reassembly_timeout``: reported once, dropped the next time."""
        out: list[ResendNeeded] = []
        for key, entry in list(self._reassemblies.items()):
            if now - entry.last < self.reassembly_timeout:
                continue
            if entry.asked:
                self._drop(key)
            else:
                entry.asked, entry.last = True, now
                out.append(ResendNeeded(entry.header, entry.missing()))
        return out

    def send(self, body_message: Any, *, phone: str, version2019: bool,
             protocol_version: int = 1, msg_id: int | None = None) -> bytes:
        """Encode a body into wire bytes with the next serial(s), subpackaged over 1023 bytes.

        ``last_serial`` becomes the serial of the first (usually only) packet.

        Raises:
            ProtocolError: a field does not fit its wire type.
        """
        encoded_id, body = encode_body(body_message, version2019)
        chunks = [body[i:i + MAX_BODY] for i in range(0, len(body), MAX_BODY)] or [b""]
        total = len(chunks) if len(chunks) > 1 else None
        if total is not None and total > 0xFFFF:
            raise ProtocolError(f"body of {len(body)} bytes is too long even subpackaged")
        frames = []
        for index, chunk in enumerate(chunks, start=1):
            serial = self._next_serial
            self._next_serial = (serial + 1) & 0xFFFF
            if index == 1:
                self.last_serial = serial
            header = Header(msg_id if msg_id is not None else encoded_id, phone, serial,
                            version2019, protocol_version, 0, total,
                            index if total is not None else None)
            frames.append(wrap(encode_header(header, len(chunk)) + chunk))
        return b"".join(frames)
