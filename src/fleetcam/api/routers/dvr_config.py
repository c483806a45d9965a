"""Flussonic's ``/streamer/api/v3``: streams (DVR configuration) and episodes (docs/dvr.md)."""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from fleetcam.api.deps import ContainerDep
from fleetcam.api.params import json_body
from fleetcam.domain.dvr import EpisodeQuery
from fleetcam.errors import Invalid, NotFound, Unauthorized
from fleetcam.runtime.container import Container
from fleetcam.services.dvr import DvrService

router = APIRouter(prefix="/streamer/api/v3", tags=["dvr"])
Body = Annotated[Any, Depends(json_body)]
SUBMODULE = "dvr"


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


def check_dvr_write(request: Request, c: Container, device_id: int | None = None) -> None:
    """Admin calls need DVR write access: the admin token, or a scoped token whose principal
    allows this path and method for the stream's device (``container.access``, when wired).

    Raises:
        Unauthorized: no token, or one without that access.
    """
    token = flussonic_token(request)
    if token is None:
        raise Unauthorized("token required")
    expected = c.extras.get("admin_token", "")
    if expected and hmac.compare_digest(token, expected):
        return
    access = getattr(c, "access", None) or c.extras.get("access")
    if access is not None:
        principal = access.authenticate(token)
        if principal is not None and principal.allows(request.url.path, request.method,
                                                      device_id, SUBMODULE):
            return
    raise Unauthorized("invalid token, or no DVR write access")


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
    check_dvr_write(request, c)
    streams = [dvr.stream_json(s) for s in dvr.list_streams()]
    return {"estimated_count": len(streams), "next": None, "prev": None, "streams": streams}


@router.get("/streams/{name}")
def get_stream(name: str, request: Request, c: ContainerDep, dvr: Dvr) -> dict[str, Any]:
    """One stream's configuration and archive size."""
    check_dvr_write(request, c)
    return dvr.stream_json(dvr.get_stream(name))


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
    check_dvr_write(request, c)
    q = request.query_params
    time_from = _ints(q.get("from") or q.get("closed_at_gt") or q.get("closed_at_gte"), "from")
    time_to = _ints(q.get("to") or q.get("opened_at_lt") or q.get("opened_at_lte"), "to")
    limit = _ints(q.get("limit"), "limit")
    query = EpisodeQuery(media=_names(q.get("media")), episode_type=_names(q.get("episode_type")),
                         time_from=time_from, time_to=time_to,
                         limit=100 if limit is None else limit,
                         cursor=_ints(q.get("cursor"), "cursor"))
    episodes = dvr.list_episodes(query)
    nxt = str(episodes[-1].episode_id) if len(episodes) == query.limit else None
    return {"episodes": [e.as_json() for e in episodes], "next": nxt,
            "estimated_count": len(episodes)}


def _episode_id(text: str) -> int:
    value = _ints(text, "episode_id")
    assert value is not None
    return value


@router.get("/episodes/{episode_id}")
def get_episode(episode_id: str, request: Request, c: ContainerDep,
                dvr: Dvr) -> dict[str, Any]:
    check_dvr_write(request, c)
    return dvr.get_episode(_episode_id(episode_id)).as_json()


@router.put("/episodes/{episode_id}")
def put_episode(episode_id: str, request: Request, c: ContainerDep, dvr: Dvr,
                body: Body) -> dict[str, Any]:
    """Create or change an episode: ``media``, ``opened_at``, ``closed_at`` (UTC ms)..."""
    media = body.get("media") if isinstance(body, dict) else None
    stream = dvr.streams.get(media) if isinstance(media, str) else None
    check_dvr_write(request, c, stream.device_id if stream else None)
    return dvr.put_episode(_episode_id(episode_id), body).as_json()


@router.delete("/episodes/{episode_id}", status_code=204)
def delete_episode(episode_id: str, request: Request, c: ContainerDep, dvr: Dvr) -> Response:
    check_dvr_write(request, c)
    dvr.delete_episode(_episode_id(episode_id))
    return Response(status_code=204)
