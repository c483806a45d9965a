"""Reassemble JT/T 1078 sub-packages (FIRST, MIDDLE..., LAST) into whole media frames."""
from __future__ import annotations

from dataclasses import dataclass

from fleetcam.protocol.jt1078.packet import DataType, Packet, Subpackage

_ATOMIC, _FIRST, _MIDDLE = Subpackage.ATOMIC, Subpackage.FIRST, Subpackage.MIDDLE
_VIDEO, _AUDIO, _TRANSPARENT = 0, 1, 2
_CLASS = {
    DataType.I_FRAME: _VIDEO,
    DataType.P_FRAME: _VIDEO,
    DataType.B_FRAME: _VIDEO,
    DataType.AUDIO: _AUDIO,
    DataType.TRANSPARENT: _TRANSPARENT,
}
_MAX_SIMS = 1024


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """A whole video frame (Annex-B NAL units for H.264/H.265), audio frame or data block.

    Attributes:
        sim: the packets' SIM digits.
        channel: logical channel.
        data_type: the data type of the frame's first packet.
        payload_type: PT (``PayloadType.H264`` ...).
        timestamp: ms, as sent by the device; None for transparent data.
        data: the concatenated bodies.
    """

    sim: str
    channel: int
    data_type: DataType
    payload_type: int
    timestamp: int | None
    data: bytes


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """A partial frame that was discarded instead of being emitted corrupted.

    Attributes:
        sim: SIM digits.
        channel: logical channel.
        data_type: data type of the dropped frame (or of the orphan packet).
        reason: what broke it (sequence gap, missing first packet, disconnect, ...).
        packets: how many of its packets had arrived.
        size: how many body bytes had arrived.
    """

    sim: str
    channel: int
    data_type: DataType
    reason: str
    packets: int
    size: int


class _Partial:
    """A frame under assembly: its first packet's fields, the bodies so far."""

    __slots__ = ("channel", "chunks", "data_type", "last_seq", "payload_type", "sim", "size",
                 "timestamp")

    def __init__(self, sim: str, channel: int, data_type: DataType, payload_type: int,
                 timestamp: int | None, payload: bytes, sequence: int) -> None:
        self.sim = sim
        self.channel = channel
        self.data_type = data_type
        self.payload_type = payload_type
        self.timestamp = timestamp
        self.chunks = [payload]
        self.size = len(payload)
        self.last_seq = sequence


_new = object.__new__
_SET_SIM, _SET_CHANNEL, _SET_DATA_TYPE, _SET_PAYLOAD_TYPE, _SET_TIMESTAMP, _SET_DATA = (
    MediaFrame.__dict__[name].__set__
    for name in ("sim", "channel", "data_type", "payload_type", "timestamp", "data")
)


def _new_frame(sim: str, channel: int, data_type: DataType, payload_type: int,
               timestamp: int | None, data: bytes) -> MediaFrame:
    """``MediaFrame(...)`` in half the time: the frozen ``__init__`` goes through
    ``object.__setattr__`` per field, this sets the slots directly (one frame per packet run)."""
    frame = _new(MediaFrame)
    _SET_SIM(frame, sim)
    _SET_CHANNEL(frame, channel)
    _SET_DATA_TYPE(frame, data_type)
    _SET_PAYLOAD_TYPE(frame, payload_type)
    _SET_TIMESTAMP(frame, timestamp)
    _SET_DATA(frame, data)
    return frame


_Key = tuple[str, int, int]


class FrameAssembler:
    """Turn a packet sequence into frames; never emits a frame with a missing piece.

    State is kept per (sim, channel, video/audio/transparent). A continuation packet must
    follow its predecessor by sequence number; devices that share one counter between audio
    and video are handled by also accepting the successor of the SIM's last packet.

    Args:
        max_frame_bytes: a frame growing beyond this is dropped (bounds memory per stream).
        max_partials: at most this many frames under assembly; the oldest is dropped beyond.
    """

    def __init__(self, max_frame_bytes: int = 4 << 20, *, max_partials: int = 64) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_partials = max_partials
        self.dropped = 0
        """Every frame dropped so far, including those not returned by ``push``."""
        self._partials: dict[_Key, _Partial] = {}
        self._skipping: set[_Key] = set()
        self._last_seq: dict[str, int] = {}

    def push(self, p: Packet) -> MediaFrame | FrameDropped | None:
        """Add one packet.

        Returns:
            The completed frame; or a ``FrameDropped`` when this packet broke or orphaned a
            frame; or None while a frame is incomplete. When an ATOMIC packet completes a
            frame while a partial one was pending, the partial is dropped and only counted
            in ``dropped``.
        """
        key = (p.sim, p.channel, _CLASS[p.data_type])
        prev_any = self._last_seq.get(p.sim)
        if prev_any is None and len(self._last_seq) >= _MAX_SIMS:
            self._last_seq.clear()
        self._last_seq[p.sim] = p.sequence
        sub = p.subpackage
        if sub is _ATOMIC:
            if key in self._partials:
                self._drop(key, "superseded by a complete frame")
            self._skipping.discard(key)
            return _new_frame(
                p.sim, p.channel, p.data_type, p.payload_type, p.timestamp, p.payload
            )
        if sub is _FIRST:
            dropped = self._drop(key, "no last packet before the next frame")
            self._skipping.discard(key)
            if len(self._partials) >= self.max_partials:
                oldest = next(iter(self._partials))
                dropped = dropped or self._drop(oldest, "too many frames under assembly")
            self._partials[key] = _Partial(
                p.sim, p.channel, p.data_type, p.payload_type, p.timestamp, p.payload, p.sequence
            )
            return dropped
        partial = self._partials.get(key)
        if partial is None:
            if key in self._skipping:
                return None
            if len(self._skipping) >= _MAX_SIMS:
                self._skipping.clear()
            self._skipping.add(key)
            self.dropped += 1
            return FrameDropped(p.sim, p.channel, p.data_type, "no first packet", 1, len(p.payload))
        expected = (partial.last_seq + 1) & 0xFFFF
        if p.sequence != expected and (prev_any is None or p.sequence != (prev_any + 1) & 0xFFFF):
            return self._drop(key, "sequence gap", skip=True)
        if p.data_type is not partial.data_type or p.timestamp != partial.timestamp:
            return self._drop(key, "data type or timestamp changed inside a frame", skip=True)
        partial.size += len(p.payload)
        if partial.size > self.max_frame_bytes:
            return self._drop(key, f"frame exceeds {self.max_frame_bytes} bytes", skip=True)
        partial.chunks.append(p.payload)
        partial.last_seq = p.sequence
        if sub is _MIDDLE:
            return None
        del self._partials[key]
        data = b"".join(partial.chunks)
        return _new_frame(
            p.sim, p.channel, partial.data_type, partial.payload_type, partial.timestamp, data
        )

    def reset(self, channel: int | None = None, sim: str | None = None) -> list[FrameDropped]:
        """Forget partial frames (a disconnect); None matches every channel or SIM.

        Returns:
            One ``FrameDropped`` per discarded partial frame.
        """
        keys = [
            k
            for k in self._partials
            if (channel is None or k[1] == channel) and (sim is None or k[0] == sim)
        ]
        dropped = [d for k in keys if (d := self._drop(k, "stream reset")) is not None]
        # In place: Jt1078Decoder.frames holds on to this set while it runs.
        self._skipping.difference_update([
            k
            for k in self._skipping
            if (channel is None or k[1] == channel) and (sim is None or k[0] == sim)
        ])
        return dropped

    def _drop(self, key: _Key, reason: str, *, skip: bool = False) -> FrameDropped | None:
        partial = self._partials.pop(key, None)
        if skip:
            self._skipping.add(key)
        if partial is None:
            return None
        self.dropped += 1
        return FrameDropped(
            partial.sim, partial.channel, partial.data_type, reason, len(partial.chunks),
            partial.size,
        )
