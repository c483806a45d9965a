"""Device selectors as flespi writes them: ``all``, ``1,2,3`` or an expression."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleetcam.domain import expr
from fleetcam.domain.models import Device
from fleetcam.errors import Invalid

MAX_ID = 2**63 - 1  # SQLite's and DynamoDB's integers; flespi's ids are far smaller
_IDS = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")


@dataclass(frozen=True)
class Selector:
    """What a path's ``{sel}`` names: every device, some ids, or those matching a filter."""

    all: bool = False
    ids: tuple[int, ...] = ()
    filter: expr.Node | None = None
    within: frozenset[int] | None = None
    """The ids the caller's token reaches (None: all); nothing outside is selected."""

    @property
    def single_id(self) -> int | None:
        return self.ids[0] if len(self.ids) == 1 and self.filter is None and not self.all else None

    def matches(self, device: Device) -> bool:
        if self.within is not None and device.id not in self.within:
            return False
        if self.all:
            return True
        if self.ids:
            return device.id in self.ids
        return expr.evaluate(self.filter, lambda name: device_field(device, name))


DEVICE_FIELDS = ("id", "name", "ident", "protocol", "enabled", "media_ttl", "media_rotate",
                 "messages_ttl")
"""The device fields a selector expression may name (besides configuration.* and metadata.*)."""


def is_device_field(name: str) -> bool:
    return (name in DEVICE_FIELDS or name.startswith(("configuration.", "metadata."))
            and len(name.split(".", 1)[1]) > 0)


def device_field(device: Device, name: str) -> Any:
    """A device's field by flespi name (``configuration.ident`` included)."""
    if name in ("configuration.ident", "ident"):
        return device.ident
    if name.startswith("metadata."):
        return device.metadata.get(name.removeprefix("metadata."))
    if name.startswith("configuration."):
        return None
    return getattr(device, name, None)


def parse_selector(text: str) -> Selector:
    """Parse a selector.

    Raises:
        Invalid: neither ``all``, a list of ids, nor a well-formed expression.
    """
    text = text.strip()
    if not text:
        raise Invalid("empty device selector", field="selector")
    if text == "all":
        return Selector(all=True)
    if _IDS.match(text):
        ids = tuple(dict.fromkeys(int(p) for p in text.split(",")))
        if any(i > MAX_ID for i in ids):
            raise Invalid(f"device id out of range (at most {MAX_ID})", field="selector")
        return Selector(ids=ids)
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    try:
        node = expr.parse(text)
    except Invalid as e:
        raise Invalid(f"bad device selector: {e.reason}", field="selector") from e
    if node is None:  # "{}" must not silently select every device
        raise Invalid("empty device selector", field="selector")
    return Selector(filter=node)
