"""The media console (/console) and what it needs besides the public API: its assets, the
deployment's public addresses, and ``GET /auth/info`` (flespi's: the caller's own token)."""
from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleetcam.api.deps import ContainerDep
from fleetcam.api.routers.regions import mqtt_ws
from fleetcam.errors import NotFound, Unauthorized

router = APIRouter(tags=["console"])
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "texts.js": "text/javascript",
          "vendor/hls.min.js": "text/javascript", "vendor/mqtt.min.js": "text/javascript",
          "vendor/qrcode.js": "text/javascript"}
# the console only talks to its own origin; it may be embedded anywhere (frame-ancestors *)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; "
       "frame-ancestors *; base-uri 'none'; form-action 'none'")


def _asset(name: str) -> bytes:
    return resources.files("fleetcam.console").joinpath(name).read_bytes()


@router.get("/console", include_in_schema=False)
def console_page() -> Response:
    """The console's page; its token travels in the URL once and is dropped from it at load."""
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                             "Referrer-Policy": "no-referrer"})


@router.get("/console/config.json", include_in_schema=False)
def console_config(c: ContainerDep) -> dict[str, Any]:
    s = c.settings
    return {"prefix": s.topic_prefix, "mqtt_ws": mqtt_ws(s), "rest": s.base_url,
            "media": f"{s.base_url}/media"}


@router.get("/console/{path:path}", include_in_schema=False)
def console_asset(path: str) -> Response:
    kind = ASSETS.get(path)
    if kind is None:
        raise NotFound(f"no console asset {path!r}")
    return Response(_asset(path), media_type=kind,
                    headers={"Cache-Control": "public, max-age=300",
                             "X-Content-Type-Options": "nosniff"})


@router.get("/auth/info", tags=["auth"])
def auth_info(request: Request, c: ContainerDep) -> dict[str, Any]:
    """The caller's own token, as flespi's ``GET /auth/info`` answers it (401 when unknown,
    expired or revoked): what the console shows and hides follows from its ``access``."""
    raw = request.headers.get("authorization")
    principal = c.access.authenticate(raw) if raw else None
    if principal is None:
        raise Unauthorized("a valid token is required: Authorization: FlespiToken <token>")
    return {"result": [c.access.token_json(principal)]}
