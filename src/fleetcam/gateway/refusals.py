"""Refused connections, logged once per device, address and reason a minute (bounded)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

EVERY = 60.0
MAX_KEYS = 10_000
"""Keys remembered at most (an attacker cycling addresses cannot grow it without bound)."""


class RefusalLog:
    """One warning per (device, address, reason) a minute, saying how many were suppressed."""

    def __init__(self, logger: logging.Logger, every: float = EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self.seen: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.count = 0

    def refuse(self, what: str, device: str, address: str, reason: str) -> bool:
        """Record a refusal; True when it was logged (not suppressed)."""
        self.count += 1
        host = address.rsplit(":", 1)[0]
        key = (device, host, reason)
        now = self.clock()
        last = self.seen.get(key)
        if last is not None and now - last[0] < self.every:
            self.seen[key] = (last[0], last[1] + 1)
            return False
        if len(self.seen) >= MAX_KEYS:
            self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.every}
            if len(self.seen) >= MAX_KEYS:
                self.seen.clear()
        suppressed = last[1] if last is not None else 0
        self.seen[key] = (now, 0)
        self.logger.warning("refused %s from %s (device %s): %s%s", what, address,
                            device or "?", reason,
                            f" ({suppressed} more like it suppressed)" if suppressed else "")
        return True
