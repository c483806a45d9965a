"""Devices, media files and device log entries, as frozen dataclasses."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from fleetcam.domain.identity import Identity

GiB = 1024**3
DEVICE_STORAGE_CAP = 10 * GiB
"""Hard cap on one device's media storage, whatever its media_rotate says (flespi's 10 GB)."""

# Fields of a media file that the API owns; user attributes may not shadow them.
MEDIA_RESERVED = frozenset(
    {"uuid", "url", "name", "size", "mime", "created", "modified", "uploaded", "protected",
     "shared", "preview", "channel_id", "device_id", "links", "key"}
)
MEDIA_USER_SETTABLE = frozenset({"protected", "shared", "name", "channel_id", "created"})


def new_uuid() -> str:
    """An unguessable file id: 128 random bits, hex encoded (32 characters)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Device:
    """A registered terminal (an MDVR, a dash-cam)."""

    id: int
    name: str
    ident: str
    protocol: str = "jt808"
    media_ttl: int = 0
    """Seconds since upload after which a file is deleted; 0 keeps files forever."""
    media_rotate: int = 0
    """Bytes; above this total the oldest unprotected files are deleted. 0 = off."""
    messages_ttl: int = 31536000
    metadata: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    identity: Identity = field(default_factory=Identity)
    """JT/T 808 identity: the authentication code's hash and the registration rules
    (``domain.identity``); written only through ``DeviceRepo.swap_identity``."""

    def storage_limit(self) -> int:
        """The byte budget that rotation keeps the device under."""
        if 0 < self.media_rotate < DEVICE_STORAGE_CAP:
            return self.media_rotate
        return DEVICE_STORAGE_CAP

    def with_changes(self, **changes: Any) -> Device:
        return replace(self, **changes)


@dataclass(frozen=True)
class Preview:
    """A JPEG thumbnail (base64) and what the decoder found out about the media."""

    jpeg: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaFile:
    """One file in a device's media storage."""

    uuid: str
    device_id: int
    key: str
    """Where the content lives in object storage (internal, never shown)."""
    name: str
    size: int
    mime: str
    created: float
    """Recording time, from the device (unix seconds)."""
    uploaded: float
    modified: float
    protected: bool = False
    shared: bool = False
    channel_id: int | None = None
    preview: Preview = field(default_factory=Preview)
    attributes: dict[str, Any] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> MediaFile:
        return replace(self, **changes)

    def field_value(self, name: str) -> Any:
        """Value of a field by its flespi name, for filters: attributes included."""
        if name in ("uuid", "device_id", "name", "size", "mime", "created", "uploaded",
                    "modified", "protected", "shared", "channel_id"):
            return getattr(self, name)
        if name == "channel":
            return self.channel_id
        if name == "type":
            return self.preview.meta.get("type")
        for prefix in ("preview.meta.", "meta."):
            if name.startswith(prefix):
                return self.preview.meta.get(name.removeprefix(prefix))
        return self.attributes.get(name)


@dataclass(frozen=True)
class LogEntry:
    """One line of a device's log (a media operation, for now)."""

    device_id: int
    timestamp: float
    event: str
    """media_file_uploaded | media_file_updated | media_file_deleted | media_file_expired
    | media_file_rejected"""
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
