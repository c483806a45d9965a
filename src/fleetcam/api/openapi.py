"""The API's own documentation: /docs and /redoc without internet, and an OpenAPI document
that declares the token schemes, every request body and every status the API answers.

Swagger UI and ReDoc come from the ``fastapi-offline`` package (PyPI), which ships their
built bundles; fleetcam serves them under content-hashed paths with a one-year cache life.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute

from fleetcam.api import schemas
from fleetcam.api.deps import current_principal, optional_principal
from fleetcam.api.params import json_body
from fleetcam.errors import NotFound

ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "application/javascript", "favicon.png": "image/png"}
ASSET_PREFIX = "/docs-assets"
SECURITY_SCHEMES = {
    "FlespiToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "flespi's form: enter `FlespiToken <token>` (the word, a "
                                   "space, then the 64-character token)."},
    "Bearer": {"type": "http", "scheme": "bearer",
               "description": "enter the token alone; it is sent as `Bearer <token>`"},
}
TOKEN = [{"FlespiToken": []}, {"Bearer": []}]
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
            "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")
"""The doc pages load nothing from elsewhere (ReDoc's footer would fetch its logo from a CDN;
the policy stops that request and ReDoc then leaves the logo out)."""


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@lru_cache(maxsize=1)
def asset_urls() -> dict[str, str]:
    """Each asset's content-hashed path (a new package version gets new URLs)."""
    root = _assets_dir()
    out = {}
    for name in ASSETS:
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()[:16]
        out[name] = f"{ASSET_PREFIX}/{digest}/{name}"
    return out


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI), /redoc and their assets, all served by fleetcam itself.

    The FastAPI object must be made with ``docs_url=None, redoc_url=None``."""
    urls = asset_urls()

    @app.get(f"{ASSET_PREFIX}/{{digest}}/{{name}}", include_in_schema=False)
    def docs_asset(digest: str, name: str) -> FileResponse:
        if urls.get(name) != f"{ASSET_PREFIX}/{digest}/{name}":
            raise NotFound(f"no documentation asset {digest}/{name}")
        return FileResponse(_assets_dir() / name, media_type=ASSETS[name], headers={
            "Cache-Control": "public, max-age=31536000, immutable"})

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # an API Gateway stage, say
        return _with_csp(get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{app.title} API",
            swagger_js_url=root + urls["swagger-ui-bundle.js"],
            swagger_css_url=root + urls["swagger-ui.css"],
            swagger_favicon_url=root + urls["favicon.png"],
            swagger_ui_parameters={"persistAuthorization": True, "tryItOutEnabled": True,
                                   "displayRequestDuration": True}))

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_csp(get_redoc_html(
            openapi_url=f"{root}/openapi.json", title=f"{app.title} API",
            redoc_js_url=root + urls["redoc.standalone.js"],
            redoc_favicon_url=root + urls["favicon.png"], with_google_fonts=False))

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def route_views(routes: Any) -> list[tuple[Any, Any]]:
    """(original route, route as the application sees it: full path, router dependencies)
    for every route, with the routers of newer FastAPI versions opened."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # FastAPI before included routers kept their own objects
        return [(r, r) for r in routes]
    return [(ctx.original_route, ctx) for ctx in iter_contexts(routes)]


def _calls(dependant: Dependant) -> set[Any]:
    out = {dependant.call}
    for sub in dependant.dependencies:
        out |= _calls(sub)
    return out


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Errors"}}}}


def _operation_extras(route: Any, method: str, secured: bool,
                      optional_token: bool) -> dict[str, Any]:
    """security, requestBody and the error answers of one operation."""
    extra: dict[str, Any] = {}
    if secured:
        extra["security"] = TOKEN
    elif optional_token:
        extra["security"] = [*TOKEN, {}]
    responses = {"400": _error("a parameter or the body is malformed; `field` names it")}
    if secured or optional_token:
        responses["401"] = _error("no token, or an invalid, expired or revoked one")
        responses["403"] = _error("the token may not do this (the reason says why)")
    if "{" in route.path_format or secured:
        responses["404"] = _error("what the path names does not exist (`ids` lists missing "
                                  "ids)")
    for status, why in schemas.EXTRA_ERRORS.get((method, route.path_format), {}).items():
        responses[status] = _error(why)
    extra["responses"] = responses
    body = schemas.BODIES.get((method, route.path_format))
    if json_body in _calls(route.dependant):
        if body is None:
            body = {"required": False, "content": {"application/json": {"schema": {}}}}
        extra["requestBody"] = body
    return extra


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    components = doc.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    components.setdefault("schemas", {}).update(schemas.COMPONENTS)
    for original, route in route_views(app.routes):
        if not isinstance(original, APIRoute) or not route.include_in_schema:
            continue
        calls = _calls(route.dependant)
        secured = current_principal in calls
        optional_token = not secured and optional_principal in calls or (
            route.path_format == "/media/{uuid}")
        for method in route.methods:
            op = doc["paths"].get(route.path_format, {}).get(method.lower())
            if op is None:
                continue
            extra = _operation_extras(route, method.lower(), secured, optional_token)
            op.pop("security", None)
            if "security" in extra:
                op["security"] = extra["security"]
            responses = op.setdefault("responses", {})
            responses.pop("422", None)  # validation errors answer 400 (api/errors.py)
            for status, answer in extra["responses"].items():
                responses.setdefault(status, answer)
            for status, answer in schemas.SUCCESS.get((method.lower(), route.path_format),
                                                      {}).items():
                responses[status] = answer
            if "requestBody" in extra:
                op["requestBody"] = extra["requestBody"]
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    app.openapi_schema = doc
    return doc
