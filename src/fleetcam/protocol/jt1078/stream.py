"""Sans-IO JT/T 1078 media stream decoder: bytes in, ``Packet``/``PacketError`` events out."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from struct import Struct
from typing import Any, Final, Literal

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError
from fleetcam.protocol.jt1078 import packet as _packet
from fleetcam.protocol.jt1078.packet import MAGIC, MAX_PAYLOAD, DataType, Packet, parse_packet
from fleetcam.protocol.jt1078.reassembly import (
    _MAX_SIMS,
    FrameAssembler,
    FrameDropped,
    MediaFrame,
    _new_frame,
    _Partial,
)


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

_COMMON = Struct(">IxBH6sBBQ4xH")
"""The common packet's 30-byte header: a video packet with a BCD[6] SIM (label1 and the
frame intervals skipped)."""
_VIDEO_LABEL3 = tuple(
    (DataType(b >> 4), b & 0x0F) if b >> 4 <= 2 and b & 0x0F <= 3 else None for b in range(256)
)
"""label3 byte → (data type, subpackage) of a video packet; None for anything else."""


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

    def frames(
        self, data: bytes | bytearray | memoryview, assembler: FrameAssembler
    ) -> Iterator[MediaFrame | FrameDropped | PacketError]:
        """``receive_data(data)``, then every packet through ``assembler.push``: yields each
        ``PacketError`` and each result of ``push`` that is not None, in stream order.

        Exactly what the ``next_event``/``push`` loop gives (events, assembler state and
        exceptions alike), faster: a video packet with a 6-byte SIM that continues its frame
        in order is parsed and assembled in place, without a ``Packet``. Anything else (audio,
        garbage, a gap, a split packet...) goes through ``next_event`` and ``push``.

        Run it to the end before the next call (it holds on to the received bytes).

        Raises:
            ProtocolError: as ``receive_data`` and ``next_event`` do; what was yielded before
                stays delivered.
        """
        self.receive_data(data)
        buf = self._buf  # receive_data is the only place that replaces it
        n = len(buf)
        max_payload = self._max_payload
        push = assembler.push
        partials = assembler._partials
        skipping = assembler._skipping
        last_seq = assembler._last_seq
        max_frame = assembler.max_frame_bytes
        max_partials = assembler.max_partials
        sims = _packet._SIMS
        unpack = _COMMON.unpack_from
        video_label3 = _VIDEO_LABEL3
        # Any: mypy cannot follow which branch set them (the run cache below).
        sim: Any
        key: Any
        partial: Any
        run: Any
        run_key: Any
        while True:
            pos = self._pos
            # The common case. Every check that could make push do anything other than
            # extend or finish a frame comes before any state changes: on doubt, break and
            # let next_event and push handle this packet.
            # ``run`` is the frame the previous packet of this loop started or extended: a
            # packet of the same SIM and channel right after it needs no lookups.
            run_sim = run_key = run = None
            run_channel = -1
            # Only whole headers, and not while a garbage run waits to be reported (only
            # next_event changes that).
            last_start = -1 if self._garbage else n - 30
            while pos <= last_start:
                magic, label2, seq, raw_sim, channel, label3, ts, length = unpack(buf, pos)
                kind = video_label3[label3]
                if magic != 0x30316364 or kind is None or length > max_payload:
                    break
                end = pos + 30 + length
                if end > n:
                    break
                data_type, sub = kind
                if sub >= 2 and raw_sim == run_sim and channel == run_channel:
                    partial = run
                    # The SIM's last packet is run's last one: no shared-counter case.
                    if (
                        data_type is not partial.data_type
                        or ts != partial.timestamp
                        or partial.size + length > max_frame
                        or seq != (partial.last_seq + 1) & 0xFFFF
                    ):
                        break
                    key = run_key
                    last_seq[partial.sim] = seq
                else:
                    sim = sims.get(raw_sim)  # its 6-byte keys are SIMs read as BCD[6]
                    if sim is None:
                        if raw_sim.startswith(b"\0\0"):
                            break  # the BCD[10] form
                        sim = _packet._sim_text(raw_sim)
                    key = (sim, channel, 0)
                    prev_any = last_seq.get(sim)
                    if sub == 0:  # ATOMIC
                        if key in partials:
                            break
                    elif sub == 1:  # FIRST
                        if key in partials or len(partials) >= max_partials:
                            break
                    else:  # LAST or MIDDLE
                        partial = partials.get(key)
                        if (
                            partial is None
                            or data_type is not partial.data_type
                            or ts != partial.timestamp
                            or partial.size + length > max_frame
                            or (
                                seq != (partial.last_seq + 1) & 0xFFFF
                                and (prev_any is None or seq != (prev_any + 1) & 0xFFFF)
                            )
                        ):
                            break
                    if prev_any is None and len(last_seq) >= _MAX_SIMS:
                        last_seq.clear()
                    last_seq[sim] = seq
                body = buf[pos + 30 : end]
                pos = end
                if sub == 0:
                    run_sim = None
                    if skipping:
                        skipping.discard(key)
                    self._pos = pos
                    yield _new_frame(sim, channel, data_type, label2 & 0x7F, ts, body)
                elif sub == 1:
                    if skipping:
                        skipping.discard(key)
                    run = partials[key] = _Partial(
                        sim, channel, data_type, label2 & 0x7F, ts, body, seq
                    )
                    run_sim, run_channel, run_key = raw_sim, channel, key
                else:
                    partial.size += length
                    partial.chunks.append(body)
                    partial.last_seq = seq
                    if sub == 3:  # MIDDLE
                        run, run_sim, run_channel, run_key = partial, raw_sim, channel, key
                    else:  # LAST
                        run_sim = None
                        del partials[key]
                        self._pos = pos
                        yield _new_frame(
                            partial.sim, channel, data_type, partial.payload_type, ts,
                            b"".join(partial.chunks),
                        )
            self._pos = pos
            event = self.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, PacketError):
                yield event
            elif (out := push(event)) is not None:  # type: ignore[arg-type]
                yield out

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
