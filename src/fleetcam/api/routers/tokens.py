"""/platform/customer/tokens: flespi's token management (master tokens only)."""
from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from fleetcam.api.deps import ContainerDep
from fleetcam.api.params import as_list, json_body, parse_fields
from fleetcam.errors import Invalid
from fleetcam.services.render import select_fields

router = APIRouter(prefix="/platform/customer/tokens", tags=["tokens"])
Body = Annotated[Any, Depends(json_body)]
Fields = Annotated[str | None, Query(description="comma-separated fields to return")]
Data = Annotated[str | None, Query(description="the body as JSON (flespi accepts both)")]


def _body(body: Any, data: str | None) -> Any:
    if body is None and data:
        try:
            return json.loads(data)
        except ValueError as e:
            raise Invalid("data: not valid JSON", field="data") from e
    return body


def _out(items: list[dict[str, Any]], fields: str | None) -> dict[str, Any]:
    wanted = parse_fields(fields)
    return {"result": [select_fields(i, wanted) for i in items]}


@router.post("")
def create_tokens(c: ContainerDep, body: Body, data: Data = None,
                  fields: Fields = None) -> dict[str, Any]:
    """Create tokens: ``[{"info", "ttl" | "expire", "access": {"type": 0|1|2, "acl": [...]}}]``;
    ``result[i].key`` is the token, shown this once (only its hash is kept)."""
    body = _body(body, data)
    if body is None:
        raise Invalid("body must be a token object or a list of them", field="body")
    return _out(c.access.create(as_list(body)), fields)


@router.get("/{sel}")
def get_tokens(c: ContainerDep, sel: str, fields: Fields = None) -> dict[str, Any]:
    """Tokens by ``all``, ids or an expression (their keys are not kept, so not shown)."""
    return _out(c.access.list_json(sel), fields)


@router.put("/{sel}")
def update_tokens(c: ContainerDep, sel: str, body: Body, data: Data = None,
                  fields: Fields = None) -> dict[str, Any]:
    """Change ``info``, ``ttl``, ``expire``, ``access``, ``enabled`` or ``metadata``; a
    changed or disabled token's sessions follow within seconds."""
    return _out(c.access.update(sel, _body(body, data)), fields)


@router.delete("/{sel}")
def delete_tokens(c: ContainerDep, sel: str) -> dict[str, Any]:
    """Revoke tokens: REST, MQTT sessions and live links opened with them stop working."""
    return {"result": c.access.delete(sel)}
