"""Outstanding media requests over the shared store: opened by the copy that asks the device,
admitted and bound by the copy the media connection reaches (rules: domain/admission.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetcam.domain import admission
from fleetcam.domain.admission import Decision, MediaRequest
from fleetcam.ports import Clock, MediaRequestStore

RETRIES = 5
"""Compare-and-swap attempts before a write gives up (another copy keeps winning)."""


class MediaAdmission:
    def __init__(self, store: MediaRequestStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def request(self, *, kind: str, device_id: int, channel: int, ref: str, holder: str,
                source: str, expires: float, command_id: int | None = None,
                progress: dict[str, Any] | None = None) -> MediaRequest:
        """Open (or replace) the device channel's outstanding request."""
        if kind not in admission.MEDIA_KINDS:
            raise ValueError(f"unknown media request kind {kind!r}")
        return self.store.open(MediaRequest(
            device_id=device_id, channel=channel, kind=kind, ref=ref, holder=holder,
            source_ip=admission.host_of(source) if source else "", opened=self.clock.now(),
            expires=expires, command_id=command_id, progress=dict(progress or {})))

    def admit(self, device_id: int, channel: int, *, conn_id: int, source: str,
              gateway_id: str, same_address: bool) -> tuple[MediaRequest | None, Decision]:
        """Admit the media connection and bind the request to it (the first one wins)."""
        for _ in range(RETRIES):
            req = self.store.get(device_id, channel)
            now = self.clock.now()
            decision = admission.admit(req, conn_id=conn_id, source=source, now=now,
                                       same_address=same_address)
            if not decision.admit or req is None:
                return None, decision
            bound = self.store.swap(admission.bind(req, conn_id=conn_id, gateway_id=gateway_id,
                                                   now=now))
            if bound is not None:
                return bound, decision
        return None, Decision(False, "the request kept changing (another copy)")

    def update(self, device_id: int, channel: int, ref: str,
               change: Callable[[MediaRequest], MediaRequest | None]) -> MediaRequest | None:
        """Apply ``change`` to the request ``ref`` with compare-and-swap; None if it is gone,
        replaced, or ``change`` declines (returns None)."""
        for _ in range(RETRIES):
            req = self.store.get(device_id, channel)
            if req is None or req.ref != ref:
                return None
            new = change(req)
            if new is None:
                return None
            done = self.store.swap(new)
            if done is not None:
                return done
        return None

    def renew(self, req: MediaRequest, conn_id: int, gateway_id: str) -> MediaRequest | None:
        """Extend the binding while its media connection lives."""
        now = self.clock.now()
        return self.update(req.device_id, req.channel, req.ref, lambda r: admission.bind(
            r, conn_id=conn_id, gateway_id=gateway_id, now=now) if r.bound_conn == conn_id
            else None)

    def release(self, req: MediaRequest, conn_id: int) -> MediaRequest | None:
        """The bound connection closed: the device's next connection may take the request."""
        return self.update(req.device_id, req.channel, req.ref,
                           lambda r: admission.release(r, conn_id))

    def progress(self, req: MediaRequest, **values: Any) -> MediaRequest | None:
        return self.update(req.device_id, req.channel, req.ref, lambda r: r.with_changes(
            progress={**r.progress, **values}))

    def finish(self, req: MediaRequest, **values: Any) -> MediaRequest | None:
        """The serving copy is done with it; the holder learns so through the store."""
        return self.update(req.device_id, req.channel, req.ref, lambda r: r.with_changes(
            state="done", progress={**r.progress, **values}))

    def close(self, device_id: int, channel: int, ref: str) -> bool:
        return self.store.close(device_id, channel, ref)
