"""Property tests: random and mutated bytes only ever raise ProtocolError; round trips hold."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078 import (
    NEED_DATA,
    DataType,
    FrameAssembler,
    FrameDropped,
    Jt1078Decoder,
    MediaFrame,
    Packet,
    PacketError,
    Subpackage,
    encode_packet,
    parse_packet,
)

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt1078.json").read_text())
STREAM = b"".join(bytes.fromhex(v["hex"]) for v in VECTORS["packets"]) + b"".join(
    bytes.fromhex(h) for f in VECTORS["frames"] for h in f["packets"]
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(data: bytes, cuts: list[int]) -> None:
    """Feed ``data`` cut at ``cuts`` then EOF; check every event and the assembler."""
    decoder = Jt1078Decoder(max_buffer=4096)
    assembler = FrameAssembler(max_frame_bytes=64 * 1024)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])] + [b""]
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while (event := decoder.next_event()) is not NEED_DATA:
                assert isinstance(event, (Packet, PacketError))
                if isinstance(event, Packet):
                    result = assembler.push(event)
                    assert result is None or isinstance(result, (MediaFrame, FrameDropped))
                else:
                    assert event.skipped_bytes > 0
    except ProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=6000), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes(data: bytes, cuts: list[int]) -> None:
    _run(data, cuts)


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_after_a_header(data: bytes, cuts: list[int]) -> None:
    _run(b"01cd\x81\xe2" + data, cuts)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(STREAM)
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "magic"]))
        if action == "flip":
            data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(min_value=1, max_value=40))]
        else:
            data[pos:pos] = b"01cd"
    return bytes(data)


@FUZZ
@given(_mutated(), st.lists(st.integers(min_value=0), max_size=8))
def test_mutated_real_stream(data: bytes, cuts: list[int]) -> None:
    _run(data, cuts)


@FUZZ
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=210))
def test_parse_packet_on_random_bytes(data: bytes, offset: int) -> None:
    for buf, at in ((b"01cd" + data, 0), (data, min(offset, len(data)))):
        try:
            result = parse_packet(buf, at)
        except ProtocolError:
            continue
        assert result is None or (isinstance(result[0], Packet) and at < result[1] <= len(buf))


_SIMS = st.one_of(
    st.from_regex(r"\A[1-9][0-9]{11}\Z"), st.from_regex(r"\A0000[1-9][0-9]{15}\Z")
)


@st.composite
def _packets(draw: st.DrawFn) -> Packet:
    dt = draw(st.sampled_from(DataType))
    video = dt in (DataType.I_FRAME, DataType.P_FRAME, DataType.B_FRAME)
    u16 = st.integers(min_value=0, max_value=0xFFFF)
    return Packet(
        payload_type=draw(st.integers(min_value=0, max_value=127)),
        marker=draw(st.booleans()),
        sequence=draw(u16),
        sim=draw(_SIMS),
        channel=draw(st.integers(min_value=0, max_value=255)),
        data_type=dt,
        subpackage=draw(st.sampled_from(Subpackage)),
        timestamp=None
        if dt is DataType.TRANSPARENT
        else draw(st.integers(min_value=0, max_value=2**64 - 1)),
        last_i_interval=draw(u16) if video else None,
        last_frame_interval=draw(u16) if video else None,
        payload=draw(st.binary(max_size=950)),
    )


@FUZZ
@given(st.lists(_packets(), min_size=1, max_size=5), st.lists(st.integers(min_value=0), max_size=6))
def test_round_trip_through_the_stream_decoder(packets: list[Packet], cuts: list[int]) -> None:
    data = b"".join(encode_packet(p) for p in packets)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    decoder = Jt1078Decoder()
    events = []
    for a, b in zip(bounds, bounds[1:]):
        decoder.receive_data(data[a:b])
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)
    assert events == packets
