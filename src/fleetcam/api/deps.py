"""Annotated dependencies over ``request.app.state.container``."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request

from fleetcam.domain.selectors import Selector, parse_selector
from fleetcam.errors import Unauthorized
from fleetcam.runtime.container import Container


def get_container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


def presented_token(request: Request) -> str | None:
    """The token of ``Authorization: FlespiToken <t>`` or ``Bearer <t>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("flespitoken", "bearer") and token.strip():
        return token.strip()
    return None


def token_ok(request: Request, container: Container) -> bool:
    token = presented_token(request)
    expected = container.extras.get("admin_token", "")
    return bool(token and expected) and hmac.compare_digest(token, expected)


def require_token(request: Request, container: ContainerDep) -> None:
    if not token_ok(request, container):
        reason = "token required" if presented_token(request) is None else "invalid token"
        raise Unauthorized(reason)


def selector(sel: Annotated[str, Path(description="all, 1,2,3 or an expression")]) -> Selector:
    return parse_selector(sel)


SelectorDep = Annotated[Selector, Depends(selector)]
