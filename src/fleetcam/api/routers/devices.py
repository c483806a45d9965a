"""/gw/devices: create, read, update, delete."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from fleetcam.api.deps import ContainerDep, SelectorDep
from fleetcam.api.params import as_list, json_body, parse_fields
from fleetcam.errors import Invalid
from fleetcam.services.render import device_json, select_fields

router = APIRouter(prefix="/gw/devices", tags=["devices"])
Body = Annotated[Any, Depends(json_body)]
RETIME_BUDGET = 5.0
"""Seconds a device update spends moving its files' expiry before it answers."""
Fields = Annotated[str | None, Query(description="comma-separated fields to return")]


def _out(c: ContainerDep, devices: list[Any], fields: str | None) -> dict[str, Any]:
    wanted = parse_fields(fields)
    return {"result": [select_fields(device_json(d, c.index.usage(d.id)[0]), wanted)
                       for d in devices]}


@router.post("")
def create_devices(c: ContainerDep, body: Body, fields: Fields = None) -> dict[str, Any]:
    """Create devices from a JSON object or a list of them (``ident`` required)."""
    if body is None:
        raise Invalid("body must be a device object or a list of them", field="body")
    return _out(c, c.devices.create(as_list(body)), fields)


@router.get("/{sel}")
def get_devices(c: ContainerDep, sel: SelectorDep, fields: Fields = None) -> dict[str, Any]:
    """Devices the selector names."""
    return _out(c, c.devices.select(sel), fields)


@router.put("/{sel}")
def update_devices(c: ContainerDep, sel: SelectorDep, body: Body,
                   fields: Fields = None) -> dict[str, Any]:
    """Change fields of the selected devices."""
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object", field="body")
    updated = c.devices.update(sel, body)
    if "media_ttl" in body:  # files' stored expiry follows; what is left, the sweeper resumes
        c.retention.retime(budget=RETIME_BUDGET)
    return _out(c, updated, fields)


@router.delete("/{sel}")
def delete_devices(c: ContainerDep, sel: SelectorDep) -> dict[str, Any]:
    """Delete the selected devices and all their media."""
    gone = c.devices.delete(sel, lambda device_id: c.media.delete([device_id], None))
    return {"result": [{"id": d.id} for d in gone]}
