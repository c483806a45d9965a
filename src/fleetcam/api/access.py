"""One access-log line per HTTP request, with secrets left out.

Written as a small ASGI middleware rather than uvicorn's access log: uvicorn's logs the raw
query string (``?token=...`` share links included) and exists only under uvicorn, while this
one runs in every runtime (uvicorn locally, Mangum in Lambda) and never sees headers it logs.
"""
from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

log = logging.getLogger("fleetcam.access")
SECRET_PARAMS = ("token", "signature", "credential", "secret", "password", "key", "share")
"""A query parameter whose name contains one of these is logged as ``***``."""
MAX_QUERY = 300


def redact_query(query: str) -> str:
    """The query string with secret values replaced and long ones cut."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    out = urlencode([(k, "***" if any(s in k.lower() for s in SECRET_PARAMS) else v)
                     for k, v in pairs], safe="{}[],:\"=<>!*&|")
    return out if len(out) <= MAX_QUERY else out[:MAX_QUERY] + "..."


class AccessLog:
    """ASGI middleware: ``GET /gw/devices/1 200 3.1ms 127.0.0.1`` once the answer started."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            query = redact_query(scope.get("query_string", b"").decode("latin-1"))
            client = (scope.get("client") or ("-",))[0]
            log.info("%s %s%s %d %.1fms %s", scope["method"], scope.get("path", ""),
                     "?" + query if query else "", status,
                     (time.perf_counter() - start) * 1000, client)
