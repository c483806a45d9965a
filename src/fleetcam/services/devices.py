"""Device CRUD over the registry, with validation of the fields a user may set."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fleetcam.domain.identity import PROVISIONED, Identity, check_code, new_code
from fleetcam.domain.models import DEVICE_STORAGE_CAP, Device
from fleetcam.domain import expr
from fleetcam.domain.selectors import DEVICE_FIELDS, Selector, is_device_field
from fleetcam.errors import Invalid, NotFound
from fleetcam.ports import Clock, DeviceRepo

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


_UNSET = object()


def identity_changes(raw: Any) -> dict[str, Any]:
    """The identity part of a device body: ``configuration.auth_code`` (a string provisions
    that code, null resets it so the next registration gets a fresh one, "generate" makes
    a new random code and shows it once, in this request's answer) and
    ``configuration.reregister_at_boot`` (bool).

    Raises:
        Invalid: naming the field and why.
    """
    conf = raw.get("configuration") if isinstance(raw, dict) else None
    if not isinstance(conf, dict):
        return {}
    out: dict[str, Any] = {}
    if "auth_code" in conf:
        code = conf["auth_code"]
        out["auth_code"] = code if code in (None, "generate") else check_code(code)
    if "reregister_at_boot" in conf:
        if not isinstance(conf["reregister_at_boot"], bool):
            raise Invalid("configuration.reregister_at_boot must be a boolean",
                          field="configuration.reregister_at_boot")
        out["reregister_at_boot"] = conf["reregister_at_boot"]
    return out


def apply_identity(current: Identity, changes: dict[str, Any], now: float,
                   shown: dict[str, str]) -> Identity:
    """``current`` with the admin's ``changes``; a generated code is put in ``shown``."""
    new = current
    code = changes.get("auth_code", _UNSET)
    if code is None:
        new = new.reset()
    elif code is not _UNSET:
        if code == "generate":
            code = shown["auth_code"] = shown.get("auth_code") or new_code()
        new = new.with_code(code, PROVISIONED, now, terminal={})
    if "reregister_at_boot" in changes:
        new = replace(new, reregister_at_boot=changes["reregister_at_boot"])
    return new


class DeviceService:
    def __init__(self, repo: DeviceRepo, default_media_ttl: int = 0,
                 clock: Clock | None = None, default_messages_ttl: int | None = None) -> None:
        self.repo = repo
        self.default_media_ttl = default_media_ttl
        self.default_messages_ttl = default_messages_ttl
        """``messages_ttl`` of a new device that names none: the store's retention."""
        self.clock = clock

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else time.time()

    def create(self, items: list[Any], shown_codes: dict[int, str] | None = None
               ) -> list[Device]:
        """Create devices; codes generated for them (``"auth_code": "generate"``) are put in
        ``shown_codes`` by device id: the only time they can be read."""
        cleaned = [(clean_fields(item, creating=True), identity_changes(item))
                   for item in items]
        created = []
        for fields, changes in cleaned:
            fields.setdefault("media_ttl", self.default_media_ttl)
            if self.default_messages_ttl is not None:
                fields.setdefault("messages_ttl", self.default_messages_ttl)
            shown: dict[str, str] = {}
            if changes:
                fields["identity"] = apply_identity(Identity(), changes, self._now(), shown)
            device = self.repo.create(fields)
            if shown and shown_codes is not None:
                shown_codes[device.id] = shown["auth_code"]
            created.append(device)
        return created

    def set_identity(self, device: Device, changes: dict[str, Any],
                     shown_codes: dict[int, str] | None = None) -> Device:
        """Apply the admin's identity changes (compare-and-set against the gateway)."""
        from fleetcam.services.identity import change_identity

        shown: dict[str, str] = {}
        now = self._now()
        new = change_identity(self.repo, device.id,
                              lambda cur: apply_identity(cur, changes, now, shown))
        if shown and shown_codes is not None:
            shown_codes[device.id] = shown["auth_code"]
        return device.with_changes(identity=new) if new is not None else device

    def select(self, sel: Selector) -> list[Device]:
        """Devices a selector names.

        Raises:
            NotFound: listing the ids that do not exist (``all`` and expressions that match
                nothing answer an empty list).
            Invalid: an expression names a field devices do not have.
        """
        if sel.ids and sel.filter is None and not sel.all:
            out, missing = [], []
            for i in sel.ids:
                if sel.within is not None and i not in sel.within:
                    continue
                try:
                    out.append(self.repo.get(i))
                except NotFound:
                    missing.append(i)
            if missing:
                raise NotFound(f"no device with id {', '.join(map(str, missing))}",
                               field="selector", ids=missing)
            return out
        if sel.filter is not None:
            unknown = [f for f in expr.fields(sel.filter) if not is_device_field(f)]
            if unknown:
                raise Invalid(f"unknown device field {unknown[0]!r} in the selector; devices "
                              f"have {', '.join(DEVICE_FIELDS)}, configuration.* and "
                              "metadata.*", field=unknown[0])
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

    def update(self, sel: Selector, raw: Any, shown_codes: dict[int, str] | None = None
               ) -> list[Device]:
        fields = clean_fields(raw, creating=False)
        changes = identity_changes(raw)
        out = []
        for d in self.select(sel):
            d = self.repo.update(d.with_changes(**fields)) if fields else d
            if changes:
                d = self.set_identity(d, changes, shown_codes)
            out.append(d)
        return out
