"""flespi's request options: the ``data`` JSON query parameter, ``fields``, JSON bodies."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request

from fleetcam.domain import expr
from fleetcam.errors import Invalid, TooLarge

MAX_COUNT = 10_000


@dataclass(frozen=True)
class Options:
    """The parsed ``data``: filter, fields, time range, count, order, cursor."""

    raw: dict[str, Any]
    filter: expr.Node | None
    fields: list[str] | None
    time_from: float | None
    time_to: float | None
    count: int
    reverse: bool
    cursor: str | None


def _number(raw: dict[str, Any], name: str) -> float | None:
    v = raw.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid(f"{name} must be a unix time in seconds", field=name)
    return float(v)


def parse_fields(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    if isinstance(value, str):
        return [f.strip() for f in value.split(",") if f.strip()]
    raise Invalid("fields must be a comma-separated string", field="fields")


def parse_options(data: str | None, fields: str | None, default_count: int = 1000) -> Options:
    """Parse ``?data=<json>&fields=a,b``.

    Raises:
        Invalid: naming the bad key and why.
    """
    raw: dict[str, Any] = {}
    if data:
        try:
            raw = json.loads(data)
        except ValueError as e:
            raise Invalid(f"data is not valid JSON: {e}", field="data") from e
        if not isinstance(raw, dict):
            raise Invalid("data must be a JSON object", field="data")
    flt = raw.get("filter")
    if flt is not None and not isinstance(flt, str):
        raise Invalid("filter must be a string", field="filter")
    count = raw.get("count", default_count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise Invalid(f"count must be an integer from 1 to {MAX_COUNT}", field="count")
    reverse = raw.get("reverse", False)
    if not isinstance(reverse, bool):
        raise Invalid("reverse must be a boolean", field="reverse")
    cursor = raw.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise Invalid("cursor must be a string", field="cursor")
    return Options(raw=raw, filter=expr.parse(flt or ""),
                   fields=parse_fields(fields) or parse_fields(raw.get("fields")),
                   time_from=_number(raw, "from"), time_to=_number(raw, "to"), count=count,
                   reverse=reverse, cursor=cursor)


DEFAULT_MAX_JSON_BODY = 1024 * 1024


def declared_length(request: Request) -> int | None:
    """The Content-Length the client declared, or None (chunked, or absent).

    Raises:
        Invalid: a Content-Length that is not a number.
    """
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise Invalid("Content-Length is not a number", field="body")
    return int(value)


async def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The body, refused with 413 (TooLarge) as soon as it is known to exceed ``limit``:
    from its Content-Length before anything is read, else while it streams in."""
    size = declared_length(request)
    if size is not None and size > limit:
        raise TooLarge(f"{what} of {size} bytes exceeds the limit of {limit} bytes",
                       field="body")
    chunks, got = [], 0
    async for chunk in request.stream():
        got += len(chunk)
        if got > limit:
            raise TooLarge(f"{what} exceeds the limit of {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The body as JSON whatever the content type says (flespi's web UI sends JSON as a form);
    a form whose only field is ``data`` holding JSON is read too. None for an empty body.

    Raises:
        TooLarge: the body exceeds FLEETCAM_MAX_JSON_BODY (413, before any parsing).
    """
    container = getattr(request.app.state, "container", None)
    limit = getattr(getattr(container, "settings", None), "max_json_body",
                    DEFAULT_MAX_JSON_BODY)
    raw = await read_limited(request, limit, "JSON request body")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    form = parse_qs(raw.decode("utf-8", "replace"))
    if list(form) == ["data"] and len(form["data"]) == 1:
        try:
            return json.loads(form["data"][0])
        except ValueError:
            pass
    raise Invalid("request body is not valid JSON", field="body")


def as_list(body: Any) -> list[Any]:
    return body if isinstance(body, list) else [body]


def fetch_count(opts: Options) -> int:
    """How many rows to read for ``opts``: with a filter, the filter chooses among up to
    MAX_COUNT rows of the time range and ``count`` limits what it chose (flespi's order)."""
    return opts.count if opts.filter is None else MAX_COUNT


def apply_filter(rows: list[dict[str, Any]], opts: Options) -> list[dict[str, Any]]:
    if opts.filter is None:
        return rows
    return [r for r in rows if expr.evaluate(opts.filter, r.get)][:opts.count]
