"""Annotated dependencies over ``request.app.state.container``; who is calling, and may they.

Every guarded route is authorised the same way, from its path template: ``/gw/devices/{sel}``
is the item level of ``gw/devices``, ``/gw/devices/{sel}/media/...`` its ``media`` submodule,
``/platform/...`` the platform API (master tokens only). Explicit ids outside the token's
reach are refused (403, naming the id); ``all`` and expressions are narrowed to what the token
may reach, so listings show only that.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Path, Request

from fleetcam.domain.access import Principal, parse_presented
from fleetcam.domain.selectors import Selector, parse_selector
from fleetcam.errors import Forbidden, Unauthorized
from fleetcam.runtime.container import Container
from fleetcam.services.access import require

TOKEN_QUERY_PREFIXES = ("/media/",)
"""Paths where ``?token=`` is accepted (players, <img> and iframes cannot send headers)."""


def get_container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


def presented_token(request: Request) -> str | None:
    """What the caller presents: the ``Authorization`` header, else (on media links only) the
    ``token`` query parameter. Unparsed: the access service judges it."""
    header = request.headers.get("authorization")
    if header:
        return header
    if request.url.path.startswith(TOKEN_QUERY_PREFIXES):
        return request.query_params.get("token") or None
    return None


def optional_principal(request: Request, container: ContainerDep) -> Principal | None:
    """The caller's principal, None when no token was presented; 401 for a bad one."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    raw = presented_token(request)
    if raw is None:
        request.state.principal = None
        return None
    p = container.access.authenticate(raw)
    if p is None:
        if parse_presented(raw) is None:  # say what form was expected
            raise Unauthorized("malformed token: send `Authorization: FlespiToken <token>` or "
                               "`Bearer <token>` (the token as `fleetcam token` prints it)")
        raise Unauthorized("invalid, expired or revoked token")
    request.state.principal = p
    return p


def current_principal(request: Request, container: ContainerDep) -> Principal:
    """The caller's principal; 401 without a valid token."""
    p = optional_principal(request, container)
    if p is None:
        raise Unauthorized("token required: Authorization: FlespiToken <token>")
    return p


PrincipalDep = Annotated[Principal, Depends(current_principal)]
OptionalPrincipalDep = Annotated["Principal | None", Depends(optional_principal)]


def scope_of(request: Request) -> tuple[str, bool, str | None]:
    """(uri, has an item selector, submodule) of the matched route's path template."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or request.url.path
    parts = [p for p in template.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "gw":
        uri = f"gw/{parts[1]}"
        has_sel = len(parts) >= 3 and parts[2].startswith("{")
        sub = parts[3] if has_sel and len(parts) >= 4 else None
        if len(parts) >= 3 and not has_sel:
            sub = parts[2]
        return uri, has_sel, sub
    return "/".join(parts[:3]), False, None


def method_of(request: Request) -> str:
    return "GET" if request.method == "HEAD" else request.method


def authorize(request: Request, principal: PrincipalDep) -> Principal:
    """401 without a valid token, 403 (with the reason) outside its scope."""
    uri, has_sel, sub = scope_of(request)
    method = method_of(request)
    if not has_sel:
        require(principal, uri, method, None, sub)
        return principal
    sel = parse_selector(str(request.path_params.get("sel", "")))
    if sel.ids and not sel.all and sel.filter is None:
        for item_id in sel.ids:
            require(principal, uri, method, item_id, sub)
        return principal
    if principal.device_ids(uri, method, sub) == set():
        require(principal, uri, method, None, sub)  # raises with the reason
        raise Forbidden(f"token {principal.token_id} reaches no item of {uri}")
    return principal


AuthorizedDep = Annotated[Principal, Depends(authorize)]


def require_token(request: Request, principal: AuthorizedDep) -> None:
    """Router-level guard (kept under its old name): authenticate and authorise."""


def selector(request: Request, principal: PrincipalDep,
             sel: Annotated[str, Path(description="all, 1,2,3 or an expression")]) -> Selector:
    """The path's selector, narrowed to the items the caller's token may reach."""
    parsed = parse_selector(sel)
    uri, _, sub = scope_of(request)
    within = principal.device_ids(uri, method_of(request), sub)
    if within is None:
        return parsed
    return replace(parsed, within=frozenset(within))


SelectorDep = Annotated[Selector, Depends(selector)]


def item_selector(request: Request, principal: PrincipalDep,
                  sel: Annotated[str, Path(description="all or 1,2,3")]) -> str:
    """A non-device resource's ``{sel}`` (rules...), ``all`` narrowed to the ids the token
    reaches (explicit ids outside them were refused by ``authorize``)."""
    uri, _, sub = scope_of(request)
    within = principal.device_ids(uri, method_of(request), sub)
    if within is None or sel.strip() != "all":
        return sel
    return ",".join(str(i) for i in sorted(within)) or "0"


ItemSelDep = Annotated[str, Depends(item_selector)]
