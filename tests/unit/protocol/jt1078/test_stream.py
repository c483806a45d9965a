"""Jt1078Decoder: packets from arbitrary read boundaries, garbage runs, EOF and the buffer cap."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError
from fleetcam.protocol.jt1078 import NEED_DATA, Jt1078Decoder, Packet, PacketError, parse_packet

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt1078.json").read_text())
REAL = [bytes.fromhex(v["hex"]) for v in VECTORS["packets"]] + [
    bytes.fromhex(h) for f in VECTORS["frames"] for h in f["packets"]
]


def _events(decoder: Jt1078Decoder, chunks: list[bytes]) -> list[Packet | PacketError]:
    out: list[Packet | PacketError] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        while (event := decoder.next_event()) is not NEED_DATA:
            out.append(event)
    return out


def _chop(data: bytes, rng: random.Random, max_len: int = 700) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, max_len)
        chunks.append(data[i : i + n])
        i += n
    return chunks


def _packets(raws: list[bytes]) -> list[Packet]:
    return [(parse_packet(r) or pytest.fail("incomplete"))[0] for r in raws]


@pytest.mark.parametrize("seed", range(5))
def test_real_stream_chopped_at_random_boundaries(seed: int) -> None:
    stream = b"".join(REAL)
    events = _events(Jt1078Decoder(), _chop(stream, random.Random(seed)))
    assert events == _packets(REAL)


def test_one_byte_reads() -> None:
    stream = b"".join(REAL[:4])
    assert _events(Jt1078Decoder(), [stream[i : i + 1] for i in range(len(stream))]) == _packets(
        REAL[:4]
    )


def test_garbage_runs_are_reported_once_each_before_the_next_packet() -> None:
    a, b = REAL[0], REAL[1]
    garbage1 = b"\xff" * 1000 + b"01c" + b"\x00" * 7  # holds a header prefix, never completed
    garbage2 = b"hello 0"
    stream = garbage1 + a + garbage2 + b
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        events = _events(Jt1078Decoder(), chunks)
        assert [type(e) for e in events] == [PacketError, Packet, PacketError, Packet]
        assert events[0].skipped_bytes == len(garbage1)
        assert events[2].skipped_bytes == len(garbage2)
        assert events[1] == _packets([a])[0] and events[3] == _packets([b])[0]


def test_false_header_inside_garbage_joins_the_same_run() -> None:
    bad_header = b"01cd\x81\xe2\x00\x01\x01\x23\x45\x67\x89\x99\x01\x55"  # data type 5
    garbage = b"junk" + bad_header + b"more junk"
    events = _events(Jt1078Decoder(), [garbage + REAL[2]])
    assert events == [PacketError(events[0].reason, len(garbage)), _packets([REAL[2]])[0]]
    assert "junk" not in events[0].reason  # the reason is ours, never echoed data


def test_damaged_length_resynchronises_on_the_next_packet() -> None:
    broken = REAL[0][:28] + b"\xff\xff" + REAL[0][30:]  # body length 65535 > 950
    events = _events(Jt1078Decoder(), [broken + REAL[1]])
    assert isinstance(events[0], PacketError) and events[0].skipped_bytes == len(broken)
    assert events[1:] == _packets([REAL[1]])


def test_eof_reports_a_truncated_tail_then_is_closed() -> None:
    decoder = Jt1078Decoder()
    events = _events(decoder, [REAL[0] + REAL[1][:20], b""])
    assert events[0] == _packets([REAL[0]])[0]
    assert events[1] == PacketError("truncated packet at end of stream", 20)
    assert decoder.next_event() is NEED_DATA and decoder.closed
    with pytest.raises(ProtocolError):
        decoder.receive_data(b"more")


def test_clean_eof() -> None:
    decoder = Jt1078Decoder()
    assert decoder.next_event() is NEED_DATA
    assert _events(decoder, [REAL[0], b""]) == _packets([REAL[0]])
    assert decoder.closed and decoder.buffered == 0


def test_garbage_flood_without_a_header_hits_the_cap() -> None:
    decoder = Jt1078Decoder(max_buffer=4096)
    with pytest.raises(ProtocolError):
        _events(decoder, [b"\x55" * 1000] * 5)


def test_undrained_input_hits_the_cap() -> None:
    decoder = Jt1078Decoder(max_buffer=1000)
    decoder.receive_data(REAL[4] * 2)
    with pytest.raises(FrameTooLarge):
        decoder.receive_data(REAL[4])


def test_memory_stays_bounded_while_draining() -> None:
    decoder = Jt1078Decoder(max_buffer=2048)
    rng = random.Random(7)
    for chunk in _chop(b"".join(REAL) * 20, rng, max_len=1500):
        decoder.receive_data(chunk)
        while decoder.next_event() is not NEED_DATA:
            pass
        assert decoder.buffered < 1000  # never more than one partial packet
