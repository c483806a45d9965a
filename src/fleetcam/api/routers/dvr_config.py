"""Flussonic's ``/streamer/api/v3``: streams (DVR configuration) and episodes (docs/dvr.md)."""
from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from fleetcam.api.deps import ContainerDep
from fleetcam.api.params import json_body
from fleetcam.domain.dvr import EpisodeQuery
from fleetcam.domain.access import Principal
from fleetcam.errors import Forbidden, Invalid, NotFound, Unauthorized
from fleetcam.runtime.container import Container
from fleetcam.services.dvr import DvrService

router = APIRouter(prefix="/streamer/api/v3", tags=["dvr"])
Body = Annotated[Any, Depends(json_body)]
SUBMODULE = "dvr"
DEVICES_URI = "gw/devices"


def flussonic_token(request: Request) -> str | None:
    """The token of ``Bearer <t>``, ``FlespiToken <t>`` or ``Basic base64(user:<t>)``
    (Flussonic's clients send the password of Basic auth)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() in ("bearer", "flespitoken") and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            user_pass = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user_pass.partition(":")[2] or None
    return None


def principal_of(request: Request, c: Container) -> Principal:
    """The caller, from any of Flussonic's forms. Raises Unauthorized."""
    token = flussonic_token(request)
    if token is None:
        raise Unauthorized("token required: Authorization: Bearer <token> (or Basic)")
    p = c.access.authenticate(f"Bearer {token}")
    if p is None:
        raise Unauthorized("invalid, expired or revoked token")
    return p


def check_dvr_write(request: Request, c: Container, device_id: int | None = None) -> Principal:
    """Admin calls need DVR write access: the admin token, or a scoped token allowed the
    ``dvr`` submodule of ``gw/devices`` for the stream's device with this method.

    Raises:
        Unauthorized: no or a bad token. Forbidden: a token without that access.
    """
    p = principal_of(request, c)
    if not p.allows(DEVICES_URI, request.method, device_id, SUBMODULE):
        raise Forbidden(f"this token has no DVR {request.method} access"
                        + (f" to device {device_id}" if device_id is not None else ""))
    return p


def visible(p: Principal, device_id: int) -> bool:
    return p.allows(DEVICES_URI, "GET", device_id, SUBMODULE)


def service(c: ContainerDep) -> DvrService:
    svc = c.dvr
    if svc is None:
        raise NotFound("the DVR is not configured in this runtime")
    return svc  # type: ignore[no-any-return]


Dvr = Annotated[DvrService, Depends(service)]


# -- streams ----------------------------------------------------------------------------------
@router.get("/streams")
def list_streams(request: Request, c: ContainerDep, dvr: Dvr) -> dict[str, Any]:
    """Configured streams, by name."""
    p = principal_of(request, c)
    streams = [dvr.stream_json(s) for s in dvr.list_streams() if visible(p, s.device_id)]
    return {"estimated_count": len(streams), "next": None, "prev": None, "streams": streams}


@router.get("/streams/{name}")
def get_stream(name: str, request: Request, c: ContainerDep, dvr: Dvr) -> dict[str, Any]:
    """One stream's configuration and archive size."""
    principal_of(request, c)
    stream = dvr.get_stream(name)
    check_dvr_write(request, c, stream.device_id)
    return dvr.stream_json(stream)


@router.put("/streams/{name}")
def put_stream(name: str, request: Request, c: ContainerDep, dvr: Dvr,
               body: Body) -> dict[str, Any]:
    """Create or change a stream: ``{"dvr": {"root", "expiration", "storage_limit"}}``."""
    old = dvr.streams.get(name)
    check_dvr_write(request, c, old.device_id if old else _device_of(name, body))
    return dvr.stream_json(dvr.put_stream(name, body if body is not None else {}))


@router.delete("/streams/{name}", status_code=204)
def delete_stream(name: str, request: Request, c: ContainerDep, dvr: Dvr) -> Response:
    """Stop recording and remove the configuration (episodes keep protecting footage)."""
    stream = dvr.streams.get(name)
    check_dvr_write(request, c, stream.device_id if stream else None)
    dvr.delete_stream(name)
    return Response(status_code=204)


def _device_of(name: str, body: Any) -> int | None:
    from fleetcam.domain.dvr import DEFAULT_NAME, parse_source

    try:
        if isinstance(body, dict) and isinstance(body.get("inputs"), list) and body["inputs"]:
            return parse_source(str(body["inputs"][0].get("url", "")))[0]
    except (Invalid, AttributeError):
        return None
    m = DEFAULT_NAME.match(name)
    return int(m["device_id"]) if m else None


# -- episodes ---------------------------------------------------------------------------------
def _ints(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{name} must be an integer", field=name) from None


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


@router.get("/episodes")
def list_episodes(request: Request, c: ContainerDep, dvr: Dvr) -> dict[str, Any]:
    """Episodes by ``media``, ``episode_type`` and time (UTC ms: ``from``/``to``, or
    ``closed_at_gt``/``opened_at_lt``), ``limit`` and ``cursor``."""
    p = principal_of(request, c)
    q = request.query_params
    time_from = _ints(q.get("from") or q.get("closed_at_gt") or q.get("closed_at_gte"), "from")
    time_to = _ints(q.get("to") or q.get("opened_at_lt") or q.get("opened_at_lte"), "to")
    limit = _ints(q.get("limit"), "limit")
    query = EpisodeQuery(media=_names(q.get("media")), episode_type=_names(q.get("episode_type")),
                         time_from=time_from, time_to=time_to,
                         limit=100 if limit is None else limit,
                         cursor=_ints(q.get("cursor"), "cursor"))
    episodes = dvr.list_episodes(query)
    devices = {s.name: s.device_id for s in dvr.streams.list(include_deleted=True)}
    nxt = str(episodes[-1].episode_id) if len(episodes) == query.limit else None
    shown = [e for e in episodes if e.media in devices and visible(p, devices[e.media])]
    return {"episodes": [e.as_json() for e in shown], "next": nxt,
            "estimated_count": len(episodes)}


def _device_of_media(dvr: DvrService, media: str, p: Principal) -> int | None:
    s = dvr.streams.get(media, include_deleted=True)
    return s.device_id if s is not None else None


def _episode_id(text: str) -> int:
    value = _ints(text, "episode_id")
    assert value is not None
    return value


@router.get("/episodes/{episode_id}")
def get_episode(episode_id: str, request: Request, c: ContainerDep,
                dvr: Dvr) -> dict[str, Any]:
    p = principal_of(request, c)
    ep = dvr.get_episode(_episode_id(episode_id))
    check_dvr_write(request, c, _device_of_media(dvr, ep.media, p))
    return ep.as_json()


@router.put("/episodes/{episode_id}")
def put_episode(episode_id: str, request: Request, c: ContainerDep, dvr: Dvr,
                body: Body) -> dict[str, Any]:
    """Create or change an episode: ``media``, ``opened_at``, ``closed_at`` (UTC ms)..."""
    p = principal_of(request, c)
    eid = _episode_id(episode_id)
    old = dvr.episodes.get(eid)
    media = body.get("media") if isinstance(body, dict) else None
    for name in {old.media if old else None, media if isinstance(media, str) else None} - {None}:
        check_dvr_write(request, c, _device_of_media(dvr, name, p))
    if old is None and not isinstance(media, str):
        check_dvr_write(request, c, None)
    return dvr.put_episode(eid, body).as_json()


@router.delete("/episodes/{episode_id}", status_code=204)
def delete_episode(episode_id: str, request: Request, c: ContainerDep, dvr: Dvr) -> Response:
    p = principal_of(request, c)
    ep = dvr.get_episode(_episode_id(episode_id))
    check_dvr_write(request, c, _device_of_media(dvr, ep.media, p))
    dvr.delete_episode(ep.episode_id)
    return Response(status_code=204)
