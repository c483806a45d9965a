"""A media file's link: content with byte ranges, ``?preview=jpeg`` and ``?preview=json``."""
from __future__ import annotations

import logging
import re
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from fleetcam.api.deps import ContainerDep, optional_principal
from fleetcam.domain import hls
from fleetcam.errors import Forbidden, Invalid, NotFound, Unauthorized
from fleetcam.services.sharing import stream_of

log = logging.getLogger(__name__)
router = APIRouter(tags=["files"])
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
REDIRECT_ABOVE = 4 * 1024 * 1024
"""Content larger than this is served by the store itself through a pre-signed link, where
the store can make one (S3): a Lambda response holds at most 6 MB, about 4.5 MB of binary
once base64-encoded. The local store streams everything."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range of RFC 9110 as (first, last); None means the whole file.

    Raises:
        Invalid: unsatisfiable (the caller answers 416).
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (m[1] == "" and m[2] == ""):
        return None  # multi-range or malformed: ignore it and send everything (allowed)
    if m[1] == "":
        n = int(m[2])
        if n == 0:
            raise Invalid("unsatisfiable range")
        return max(0, size - n), size - 1
    first = int(m[1])
    last = min(int(m[2]), size - 1) if m[2] else size - 1
    if first >= size or last < first:
        raise Invalid("unsatisfiable range")
    return first, last


_LIVE_NAME = re.compile(r"index\.m3u8|\d{1,9}\.ts")


@router.get("/media/live/{uuid}/{name}")
def live_file(c: ContainerDep, uuid: str, name: str) -> Response:
    """A live or playback stream's HLS playlist or segment (no token: the path is unguessable).
    Fetching the playlist keeps the stream alive; a segment that is gone answers 404."""
    if not re.fullmatch(r"[0-9a-f]{32}", uuid) or not _LIVE_NAME.fullmatch(name):
        raise NotFound(f"no stream file {uuid}/{name}")
    playlist = name == "index.m3u8"
    if playlist:
        try:  # best effort: a busy store must not fail the player's reload
            c.connections.registry.touch(hls.connection_id(uuid), c.clock.now())
        except Exception:
            log.warning("stream %s: could not record the playlist access", uuid, exc_info=True)
    try:
        body = b"".join(c.store.read(hls.stream_key(uuid, name)))
    except NotFound as e:
        raise NotFound(f"no stream file {uuid}/{name}") from e
    return Response(body, media_type="application/vnd.apple.mpegurl" if playlist
                    else "video/mp2t",
                    headers={"Cache-Control": "no-cache" if playlist else "max-age=120"})


@router.head("/media/{uuid}", operation_id="media_link_head")  # its own id: OpenAPI ids are unique
@router.get("/media/{uuid}")
def media_link(c: ContainerDep, request: Request, uuid: str,
               preview: Literal["jpeg", "json"] | None = None,
               share: str | None = None) -> Response:
    """A file's content (Range answered with 206), thumbnail or bare JSON; a live stream's
    uuid answers its playlist (307) or a recent still. No token is needed unless the file is
    not ``shared``: then a token with media read access, or a share link (``?share=``). A
    GET of large content, or any through a share link, answers 307 to a pre-signed link when
    the store makes them (S3: signed afresh at each access); HEAD is always answered here."""
    valid = re.fullmatch(r"[0-9a-f]{32}", uuid) is not None
    link = c.shares.check(uuid, share) if share is not None and valid else None
    if share is not None and not valid:
        raise NotFound(f"media file {uuid} not found")
    f = c.index.get(uuid) if valid else None
    if f is None:
        conn = stream_of(c.connections.registry, uuid) if valid else None
        if conn is not None:
            return _stream_link(c, conn, uuid, preview)
        raise NotFound(f"media file {uuid} not found")
    if link is None and not f.shared:
        who = optional_principal(request, c)
        if who is None:
            raise Unauthorized("this file is not shared: a token with media access is required")
        if not who.allows("gw/devices", "GET", f.device_id, "media"):
            raise Forbidden(f"token {who.token_id} may not read media of device {f.device_id}")
    if preview == "json":
        return JSONResponse(c.media.render(f))  # the bare object, as flespi answers
    if preview == "jpeg":
        return Response(c.media.preview(f), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})
    if link is not None and request.method == "GET":
        presign = getattr(c.store, "presigned_url", None)
        if presign is not None:  # re-signed at each access: never outlives the share link
            ttl = max(1, min(int(link.expire - c.clock.now()), c.settings.share_link_expiry))
            url = presign(f.key, ttl, content_type=f.mime,
                          disposition=f"inline; filename*=UTF-8''{quote(f.name)}")
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    disposition = f"inline; filename*=UTF-8''{quote(f.name)}"
    presign = getattr(c.store, "presigned_url", None)
    if request.method == "GET" and f.size > REDIRECT_ABOVE and presign is not None:
        # the token and shared rules were checked above; the link itself expires
        url = presign(f.key, c.settings.share_link_expiry, content_type=f.mime,
                      disposition=disposition)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{f.uuid}-{f.size}"',
               "Content-Disposition": disposition}
    try:
        rng = parse_range(request.headers.get("range"), f.size)
    except Invalid:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{f.size}"})
    first, last = rng if rng else (0, f.size - 1)
    headers["Content-Length"] = str(max(0, last - first + 1))
    status = 206 if rng else 200
    if rng:
        headers["Content-Range"] = f"bytes {first}-{last}/{f.size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=f.mime)
    body = c.store.read(f.key, first, last) if f.size else iter([b""])
    return StreamingResponse(body, status_code=status, headers=headers, media_type=f.mime)


STILL_CACHE_SECONDS = 2


def _stream_link(c: ContainerDep, conn: Any, uuid: str, preview: str | None) -> Response:
    """A live or playback stream's uuid as a media link: its playlist, a still, its JSON."""
    playlist = f"/media/{hls.stream_key(uuid, 'index.m3u8')}"
    if preview == "json":  # as flespi describes a stream: MediaBox's share page plays it
        m = conn.meta
        return JSONResponse({
            "uuid": uuid, "device_id": conn.device_id, "url": f"{c.settings.base_url}{playlist}",
            "mime": "application/x-mpegURL", "name": f"live-ch{m.get('channel')}",
            "created": m.get("started", conn.established), "channel_id": m.get("channel"),
            "meta": {"type": "mediastream", "channel": m.get("channel"), "kind": m.get("kind")},
            "mediastream": m.get("mediastream"), "hls": m.get("hls")})
    if preview != "jpeg":
        return RedirectResponse(playlist, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        text = b"".join(c.store.read(hls.stream_key(uuid, "index.m3u8"))).decode()
        last = [ln for ln in text.splitlines() if ln.endswith(".ts")][-1]
        segment = b"".join(c.store.read(hls.stream_key(uuid, last)))
    except (NotFound, IndexError, UnicodeDecodeError) as e:
        raise NotFound(f"stream {uuid} has no picture yet") from e
    jpeg = _still(segment)
    return Response(jpeg, media_type="image/jpeg",
                    headers={"Cache-Control": f"max-age={STILL_CACHE_SECONDS}"})


def _still(segment: bytes) -> bytes:
    """The first keyframe of an MPEG-TS segment as a JPEG thumbnail (segments start on one)."""
    import tempfile

    from fleetcam.errors import CorruptMedia
    from fleetcam.media.probe import probe_video

    with tempfile.NamedTemporaryFile(suffix=".ts") as tmp:
        tmp.write(segment)
        tmp.flush()
        try:
            _, jpeg = probe_video(tmp.name)
        except CorruptMedia as e:
            raise NotFound("the stream's latest segment has no picture") from e
    return jpeg
