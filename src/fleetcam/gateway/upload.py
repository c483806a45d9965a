"""What every file-upload connection of the gateway shares (ADAS/DSM alarm attachments,
Teltonika camera files): admission under the gateway's connection caps, a first message within
FLEETCAM_PREAUTH_TIMEOUT, the whole transfer within FLEETCAM_ATTACHMENT_TIMEOUT, and refusals
logged once (rate-limited) with the device, the address and the reason."""
from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetcam.gateway.server import Gateway


class UploadSession(asyncio.Protocol):
    """Subclasses name their ``sessions`` set on the gateway, what they are (``what``), the
    first message they wait for (``first``), and implement ``identified``, ``_feed`` (bytes
    -> queued events, raising ProtocolError on garbage) and ``_run``."""

    sessions = ""
    what = "upload connection"
    first = "its first message"

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.transport: asyncio.Transport | None = None
        self.conn_id = secrets.randbits(52)
        self.source = ""
        self.ip = ""
        self.admitted = False
        self.last_rx = 0.0
        self.task: asyncio.Task[None] | None = None
        self.closing_reason = "device closed"
        self._timers: list[asyncio.TimerHandle] = []

    @property
    def identified(self) -> bool:
        raise NotImplementedError

    @property
    def device_name(self) -> str:
        return ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.source, self.ip = f"{peer[0]}:{peer[1]}", str(peer[0])
        if not self.gw.admit(self):  # caps on device connections (gateway.limits)
            return
        self.last_rx = self.gw.loop_time()
        getattr(self.gw, self.sessions).add(self)
        loop = asyncio.get_running_loop()
        s = self.gw.settings
        self._timers = [loop.call_later(s.preauth_timeout, self._first_expired),
                        loop.call_later(s.attachment_timeout, self._stalled)]
        self.task = loop.create_task(self._run())

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self._timers:
            t.cancel()
        if not self.admitted:
            return
        self.gw.release(self)
        getattr(self.gw, self.sessions).discard(self)
        self._lost()

    def _lost(self) -> None:
        """The connection is gone: wake ``_run`` so it cleans up."""

    async def _run(self) -> None:
        raise NotImplementedError

    def refuse(self, reason: str) -> None:
        """Close the connection (one rate-limited log line); nothing is stored or published."""
        self.gw.attachments.stats["refused"] += 1
        self.gw.refusals.refuse(self.what, self.device_name, self.source, reason)
        self.close(reason)

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closing_reason = reason
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _first_expired(self) -> None:
        if not self.identified:
            self.refuse(f"no {self.first} within {self.gw.settings.preauth_timeout:g} s")

    def _stalled(self) -> None:
        self.close(f"transfer not finished within {self.gw.settings.attachment_timeout:g} s")


__all__ = ["UploadSession", "Any"]
