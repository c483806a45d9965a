"""Translate a parsed filter expression into a SQLite WHERE clause over the media table."""
from __future__ import annotations

from typing import Any

from fleetcam.domain import expr

COLUMNS = {"uuid": "uuid", "device_id": "device_id", "name": "name", "size": "size",
           "mime": "mime", "created": "created", "uploaded": "uploaded",
           "modified": "modified", "protected": "protected", "shared": "shared",
           "channel_id": "channel_id", "channel": "channel_id"}
_OPS = {"==": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _column(field: str) -> str:
    if field in COLUMNS:
        return COLUMNS[field]
    if field == "type":
        return "json_extract(preview_meta, '$.type')"
    path_field = field.removeprefix("preview.meta.").removeprefix("meta.")
    source = "preview_meta" if path_field != field else "attributes"
    safe = path_field.replace('"', "")
    return f"json_extract({source}, '$.\"{safe}\"')"


def _param(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def to_sql(node: expr.Node | None, params: list[Any]) -> str:
    """Return SQL for ``node`` and append its parameters; "1" matches everything."""
    if node is None:
        return "1"
    if isinstance(node, expr.Cmp):
        col = _column(node.field)
        if node.value is None and node.op in ("==", "!="):
            return f"{col} IS {'NOT ' if node.op == '!=' else ''}NULL"
        if node.op in ("==", "!=") and expr.has_wildcard(node.value):
            params.append(node.value)
            return f"{'NOT ' if node.op == '!=' else ''}coalesce({col} GLOB ?, 0)"
        params.append(_param(node.value))
        if node.op == "!=":
            return f"{col} IS NOT ?"
        return f"{col} {_OPS[node.op]} ?"
    if isinstance(node, expr.Truthy):
        return f"coalesce({_column(node.field)}, 0) NOT IN (0, '')"
    if isinstance(node, expr.Not):
        return f"NOT ({to_sql(node.node, params)})"
    joiner = " AND " if isinstance(node, expr.And) else " OR "
    return "(" + joiner.join(to_sql(n, params) for n in node.nodes) + ")"
