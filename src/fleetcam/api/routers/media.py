"""/gw/devices/{sel}/media: search, upload, edit and delete device media files."""
from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from fleetcam.api.deps import ContainerDep, SelectorDep
from fleetcam.api.params import Options, as_list, declared_length, json_body, parse_options
from fleetcam.domain import expr
from fleetcam.domain.retention import check_upload, upload_room
from fleetcam.errors import Invalid, NotFound, TooLarge
from fleetcam.ports import MediaQuery
from fleetcam.services.render import select_fields

router = APIRouter(prefix="/gw/devices", tags=["media"])
Body = Annotated[Any, Depends(json_body)]


def encode_cursor(created: float, uuid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, uuid]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, str]:
    try:
        created, uuid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return float(created), str(uuid)
    except (ValueError, TypeError) as e:
        raise Invalid("cursor is not one this server issued", field="cursor") from e


def _query(ids: tuple[int, ...], opts: Options) -> MediaQuery:
    flt = opts.filter
    uuid = opts.raw.get("uuid")
    if uuid is not None:
        uuids = uuid if isinstance(uuid, list) else [uuid]
        if not all(isinstance(u, str) for u in uuids):
            raise Invalid("uuid must be a string or a list of strings", field="uuid")
        by_uuid = expr.Or(tuple(expr.Cmp("uuid", "==", u) for u in uuids))
        flt = by_uuid if flt is None else expr.And((by_uuid, flt))
    return MediaQuery(device_ids=ids, filter=flt, time_from=opts.time_from,
                      time_to=opts.time_to, count=opts.count, reverse=opts.reverse,
                      cursor=decode_cursor(opts.cursor) if opts.cursor else None)


MEDIA_FIELDS = ("uuid", "device_id", "name", "size", "mime", "created", "uploaded", "modified",
                "protected", "shared", "channel_id", "channel", "type")
"""What every file has; ``meta.*`` and ``preview.meta.*`` too; other names are attributes."""


def _known_fields(c: ContainerDep, ids: tuple[int, ...], flt: expr.Node | None) -> None:
    """An empty answer to a filter naming a field no file of these devices has is a typo:
    400 naming it."""
    for name in expr.fields(flt):
        if name in MEDIA_FIELDS or name.startswith(("meta.", "preview.meta.")):
            continue
        if not c.media.search(MediaQuery(device_ids=ids, filter=expr.Cmp(name, "!=", None),
                                         count=1)):
            raise Invalid(f"unknown field {name!r} in the filter: files have "
                          f"{', '.join(MEDIA_FIELDS)}, meta.* and the attributes set on them, "
                          f"and no file of these devices has {name!r}", field=name)


@router.get("/{sel}/media")
def list_media(c: ContainerDep, sel: SelectorDep,
               data: Annotated[str | None, Query(description="JSON: filter, fields, uuid, from,"
                                                 " to, count, reverse, cursor")] = None,
               fields: str | None = None) -> dict[str, Any]:
    """Search media files, oldest first (``reverse`` for newest), paged by ``cursor``."""
    opts = parse_options(data, fields)
    ids = tuple(d.id for d in c.devices.select(sel))
    files = c.media.search(_query(ids, opts))
    if not files:
        _known_fields(c, ids, opts.filter)
    out: dict[str, Any] = {"result": [select_fields(c.media.render(f), opts.fields)
                                      for f in files]}
    if len(files) == opts.count:
        out["next_cursor"] = encode_cursor(files[-1].created, files[-1].uuid)
    return out


@router.post("/{sel}/media-upload")
def upload_ticket(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """How to upload a file too large for one API request (``{"name", "mime", "size",
    "data"}``): on AWS a pre-signed S3 POST (send ``fields`` then the ``file`` part to
    ``url``; the file appears as ``uuid`` once ingested); locally the API's own upload."""
    devices = c.devices.select(sel)
    if len(devices) != 1:
        raise (NotFound("device not found", field="selector") if not devices else
               Invalid("upload needs a selector naming exactly one existing device",
                       field="selector"))
    return {"result": [c.media.upload_ticket(devices[0].id, body,
                                             expires=c.settings.share_link_expiry)]}


@router.post("/{sel}/media", openapi_extra={"requestBody": {"content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "data": {"type": "string", "description": 'JSON, e.g. {"type":"image","meta":'
                                                  '{"channel":1,"created":1700000000}}'}}}}}}})
async def upload_media(c: ContainerDep, sel: SelectorDep, request: Request) -> dict[str, Any]:
    """Upload a file (multipart ``file`` plus optional JSON ``data``) to one device."""
    devices = await run_in_threadpool(c.devices.select, sel)
    if not devices:
        raise NotFound("device not found", field="selector")
    if len(devices) != 1:
        raise Invalid("upload needs a selector naming exactly one existing device",
                      field="selector")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Invalid("upload must be multipart/form-data with a 'file' part", field="file")
    # the storage cap is checked before the body is read and while it streams in, so an
    # upload that cannot fit is refused without being spooled anywhere
    device = devices[0]
    total, protected, _ = await run_in_threadpool(c.index.usage, device.id)
    room = upload_room(device, total, protected)
    size = declared_length(request)
    if size is not None and size > room + MULTIPART_SLACK:
        check_upload(device, size - MULTIPART_SLACK, total, protected)  # raises with why
    request = Request(request.scope, _limited_receive(request.receive, device, room,
                                                       total, protected))
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("multipart part 'file' is required", field="file")
        raw_data = form.get("data")
        options: Any = None
        if isinstance(raw_data, str) and raw_data.strip():
            try:
                options = json.loads(raw_data)
            except ValueError as e:
                raise Invalid(f"data is not valid JSON: {e}", field="data") from e
        f = await run_in_threadpool(
            c.ingest.upload, devices[0].id, upload.file, filename=upload.filename,
            content_type=upload.content_type or "application/octet-stream",
            raw_options=options, size_hint=upload.size)
    return {"result": [c.media.render(f)]}


MULTIPART_SLACK = 64 * 1024
"""Bytes of multipart framing and form fields allowed on top of the file itself."""


def _limited_receive(receive: Receive, device: Any, room: int, total: int,
                     protected: int) -> Receive:
    """``receive`` that raises TooLarge once the body passed what the device may store."""
    got = 0

    async def limited() -> Message:
        nonlocal got
        message = await receive()
        if message["type"] == "http.request":
            got += len(message.get("body", b""))
            if got > room + MULTIPART_SLACK:
                check_upload(device, got - MULTIPART_SLACK, total, protected)
                raise TooLarge(f"upload exceeds the {room} bytes the device may still store",
                               field="file")
        return message

    return limited


@router.put("/{sel}/media")
def update_media(c: ContainerDep, sel: SelectorDep, body: Body) -> dict[str, Any]:
    """Set attributes, ``protected`` or ``shared``: ``{"uuid": ..., ...}`` or a list."""
    if body is None:
        raise Invalid("body must name a uuid and the attributes to set", field="body")
    ids = [d.id for d in c.devices.select(sel)]
    return {"result": [c.media.render(f) for f in c.media.update(ids, as_list(body))]}


@router.delete("/{sel}/media")
def delete_media(c: ContainerDep, sel: SelectorDep, body: Body,
                 force: Annotated[bool, Query(description="a bulk delete (no body) removes "
                                              "protected files too")] = False
                 ) -> dict[str, Any]:
    """Delete ``{"uuid": ...}`` (or a list of them, protected or not); with no body, every
    unprotected file (``force=true``: protected ones too). Counts ``removed`` and ``kept``."""
    ids = [d.id for d in c.devices.select(sel)]
    if body is None:
        removed, kept = c.media.delete_all(ids, force=force)
    else:
        uuids = []
        for item in as_list(body):
            u = item.get("uuid") if isinstance(item, dict) else item
            if not isinstance(u, str):
                raise Invalid("each item needs a string uuid", field="uuid")
            uuids.append(u)
        removed, kept = c.media.delete(ids, uuids), 0
    return {"result": [{"uuid": f.uuid, "device_id": f.device_id} for f in removed],
            "removed": len(removed), "kept": kept}
