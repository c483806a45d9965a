"""The channel protocols and device types fleetcam speaks, with each type's commands and the
JSON Schema of their properties (defaults included), as flespi describes its own: UIs build
their forms from these. Kept in step with ``domain.gateway.validate_command`` by a test."""
from __future__ import annotations

from typing import Any

CHANNEL = {"type": "integer", "minimum": 1, "maximum": 255, "default": 1,
           "title": "Channel", "description": "camera channel (1 = the first camera)"}
UNIX = {"type": "integer", "minimum": 0, "maximum": 2**40, "title": "Time",
        "description": "unix time, seconds"}


def _schema(title: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "title": title, "properties": props, "required": required,
            "additionalProperties": False}


COMMANDS: list[dict[str, Any]] = [
    {"name": "request_video", "title": "Request video clip",
     "schema": _schema("Request video clip", {
         "channel": CHANNEL, "from": {**UNIX, "title": "From"},
         "duration": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 30,
                      "title": "Duration, s"}}, ["channel", "from", "duration"])},
    {"name": "take_photo", "title": "Take photo",
     "schema": _schema("Take photo", {
         "channel": CHANNEL,
         "resolution": {"type": "integer", "minimum": 1, "maximum": 8, "default": 2,
                        "title": "Resolution (JT/T 808 code, 1 = 320x240 ... 8)"}},
         ["channel"])},
    {"name": "start_videostream", "title": "Start live video",
     "schema": _schema("Start live video", {
         "channel": CHANNEL,
         "quality": {"type": "string", "enum": ["main", "sub"], "default": "main",
                     "title": "Stream"}}, ["channel"])},
    {"name": "playback_video", "title": "Play back a recording",
     "schema": _schema("Play back a recording", {
         "channel": CHANNEL, "from": {**UNIX, "title": "From"}, "to": {**UNIX, "title": "To"}},
         ["channel", "from", "to"])},
    {"name": "video_timeline", "title": "Recordings on the device",
     "schema": _schema("Recordings on the device", {
         "channel": {**CHANNEL, "minimum": 0, "default": 0,
                     "description": "0 = every channel"},
         "from": {**UNIX, "title": "From"}, "to": {**UNIX, "title": "To"}},
         ["from", "to"])},
    {"name": "custom", "title": "Custom JT/T 808 message",
     "schema": _schema("Custom JT/T 808 message", {
         "msg_id": {"type": "integer", "minimum": 0, "maximum": 65535, "title": "Message id"},
         "body": {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$", "default": "",
                  "title": "Body, hex"}}, ["msg_id"])},
]

PROTOCOLS: list[dict[str, Any]] = [
    {"id": 1, "name": "jt808", "title": "JT/T 808 with JT/T 1078 video"},
]
DEVICE_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "jt808-mdvr", "title": "JT/T 808/1078 MDVR (dash-cam)",
     "protocol_id": 1, "protocol_name": "jt808", "commands": COMMANDS},
]
TYPE_BY_PROTOCOL = {"jt808": 1}


def device_type_id(protocol: str) -> int | None:
    return TYPE_BY_PROTOCOL.get(protocol)
