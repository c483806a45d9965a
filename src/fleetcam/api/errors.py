"""One place where errors become HTTP responses, in flespi's envelope."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fleetcam.errors import (Conflict, CorruptMedia, FleetcamError, Forbidden, Gone, Invalid,
                             NotFound, TooLarge, Unauthorized)

log = logging.getLogger(__name__)
STATUS = {NotFound: 404, Invalid: 400, Conflict: 409, TooLarge: 413, Unauthorized: 401,
          CorruptMedia: 400, Forbidden: 403, Gone: 410}


def envelope(status: int, reason: str, code: int = 1, **extra: object) -> JSONResponse:
    err = {"code": code, "reason": reason, **extra}
    headers = {"WWW-Authenticate": "FlespiToken"} if status == 401 else None
    return JSONResponse({"errors": [err]}, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the application answers at this request's path."""
    from fleetcam.api.openapi import route_views

    methods: set[str] = set()
    for _, route in route_views(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path) and getattr(route, "methods",
                                                                           None):
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(FleetcamError)
    async def fleetcam_error(_: Request, exc: FleetcamError) -> JSONResponse:
        status = getattr(exc, "http_status", None) or next(
            (s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
        extra: dict[str, object] = {"field": exc.field} if exc.field else {}
        if exc.ids is not None:
            extra["ids"] = exc.ids
        return envelope(status, exc.reason, exc.code, **extra)

    @app.exception_handler(OverflowError)
    async def overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # a number no store can hold (SQLite and DynamoDB stop at 64 bits / 38 digits) that
        # slipped past a route's own checks: the caller's input, not our failure
        log.info("number out of range: %s", exc)
        return envelope(400, "a number in the request is out of range")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body"))
            errors.append({"code": 1, "reason": f"{loc}: {e.get('msg')}", "field": loc})
        return JSONResponse({"errors": errors}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = envelope(exc.status_code, str(exc.detail))
        if exc.status_code == 405:  # every method the path has, not only the first route's
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        elif exc.headers:
            response.headers.update(exc.headers)
        return response
