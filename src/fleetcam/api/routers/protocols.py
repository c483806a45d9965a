"""/gw/channel-protocols and their device types (with commands and property schemas)."""
from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetcam.api.params import parse_fields
from fleetcam.domain import expr
from fleetcam.domain.devicetypes import DEVICE_TYPES, PROTOCOLS
from fleetcam.domain.selectors import parse_selector
from fleetcam.services.render import select_fields

router = APIRouter(prefix="/gw/channel-protocols", tags=["channel protocols"])
Fields = Annotated[str | None, Query(description="comma-separated fields to return")]


def _pick(items: list[dict[str, Any]], sel: str) -> list[dict[str, Any]]:
    s = parse_selector(sel)
    if s.all:
        return items
    if s.filter is None:
        return [i for i in items if i["id"] in s.ids]
    return [i for i in items if expr.evaluate(s.filter, lambda name, i=i: i.get(name))]


@router.get("/{sel}")
def get_protocols(sel: str, fields: Fields = None) -> dict[str, Any]:
    """Channel protocols (``all``, ids, or an expression such as ``name="jt808"``)."""
    return {"result": [select_fields(dict(p), parse_fields(fields))
                       for p in _pick(PROTOCOLS, sel)]}


@router.get("/{sel}/device-types/{type_sel}")
@router.get("/{sel}/device-types/{type_sel}/", include_in_schema=False)  # MediaBox adds "/"
def get_device_types(sel: str, type_sel: str, fields: Fields = None) -> dict[str, Any]:
    """Device types of those protocols, each with its ``commands`` (name, title, and the JSON
    Schema of the properties, defaults included)."""
    ids = {p["id"] for p in _pick(PROTOCOLS, sel)}
    types = [t for t in _pick(DEVICE_TYPES, type_sel.rstrip("/")) if t["protocol_id"] in ids]
    return {"result": [select_fields(copy.deepcopy(t), parse_fields(fields)) for t in types]}
