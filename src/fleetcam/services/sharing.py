"""Expiring, revocable share links to a media file or a live stream."""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from fleetcam.domain import hls
from fleetcam.domain.shares import MAX_SHARE_SECONDS, SHARE_ID, ShareLink
from fleetcam.errors import Forbidden, Gone, Invalid, NotFound
from fleetcam.ports import Clock, ConnectionRegistry, MediaIndex, ShareStore

UUID = re.compile(r"^[0-9a-f]{32}$")


def stream_of(registry: ConnectionRegistry, uuid: str) -> Any:
    """The live or playback stream connection whose uuid this is, else None."""
    conn = registry.get(hls.connection_id(uuid))
    if conn is None or (conn.meta.get("mediastream") or {}).get("uuid") != uuid:
        return None
    return conn


class ShareService:
    def __init__(self, store: ShareStore, index: MediaIndex, registry: ConnectionRegistry,
                 clock: Clock, base_url: str) -> None:
        self.store = store
        self.index = index
        self.registry = registry
        self.clock = clock
        self.base_url = base_url

    def url(self, link: ShareLink) -> str:
        return f"{self.base_url}/media/{link.uuid}?share={link.id}"

    def as_json(self, link: ShareLink) -> dict[str, Any]:
        return {"id": link.id, "uuid": link.uuid, "device_id": link.device_id,
                "expire": link.expire, "created": link.created, "url": self.url(link),
                "revoked": link.revoked}

    def create(self, device_id: int, body: Any) -> dict[str, Any]:
        """``{"uuid": <file or stream uuid of this device>, "expire": <unix time>}``."""
        if not isinstance(body, Mapping):
            raise Invalid("body: {\"uuid\": ..., \"expire\": <unix time>}", field="body")
        uuid = self._uuid(body)
        now = self.clock.now()
        expire = body.get("expire")
        if isinstance(expire, bool) or not isinstance(expire, int):
            raise Invalid("expire: a unix time in seconds", field="expire")
        if expire <= now:
            raise Invalid("expire: in the past", field="expire")
        if expire > now + MAX_SHARE_SECONDS:
            raise Invalid(f"expire: at most {MAX_SHARE_SECONDS} s ahead", field="expire")
        self._owned(device_id, uuid)
        link = ShareLink(id=secrets.token_hex(16), uuid=uuid, device_id=device_id,
                         expire=expire, created=now)
        self.store.add(link)
        return self.as_json(link)

    def revoke(self, device_id: int, body: Any) -> list[dict[str, Any]]:
        """``{"uuid": ...}`` revokes every link to that file or stream; ``{"id": ...}`` one."""
        if not isinstance(body, Mapping) or not ("uuid" in body or "id" in body):
            raise Invalid("body: {\"uuid\": ...} or {\"id\": <share id>}", field="body")
        if "id" in body:
            sid = body["id"]
            link = self.store.get(sid) if isinstance(sid, str) and SHARE_ID.match(sid) else None
            if link is None or link.device_id != device_id:
                raise NotFound(f"share link {sid!r} not found for device {device_id}",
                               field="id")
            links = [link]
        else:
            links = [s for s in self.store.of_file(self._uuid(body))
                     if s.device_id == device_id]
        return [{"id": s.id, "uuid": s.uuid} for s in links if self.store.revoke(s.id)]

    def check(self, uuid: str, share_id: str) -> ShareLink:
        """The link if it opens ``uuid`` now.

        Raises:
            Forbidden: unknown, altered, or for another file.
            Gone: revoked or expired."""
        link = self.store.get(share_id) if SHARE_ID.match(share_id or "") else None
        if link is None or link.uuid != uuid:
            raise Forbidden("share link not valid: it was altered, or never issued")
        state = link.state(self.clock.now())
        if state == "revoked":
            raise Gone("share link revoked")
        if state == "expired":
            when = datetime.fromtimestamp(link.expire, timezone.utc).isoformat()
            raise Gone(f"share link expired at {when}")
        return link

    def _uuid(self, body: Mapping[str, Any]) -> str:
        uuid = body.get("uuid")
        if not isinstance(uuid, str) or not UUID.match(uuid):
            raise Invalid("uuid: a file's or stream's 32-hex-digit uuid", field="uuid")
        return uuid

    def _owned(self, device_id: int, uuid: str) -> None:
        f = self.index.get(uuid)
        if f is not None and f.device_id == device_id:
            return
        conn = stream_of(self.registry, uuid)
        if conn is not None and conn.device_id == device_id:
            return
        raise NotFound(f"device {device_id} has no file or stream {uuid}", field="uuid")
