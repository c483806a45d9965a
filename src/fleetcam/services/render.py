"""JSON shapes of the domain objects, as flespi's API returns them."""
from __future__ import annotations

from typing import Any

from fleetcam.domain.keys import file_link
from fleetcam.domain.devicetypes import device_type_id
from fleetcam.domain.models import Device, MediaFile


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def media_json(f: MediaFile, base_url: str, *, with_preview: bool = True) -> dict[str, Any]:
    """A media file as flespi's media file object, plus fleetcam's ``preview``: ``url`` (the
    thumbnail, as MediaBox and the console load it: ``{url}?preview=jpeg``) and ``meta``."""
    meta = dict(f.preview.meta)
    if f.channel_id is not None:
        meta.setdefault("channel", f.channel_id)
    out: dict[str, Any] = {
        "uuid": f.uuid,
        "url": file_link(base_url, f.uuid),
        "name": f.name,
        "size": f.size,
        "mime": f.mime,
        "created": _num(f.created),
        "modified": _num(f.modified),
        "uploaded": _num(f.uploaded),
        "protected": f.protected,
        "shared": f.shared,
        "channel_id": f.channel_id,
        "device_id": f.device_id,
        "meta": meta,
    }
    if with_preview:  # a link, not the image: lists and MQTT events stay small
        out["preview"] = {"url": f"{out['url']}?preview=jpeg", "meta": dict(f.preview.meta)}
    for k, v in f.attributes.items():
        out.setdefault(k, v)
    return out


def device_json(d: Device, media_size: int | None = None,
                connected: bool | None = None) -> dict[str, Any]:
    """A device as flespi's device object (``configuration.ident`` and a flat ``ident``)."""
    out: dict[str, Any] = {
        "id": d.id,
        "name": d.name,
        "ident": d.ident,
        "configuration": {"ident": d.ident, **d.identity.as_configuration()},
        "protocol": d.protocol,
        "enabled": d.enabled,
        "media_ttl": d.media_ttl,
        "media_rotate": d.media_rotate,
        "messages_ttl": d.messages_ttl,
        "metadata": d.metadata,
    }
    if media_size is not None:
        out["media_size"] = media_size
    if connected is not None:
        out["connected"] = connected  # a signalling connection is open
    out["device_type_id"] = device_type_id(d.protocol)
    return out


def select_fields(obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """flespi's ``fields``: keep only those keys (dotted names pick nested values)."""
    if not fields:
        return obj
    out: dict[str, Any] = {}
    for name in fields:
        if name in obj:
            out[name] = obj[name]
            continue
        cur: Any = obj
        for part in name.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            out[name] = cur
    return out
