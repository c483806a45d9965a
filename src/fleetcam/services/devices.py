"""Device CRUD over the registry, with validation of the fields a user may set."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetcam.domain.models import DEVICE_STORAGE_CAP, Device
from fleetcam.domain.selectors import Selector
from fleetcam.errors import Invalid, NotFound
from fleetcam.ports import DeviceRepo

_INT_FIELDS = {"media_ttl": (0, 10 * 365 * 86400), "media_rotate": (0, DEVICE_STORAGE_CAP),
               "messages_ttl": (0, 10 * 365 * 86400)}
_SETTABLE = {"name", "ident", "protocol", "media_ttl", "media_rotate", "messages_ttl",
             "metadata", "enabled", "configuration", "device_type_id"}


def clean_fields(raw: Any, *, creating: bool) -> dict[str, Any]:
    """Validate a device body; ``configuration.ident`` is read as ``ident``.

    Raises:
        Invalid: naming the field and why.
    """
    if not isinstance(raw, dict):
        raise Invalid("each device must be a JSON object", field="body")
    unknown = set(raw) - _SETTABLE - {"id"}
    if unknown:
        raise Invalid(f"unknown device field(s): {', '.join(sorted(unknown))}",
                      field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    conf = raw.get("configuration")
    if conf is not None:
        if not isinstance(conf, dict):
            raise Invalid("configuration must be an object", field="configuration")
        if "ident" in conf:
            out["ident"] = conf["ident"]
    for key in ("name", "ident", "protocol"):
        if key in raw:
            out[key] = raw[key]
    for key in ("name", "ident", "protocol"):
        if key in out and (not isinstance(out[key], str) or not out[key].strip()
                           or len(out[key]) > 255):
            raise Invalid(f"{key} must be a non-empty string of at most 255 characters",
                          field=key)
    for key, (lo, hi) in _INT_FIELDS.items():
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise Invalid(f"{key} must be an integer from {lo} to {hi}", field=key)
            out[key] = v
    if "metadata" in raw:
        if not isinstance(raw["metadata"], dict):
            raise Invalid("metadata must be an object", field="metadata")
        out["metadata"] = raw["metadata"]
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise Invalid("enabled must be a boolean", field="enabled")
        out["enabled"] = raw["enabled"]
    if creating:
        if "ident" not in out:
            raise Invalid("ident (or configuration.ident) is required", field="ident")
        out.setdefault("name", out["ident"])
    return out


class DeviceService:
    def __init__(self, repo: DeviceRepo, default_media_ttl: int = 0) -> None:
        self.repo = repo
        self.default_media_ttl = default_media_ttl

    def create(self, items: list[Any]) -> list[Device]:
        cleaned = [clean_fields(item, creating=True) for item in items]
        created = []
        for fields in cleaned:
            fields.setdefault("media_ttl", self.default_media_ttl)
            created.append(self.repo.create(fields))
        return created

    def select(self, sel: Selector) -> list[Device]:
        """Devices a selector names; ids that do not exist are skipped, as flespi does."""
        if sel.ids and sel.filter is None and not sel.all:
            out = []
            for i in sel.ids:
                if sel.within is not None and i not in sel.within:
                    continue
                try:
                    out.append(self.repo.get(i))
                except NotFound:
                    pass
            return out
        return [d for d in self.repo.list() if sel.matches(d)]

    def get(self, device_id: int) -> Device:
        return self.repo.get(device_id)

    def delete(self, sel: Selector, purge_media: Callable[[int], object]) -> list[Device]:
        """Delete the selected devices, each after its media (so no file is orphaned)."""
        gone = self.select(sel)
        for d in gone:
            purge_media(d.id)
            self.repo.delete(d.id)
        return gone

    def update(self, sel: Selector, raw: Any) -> list[Device]:
        fields = clean_fields(raw, creating=False)
        return [self.repo.update(d.with_changes(**fields)) for d in self.select(sel)]
