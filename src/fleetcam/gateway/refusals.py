"""Refused media connections and frames, logged once per device, address and reason (through
the gateway's QuietLog: per key every interval, and a global cap on lines a second)."""
from __future__ import annotations

from fleetcam.gateway.limits import QuietLog


class RefusalLog:
    def __init__(self, quiet: QuietLog) -> None:
        self.quiet = quiet
        self.count = 0

    def refuse(self, what: str, device: str, address: str, reason: str) -> bool:
        """Record a refusal; True when it was logged (not held back)."""
        self.count += 1
        host = address.rsplit(":", 1)[0]
        return self.quiet.warning(("refused", what, device, host, reason),
                                  "refused %s from %s (device %s): %s", what, address,
                                  device or "?", reason)
