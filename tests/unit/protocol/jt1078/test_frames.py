"""Jt1078Decoder.frames: the same events, assembler state and errors as next_event + push."""
from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078 import (
    NEED_DATA,
    DataType,
    FrameAssembler,
    Jt1078Decoder,
    MediaFrame,
    Packet,
    PacketError,
    Subpackage,
    encode_packet,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIMS = ["013900000001", "013900000002", "00001390000000000003"]  # two BCD[6], one BCD[10]


def _reference(chunks: list[bytes], decoder: Jt1078Decoder, assembler: FrameAssembler) -> Any:
    out: list[Any] = []
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while (event := decoder.next_event()) is not NEED_DATA:
                if isinstance(event, PacketError):
                    out.append(event)
                elif (result := assembler.push(event)) is not None:  # type: ignore[arg-type]
                    out.append(result)
    except ProtocolError as e:
        out.append((type(e), str(e)))
    return out


def _fused(chunks: list[bytes], decoder: Jt1078Decoder, assembler: FrameAssembler) -> Any:
    out: list[Any] = []
    try:
        for chunk in chunks:
            out.extend(decoder.frames(chunk, assembler))
    except ProtocolError as e:
        out.append((type(e), str(e)))
    return out


def _state(decoder: Jt1078Decoder, assembler: FrameAssembler) -> Any:
    partials = {
        k: (p.sim, p.channel, p.data_type, p.payload_type, p.timestamp, b"".join(p.chunks),
            p.size, p.last_seq)
        for k, p in assembler._partials.items()
    }
    return (decoder.buffered, decoder.closed, decoder._garbage, decoder._reason,
            list(partials.items()), assembler._skipping, assembler._last_seq, assembler.dropped)


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    """Interleaved frames of a few streams, then packets lost, reordered or damaged."""
    seqs = dict.fromkeys(SIMS, draw(st.integers(0, 0xFFFF)))
    packets: list[bytes] = []
    for _ in range(draw(st.integers(1, 12))):
        sim = draw(st.sampled_from(SIMS))
        dt = draw(st.sampled_from([DataType.I_FRAME, DataType.P_FRAME, DataType.P_FRAME,
                                   DataType.B_FRAME, DataType.AUDIO, DataType.TRANSPARENT]))
        count = draw(st.integers(1, 5))
        ts = None if dt is DataType.TRANSPARENT else draw(st.integers(0, 3))
        for i in range(count):
            sub = (Subpackage.ATOMIC if count == 1 else Subpackage.FIRST if i == 0
                   else Subpackage.LAST if i == count - 1 else Subpackage.MIDDLE)
            if draw(st.integers(0, 5)) == 0:
                sub = draw(st.sampled_from(Subpackage))
            video = dt <= DataType.B_FRAME
            size = draw(st.integers(0, 40))  # binary() alone mostly draws a few bytes
            packets.append(encode_packet(Packet(
                payload_type=98, marker=sub in (Subpackage.ATOMIC, Subpackage.LAST),
                sequence=seqs[sim], sim=sim, channel=draw(st.integers(1, 2)), data_type=dt,
                subpackage=sub, timestamp=ts, last_i_interval=0 if video else None,
                last_frame_interval=40 if video else None,
                payload=draw(st.binary(min_size=size, max_size=size)))))
            seqs[sim] = (seqs[sim] + draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 0]))) & 0xFFFF
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["lose", "swap", "garbage", "flip", "cut"]))
        i = draw(st.integers(0, len(packets) - 1))
        j = draw(st.integers(0, len(packets) - 1))
        if action == "lose":
            del packets[i]
        elif action == "swap":
            packets[i], packets[j] = packets[j], packets[i]
        elif action == "garbage":
            packets.insert(i, draw(st.binary(min_size=1, max_size=30)))
        elif action == "flip" and packets[i]:
            p = bytearray(packets[i])
            at = draw(st.integers(0, len(p) - 1))
            p[at] = draw(st.integers(0, 255))
            packets[i] = bytes(p)
        elif action == "cut":
            packets[i] = packets[i][: draw(st.integers(0, len(packets[i])))]
        if not packets:
            break
    return b"".join(packets)


@FUZZ
@given(_streams(), st.lists(st.integers(min_value=0), max_size=8), st.booleans(),
       st.sampled_from([(4096, 64, 64), (300, 60, 2), (1 << 20, 4 << 20, 1)]))
def test_frames_matches_next_event_and_push(
    data: bytes, cuts: list[int], eof: bool, limits: tuple[int, int, int]
) -> None:
    max_buffer, max_frame, max_partials = limits
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in pairwise(bounds)] + ([b""] if eof else [])
    runs = []
    for run in (_reference, _fused):
        decoder = Jt1078Decoder(max_buffer=max_buffer)
        assembler = FrameAssembler(max_frame_bytes=max_frame, max_partials=max_partials)
        runs.append((run(chunks, decoder, assembler), _state(decoder, assembler)))
    assert runs[0] == runs[1]


def test_frames_of_an_in_order_stream() -> None:
    sim, frames = SIMS[0], []
    for k in range(3):
        bodies = [bytes([k, i]) * 400 for i in range(3)]
        frames.append(b"".join(bodies))
        for i, body in enumerate(bodies):
            sub = (Subpackage.FIRST, Subpackage.MIDDLE, Subpackage.LAST)[i]
            frames.append(encode_packet(Packet(98, i == 2, k * 3 + i, sim, 1, DataType.P_FRAME,
                                               sub, 1000 + k, 0, 40, body)))
    whole, wire = frames[0::4], b"".join(f for i, f in enumerate(frames) if i % 4)
    out: list[Any] = list(Jt1078Decoder().frames(wire, FrameAssembler()))
    assert [f.data for f in out] == whole
    assert all(isinstance(f, MediaFrame) and f.sim == sim and f.timestamp == 1000 + k
               and f.data_type is DataType.P_FRAME and f.payload_type == 98
               for k, f in enumerate(out))


def test_frames_forgets_sims_like_push() -> None:
    """Past 1024 SIMs the shared-counter memory starts again, on both paths alike."""
    wire = b"".join(
        encode_packet(Packet(98, True, i, f"0139{i:08d}", 1, DataType.P_FRAME,
                             Subpackage.ATOMIC, i, 0, 40, b"x"))
        for i in range(1100)
    )
    runs = []
    for run in (_reference, _fused):
        decoder, assembler = Jt1078Decoder(), FrameAssembler()
        runs.append((run([wire[:50_000], wire[50_000:]], decoder, assembler),
                     _state(decoder, assembler)))
    assert runs[0] == runs[1]
    assert len(runs[1][0]) == 1100 and len(runs[1][1][6]) == 1100 - 1024


def test_frames_after_a_frame_ends() -> None:
    """A middle packet right after its stream's last one is an orphan, not a continuation."""
    subs = [Subpackage.FIRST, Subpackage.LAST, Subpackage.MIDDLE, Subpackage.LAST,
            Subpackage.ATOMIC, Subpackage.MIDDLE]
    wire = b"".join(
        encode_packet(Packet(98, False, i, SIMS[0], 1, DataType.I_FRAME, sub, 7, 0, 40,
                             bytes([i]) * 10))
        for i, sub in enumerate(subs)
    )
    runs = []
    for run in (_reference, _fused):
        decoder, assembler = Jt1078Decoder(), FrameAssembler()
        runs.append((run([wire], decoder, assembler), _state(decoder, assembler)))
    assert runs[0] == runs[1]
    kinds = [type(e).__name__ for e in runs[1][0]]
    assert kinds == ["MediaFrame", "FrameDropped", "MediaFrame", "FrameDropped"]
