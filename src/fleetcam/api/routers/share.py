"""/gw/devices/{id}/media/share: expiring, revocable links to a file or a live stream."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fleetcam.api.deps import ContainerDep, SelectorDep
from fleetcam.api.params import as_list, json_body
from fleetcam.errors import Invalid, NotFound

router = APIRouter(prefix="/gw/devices", tags=["media"])
Body = Annotated[Any, Depends(json_body)]


def _device(c: ContainerDep, sel: SelectorDep) -> int:
    if sel.single_id is None:
        raise Invalid("share links are made per device: name one device id", field="selector")
    if not c.devices.select(sel):
        raise NotFound(f"device {sel.single_id} not found")
    return sel.single_id


@router.post("/{sel}/media/share")
def share_media(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """``{"uuid": <file or stream uuid>, "expire": <unix time>}`` (or a list): answers the
    link in ``result[i].url``, valid until ``expire`` unless revoked; no token needed."""
    device_id = _device(c, sel)
    if body is None:
        raise Invalid("body: {\"uuid\": ..., \"expire\": <unix time>}", field="body")
    return {"result": [c.shares.create(device_id, item) for item in as_list(body)]}


@router.delete("/{sel}/media/share")
def unshare_media(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """Revoke: ``{"uuid": ...}`` every link to that file or stream, ``{"id": ...}`` one."""
    device_id = _device(c, sel)
    if body is None:
        raise Invalid("body: {\"uuid\": ...} or {\"id\": <share id>}", field="body")
    return {"result": [r for item in as_list(body) for r in c.shares.revoke(device_id, item)]}
