"""Connections and commands of devices: the protocol-neutral gateway domain (pure)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fleetcam.errors import Invalid

# flespi's command names, protocol-neutral; each maps to protocol messages in the gateway.
COMMAND_NAMES = ("request_video", "take_photo", "start_videostream", "playback_video",
                 "video_timeline", "custom")
TTL_MAX = 30 * 86400
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 5, 60, 15
CLIP_MAX_DURATION = 3600
"""Seconds of the longest clip request_video may ask for (template.yaml sizes /tmp by it)."""
CLIP_TIMEOUT_MAX = 300
"""A real-time request_video may wait this long (its default follows the clip's duration)."""
CLIP_TIMEOUT_BASE = 15
"""A real-time request_video waits this much longer than twice the clip: playback at the
device's speed, then packaging."""

QUEUED, SENT, PROCESSED, CANCELED, EXPIRED = "queued", "sent", "processed", "canceled", "expired"
FINAL_STATES = (PROCESSED, CANCELED, EXPIRED)


@dataclass(frozen=True)
class Connection:
    """One TCP connection of a device (signalling, or a secondary media one), flespi's fields."""

    id: int
    device_id: int
    ident: str
    established: float
    source: str
    transport: str = "tcp"
    secondary: bool = False
    gateway_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "device_id": self.device_id, "established": self.established,
                "ident": self.ident, "source": self.source, "transport": self.transport,
                "secondary": self.secondary, "meta": self.meta}


@dataclass(frozen=True)
class Command:
    """A command for a device, from queueing to its result."""

    id: int
    device_id: int
    name: str
    properties: dict[str, Any]
    queued: float
    expires: float
    status: str = QUEUED
    serial: int | None = None
    """The protocol serial number it was sent with: how the device's answer is matched."""
    sent: float | None = None
    executed: bool = False
    response: Any = None
    timestamp: float | None = None
    """When the result arrived (or the command was canceled or expired)."""
    gateway_id: str = ""
    not_before: float = 0.0
    """Not delivered before this time (a clip of an event waits until the event's end)."""
    conn_id: int | None = None
    """The device connection it was last sent on: sent but unanswered when that connection
    is gone, it is sent again on the device's next one while its ttl lasts."""
    attempts: int = 0
    """How often it was sent."""

    def with_changes(self, **kw: Any) -> Command:
        return replace(self, **kw)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def progress(self) -> dict[str, Any] | None:
        """What a running command reported so far (bytes, seconds received...).

        While a command is not final its ``response`` holds fleetcam's running details
        (``{"progress": {...}}``); the final answer replaces them."""
        if self.final or not isinstance(self.response, dict):
            return None
        return self.response.get("progress")  # type: ignore[no-any-return]

    def queue_json(self) -> dict[str, Any]:
        out = {"id": self.id, "device_id": self.device_id, "name": self.name,
               "properties": self.properties, "timestamp": self.queued,
               "ttl": max(0, round(self.expires - self.queued)), "status": self.status}
        if self.progress is not None:
            out["progress"] = self.progress
        return out

    def result_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "properties": self.properties,
                "device_id": self.device_id, "timestamp": self.timestamp or self.queued,
                "executed": self.executed, "response": self.response}


def _int(props: dict[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    v = props.get(name, default)
    if v is None:
        raise Invalid(f"properties.{name} is required", field=f"properties.{name}")
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid(f"properties.{name} must be an integer from {lo} to {hi}",
                      field=f"properties.{name}")
    return v


def validate_command(raw: Any) -> tuple[str, dict[str, Any]]:
    """Check a command's name and properties; returns (name, normalised properties).

    Raises:
        Invalid: naming the field and why.
    """
    if not isinstance(raw, dict):
        raise Invalid("each command must be an object with name and properties", field="body")
    name = raw.get("name")
    if name not in COMMAND_NAMES:
        raise Invalid(f"unknown command name {name!r}; known: {', '.join(COMMAND_NAMES)}",
                      field="name")
    props = raw.get("properties") or {}
    if not isinstance(props, dict):
        raise Invalid("properties must be an object", field="properties")
    props = dict(props)
    if name in ("request_video", "take_photo", "start_videostream", "playback_video",
                "video_timeline"):
        props["channel"] = _int(props, "channel", 0 if name == "video_timeline" else 1, 255,
                                0 if name == "video_timeline" else None)
    if name == "request_video":
        props["from"] = _int(props, "from", 0, 2**40)
        props["duration"] = _int(props, "duration", 1, CLIP_MAX_DURATION)
    if name in ("video_timeline", "playback_video"):
        props["from"] = _int(props, "from", 0, 2**40)
        props["to"] = _int(props, "to", props["from"], 2**40)
    if name == "take_photo":
        props["resolution"] = _int(props, "resolution", 1, 8, 2)
    if name == "start_videostream":
        quality = props.get("quality", "main")
        if quality not in ("main", "sub"):
            raise Invalid("properties.quality must be main or sub", field="properties.quality")
        props["quality"] = quality
    if name == "custom" and "text" in props and "msg_id" not in props:
        # a text command (Teltonika Codec 12 GPRS commands such as "getinfo")
        text = props["text"]
        if not isinstance(text, str) or not 0 < len(text) <= 512 or not text.isprintable():
            raise Invalid("properties.text must be printable text of 1 to 512 characters",
                          field="properties.text")
        return name, props
    if name == "custom":
        props["msg_id"] = _int(props, "msg_id", 0, 0xFFFF)
        body = props.get("body", "")
        if not isinstance(body, str):
            raise Invalid("properties.body must be a hex string", field="properties.body")
        try:
            bytes.fromhex(body)
        except ValueError as e:
            raise Invalid("properties.body must be a hex string", field="properties.body") from e
    return name, props


def validate_ttl(raw: Any) -> int:
    ttl = raw.get("ttl", 86400) if isinstance(raw, dict) else 86400
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= TTL_MAX:
        raise Invalid(f"ttl must be an integer from 1 to {TTL_MAX} seconds", field="ttl")
    return ttl


def default_timeout(raw: Any) -> int:
    """TIMEOUT_DEFAULT; for request_video, twice the clip plus CLIP_TIMEOUT_BASE (at most
    CLIP_TIMEOUT_MAX), since the device plays the recording back at its own speed."""
    if isinstance(raw, dict) and raw.get("name") == "request_video":
        props = raw.get("properties")
        duration = props.get("duration") if isinstance(props, dict) else None
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0:
            return max(TIMEOUT_DEFAULT, min(CLIP_TIMEOUT_MAX, CLIP_TIMEOUT_BASE + 2 * duration))
    return TIMEOUT_DEFAULT


def validate_timeout(raw: Any) -> int:
    """A real-time command's ``timeout``: 5–60 s (request_video: up to CLIP_TIMEOUT_MAX)."""
    t = raw.get("timeout") if isinstance(raw, dict) else None
    if t is None:
        return default_timeout(raw)
    hi = CLIP_TIMEOUT_MAX if isinstance(raw, dict) and raw.get("name") == "request_video" \
        else TIMEOUT_MAX
    if isinstance(t, bool) or not isinstance(t, int) or not TIMEOUT_MIN <= t <= hi:
        raise Invalid(f"timeout must be an integer from {TIMEOUT_MIN} to {hi}",
                      field="timeout")
    return t
