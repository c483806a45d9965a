"""JT/T 1078 media packets: real captured vectors, round trips, and header errors."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import fleetcam.protocol.jt1078 as jt1078
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt1078 import (
    DataType,
    Packet,
    PayloadType,
    Subpackage,
    encode_packet,
    parse_packet,
    sim_key,
)

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt1078.json").read_text())
PACKETS = VECTORS["packets"]


@pytest.mark.parametrize("vector", PACKETS, ids=[v["name"] for v in PACKETS])
def test_real_packet(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    parsed = parse_packet(raw)
    assert parsed is not None
    packet, end = parsed
    assert end == len(raw)
    expect = vector["expect"]
    got = {k: getattr(packet, k) for k in expect if k != "payload_len"}
    assert got == {k: v for k, v in expect.items() if k != "payload_len"}
    assert len(packet.payload) == expect["payload_len"]
    assert raw.endswith(packet.payload)
    assert encode_packet(packet) == raw  # byte-exact re-encoding (label1 is 0x81 in all)


def test_real_audio_has_no_intervals_and_a_26_byte_header() -> None:
    raw = bytes.fromhex(PACKETS[1]["hex"])
    packet, _ = parse_packet(raw) or pytest.fail("incomplete")
    assert packet.data_type is DataType.AUDIO and packet.payload_type == PayloadType.G726
    assert raw[26:] == packet.payload


def test_ten_byte_sim_matches_signalling_phone_without_leading_zeros() -> None:
    packet, _ = parse_packet(bytes.fromhex(PACKETS[3]["hex"])) or pytest.fail("incomplete")
    assert sim_key(packet.sim) == "866496077582164"


def test_every_prefix_of_a_real_packet_needs_more_data() -> None:
    raw = bytes.fromhex(PACKETS[3]["hex"])
    for n in range(len(raw)):
        assert parse_packet(raw[:n]) is None


def test_parse_at_offset_returns_end_offset() -> None:
    a, b = (bytes.fromhex(v["hex"]) for v in PACKETS[:2])
    buf = bytearray(b"xx" + a + b)
    first, end = parse_packet(buf, 2) or pytest.fail("incomplete")
    second, end2 = parse_packet(memoryview(buf), end) or pytest.fail("incomplete")
    assert (end, end2) == (2 + len(a), len(buf))
    assert first.data_type is DataType.P_FRAME and second.data_type is DataType.AUDIO
    assert type(first.payload) is bytes and type(second.payload) is bytes


def test_traccar_short_frame_is_incomplete() -> None:
    # traccar Jt1078FrameDecoderTest: "3031636480610001" is passed through undecoded.
    assert parse_packet(bytes.fromhex("3031636480610001")) is None


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b"\x00" + b[1:], "30316364"),
        (lambda b: b[:15] + bytes([0x50]) + b[16:], "data type"),  # data type 5
        (lambda b: b[:15] + bytes([0x14]) + b[16:], "data type"),  # subpackage 4
        (lambda b: b[:28] + (951).to_bytes(2, "big") + b[30:], "exceeds"),
    ],
    ids=["bad-magic", "data-type-5", "subpackage-4", "body-951"],
)
def test_impossible_header_raises(mutate: Any, match: str) -> None:
    raw = mutate(bytes.fromhex(PACKETS[0]["hex"]))
    with pytest.raises(ProtocolError, match=match):
        parse_packet(raw)


def test_short_bad_magic_raises_before_the_header_is_complete() -> None:
    with pytest.raises(ProtocolError):
        parse_packet(b"01cX")
    assert parse_packet(b"01c") is None


def test_max_payload_is_configurable() -> None:
    raw = bytes.fromhex(PACKETS[4]["hex"])  # 829-byte body
    with pytest.raises(ProtocolError):
        parse_packet(raw, max_payload=800)


SIMS = ["013912345678", "00000866496077582164"]


def _packet(
    sim: str, dt: DataType, sub: Subpackage, payload: bytes = b"\x00\x00\x00\x01\x65"
) -> Packet:
    video = dt in (DataType.I_FRAME, DataType.P_FRAME, DataType.B_FRAME)
    return Packet(
        payload_type=PayloadType.G711A if dt is DataType.AUDIO else PayloadType.H265,
        marker=sub in (Subpackage.ATOMIC, Subpackage.LAST),
        sequence=65535,
        sim=sim,
        channel=2,
        data_type=dt,
        subpackage=sub,
        timestamp=None if dt is DataType.TRANSPARENT else 1_700_000_000_123,
        last_i_interval=1000 if video else None,
        last_frame_interval=40 if video else None,
        payload=payload,
    )


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("dt", list(DataType))
@pytest.mark.parametrize("sub", list(Subpackage))
def test_round_trip(sim: str, dt: DataType, sub: Subpackage) -> None:
    packet = _packet(sim, dt, sub)
    raw = encode_packet(packet)
    header = {DataType.AUDIO: 26, DataType.TRANSPARENT: 18}.get(dt, 30) + len(sim) // 2 - 6
    assert len(raw) == header + len(packet.payload)
    assert parse_packet(raw) == (packet, len(raw))


def test_round_trip_of_an_empty_and_a_full_payload() -> None:
    for payload in (b"", bytes(range(256)) * 3 + bytes(182)):
        packet = _packet(SIMS[0], DataType.I_FRAME, Subpackage.MIDDLE, payload)
        assert parse_packet(encode_packet(packet)) == (packet, len(encode_packet(packet)))


def test_short_sim_is_padded_and_ambiguous_sim_goes_out_as_bcd10() -> None:
    short = _packet("13912345678", DataType.AUDIO, Subpackage.ATOMIC)
    packet, _ = parse_packet(encode_packet(short)) or pytest.fail()
    assert packet.sim == "013912345678"
    zeros = _packet("000012345678", DataType.AUDIO, Subpackage.ATOMIC)
    back, _ = parse_packet(encode_packet(zeros)) or pytest.fail()
    assert back.sim == "00000000000012345678" and sim_key(back.sim) == sim_key(zeros.sim)


@pytest.mark.parametrize(
    "change",
    [
        {"sim": "12345678901234567890"},  # a 20-digit SIM not starting 0000 is undecodable
        {"sim": "12ab"},
        {"timestamp": None},
        {"payload_type": 128},
        {"channel": 256},
        {"payload": bytes(70_000)},
    ],
)
def test_unencodable_packets_raise_value_error(change: dict[str, Any]) -> None:
    base = _packet(SIMS[0], DataType.P_FRAME, Subpackage.ATOMIC)
    fields = {name: getattr(base, name) for name in Packet.__dataclass_fields__} | change
    with pytest.raises(ValueError):
        encode_packet(Packet(**fields))


def test_enums_follow_the_standard() -> None:
    subs = (Subpackage.ATOMIC, Subpackage.FIRST, Subpackage.LAST, Subpackage.MIDDLE)
    assert [int(s) for s in subs] == [0, 1, 2, 3]
    assert [int(d) for d in DataType] == [0, 1, 2, 3, 4]
    audio = (PayloadType.G711A, PayloadType.G711U, PayloadType.G726, PayloadType.AAC)
    assert audio == (6, 7, 8, 19)
    assert (PayloadType.ADPCMA, PayloadType.AMR, PayloadType.TRANSPARENT) == (26, 28, 91)
    video = (PayloadType.H264, PayloadType.H265, PayloadType.AVS, PayloadType.SVAC)
    assert video == (98, 99, 100, 101)


def test_jt1078_modules_are_sans_io() -> None:
    forbidden = {"asyncio", "socket", "logging", "boto3", "botocore", "av", "selectors", "ssl"}
    for path in Path(jt1078.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            assert not {n.split(".")[0] for n in names} & forbidden, path.name
