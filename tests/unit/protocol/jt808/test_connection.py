"""Jt808Connection: events, send, subpackaging and reassembly, limits and EOF."""
from __future__ import annotations

from typing import Any

import pytest

from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import (
    NEED_DATA,
    FrameError,
    Jt808Connection,
    Message,
    MsgId,
    ResendNeeded,
    Result,
)
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808.connection import FEED_SLICE, ReassemblyBudget
from fleetcam.protocol.jt808.framing import wrap
from fleetcam.protocol.jt808.header import Header, encode_header

PHONE = "014419999999"
LIST = m.ResourceList(0x7B, tuple(m.ResourceItem(1, 1_700_000_000 + i, 1_700_000_600 + i, 0, 0,
                                                 1, 1, i) for i in range(60)))  # 1686 bytes


def drain(conn: Jt808Connection) -> list[Any]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def frame(msg_id: int, body: bytes, serial: int = 1, total: int | None = None,
          index: int | None = None, version2019: bool = False) -> bytes:
    header = Header(msg_id, PHONE, serial, version2019, packet_total=total, packet_index=index)
    return wrap(encode_header(header, len(body)) + body)


@pytest.mark.parametrize("version2019", [False, True])
def test_send_then_receive(version2019: bool) -> None:
    platform, terminal = Jt808Connection(), Jt808Connection()
    wire = platform.send(m.Snapshot(1, 1, 0, 0, 1), phone=PHONE, version2019=version2019)
    terminal.receive_data(wire)
    (event,) = drain(terminal)
    assert isinstance(event, Message)
    assert event.body == m.Snapshot(1, 1, 0, 0, 1)
    assert event.header.serial == platform.last_serial == 0
    assert event.header.msg_id == MsgId.SNAPSHOT
    assert event.header.version2019 is version2019
    assert terminal.version2019 is version2019


def test_general_response_id_override() -> None:
    conn = Jt808Connection()
    wire = conn.send(m.GeneralResponse(5, MsgId.SNAPSHOT, Result.SUCCESS), phone=PHONE,
                     version2019=False, msg_id=MsgId.TERMINAL_RESPONSE)
    peer = Jt808Connection()
    peer.receive_data(wire)
    (event,) = drain(peer)
    assert event.header.msg_id == MsgId.TERMINAL_RESPONSE


def test_serial_wraps() -> None:
    conn = Jt808Connection()
    conn._next_serial = 0xFFFF
    conn.send(m.Heartbeat(), phone=PHONE, version2019=False)
    assert conn.last_serial == 0xFFFF
    conn.send(m.Heartbeat(), phone=PHONE, version2019=False)
    assert conn.last_serial == 0


def test_long_body_is_subpackaged_and_reassembled() -> None:
    sender, receiver = Jt808Connection(), Jt808Connection()
    wire = sender.send(LIST, phone=PHONE, version2019=True)
    assert wire.count(b"\x7e") == 4  # two frames
    assert sender.last_serial == 0 and sender._next_serial == 2
    receiver.receive_data(wire)
    (event,) = drain(receiver)
    assert event.body == LIST
    assert event.header.serial == 0
    assert (event.header.packet_total, event.header.packet_index) == (None, None)


def _parts() -> list[bytes]:
    body = m.encode_body(LIST, False)[1]
    chunks = [body[:1023], body[1023:]]
    return [frame(MsgId.RESOURCE_LIST, c, serial=10 + i, total=2, index=i + 1)
            for i, c in enumerate(chunks)]


def test_parts_out_of_order_and_duplicated() -> None:
    first, second = _parts()
    conn = Jt808Connection()
    conn.receive_data(second + second, now=1.0)
    assert drain(conn) == []
    conn.receive_data(first, now=2.0)
    (event,) = drain(conn)
    assert event.body == LIST
    assert event.header.serial == 10  # the first part's header
    assert conn.reassembly_bytes == 0


def test_stalled_reassembly_asks_once_then_drops() -> None:
    _, second = _parts()
    conn = Jt808Connection(reassembly_timeout=30.0)
    conn.receive_data(second, now=100.0)
    assert drain(conn) == []
    assert conn.expired(129.0) == []
    (needed,) = conn.expired(130.0)
    assert isinstance(needed, ResendNeeded)
    assert needed.missing == (1,)
    assert needed.header.serial == 10  # where part 1's serial should be
    assert needed.request == m.ResendRequest(10, (1,))
    wire = conn.send(needed.request, phone=PHONE, version2019=False)
    assert wire.startswith(b"\x7e\x80\x03")
    assert conn.expired(150.0) == []
    assert conn.expired(160.0) == []
    assert conn.reassembly_bytes == 0 and conn.dropped_reassemblies == 1


def test_missing_part_arrives_after_resend_request() -> None:
    first, second = _parts()
    conn = Jt808Connection(reassembly_timeout=5.0)
    conn.receive_data(first, now=0.0)
    drain(conn)
    (needed,) = conn.expired(10.0)
    assert needed.missing == (2,) and needed.header.packet_index == 1
    conn.receive_data(second, now=11.0)
    (event,) = drain(conn)
    assert event.body == LIST


def test_reassembly_limits() -> None:
    conn = Jt808Connection(max_reassemblies=2, max_reassembly_bytes=2500)
    for msg_id in (0x0F01, 0x0F02, 0x0F03):
        conn.receive_data(frame(msg_id, b"x" * 1000, total=3, index=1))
    assert drain(conn) == []
    assert len(conn._reassemblies) == 2 and conn.dropped_reassemblies == 1
    conn.receive_data(frame(0x0F03, b"x" * 1000, total=3, index=2))
    (error,) = drain(conn)
    assert isinstance(error, FrameError) and "budget" in error.reason
    assert conn.reassembly_bytes <= 2500


def test_bad_frames_do_not_stop_the_connection() -> None:
    good = frame(MsgId.HEARTBEAT, b"")
    bad = bytearray(good)
    bad[-2] ^= 0xFF
    conn = Jt808Connection()
    conn.receive_data(b"garbage" + bytes(bad) + good + frame(MsgId.LOCATION, b"\x00" * 5))
    events = drain(conn)
    assert [type(e) for e in events] == [FrameError, Message, FrameError]
    assert events[0].reason == "bad checksum"
    assert events[2].header is not None and events[2].header.msg_id == MsgId.LOCATION
    assert events[2].reply_result == Result.MESSAGE_ERROR
    assert conn.garbage_bytes == len(b"garbage")


def test_unknown_and_encrypted_bodies() -> None:
    conn = Jt808Connection()
    conn.receive_data(frame(0x0F0F, b"\x01\x02"))
    header = Header(MsgId.LOCATION, PHONE, 3, False, encryption=1)
    conn.receive_data(wrap(encode_header(header, 3) + b"abc"))
    first, second = drain(conn)
    assert first.body == m.UnknownMessage(0x0F0F, b"\x01\x02")
    assert second.body == m.UnknownMessage(MsgId.LOCATION, b"abc")


def test_feeding_without_draining_overflows() -> None:
    conn = Jt808Connection(max_frame=1 << 20, max_buffer=1000)
    conn.receive_data(b"\x7e" + b"\x01" * 1000)  # one read of any size is taken
    with pytest.raises(ProtocolError, match="buffer overflow"):
        conn.receive_data(b"\x01")  # more before the caller drained next_event


def test_one_large_read_is_parsed_piece_by_piece() -> None:
    """Issue 10: a legitimate terminal is never disconnected by how its bytes arrive; the
    splitter holds one slice plus one unfinished frame, not the whole read."""
    conn = Jt808Connection(max_buffer=4096)
    data = b"".join(frame(MsgId.HEARTBEAT, b"", serial=i) for i in range(20000))
    assert len(data) > 70 * 4096
    conn.receive_data(data)
    seen, peak = 0, 0
    while (ev := conn.next_event()) is not NEED_DATA:
        assert isinstance(ev, Message)
        seen += 1
        peak = max(peak, len(conn._splitter.buffer))
    assert seen == 20000
    assert peak <= FEED_SLICE + 8192


def test_oversized_frame_is_an_event() -> None:
    conn = Jt808Connection(max_frame=100)
    conn.receive_data(b"\x7e" + b"\x01" * 200)
    (event,) = drain(conn)
    assert isinstance(event, FrameError)
    conn.receive_data(b"\x7e" + frame(MsgId.HEARTBEAT, b""))
    assert [type(e) for e in drain(conn)] == [Message]


def test_eof_mid_frame_and_mid_reassembly() -> None:
    first, _ = _parts()
    conn = Jt808Connection()
    conn.receive_data(first + frame(MsgId.HEARTBEAT, b"")[:6])
    conn.receive_data(b"")
    (event,) = drain(conn)
    assert isinstance(event, FrameError) and "EOF" in event.reason
    assert conn.reassembly_bytes == 0 and not conn._reassemblies
    assert conn.next_event() is NEED_DATA
    with pytest.raises(ProtocolError):
        conn.receive_data(b"more")


def test_frames_split_across_reads() -> None:
    wire = frame(MsgId.HEARTBEAT, b"") + frame(MsgId.UNREGISTER, b"")
    conn = Jt808Connection()
    events = []
    for i in range(len(wire)):
        conn.receive_data(wire[i:i + 1])
        events += drain(conn)
    assert [e.body for e in events] == [m.Heartbeat(), m.Unregister()]


def test_no_reassembly_before_authentication() -> None:
    """Issue 10: subpackaged messages are dropped, not held, while ``reassemble`` is off."""
    conn = Jt808Connection(reassemble=False)
    events = []
    for i in range(1, 200):
        conn.receive_data(frame(0x0F01, b"x" * 1000, serial=i, total=200, index=i))
        events += drain(conn)
    assert len(events) == 199 and all(isinstance(e, FrameError) for e in events)
    assert "before authentication" in events[0].reason
    assert conn.reassembly_bytes == 0 and not conn._reassemblies
    conn.reassemble = True
    conn.receive_data(frame(0x0F01, b"a" * 10, serial=300, total=2, index=1)
                      + frame(0x0F01, b"b" * 10, serial=301, total=2, index=2))
    (msg,) = drain(conn)
    assert isinstance(msg, Message) and msg.body == m.UnknownMessage(0x0F01, b"a" * 10 + b"b" * 10)


def test_reassembly_budget_is_shared_and_given_back() -> None:
    budget = ReassemblyBudget(5000)
    a, b = Jt808Connection(budget=budget), Jt808Connection(budget=budget)
    a.receive_data(frame(0x0F01, b"x" * 1000, serial=1, total=9, index=1)
                   + frame(0x0F01, b"x" * 1000, serial=2, total=9, index=2)
                   + frame(0x0F01, b"x" * 1000, serial=3, total=9, index=3))
    assert drain(a) == [] and budget.held == 3000
    b.receive_data(frame(0x0F01, b"y" * 1000, serial=1, total=9, index=1)
                   + frame(0x0F01, b"y" * 1000, serial=2, total=9, index=2)
                   + frame(0x0F01, b"y" * 1000, serial=3, total=9, index=3))
    events = drain(b)  # the third part would exceed what all connections may hold
    assert [type(e) for e in events] == [FrameError]
    assert "exhausted" in events[0].reason
    assert budget.held == 3000  # b's dropped reassembly gave its bytes back
    a.release()
    assert budget.held == 0 and a.reassembly_bytes == 0
