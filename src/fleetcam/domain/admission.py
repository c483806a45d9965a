"""Which media connection may feed which outstanding request (pure rules, no I/O).

A JT/T 1078 packet names its stream only by SIM and channel, so anyone who knows a SIM can
send "its" video. fleetcam believes a media connection only when the platform asked that
device for that channel (a live stream, a playback, a clip, and whatever later features
register in ``MEDIA_KINDS``), only while the request is open, by default only from the
address of the device's authenticated signalling connection, and only the first connection
that delivers a frame for it: the request is then bound to that connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

MEDIA_KINDS: dict[str, str] = {
    "live": "a live stream (0x9101)",
    "playback": "a playback stream of a recording on the device (0x9201)",
    "clip": "a clip recorded for request_video (0x9201)",
}
"""Kinds of outstanding media requests; a feature that asks devices for media adds its own
(and a MediaSink for it in the gateway)."""

BINDING_LEASE = 30.0
"""Seconds a binding lives unless the copy serving the media connection renews it; a copy
that died frees its requests for the device's next connection after this."""


@dataclass(frozen=True)
class MediaRequest:
    """An outstanding request for media from a device channel (one per device channel; a newer
    request replaces an older one), shared by every gateway copy."""

    device_id: int
    channel: int
    kind: str
    ref: str
    """What the media is for: ``cmd:<id>`` for a clip, the stream's uuid for live/playback."""
    holder: str
    """The gateway copy holding the device's signalling connection (it sent the request)."""
    source_ip: str
    """Address of that signalling connection ("" = not known: no address check)."""
    opened: float
    expires: float
    """Media is accepted until then (the command's ttl, or the stream's life)."""
    command_id: int | None = None
    bound_conn: int | None = None
    bound_gateway: str = ""
    bound_until: float = 0.0
    state: str = "open"
    """``open`` or ``done`` (the serving copy finished it; the holder stops the device)."""
    progress: dict[str, Any] = field(default_factory=dict)
    """Kind-specific progress the serving copy shares (a clip: frames stored so far)."""
    version: int = 0
    """Incremented by every conditional write (compare-and-swap)."""

    def with_changes(self, **kw: Any) -> MediaRequest:
        return replace(self, **kw)

    def bound_elsewhere(self, conn_id: int, now: float) -> bool:
        return (self.bound_conn is not None and self.bound_conn != conn_id
                and self.bound_until > now)

    def as_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "channel": self.channel, "kind": self.kind,
                "ref": self.ref, "holder": self.holder, "source_ip": self.source_ip,
                "opened": self.opened, "expires": self.expires, "command_id": self.command_id,
                "bound_conn": self.bound_conn, "bound_gateway": self.bound_gateway,
                "bound_until": self.bound_until, "state": self.state,
                "progress": self.progress, "version": self.version}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MediaRequest:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str = ""


def host_of(source: str) -> str:
    """``1.2.3.4:5678`` / ``[::1]:5678`` → the address without the port."""
    host = source.rsplit(":", 1)[0] if ":" in source else source
    return host.strip("[]")


def admit(request: MediaRequest | None, *, conn_id: int, source: str, now: float,
          same_address: bool) -> Decision:
    """May the media connection ``conn_id`` from ``source`` feed ``request`` (the one open for
    the device channel its first frame names)?"""
    if request is None:
        return Decision(False, "nothing outstanding for this device channel")
    if request.kind not in MEDIA_KINDS:
        return Decision(False, f"unknown media request kind {request.kind!r}")
    if request.state != "open" or request.expires <= now:
        return Decision(False, f"the {request.kind} request is closed")
    if same_address and request.source_ip and host_of(source) != request.source_ip:
        return Decision(False, f"address {host_of(source)} is not the device's signalling "
                               f"address")
    if request.bound_elsewhere(conn_id, now):
        return Decision(False, f"the {request.kind} request is bound to another connection")
    return Decision(True)


def bind(request: MediaRequest, *, conn_id: int, gateway_id: str, now: float) -> MediaRequest:
    """The request bound to (or renewed for) ``conn_id`` served by ``gateway_id``."""
    return request.with_changes(bound_conn=conn_id, bound_gateway=gateway_id,
                                bound_until=now + BINDING_LEASE)


def release(request: MediaRequest, conn_id: int) -> MediaRequest | None:
    """The request freed by its bound connection (closed), for the device's next one; None if
    ``conn_id`` does not hold it."""
    if request.bound_conn != conn_id:
        return None
    return request.with_changes(bound_conn=None, bound_gateway="", bound_until=0.0)
