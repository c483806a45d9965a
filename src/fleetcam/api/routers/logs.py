"""/gw/devices/{sel}/logs: the device log (media operations)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from fleetcam.api.deps import ContainerDep, SelectorDep
from fleetcam.api.params import apply_filter, fetch_count, parse_options
from fleetcam.services.journal import render_log
from fleetcam.services.render import select_fields

router = APIRouter(prefix="/gw/devices", tags=["logs"])


@router.get("/{sel}/logs")
def get_logs(c: ContainerDep, sel: SelectorDep, data: str | None = Query(None),
             fields: str | None = Query(None)) -> dict[str, Any]:
    """Log entries by time (``data``: from, to, count, reverse, filter, fields)."""
    opts = parse_options(data, fields)
    ids = tuple(d.id for d in c.devices.select(sel))
    events = opts.raw.get("event")
    event_list = (events,) if isinstance(events, str) else tuple(events or ())
    entries = c.logs.query(ids, time_from=opts.time_from, time_to=opts.time_to,
                           events=event_list, count=fetch_count(opts), reverse=opts.reverse)
    items = apply_filter([render_log(e) for e in entries], opts)
    return {"result": [select_fields(i, opts.fields) for i in items]}
