"""JT/T 808 and JT/T 1078 message ids and general-response results."""
from __future__ import annotations

from enum import IntEnum


class MsgId(IntEnum):
    """Message ids: 0x0xxx/0x1xxx come from the terminal, 0x8xxx/0x9xxx from the platform."""

    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    UNREGISTER = 0x0003
    QUERY_TIME = 0x0004  # 2019: terminal asks for the server time
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    PARAMETERS = 0x0104
    TERMINAL_ATTRIBUTES = 0x0107
    LOCATION = 0x0200
    LOCATION_QUERY_RESPONSE = 0x0201
    DRIVER_INFO = 0x0702
    BATCH_LOCATION = 0x0704
    MULTIMEDIA_EVENT = 0x0800
    MULTIMEDIA_DATA = 0x0801
    SNAPSHOT_RESPONSE = 0x0805
    PASSTHROUGH = 0x0900
    AV_ATTRIBUTES = 0x1003
    PASSENGER_FLOW = 0x1005
    RESOURCE_LIST = 0x1205
    FILE_UPLOAD_DONE = 0x1206

    PLATFORM_RESPONSE = 0x8001
    RESEND_REQUEST = 0x8003
    QUERY_TIME_RESPONSE = 0x8004
    REGISTER_RESPONSE = 0x8100
    SET_PARAMETERS = 0x8103
    QUERY_PARAMETERS = 0x8104
    TERMINAL_CONTROL = 0x8105
    QUERY_TERMINAL_ATTRIBUTES = 0x8107
    LOCATION_QUERY = 0x8201
    TEXT = 0x8300
    MULTIMEDIA_UPLOAD_RESPONSE = 0x8800
    SNAPSHOT = 0x8801
    AV_ATTRIBUTES_QUERY = 0x9003
    REALTIME_REQUEST = 0x9101
    REALTIME_CONTROL = 0x9102
    PLAYBACK_REQUEST = 0x9201
    PLAYBACK_CONTROL = 0x9202
    RESOURCE_LIST_QUERY = 0x9205
    FILE_UPLOAD = 0x9206
    FILE_UPLOAD_CONTROL = 0x9207


class Result(IntEnum):
    """Result byte of 0x0001/0x8001 (JT/T 808-2019 §8.1-8.2); 4 exists only in 0x8001."""

    SUCCESS = 0
    FAILURE = 1
    MESSAGE_ERROR = 2
    NOT_SUPPORTED = 3
    ALARM_CONFIRM = 4


def is_platform_id(msg_id: int) -> bool:
    """True for ids the platform sends (0x8xxx and 0x9xxx)."""
    return bool(msg_id & 0x8000)
