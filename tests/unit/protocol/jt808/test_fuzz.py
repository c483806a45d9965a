"""Property tests: random and mutated input only ever yields ProtocolError or FrameError."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import NEED_DATA, FrameError, Jt808Connection, Message
from fleetcam.protocol.jt808.framing import escape, unescape, wrap
from fleetcam.protocol.jt808.messages import DECODERS, decode_body

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt808.json").read_text("utf-8"))
FRAMES = [bytes.fromhex(h) for v in VECTORS
          for h in ([v["hex"]] if isinstance(v["hex"], str) else v["hex"])]
IDS = sorted(DECODERS)
MAX_BUFFER = 4096


def feed(conn: Jt808Connection, chunks: list[bytes], now: float = 0.0) -> None:
    """Feed and drain like the gateway does; only codec errors may escape receive_data."""
    for chunk in chunks:
        try:
            conn.receive_data(chunk, now)
        except ProtocolError:
            return  # the gateway closes the connection
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, (Message, FrameError))
        assert len(conn._splitter.buffer) <= MAX_BUFFER
        assert conn.reassembly_bytes <= conn.max_reassembly_bytes
        assert len(conn._reassemblies) <= conn.max_reassemblies
        conn.expired(now + 1000)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_random_bytes(chunks: list[bytes]) -> None:
    feed(Jt808Connection(max_frame=2048, max_buffer=MAX_BUFFER), chunks + [b""])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real frame with a few bytes flipped, inserted or deleted (often still delimited)."""
    data = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data.insert(pos, draw(st.sampled_from([0x7E, 0x7D, 0x00, 0xFF])))
        elif action == "delete" and len(data) > 2:
            del data[pos]
        else:
            data = data[:max(pos, 1)]
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=5))
def test_mutated_real_frames(frames: list[bytes]) -> None:
    feed(Jt808Connection(max_frame=8192, max_buffer=MAX_BUFFER * 4), frames + [b""])


@st.composite
def resealed(draw: st.DrawFn) -> bytes:
    """A real frame with its payload mutated and the check code recomputed: reaches decoders."""
    frame = draw(st.sampled_from(FRAMES))
    payload = bytearray(unescape(frame[1:-1])[:-1])
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(payload) - 1))
        payload[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(12, len(payload)))
    return wrap(bytes(payload[:cut]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(resealed(), min_size=1, max_size=5))
def test_resealed_frames(frames: list[bytes]) -> None:
    feed(Jt808Connection(max_frame=8192, max_buffer=MAX_BUFFER * 4), frames)


@settings(max_examples=600)
@given(st.sampled_from(IDS), st.binary(max_size=300), st.booleans())
def test_decode_body_random(msg_id: int, body: bytes, version2019: bool) -> None:
    try:
        decode_body(msg_id, body, version2019)
    except ProtocolError:
        pass


@pytest.mark.parametrize("msg_id", IDS, ids=hex)
def test_decode_body_every_prefix_of_a_plausible_body(msg_id: int) -> None:
    body = bytes(range(1, 200))
    for size in range(len(body)):
        for version2019 in (False, True):
            try:
                decode_body(msg_id, body[:size], version2019)
            except ProtocolError:
                pass


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(1, 0xFFFF),
                          st.integers(1, 0xFFFF)), max_size=40))
def test_reassembly_memory_is_bounded(parts: list[tuple[int, int, int]]) -> None:
    conn = Jt808Connection(max_reassemblies=4, max_reassembly_bytes=20_000)
    wire = []
    for msg_id, total, index in parts:
        head = (msg_id.to_bytes(2, "big") + (0x2000 | 1000).to_bytes(2, "big") + bytes(6)
                + b"\x00\x01" + total.to_bytes(2, "big") + index.to_bytes(2, "big"))
        wire.append(wrap(head + bytes(1000)))
    feed(conn, wire)
    assert conn.reassembly_bytes <= 20_000


def test_escape_helpers_accept_anything() -> None:
    assert unescape(escape(bytes(range(256)))) == bytes(range(256))
