"""The DVR's read side with Flussonic's paths: the end-user files players fetch
(``/{name}/ranges.json``, ``archive-{from}-{duration}.mp4``, playlists, thumbnails...) and
the administrator's ``/streamer/api/v3/streams/{name}/dvr/ranges`` and ``/dvr/export``.

Who may call: administrator calls need the admin token (``FlespiToken``, ``Bearer`` or Basic
with the token as password, as Flussonic's clients send it) or a scoped token allowed to
write the stream's device. End-user calls also take the stream's read token (from
``GET /streamer/api/v3/streams/{name}/dvr/token``) or a scoped token that may read the
device's media, in a header or as ``?token=`` (players cannot always send headers). CORS
(players run on other origins) is the app's middleware's.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from fleetcam.api.deps import ContainerDep
from fleetcam.api.routers.dvr_config import service
from fleetcam.domain import dvr, dvrplay
from fleetcam.domain.access import Principal
from fleetcam.errors import Forbidden, Invalid, NotFound, Unauthorized
from fleetcam.runtime.container import Container
from fleetcam.runtime.dvrplay import (export_jobs, exporter, playback, staged_download,
                                      thumbnails)
from fleetcam.services.dvrplay import DvrPlayback

log = logging.getLogger(__name__)
router = APIRouter(tags=["dvr (end-user files)"])
admin_router = APIRouter(prefix="/streamer/api/v3/streams", tags=["dvr"])
MAX_SESSION_BODY = 64 * 1024
_TS_PART = re.compile(r"(\d{13}-[0-9a-f]{8})-(\d{1,12})-(\d{1,9})\.ts")
MAX_GAPS_HEADER = 2000


# -- auth --------------------------------------------------------------------------------------
def _presented(request: Request, *, query: bool) -> str | None:
    header = request.headers.get("authorization", "").strip()
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() in ("flespitoken", "bearer") and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password or None
    if query:
        return request.query_params.get("token") or None
    return None


def read_token(c: Container, stream: dvr.DvrStream) -> str:
    """The stream's read token, derived from the admin token's hash and the stream's random
    ``read_salt``: ``DELETE .../dvr/token`` revokes one stream's token, rotating the admin
    token revokes every one of them, and a stream deleted and configured again never gets its
    old token back."""
    key = str(getattr(c.access, "admin_hash", None) or "").encode()
    if not key:
        raise NotFound("no admin token is configured, so there are no stream read tokens")
    msg = f"fleetcam-dvr-read:{stream.name}:{stream.read_salt}"
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()[:40]


def _principal(c: Container, token: str) -> Principal | None:
    return c.access.authenticate(f"Bearer {token}")  # type: ignore[no-any-return]


def require_admin(request: Request, c: Container, stream: dvr.DvrStream) -> None:
    """The admin token, or a scoped token allowed the ``dvr`` submodule of ``gw/devices`` for
    the stream's device with this method (as the stream configuration API checks)."""
    token = _presented(request, query=False)
    if token is None:
        raise Unauthorized("token required: Authorization: Bearer <token> (or Basic)")
    p = _principal(c, token)
    if p is None:
        raise Unauthorized("invalid, expired or revoked token")
    if not p.allows("gw/devices", request.method, stream.device_id, "dvr"):
        raise Forbidden(f"this token has no DVR {request.method} access to device "
                        f"{stream.device_id}")


def require_reader(request: Request, c: Container, stream: dvr.DvrStream) -> str:
    """The stream's read token, or a token that may GET the device's ``dvr`` or ``media``.
    Returns the token (playlist links carry it on)."""
    token = _presented(request, query=True)
    if token is None:
        raise Unauthorized("token required: Authorization header or ?token=")
    key = getattr(c.access, "admin_hash", None)
    if key and hmac.compare_digest(token, read_token(c, stream)):
        return token
    p = _principal(c, token)
    if p is None:
        raise Unauthorized("invalid token for this stream")
    if not (p.allows("gw/devices", "GET", stream.device_id, "dvr")
            or p.allows("gw/devices", "GET", stream.device_id, "media")):
        raise Forbidden(f"this token may not read the DVR of {stream.name}")
    return token


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status,
                        headers={"Cache-Control": "no-cache", **(headers or {})})


# -- json -----------------------------------------------------------------------------------------
def _stream_for_user(request: Request, c: Container, name: str) -> tuple[DvrPlayback,
                                                                        dvr.DvrStream, str]:
    svc = playback(c)
    stream = svc.stream(name)
    return svc, stream, require_reader(request, c, stream)


@router.get("/{name}/ranges.json")
def ranges_json(c: ContainerDep, request: Request, name: str) -> JSONResponse:
    """``{"ranges": [{"opened_at", "closed_at"}]}``: in ms when the query's bounds are ms
    (as the player's first request), else seconds."""
    svc, _, _ = _stream_for_user(request, c, name)
    q = request.query_params
    bounds = [_int(q.get(k), k) for k in ("closed_at_gte", "opened_at_lte", "from", "to")]
    millis = any(b is not None and b > 10**11 for b in bounds[:2])
    scale = 1 if millis else 1000
    lo = bounds[0] if bounds[0] is not None else bounds[2]
    hi = bounds[1] if bounds[1] is not None else bounds[3]
    limit = _int(q.get("limit"), "limit") or 100_000
    if lo is None and hi is None and limit >= 100_000:
        body = svc.ranges_json(name, "ms" if millis else "s", key="ranges")
        return Response(body, media_type="application/json", headers={"Cache-Control":
                                                                       "no-cache"})
    found = svc.ranges(name, None if lo is None else lo * scale,
                       None if hi is None else hi * scale)
    spans = [(r.start_ms, r.end_ms) for r in found[:max(1, min(limit, 100_000))]]
    return _json({"ranges": dvrplay.flussonic_ranges(spans, millis=millis)})


def _int(text: str | None, field: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(float(text))
    except ValueError:
        raise Invalid(f"{field} must be a number", field=field) from None


@router.get("/{name}/recording_status.json")
def recording_status(c: ContainerDep, request: Request, name: str) -> JSONResponse:
    """Flussonic's older form: ``[{"stream", "ranges": [{"from", "duration"}]}]``."""
    svc, _, _ = _stream_for_user(request, c, name)
    q = request.query_params
    lo, hi = _int(q.get("from"), "from"), q.get("to")
    hi_s = None if hi in (None, "", "now") else _int(hi, "to")
    found = svc.ranges(name, None if lo is None else lo * 1000,
                       None if hi_s is None else hi_s * 1000)
    return _json([{"stream": name, "ranges": [r.as_flussonic() for r in found]}])


@router.get("/{name}/info.json")
@router.get("/{name}/media_info.json")
def info_json(c: ContainerDep, request: Request, name: str) -> JSONResponse:
    """What the player checks: tracks, dvr settings and depth, thumbnails, permissions."""
    svc, stream, _ = _stream_for_user(request, c, name)
    found = svc.extent(name)  # (first start, last end): no list of every range
    latest = next(iter(svc.index.segments(name, found[1] - 1, found[1], limit=1)),
                  None) if found else None
    tail = svc._open(name)
    latest = latest or tail  # the newest minutes may not be stored yet
    tracks: list[dict[str, Any]] = [{"content": "video", "track_id": "v1", "codec": "h264",
                                     **({"width": latest.width, "height": latest.height}
                                        if latest else {})}]
    audio = svc.audio_track(latest) if latest is not None else None
    if audio is not None:
        tracks.append(audio)
    cfg = stream.dvr.as_json() if stream.dvr else None
    body = {
        "name": name, "title": stream.title,
        "stats": {"alive": tail is not None, "status": "running" if tail else "idle",
                  "dvr_enabled": stream.recording, "media_info": {"tracks": tracks}},
        "media_info": {"tracks": tracks},
        "dvr": {**(cfg or {}), "enabled": stream.recording,
                "from": found[0] // 1000 if found else None,
                "to": -(-found[1] // 1000) if found else None},
        "thumbnails": {"enabled": True},
        "permissions": {"export": True, "dvr": True, "thumbnails": True},
        "protocols": {"hls": True, "mp4": True, "mse": False, "webrtc": False},
    }
    return _json(body)


@router.put("/{name}/sessions/{session_id}")
@router.post("/{name}/sessions/{session_id}")
async def session(c: ContainerDep, request: Request, name: str, session_id: str) -> JSONResponse:
    """Players open (and report on) sessions; fleetcam only acknowledges them."""
    _, _, _ = _stream_for_user(request, c, name)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_SESSION_BODY:
            raise Invalid("session body is too large")
    return _json({"id": session_id[:64], "name": name})


# -- stored objects behind playlists --------------------------------------------------------------
@router.head("/{name}/dvr/{file}", operation_id="stored_object_head")  # its own id: OpenAPI ids are unique
@router.get("/{name}/dvr/{file}")
def stored_object(c: ContainerDep, request: Request, name: str, file: str) -> Response:
    """A stored segment (``{segment_id}.m4s``, byte ranges) or its init (``{segment_id}.mp4``)
    as a playlist names them."""
    svc, _, _ = _stream_for_user(request, c, name)
    tracks = request.query_params.get("filter.tracks") or None
    ts = _TS_PART.fullmatch(file)
    if ts:
        body = b"".join(svc.ts_fragment(name, ts[1], int(ts[2]), int(ts[3]), tracks))
        return Response(body, media_type="video/mp2t", headers={"Cache-Control":
                                                                "max-age=3600"})
    seg_id, _, ext = file.rpartition(".")
    if ext not in ("m4s", "mp4"):
        raise NotFound(f"no DVR object {file[:60]!r}")
    seg = svc.segment(name, seg_id)
    if ext == "mp4":
        data = svc.init_for(seg, tracks)
        return Response(data, media_type="video/mp4",
                        headers={"Cache-Control": "max-age=86400"})
    if tracks:  # a malformed filter is a 400 before any byte goes out
        svc.init_for(seg, tracks)
    return _ranged(request, seg.size, "video/iso.segment",
                   lambda a, b: svc.read_filtered(seg, a, b, tracks),
                   {"Cache-Control": "max-age=3600"})


def _ranged(request: Request, size: int, mime: str, read: Any,
            extra: dict[str, str]) -> Response:
    from fleetcam.api.routers.files import parse_range

    headers = {**extra, "Accept-Ranges": "bytes"}
    try:
        rng = parse_range(request.headers.get("range"), size)
    except Invalid:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = rng if rng else (0, size - 1)
    headers["Content-Length"] = str(max(0, last - first + 1))
    if rng:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 206 if rng else 200
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=mime)
    return StreamingResponse(read(first, last), status_code=status, headers=headers,
                             media_type=mime)


# -- archive files ----------------------------------------------------------------------------------
@router.head("/{name}/{file}", operation_id="archive_file_head")  # its own id: OpenAPI ids are unique
@router.get("/{name}/{file}")
def archive_file(c: ContainerDep, request: Request, name: str, file: str) -> Response:
    """``archive-{from}-{duration}.mp4`` / ``.ts``, playlists, thumbnails."""
    req = dvrplay.parse_file(file)
    if req is None:
        raise NotFound(f"no such file {file[:80]!r}")
    svc, stream, token = _stream_for_user(request, c, name)
    if req.kind == "mp4":
        return _mp4(request, svc, name, req, request.query_params.get("filter.tracks"))
    if req.kind == "ts":
        return _ts(request, svc, name, req, request.query_params.get("filter.tracks"))
    if req.kind in ("vod", "event", "live"):
        body = svc.playlist(name, req, token=token if request.query_params.get("token")
                            else None,
                            tracks=request.query_params.get("filter.tracks") or None).encode()
        headers = {"Cache-Control": "no-cache" if req.kind != "vod" else "max-age=10",
                   "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 1024:
            body = gzip.compress(body, 5)  # an hour of 1 s entries: ~700 KB, ~60 KB gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="application/vnd.apple.mpegurl", headers=headers)
    if req.kind == "jpg":
        return _stored_thumbnail(c, request, name, req.start)
    if req.kind in ("preview_jpg", "preview_mp4"):
        return _preview(c, name, req)
    raise NotFound(f"{file} is not served yet")


ON_DEMAND = threading.BoundedSemaphore(2)
"""Thumbnails decoded at once (CPU): more callers wait up to ``ON_DEMAND_WAIT``, then 503."""
ON_DEMAND_WAIT = 5.0


def _preview(c: Container, name: str, req: dvrplay.FileRequest) -> Response:
    """``{from}-preview.jpg`` / ``.mp4``: made now from the keyframe nearest ``from``."""
    dvrplay.check_window(req.start, None, c.clock.now())
    th = thumbnails(c)
    if not ON_DEMAND.acquire(timeout=ON_DEMAND_WAIT):
        return Response(status_code=503, headers={"Retry-After": "2"},
                        content=b'{"errors":[{"code":1,"reason":"thumbnailer busy"}]}',
                        media_type="application/json")
    try:
        if req.kind == "preview_jpg":
            at, data = th.preview_jpeg(name, req.start * 1000)
            mime = "image/jpeg"
        else:
            at, data = th.preview_mp4(name, req.start * 1000)
            mime = "video/mp4"
    finally:
        ON_DEMAND.release()
    return Response(data, media_type=mime, headers={
        "X-Thumbnail-Utc": f"{at / 1000:.3f}", "Cache-Control": "private, max-age=3600"})


def _stored_thumbnail(c: Container, request: Request, name: str, start: int) -> Response:
    """``{from}.jpg``: the stored thumbnail of that exact second, else 302 to the nearest."""
    dvrplay.check_window(start, None, c.clock.now())
    th = thumbnails(c)
    near = th.stored_near(name, start * 1000)
    if near is None:
        raise NotFound(f"no stored thumbnail of {name} near {start}")
    at, seg, thumb = near
    if at // 1000 == start:
        return Response(th.stored_bytes(seg, thumb), media_type="image/jpeg", headers={
            "X-Thumbnail-Utc": f"{at / 1000:.3f}", "Cache-Control": "private, max-age=86400"})
    query = f"?{request.url.query}" if request.url.query else ""
    return Response(status_code=302, headers={"Location": f"{at // 1000}.jpg{query}",
                                              "X-Thumbnail-Utc": f"{at / 1000:.3f}"})


def _mp4(request: Request, svc: DvrPlayback, name: str, req: dvrplay.FileRequest,
         tracks: str | None) -> Response:
    dl = svc.download(name, req.start, req.duration or 0, tracks=tracks)
    lay = dl.layout
    gaps = json.dumps([g.as_json() for g in lay.gaps], separators=(",", ":"))
    if len(gaps) > MAX_GAPS_HEADER:
        gaps = json.dumps([g.as_json() for g in lay.gaps[:20]] + [
            {"more": len(lay.gaps) - 20}], separators=(",", ":"))
    fname = f"{name}-{req.start}-{req.duration}.mp4"
    etag = hashlib.sha1(lay.header[:4096] + str((lay.total, lay.fragments)).encode()
                        ).hexdigest()[:20]
    disposition = f"attachment; filename=\"{fname}\"; filename*=UTF-8''{quote(fname)}"
    if request.method == "GET":
        link = staged_download(request.app.state.container, name, lay, dl, etag, disposition)
        if link is not None:  # AWS: S3 serves it (byte ranges included), not the function
            return Response(status_code=307, headers={"Location": link,
                                                      "Cache-Control": "no-store"})
    extra = {"Content-Disposition": disposition,
             "X-Dvr-Gaps": gaps, "ETag": f'"{etag}"', "Cache-Control": "private, max-age=60"}
    return _ranged(request, lay.total, "video/mp4",
                   lambda a, b: _render(dl, a, b), extra)


def _ts(request: Request, svc: DvrPlayback, name: str, req: dvrplay.FileRequest,
        tracks: str | None) -> Response:
    """``archive-{from}-{duration}.ts``: remuxed in one pass (no byte ranges: its layout is
    not known before muxing)."""
    from fleetcam.media.dvrts import to_mpegts

    dl = svc.download(name, req.start, req.duration or 0, tracks=tracks)
    fname = f"{name}-{req.start}-{req.duration}.ts"
    headers = {"Content-Disposition": f"attachment; filename=\"{fname}\"",
               "Accept-Ranges": "none", "X-Dvr-Gaps": json.dumps(
                   [g.as_json() for g in dl.layout.gaps[:20]], separators=(",", ":")),
               "Cache-Control": "private, max-age=60"}
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type="video/mp2t")
    return StreamingResponse(to_mpegts(_render(dl, 0, dl.layout.total - 1)),
                             headers=headers, media_type="video/mp2t")


def _render(dl: Any, first: int, last: int) -> Any:
    from fleetcam.media import archive

    return archive.render(dl.layout, dl.read, first, last, on_bad=dl.on_bad)


# -- administrator --------------------------------------------------------------------------------
@admin_router.get("/{name}/dvr/ranges")
def admin_ranges(c: ContainerDep, request: Request, name: str) -> Response:
    """Recorded intervals, merged: ``{"ranges": [{"from", "duration"}]}`` (UTC seconds)."""
    svc = playback(c)
    stream = svc.stream(name)
    require_admin(request, c, stream)
    return Response(svc.ranges_json(name, "flussonic", key="ranges"),
                    media_type="application/json")


@admin_router.get("/{name}/dvr/token")
def admin_read_token(c: ContainerDep, request: Request, name: str) -> dict[str, Any]:
    """The stream's read token for end-user calls (``?token=`` or a header)."""
    svc = playback(c)
    stream = svc.stream(name)
    require_admin(request, c, stream)
    return {"name": name, "token": read_token(c, stream)}


@admin_router.delete("/{name}/dvr/token")
def admin_revoke_read_token(c: ContainerDep, request: Request, name: str) -> dict[str, Any]:
    """Revoke the stream's read token at once (links carrying it get 401) and return the
    new one."""
    svc = playback(c)
    stream = svc.stream(name)
    require_admin(request, c, stream)
    return {"name": name, "token": read_token(c, service(c).revoke_read_token(name))}


@admin_router.delete("/{name}/dvr/ranges")
async def admin_delete_range(c: ContainerDep, request: Request, name: str) -> dict[str, Any]:
    """Remove ``{"from", "duration"}`` (UTC seconds) of the archive, keeping what episodes
    protect; the answer says what was deleted and what was kept, and why."""
    svc = playback(c)
    stream = svc.stream(name)
    require_admin(request, c, stream)
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
        start, duration = float(body["from"]), float(body["duration"])
    except (ValueError, KeyError, TypeError):
        raise Invalid('body must be {"from": utc_seconds, "duration": seconds}') from None
    dvrplay.check_window(int(start), max(1, int(duration)) if duration > 0 else 0,
                         c.clock.now(), longest=10 * 365 * 86400)
    return await run_in_threadpool(svc.delete_range, name, int(start * 1000),
                                   int((start + duration) * 1000))


@admin_router.post("/{name}/dvr/export")
async def admin_export(c: ContainerDep, request: Request, name: str) -> Response:
    """Write ``from``..``from + duration`` as one MP4 to ``path`` (a file under the export
    roots, or ``s3://bucket/key``; Flussonic's ``s3://KEY:SECRET@host/bucket/key`` too);
    ``meta=true`` adds metadata to ``udta``. Never overwrites (409). With ``progress=true``
    (or ``Accept: application/x-ndjson``) the answer streams a progress line every half
    second (bytes and seconds covered) and ends with the result."""
    svc = playback(c)
    stream = svc.stream(name)
    require_admin(request, c, stream)
    q = dict(request.query_params)
    raw = await request.body()
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            raise Invalid("body must be JSON") from None
        if isinstance(body, dict):
            q = {**{k: str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in body.items()}, **q}
    start, duration = _int(q.get("from"), "from"), _int(q.get("duration"), "duration")
    if start is None or duration is None:
        raise Invalid("from and duration are required (UTC seconds, seconds)")
    meta = q.get("meta", "").lower() in ("1", "true", "yes")
    streaming = q.get("progress", "").lower() in ("1", "true", "yes") or \
        "application/x-ndjson" in request.headers.get("accept", "")
    background = q.get("async", "").lower() in ("1", "true", "yes") or \
        "respond-async" in request.headers.get("prefer", "")
    if background or (streaming and _buffered(c)):
        # a job: its progress is read with GET .../dvr/export/{id} while it runs (the only
        # way where responses are buffered, as through API Gateway and Lambda)
        jobs = export_jobs(c)
        job = await run_in_threadpool(jobs.start, name, start, duration, q.get("path", ""),
                                      meta=meta, tracks=q.get("filter.tracks"))
        return _json({"job": job.as_json()}, status=202, headers={
            "Location": f"/streamer/api/v3/streams/{name}/dvr/export/{job.job_id}"})
    ex = exporter(c)
    layout, target, sink, dl = await run_in_threadpool(
        ex.prepare, name, start, duration, q.get("path", ""),
        meta=meta, tracks=q.get("filter.tracks"))
    if not streaming:
        try:
            result = await run_in_threadpool(ex.run, name, layout, target, sink, dl)
        except Exception:
            log.exception("dvr %s: export to %s failed", name, target.public())
            raise
        return _json({"result": result})
    return StreamingResponse(_progress_lines(ex, name, layout, target, sink, dl),
                             media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-cache"})


def _buffered(c: Container) -> bool:
    """Whether this runtime's responses reach the client only whole (AWS: exports are
    queued to the export function there)."""
    return bool(c.settings.dvr_export_queue_url)


@admin_router.get("/{name}/dvr/export")
def admin_export_jobs(c: ContainerDep, request: Request, name: str) -> Response:
    """The stream's background exports, newest first (finished ones for 7 days)."""
    stream = playback(c).stream(name)
    require_admin(request, c, stream)
    jobs = export_jobs(c)
    return _json({"jobs": [jobs.get(name, j.job_id).as_json()
                           for j in jobs.store.list(name, limit=50)]})


@admin_router.get("/{name}/dvr/export/{job_id}")
def admin_export_job(c: ContainerDep, request: Request, name: str, job_id: str) -> Response:
    """One background export: status, bytes written of the total, seconds of the range
    covered; its result once done, its reason once failed."""
    stream = playback(c).stream(name)
    require_admin(request, c, stream)
    return _json({"job": export_jobs(c).get(name, job_id).as_json()})


def _progress_lines(ex: Any, name: str, layout: Any, target: Any, sink: Any,
                    dl: Any) -> Any:
    import queue
    import threading

    from fleetcam.errors import FleetcamError

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1000)

    def work() -> None:
        try:
            res = ex.run(name, layout, target, sink, dl,
                         progress=lambda p: q.put(("progress", p.as_json())))
            q.put(("result", res))
        except FleetcamError as e:
            q.put(("error", {"reason": e.reason}))
        except Exception as e:  # noqa: BLE001 - reported in the stream, logged here
            log.exception("dvr %s: export to %s failed", name, target.public())
            q.put(("error", {"reason": f"export failed: {type(e).__name__}"}))

    threading.Thread(target=work, name=f"dvr-export-{name}", daemon=True).start()
    while True:
        kind, value = q.get()
        yield (json.dumps({kind: value}) + "\n").encode()
        if kind != "progress":
            return
