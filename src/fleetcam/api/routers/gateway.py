"""Device messages, connections and commands (queued and real-time), flespi's layout."""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from fleetcam.api.deps import ContainerDep, SelectorDep
from fleetcam.api.params import (apply_filter, as_list, fetch_count, json_body,
                                 parse_options)
from fleetcam.domain.gateway import validate_timeout
from fleetcam.errors import FleetcamError, Invalid, NotFound
from fleetcam.services.gateway import NotConnected
from fleetcam.services.render import select_fields

router = APIRouter(prefix="/gw/devices", tags=["gateway"])
Body = Annotated[Any, Depends(json_body)]
Data = Annotated[str | None, Query(description="JSON: from, to, count, reverse, filter, fields")]
POLL = 0.1
EXPIRY_MARGIN = 30


def _ids(c: ContainerDep, sel: SelectorDep) -> tuple[int, ...]:
    return tuple(d.id for d in c.devices.select(sel))


def _command_ids(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        return [int(p) for p in text.split(",")]
    except ValueError as e:
        raise Invalid("command selector must be all or a list of ids", field="selector") from e


@router.get("/{sel}/messages")
def get_messages(c: ContainerDep, sel: SelectorDep, data: Data = None,
                 fields: str | None = None) -> dict[str, Any]:
    """Device messages by time; flat flespi-style fields (position.latitude, alarm.*...)."""
    opts = parse_options(data, fields)
    rows = c.messages.store.query(_ids(c, sel), time_from=opts.time_from, time_to=opts.time_to,
                                  count=fetch_count(opts), reverse=opts.reverse)
    rows = apply_filter(rows, opts)
    return {"result": [select_fields(r, opts.fields) for r in rows]}


@router.get("/{sel}/connections")
@router.get("/{sel}/connections/all")
def get_connections(c: ContainerDep, sel: SelectorDep) -> dict[str, Any]:
    """Open connections (signalling, media streams) of the devices."""
    return {"result": [conn.as_json() for conn in c.connections.registry.list(_ids(c, sel))]}


@router.delete("/{sel}/connections/{conn_id}")
def drop_connection(c: ContainerDep, sel: SelectorDep, conn_id: int) -> dict[str, Any]:
    """Close a connection (a live or playback stream stops this way)."""
    return {"result": [c.connections.drop(_ids(c, sel), conn_id).as_json()]}


@router.post("/{sel}/commands-queue")
def queue_commands(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """Queue commands (each {name, properties, ttl}); delivered when the device is online."""
    if body is None:
        raise Invalid("body must be a command or a list of them", field="body")
    return {"result": [cmd.queue_json() for cmd in c.commands.enqueue(_ids(c, sel),
                                                                      as_list(body))]}


def _known_commands(c: ContainerDep, device_ids: tuple[int, ...],
                    wanted: list[int] | None) -> None:
    """404 naming the command ids that are no command of these devices (queued or done)."""
    if wanted is None:
        return
    devices = set(device_ids)
    missing = [i for i in wanted
               if (cmd := c.commands.store.get(i)) is None or cmd.device_id not in devices]
    if missing:
        raise NotFound(f"no command with id {', '.join(map(str, missing))} for these devices",
                       field="selector", ids=missing)


@router.get("/{sel}/commands-queue/{cmd_sel}")
@router.get("/{sel}/commands-queue")
def list_queue(c: ContainerDep, sel: SelectorDep, cmd_sel: str = "all") -> dict[str, Any]:
    """Commands still in the queue (queued or sent, awaiting the device's answer)."""
    wanted = _command_ids(cmd_sel)
    ids = _ids(c, sel)
    _known_commands(c, ids, wanted)
    return {"result": [cmd.queue_json() for cmd in c.commands.queue(ids)
                       if wanted is None or cmd.id in wanted]}


@router.delete("/{sel}/commands-queue/{cmd_sel}")
@router.delete("/{sel}/commands-queue")
def cancel_queue(c: ContainerDep, sel: SelectorDep, cmd_sel: str = "all") -> dict[str, Any]:
    """Cancel queued commands."""
    wanted = _command_ids(cmd_sel)
    ids = _ids(c, sel)
    _known_commands(c, ids, wanted)
    return {"result": [cmd.result_json() for cmd in c.commands.cancel(ids, wanted)]}


@router.get("/{sel}/commands-result/{cmd_sel}")
@router.get("/{sel}/commands-result")
def command_results(c: ContainerDep, sel: SelectorDep, cmd_sel: str = "all",
                    data: Data = None) -> dict[str, Any]:
    """Results of finished commands (processed, canceled, expired): all, or by id."""
    opts = parse_options(data, None)
    wanted = _command_ids(cmd_sel)
    ids = _ids(c, sel)
    _known_commands(c, ids, wanted)
    if wanted is not None:
        cmds = [cmd for i in wanted if (cmd := c.commands.store.get(i)) is not None
                and cmd.final]
    else:
        cmds = c.commands.results(ids, time_from=opts.time_from, time_to=opts.time_to,
                                  count=opts.count)
    return {"result": [select_fields(cmd.result_json(), opts.fields) for cmd in cmds]}


@router.post("/{sel}/commands")
async def realtime_commands(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """Send commands now and wait for the answers (``timeout`` 5–60 s, default 15;
    request_video: up to 300 s, default 15 s + twice the clip)."""
    if body is None:
        raise Invalid("body must be a command or a list of them", field="body")
    items = as_list(body)
    timeouts = [validate_timeout(item) for item in items]
    ids = await run_in_threadpool(_ids, c, sel)
    for device_id in ids:
        if await run_in_threadpool(c.connections.online, device_id) is None:
            raise NotConnected(f"device {device_id} is not connected")
    results = []
    for item, timeout in zip(items, timeouts):
        # the ttl outlives the wait, so an unanswered command ends canceled by _wait, not
        # expired by a housekeeping pass that happens to run first
        cmds = await run_in_threadpool(c.commands.enqueue, ids, [item], timeout + EXPIRY_MARGIN)
        cap = c.settings.realtime_wait_max
        results += await asyncio.gather(*(_wait(c, cmd.id, timeout, cap) for cmd in cmds))
    return {"result": results}


async def _wait(c: ContainerDep, command_id: int, timeout: float,
                cap: float = 0.0) -> dict[str, Any]:
    """The command's result within ``timeout`` (canceled past it: CommandTimeout); with a
    ``cap`` below the timeout (AWS), past the cap the command stays queued: CommandPending."""
    loop = asyncio.get_running_loop()
    capped = 0 < cap < timeout
    deadline = loop.time() + (cap if capped else timeout)
    while loop.time() < deadline:
        cmd = await run_in_threadpool(c.commands.store.get, command_id)
        if cmd is not None and cmd.final:
            return cmd.result_json()
        await asyncio.sleep(POLL)
    cmd = await run_in_threadpool(c.commands.store.get, command_id)
    if capped and cmd is not None and not cmd.final:
        raise CommandPending(
            f"command {command_id} got no answer within {cap:g} s, the longest this API can "
            f"wait; it stays queued until its timeout of {timeout:g} s: read "
            f"/gw/devices/{cmd.device_id}/commands-result/{command_id}", ids=[command_id])
    if cmd is not None and not cmd.final:
        await run_in_threadpool(partial(c.commands.cancel, outcome="timed_out"),
                                [cmd.device_id], [cmd.id])
    raise CommandTimeout(f"command {command_id} got no answer within {timeout:g} s")


class CommandTimeout(FleetcamError):
    """The device did not answer a real-time command in time (it was canceled)."""

    code = 3
    http_status = 504


class CommandPending(FleetcamError):
    """A real-time command got no answer within the longest wait the API's front allows
    (API Gateway: 29 s); unlike CommandTimeout it is not canceled: it stays queued until its
    own timeout, and its result appears in commands-result. Answered 202 with its id."""

    code = 3
    http_status = 202
