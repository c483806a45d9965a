"""Registration and authentication of JT/T 808 terminals, and the admin's changes to a
device's code (the rules are in ``domain.identity``; this is their use of the ports)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fleetcam.domain.identity import (ALREADY_REGISTERED, ISSUE, ISSUED, REREGISTER, Identity,
                                      new_code, registration_decision)
from fleetcam.domain.models import Device
from fleetcam.errors import Conflict, NotFound
from fleetcam.ports import Clock, DeviceRepo
from fleetcam.services.journal import Journal

log = logging.getLogger(__name__)
RETRIES = 5

# 0x8100 result byte (JT/T 808-2019 §8.6)
REG_OK, REG_VEHICLE_TAKEN, REG_NO_VEHICLE, REG_ALREADY, REG_UNKNOWN = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class RegisterOutcome:
    """What a registration gets: the 0x8100 result, the fresh code (only with result 0), the
    device, and why (for the log)."""

    result: int
    code: str = ""
    device: Device | None = None
    reason: str = ""
    reregistered: bool = False
    created: bool = False


def change_identity(repo: DeviceRepo, device_id: int,
                    change: Callable[[Identity], Identity | None]) -> Identity | None:
    """Apply ``change`` to the device's identity by compare-and-set, re-reading on a race.

    ``change`` returns the new identity, or None to leave it (then None is returned).

    Raises:
        NotFound: no such device.
        Conflict: the identity kept changing under us.
    """
    for _ in range(RETRIES):
        current = repo.get(device_id).identity
        new = change(current)
        if new is None:
            return None
        if repo.swap_identity(device_id, current, new):
            return new
    raise Conflict(f"device {device_id}: its authentication code kept changing; try again")


class IdentityService:
    def __init__(self, repo: DeviceRepo, create: Callable[[list[dict[str, object]]], list[Device]],
                 journal: Journal, clock: Clock) -> None:
        self.repo = repo
        self.create = create
        self.journal = journal
        self.clock = clock

    def register(self, phone: str, terminal: dict[str, str], plate: str, *,
                 online: Callable[[int], bool], auto_register: Callable[[], bool] | None
                 ) -> RegisterOutcome:
        """A registration (0x0100) from terminal ``phone``.

        ``online(device_id)`` tells whether the device has a live connection;
        ``auto_register`` is None when auto-registration is off, else it is asked (once,
        only for an unknown terminal) whether the rate limit lets one more device in.
        """
        device = self.repo.find_by_ident(phone)
        created = False
        if device is None:
            if auto_register is None:
                return RegisterOutcome(REG_UNKNOWN, reason="unknown terminal "
                                       "(auto-registration is off)")
            if not auto_register():
                return RegisterOutcome(REG_UNKNOWN, reason="unknown terminal: "
                                       "auto-registration rate limit reached")
            try:
                device = self.create([{"ident": phone, "name": plate or phone}])[0]
                created = True
            except Conflict:
                device = self.repo.find_by_ident(phone)
                if device is None:
                    return RegisterOutcome(REG_UNKNOWN, reason="device vanished while "
                                           "being created")
        if not device.enabled:
            return RegisterOutcome(REG_UNKNOWN, device=device, reason="device is disabled")
        code = new_code()
        now = self.clock.now()
        verdict: dict[str, str] = {}

        def change(current: Identity) -> Identity | None:
            decision, why = registration_decision(current, terminal, online(device.id))
            verdict.update(decision=decision, why=why)
            if decision == ALREADY_REGISTERED:
                return None
            keep = current.terminal if decision == REREGISTER else terminal
            return current.with_code(code, ISSUED, now, keep)

        try:
            done = change_identity(self.repo, device.id, change)
        except (NotFound, Conflict) as e:
            return RegisterOutcome(REG_UNKNOWN, device=device, reason=str(e))
        if done is None:
            return RegisterOutcome(REG_ALREADY, device=device, reason=verdict["why"])
        if verdict["decision"] == REREGISTER:
            self.journal.record(device.id, "device_reregistered",
                                {"device_id": device.id, "ident": device.ident,
                                 "registration": terminal, "reason": verdict["why"]},
                                topic="connections/reregistered")
        return RegisterOutcome(REG_OK, code=code, device=device.with_changes(identity=done),
                               reason=verdict["why"], created=created,
                               reregistered=verdict["decision"] == REREGISTER)

    def authenticate(self, phone: str, code: str) -> tuple[Device | None, str]:
        """The device ``code`` authenticates as terminal ``phone``, or (None, why not)."""
        device = self.repo.find_by_ident(phone)
        if device is None:
            return None, "unknown terminal"
        if not device.enabled:
            return None, "device is disabled"
        ident = device.identity
        if not ident.has_code:
            return None, "the device has no code (it must register first)"
        if not ident.verify(code):
            return None, "wrong authentication code"
        if ident.legacy_code:  # stored in clear by an older fleetcam: keep only a hash now
            upgraded = ident.with_code(code, ident.origin or ISSUED, ident.issued or
                                       self.clock.now())
            if self.repo.swap_identity(device.id, ident, upgraded):
                device = device.with_changes(identity=upgraded)
        return device, ""

    def unregister(self, device: Device) -> None:
        """The terminal unregistered (0x0003): its code is void; it must register again."""
        change_identity(self.repo, device.id, lambda cur: cur.reset() if cur.has_code else None)

    def replaced(self, device: Device, old_source: str, new_source: str, old_id: int,
                 new_id: int) -> None:
        """Publish that an authentication took over an online device's connection."""
        self.journal.record(device.id, "device_connection_replaced",
                            {"device_id": device.id, "ident": device.ident,
                             "old_connection": old_id, "old_source": old_source,
                             "new_connection": new_id, "new_source": new_source},
                            topic="connections/replaced")


__all__ = ["ISSUE", "IdentityService", "RegisterOutcome", "change_identity"]
