"""/gw/video-rules: event-triggered clip rules (fleetcam's own resource; flespi has none)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fleetcam.api.deps import ContainerDep, ItemSelDep
from fleetcam.api.params import as_list, json_body
from fleetcam.errors import Invalid

router = APIRouter(prefix="/gw/video-rules", tags=["video rules"])
Body = Annotated[Any, Depends(json_body)]


@router.post("")
def create_rules(c: ContainerDep, body: Body) -> dict[str, Any]:
    """Create rules: {name, condition, devices, channels, before, after, ttl, cooldown}."""
    if body is None:
        raise Invalid("body must be a rule or a list of them", field="body")
    return {"result": [r.as_json() for r in c.rules.create(as_list(body))]}


@router.get("/{sel}")
def get_rules(c: ContainerDep, sel: ItemSelDep) -> dict[str, Any]:
    """Rules by id (``all`` or ``1,2``)."""
    return {"result": [r.as_json() for r in c.rules.select(sel)]}


@router.put("/{sel}")
def update_rules(c: ContainerDep, sel: ItemSelDep, body: Body) -> dict[str, Any]:
    """Change fields of the selected rules."""
    return {"result": [r.as_json() for r in c.rules.update(sel, body)]}


@router.delete("/{sel}")
def delete_rules(c: ContainerDep, sel: ItemSelDep) -> dict[str, Any]:
    return {"result": [{"id": r.id} for r in c.rules.delete(sel)]}
