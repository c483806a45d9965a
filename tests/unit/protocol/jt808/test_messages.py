"""Message bodies: real captured vectors (tests/vectors/jt808.json) and round trips."""
from __future__ import annotations

import calendar
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from fleetcam.protocol.bcd import bcd_time_to_unix, unix_to_bcd_time
from fleetcam.protocol.errors import ProtocolError
from fleetcam.protocol.jt808 import NEED_DATA, FrameError, Jt808Connection, Message
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808 import subiao
from fleetcam.protocol.jt808.ids import MsgId, Result

VECTORS = json.loads((Path(__file__).parents[3] / "vectors" / "jt808.json").read_text("utf-8"))
BY_NAME = {v["name"]: v for v in VECTORS}


def _norm(value: Any) -> Any:
    """Decoded objects in the JSON shape of the vectors (bytes as hex, int keys as str)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _norm(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_norm(x) for x in value]
    if isinstance(value, dict):
        return {str(k): _norm(x) for k, x in value.items()}
    return value


def _events(hexes: str | list[str], **kwargs: Any) -> list[Message | FrameError]:
    conn = Jt808Connection(**kwargs)
    for frame in [hexes] if isinstance(hexes, str) else hexes:
        conn.receive_data(bytes.fromhex(frame))
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert isinstance(event, (Message, FrameError))
        events.append(event)
    return events


def _decode(name: str) -> Any:
    (event,) = _events(BY_NAME[name]["hex"])
    assert isinstance(event, Message)
    return event.body


def test_enough_real_vectors() -> None:
    assert len(VECTORS) >= 15
    assert all(v["source"] and v["hex"] for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    (event,) = _events(vector["hex"])
    expect = vector["expect"]
    if "error" in expect:
        assert isinstance(event, FrameError)
        assert event.reason == expect["error"]
        return
    assert isinstance(event, Message)
    assert _norm(event.header) == expect["header"]
    assert type(event.body).__name__ == expect["type"]
    assert _norm(event.body) == expect["body"]
    if "attributes" in expect:
        assert event.body.attributes == expect["attributes"]


# Values asserted by the sources themselves, independent of the JSON expectations.

def test_registration_2011_plate_is_gbk() -> None:
    body = _decode("register_2011_33_bytes")
    assert (body.manufacturer, body.model, body.plate) == ("70111", "BSJ-M7B", "粤B88888")


def test_registration_editions_go_jt808() -> None:
    for name in ("register_2011_go", "register_2013_go", "register_2019_go"):
        body = _decode(name)
        assert (body.province, body.city, body.manufacturer) == (31, 115, "cd")
        assert (body.terminal_id, body.plate_color, body.plate) == ("7654321", 1, "测A1234")
    assert _decode("register_2011_go").model == "www.808."
    assert _decode("register_2013_go").model == "www.808.com"
    assert _decode("register_2019_go").model == "www.808.com"


def test_authentication() -> None:
    assert _decode("authenticate_2013") == m.Authenticate("authentication")
    assert _decode("authenticate_2019") == m.Authenticate("17299841738", "123456789012345",
                                                          "3.7.15")


def test_hemispheres_from_status_bits() -> None:
    brazil = _decode("location_south_west_brazil")
    assert (round(brazil.latitude, 2), round(brazil.longitude, 2)) == (-19.59, -46.91)
    england = _decode("location_west_england")
    assert (round(england.latitude, 2), round(england.longitude, 2)) == (50.87, -1.26)
    (brisbane,) = _decode("batch_location_2019_brisbane").locations
    assert round(brisbane.latitude, 2) == -27.26
    assert brisbane.attributes["position.satellites"] == 14  # Traccar: KEY_SATELLITES 14


def test_location_time_is_gmt8() -> None:
    # Traccar testDecodeLocationQueryResponse: BCD 260824153000 is 2026-08-24 07:30:00 UTC
    body = _decode("location_query_response")
    assert body.location.time == calendar.timegm((2026, 8, 24, 7, 30, 0))
    assert (body.location.latitude, body.location.longitude) == (22.5, 114.0)


def test_video_alarm_items() -> None:
    assert _decode("location_video_alarm").attributes["video.alarm"] == 4  # Traccar videoAlarm
    attrs = _decode("location_2019_escape_in_header").attributes
    assert attrs["video.alarm"] == 0x7F
    assert attrs["video.signal.loss.channels"] == 1
    assert attrs["video.blocked.channels"] == 1
    assert attrs["storage.fault"] == 1
    assert (attrs["abnormal.driving.type"], attrs["abnormal.driving.fatigue.level"]) == (7, 9)


def test_general_response_answering_9201() -> None:
    body = _decode("terminal_response_to_9201")
    assert body == m.GeneralResponse(11, MsgId.PLAYBACK_REQUEST, Result.SUCCESS)


def test_snapshot_pair() -> None:
    # go-jt808 capture: 8801 with serial 0x15, answered by 0805 reply serial 0x15, media id 14
    (command,) = _events(BY_NAME["snapshot"]["hex"])
    assert isinstance(command, Message) and command.header.serial == 0x15
    assert _decode("snapshot_response") == m.SnapshotResponse(0x15, 0, (14,))


def test_subpackaged_resource_list() -> None:
    body = _decode("resource_list_subpackaged")
    assert body.reply_serial == 0x015A
    assert len(body.items) == 0x23  # item 34 straddles the two packets
    assert body.items[33].size == 0x0F0CE4CD
    assert {(i.stream_type, i.storage_type) for i in body.items} == {(1, 1)}


def test_resource_list_query_times() -> None:
    query = _decode("resource_list_query")
    assert query.start == calendar.timegm((2024, 12, 16, 16, 0, 0))  # 241217000000 GMT+8
    assert query.end == calendar.timegm((2024, 12, 17, 15, 59, 59))


def test_illegal_escape_strict_mode_rejects() -> None:
    (event,) = _events(BY_NAME["illegal_escape_kept_literally"]["hex"], strict_escape=True)
    assert isinstance(event, FrameError)


def test_unknown_id_is_kept() -> None:
    assert m.decode_body(0x0F0F, b"\x01\x02", False) == m.UnknownMessage(0x0F0F, b"\x01\x02")
    assert m.encode_body(m.UnknownMessage(0x0F0F, b"\x01"), False) == (0x0F0F, b"\x01")


def test_truncated_last_extra_item_is_kept() -> None:
    # SmallChi JT808_0x0200Test.Test8: the last item declares 4 bytes and carries 2
    body = bytes(28) + bytes.fromhex("01040000006430011FF6041450")
    location = m.decode_body(MsgId.LOCATION, body, False)
    assert location.extras[0xF6] == bytes.fromhex("1450")
    assert location.attributes["vehicle.mileage"] == 10.0


def test_truncated_known_body_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        m.decode_body(MsgId.LOCATION, bytes(27), False)
    with pytest.raises(ProtocolError):
        m.decode_body(MsgId.RESOURCE_LIST, bytes.fromhex("0001FFFFFFFF"), False)


def test_bcd_time_helpers() -> None:
    assert unix_to_bcd_time(0) == bytes(6)
    assert bcd_time_to_unix(bytes(6)) == 0
    assert bcd_time_to_unix(bytes.fromhex("241231235959")) == calendar.timegm(
        (2024, 12, 31, 15, 59, 59))
    for bad in ("241331000000", "240230000000", "2412a1000000"):
        with pytest.raises(ProtocolError):
            bcd_time_to_unix(bytes.fromhex(bad))
    with pytest.raises(ProtocolError):
        unix_to_bcd_time(calendar.timegm((2100, 6, 1, 0, 0, 0)))


T0 = calendar.timegm((2024, 5, 6, 7, 8, 9))
LOCATION = m.Location(alarm=1 << 13, status=0b1111, latitude=-27.263378, longitude=-46.912186,
                      altitude=22, speed=53.2, direction=359, time=T0,
                      extras={0x01: b"\x00\x00\x25\x82", 0x14: b"\x00\x00\x00\x04", 0xEB: b""})
ITEM = m.ResourceItem(1, T0, T0 + 600, (1 << 32) | 1, 2, 1, 1, 123456)
SAMPLES: list[Any] = [
    m.GeneralResponse(7, MsgId.HEARTBEAT, Result.NOT_SUPPORTED),
    m.Heartbeat(), m.Unregister(), m.QueryParameters(), m.LocationQuery(),
    m.Register(44, 303, "70111", "BSJ-A6-BD", "0567872", 1, "粤B88888"),
    m.RegisterResponse(9, 0, "auth-code"), m.RegisterResponse(9, 3), m.Authenticate("code"),
    LOCATION, dataclasses.replace(LOCATION, latitude=50.87, longitude=1.26, status=2, extras={}),
    m.LocationQueryResponse(3, LOCATION),
    m.BatchLocation(1, (LOCATION, dataclasses.replace(LOCATION, extras={}))),
    m.MultimediaEvent(14, 0, 0, 1, 2),
    m.MultimediaData(14, 0, 0, 1, 2, dataclasses.replace(LOCATION, extras={}), b"\xff\xd8" * 700),
    m.MultimediaData(15, 2, 4, 0, 1, None, b""),
    m.MultimediaUploadResponse(14, (2, 5)), m.MultimediaUploadResponse(14),
    m.ResendRequest(0xEB, (2, 3)),
    m.Snapshot(1, 2, 0, 0, 1, 10, 255, 100, 100, 100), m.Snapshot(3, 0xFFFF, 30, 1, 8),
    m.SnapshotResponse(0x15, 0, (14, 15)), m.SnapshotResponse(0x15, 2),
    m.TextMessage(0x0C, "测试 text"), m.SetParameters({0x01: b"\x00\x00\x00\x05", 0x13: b"a"}),
    m.ParametersResponse(0x19, {0x01: b"\x00\x00\x00\x05"}),
    m.AvAttributesQuery(), m.AvAttributes(19, 1, 0, 1, 320, 1, 98, 1, 4),
    m.RealtimeRequest("49.234.235.7", 1078, 0, 1, 1, 1), m.RealtimeControl(1, 1, 2, 1),
    m.ResourceListQuery(0, T0, 0, 0, 3, 0, 0), m.ResourceList(0x7B, (ITEM, ITEM)),
    m.PlaybackRequest("10.0.0.1", 7078, 0, 1, 0, 1, 1, 0, 1, T0, T0 + 60),
    m.PlaybackControl(1, 5, 0, T0 + 30), m.PlaybackControl(1, 2),
    m.FileUpload("127.0.0.1", 21, "user", "pass", "/up", 1, T0, T0 + 60, 5, 2, 1, 1, 7),
    m.FileUploadDone(0x2E, 0), m.FileUploadControl(0x2E, 2),
    subiao.AttachmentUploadRequest("10.0.0.2", 7200, 0, subiao.AlarmIdentification(
        "T123456", T0, 1, 2), "a1" * 16),
    subiao.AlarmAttachmentInfo("T123456", subiao.AlarmIdentification("T123456", T0, 1, 2),
                               "a1" * 16, 0, (subiao.AttachmentItem("00_64_6401_0_x.jpg", 9),)),
    subiao.AttachmentFileInfoMsg("x.jpg", 0, 9), subiao.AttachmentFileDone("x.mp4", 2, 99),
    subiao.AttachmentFileResult("x.mp4", 2, 1, ((0, 10), (20, 5))),
]


def test_every_registered_type_has_a_sample() -> None:
    sampled = {type(s) for s in SAMPLES}
    assert set(m.ENCODE_IDS) <= sampled


@pytest.mark.parametrize("version2019", [False, True], ids=["2013", "2019"])
@pytest.mark.parametrize("msg", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip(msg: Any, version2019: bool) -> None:
    msg_id, body = m.encode_body(msg, version2019)
    assert m.decode_body(msg_id, body, version2019) == msg


def test_authenticate_round_trip_per_edition() -> None:
    full = m.Authenticate("17299841738", "123456789012345", "3.7.15")
    msg_id, body = m.encode_body(full, True)
    assert m.decode_body(msg_id, body, True) == full
    msg_id, body = m.encode_body(full, False)
    assert m.decode_body(msg_id, body, False) == m.Authenticate("17299841738")


def test_register_2019_layout_size() -> None:
    msg = m.Register(31, 115, "cd", "www.808.com", "7654321", 1, "测A1234")
    assert len(m.encode_body(msg, True)[1]) == 76 + 7
    assert len(m.encode_body(msg, False)[1]) == 37 + 7


def test_encode_rejects_out_of_range() -> None:
    with pytest.raises(ProtocolError):
        m.encode_body(m.GeneralResponse(70000, 1, 0), False)
    with pytest.raises(ProtocolError):
        m.encode_body(m.Register(1, 1, "x" * 6, "", "", 0, ""), False)
    with pytest.raises(ProtocolError):
        m.encode_body(object(), False)


def test_location_flat_fields() -> None:
    flat = LOCATION.flat()
    assert flat["position.latitude"] == LOCATION.latitude
    assert flat["timestamp"] == T0
    assert flat["video.alarm"] == 4
    assert flat["vehicle.mileage"] == 960.2
