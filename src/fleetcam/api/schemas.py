"""OpenAPI descriptions of the request bodies and answers (the routes read bodies as raw
JSON, flespi's way; these schemas document them, with an example each)."""
from __future__ import annotations

from typing import Any

UUID_EXAMPLE = "5f0c8a1e2b3d4c5e6f708192a3b4c5d6"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _one_or_list(name: str) -> dict[str, Any]:
    return {"oneOf": [_ref(name), {"type": "array", "items": _ref(name), "minItems": 1}]}


def _json_body(schema: dict[str, Any], example: Any, *, required: bool = True,
               description: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"required": required, "content": {"application/json": {
        "schema": schema, "example": example}}}
    if description:
        body["description"] = description
    return body


COMPONENTS: dict[str, Any] = {
    "Errors": {
        "type": "object", "required": ["errors"],
        "description": "flespi's error envelope",
        "properties": {"errors": {"type": "array", "items": {
            "type": "object", "required": ["code", "reason"],
            "properties": {
                "code": {"type": "integer", "description": "1 generic, 2 device offline, "
                                                           "3 no answer in time"},
                "reason": {"type": "string"},
                "field": {"type": "string", "description": "the parameter at fault"},
                "ids": {"type": "array", "items": {"type": "integer"},
                        "description": "ids the selector named that do not exist"}}}}},
        "example": {"errors": [{"code": 1, "reason": "no device with id 99",
                                "field": "selector", "ids": [99]}]},
    },
    "Device": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 255},
            "ident": {"type": "string", "maxLength": 255,
                      "description": "the terminal's phone number (JT/T 808)"},
            "configuration": {"type": "object", "properties": {
                "ident": {"type": "string", "maxLength": 255}}},
            "protocol": {"type": "string"},
            "media_ttl": {"type": "integer", "minimum": 0,
                          "description": "seconds files are kept (0: forever)"},
            "media_rotate": {"type": "integer", "minimum": 0,
                             "description": "bytes kept; the oldest unprotected files go"},
            "messages_ttl": {"type": "integer", "minimum": 0},
            "metadata": {"type": "object"},
            "enabled": {"type": "boolean"},
        },
    },
    "MediaChange": {
        "type": "object", "required": ["uuid"],
        "description": "any other key sets an attribute (null removes it)",
        "properties": {"uuid": {"type": "string"}, "protected": {"type": "boolean"},
                       "shared": {"type": "boolean"}},
    },
    "MediaRef": {"oneOf": [{"type": "object", "required": ["uuid"],
                            "properties": {"uuid": {"type": "string"}}},
                           {"type": "string", "description": "a uuid"}]},
    "Command": {
        "type": "object", "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": ["request_video", "take_photo",
                                                "start_videostream", "playback_video",
                                                "video_timeline", "custom"]},
            "properties": {"type": "object", "description": "channel, from, duration, to, "
                                                            "resolution, quality, msg_id, body"},
            "ttl": {"type": "integer", "minimum": 1,
                    "description": "seconds it may wait in the queue"},
            "timeout": {"type": "integer", "minimum": 5, "maximum": 300,
                        "description": "real-time form only: seconds to wait for the answer"},
        },
    },
    "VideoRule": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "condition": {"type": "string"},
                       "devices": {"type": "string"},
                       "channels": {"type": "array", "items": {"type": "integer"}},
                       "before": {"type": "integer"}, "after": {"type": "integer"},
                       "ttl": {"type": "integer"}, "cooldown": {"type": "integer"}},
    },
    "ShareRequest": {
        "type": "object", "required": ["uuid"],
        "properties": {"uuid": {"type": "string"}, "expire": {"type": "integer",
                                                           "description": "unix time"}},
    },
    "ShareRevoke": {
        "type": "object",
        "properties": {"uuid": {"type": "string"}, "id": {"type": "integer"}},
    },
    "Token": {
        "type": "object",
        "properties": {"info": {"type": "string"}, "ttl": {"type": "integer"},
                       "expire": {"type": "integer"}, "enabled": {"type": "boolean"},
                       "metadata": {"type": "object"},
                       "access": {"type": "object", "properties": {
                           "type": {"type": "integer", "enum": [0, 1, 2],
                                    "description": "0 standard, 1 master, 2 ACL"},
                           "acl": {"type": "array", "items": {"type": "object"}}}}},
    },
}

_COMMAND_EXAMPLE = [{"name": "take_photo", "properties": {"channel": 1}}]
_RULE_EXAMPLE = {"name": "collisions", "condition": "alarm.collision", "devices": "all",
                 "channels": [1, 2], "before": 10, "after": 20}

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/gw/devices"): _json_body(
        _one_or_list("Device"),
        [{"name": "truck-7", "configuration": {"ident": "013912345678"}, "media_ttl": 604800}]),
    ("put", "/gw/devices/{sel}"): _json_body(_ref("Device"), {"name": "truck-8",
                                                              "media_rotate": 10**9}),
    ("put", "/gw/devices/{sel}/media"): _json_body(
        _one_or_list("MediaChange"), {"uuid": UUID_EXAMPLE, "protected": True,
                                      "incident": "kerb strike"}),
    ("delete", "/gw/devices/{sel}/media"): _json_body(
        _one_or_list("MediaRef"), [{"uuid": UUID_EXAMPLE}], required=False,
        description="the files to delete; without a body every unprotected file (and with "
                    "force=true the protected ones too)"),
    ("post", "/gw/devices/{sel}/commands-queue"): _json_body(
        _one_or_list("Command"), [{"name": "request_video", "ttl": 3600, "properties": {
            "channel": 1, "from": 1700000000, "duration": 20}}]),
    ("post", "/gw/devices/{sel}/commands"): _json_body(_one_or_list("Command"),
                                                       _COMMAND_EXAMPLE),
    ("post", "/gw/video-rules"): _json_body(_one_or_list("VideoRule"), _RULE_EXAMPLE),
    ("put", "/gw/video-rules/{sel}"): _json_body(_ref("VideoRule"), {"after": 30}),
    ("post", "/gw/devices/{sel}/media-upload"): _json_body(
        {"type": "object", "required": ["mime", "size"], "properties": {
            "name": {"type": "string"},
            "mime": {"type": "string", "enum": ["image/jpeg", "image/png", "video/mp4"]},
            "size": {"type": "integer", "minimum": 1, "description": "bytes"},
            "data": {"type": "object",
                     "description": "the upload options, as for POST .../media"}}},
        {"name": "front.mp4", "mime": "video/mp4", "size": 52428800,
         "data": {"type": "video", "meta": {"channel": 1, "created": 1700000000}}}),
    ("post", "/gw/devices/{sel}/media/share"): _json_body(
        {"oneOf": [_ref("ShareRequest"), {"type": "array", "items": _ref("ShareRequest")}]},
        {"uuid": UUID_EXAMPLE, "expire": 1900000000}),
    ("delete", "/gw/devices/{sel}/media/share"): _json_body(
        {"oneOf": [_ref("ShareRevoke"), {"type": "array", "items": _ref("ShareRevoke")}]},
        {"uuid": UUID_EXAMPLE}),
    ("put", "/streamer/api/v3/streams/{name}"): _json_body(
        {"type": "object", "properties": {"dvr": {"type": "object", "properties": {
            "root": {"type": "string"}, "expiration": {"type": "integer"},
            "storage_limit": {"type": "integer"}}}}},
        {"dvr": {"expiration": 604800, "storage_limit": 10**10}}, required=False),
    ("put", "/streamer/api/v3/episodes/{episode_id}"): _json_body(
        {"type": "object", "properties": {"media": {"type": "string"},
                                          "opened_at": {"type": "integer"},
                                          "closed_at": {"type": "integer"}}},
        {"media": "cam1-ch1", "opened_at": 1700000000000, "closed_at": 1700000060000},
        required=False),
    ("post", "/platform/customer/tokens"): _json_body(
        _one_or_list("Token"), [{"info": "viewer", "ttl": 86400, "access": {"type": 0}}]),
    ("put", "/platform/customer/tokens/{sel}"): _json_body(_ref("Token"),
                                                           {"enabled": False}),
}

EXTRA_ERRORS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/gw/devices"): {"409": "a device with this ident exists already"},
    ("put", "/gw/devices/{sel}"): {"409": "a device with this ident exists already"},
    ("post", "/gw/devices/{sel}/media"): {
        "409": "the device changed meanwhile; try again",
        "413": "the file does not fit the device's storage (media_rotate, protected files)"},
    ("post", "/gw/devices/{sel}/commands"): {
        "202": "(AWS) no answer within what API Gateway lets a request wait: the command "
               "stays queued, its result comes in commands-result (the envelope names its id)",
        "504": "the device did not answer within the timeout (code 3; the command is "
               "canceled)"},
}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILE_TYPES = {"application/octet-stream": _BINARY, "image/jpeg": _BINARY,
               "image/png": _BINARY, "video/mp4": _BINARY}
SUCCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/media/{uuid}"): {
        "200": {"description": "the content (its own type), the thumbnail "
                               "(`preview=jpeg`) or the file's JSON (`preview=json`)",
                "content": {**_FILE_TYPES, "application/json": {"schema": {
                    "type": "object"}}}},
        "206": {"description": "the byte range asked with `Range`", "content": _FILE_TYPES},
        "307": {"description": "large content: a pre-signed link of the object store"},
        "416": {"description": "the range cannot be satisfied"},
    },
    ("head", "/media/{uuid}"): {
        "200": {"description": "the content's headers", "content": _FILE_TYPES},
        "206": {"description": "the range's headers", "content": _FILE_TYPES},
        "416": {"description": "the range cannot be satisfied"},
    },
    ("get", "/media/live/{uuid}/{name}"): {
        "200": {"description": "the HLS playlist or a segment", "content": {
            "application/vnd.apple.mpegurl": {"schema": {"type": "string"}},
            "video/mp2t": _BINARY}},
    },
}
