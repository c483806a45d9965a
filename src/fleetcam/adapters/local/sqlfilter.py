"""Translate a parsed filter expression into a SQLite WHERE clause over the media table.

The SQL selects exactly the rows ``expr.evaluate(node, file.field_value)`` accepts (a property
test holds the two together): comparisons are typed as the evaluator types them, never
NULL (two-valued ``NOT``), and the only wildcard is ``*``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetcam.domain import expr

COLUMNS = {"uuid": "uuid", "device_id": "device_id", "name": "name", "size": "size",
           "mime": "mime", "created": "created", "uploaded": "uploaded",
           "modified": "modified", "protected": "protected", "shared": "shared",
           "channel_id": "channel_id", "channel": "channel_id"}
_TEXT_COLUMNS = frozenset({"uuid", "name", "mime"})
_NULLABLE = frozenset({"channel_id"})
_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_INT64 = 2**63
_JSON_KINDS = {"number": "('integer', 'real', 'true', 'false')", "text": "('text')"}


@dataclass(frozen=True)
class _Field:
    sql: str
    kind: str | None
    """'number' or 'text' for a typed column; None for a JSON value (typed per row)."""
    nullable: bool = False
    json_type: str = ""
    """For a JSON value: the SQL giving its JSON type (NULL when the key is missing)."""


def _field(name: str) -> _Field:
    if name in COLUMNS:
        col = COLUMNS[name]
        return _Field(col, "text" if col in _TEXT_COLUMNS else "number", col in _NULLABLE)
    if name == "type":
        source, path = "preview_meta", "$.type"
    else:
        source, path_field = "attributes", name
        for prefix in ("preview.meta.", "meta."):
            if name.startswith(prefix):
                source, path_field = "preview_meta", name.removeprefix(prefix)
                break
        path = '$."' + path_field.replace('"', "").replace("'", "") + '"'
    return _Field(f"json_extract({source}, '{path}')", None, True,
                  f"json_type({source}, '{path}')")


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return float(value)  # SQLite integers are 64-bit
    return value


def _glob(pattern: str) -> str:
    """A ``*``-only wildcard as a GLOB pattern (``?`` and ``[`` made literal)."""
    return pattern.replace("[", "[[]").replace("?", "[?]")


def _positive(f: _Field, op: str, value: Any, params: list[Any]) -> str:
    """SQL that is 1 exactly where ``field op value`` holds (op is not '!='), never NULL."""
    if value is None:
        return f"{f.sql} IS NULL" if op == "==" else "0"
    wildcard = op == "==" and expr.has_wildcard(value)
    kind = expr.value_kind(value)
    if f.kind is not None and f.kind != kind:
        return "0"
    if wildcard:
        params.append(_glob(value))
        test = f"{f.sql} GLOB ?"
    else:
        params.append(_param(value))
        test = f"{f.sql} {_OPS[op]} ?"
    if f.kind is None:
        return f"coalesce({f.json_type} IN {_JSON_KINDS[kind]} AND {test}, 0)"
    return f"coalesce({test}, 0)" if f.nullable else test


def _truthy(f: _Field) -> str:
    if f.kind == "text":
        return f"{f.sql} != ''"
    if f.kind == "number":
        return f"coalesce({f.sql}, 0) != 0" if f.nullable else f"{f.sql} != 0"
    return (f"coalesce(CASE {f.json_type} WHEN 'array' THEN {f.sql} != '[]'"
            f" WHEN 'object' THEN {f.sql} != '{{}}' ELSE {f.sql} NOT IN (0, '') END, 0)")


def to_sql(node: expr.Node | None, params: list[Any]) -> str:
    """Return SQL for ``node`` and append its parameters; "1" matches everything."""
    if node is None:
        return "1"
    if isinstance(node, expr.Cmp):
        f = _field(node.field)
        if node.op == "!=":
            return f"NOT ({_positive(f, '==', node.value, params)})"
        return _positive(f, node.op, node.value, params)
    if isinstance(node, expr.Truthy):
        return _truthy(_field(node.field))
    if isinstance(node, expr.Not):
        return f"NOT ({to_sql(node.node, params)})"
    return _join(node, list(node.nodes), params)


def _join(node: expr.And | expr.Or, nodes: list[expr.Node], params: list[Any]) -> str:
    """AND/OR as a balanced tree: SQLite refuses expressions deeper than 1000."""
    if not nodes:
        return "1" if isinstance(node, expr.And) else "0"
    if len(nodes) == 1:
        return to_sql(nodes[0], params)
    half = len(nodes) // 2
    joiner = " AND " if isinstance(node, expr.And) else " OR "
    return f"({_join(node, nodes[:half], params)}{joiner}{_join(node, nodes[half:], params)})"
