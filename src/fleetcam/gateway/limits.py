"""What a stranger may cost the gateway: admission of device connections (totals, per source
address, file descriptors), rate limits per address, and a log that cannot be flooded.

All state is per gateway process and bounded: every per-address table keeps at most
``MAX_KEYS`` addresses (the least recently touched are forgotten first).
"""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_KEYS = 65536
"""Addresses (or log keys) a table remembers; beyond, the least recent are forgotten."""


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        super().__init__()
        self.max_keys = max_keys

    def touch(self, key: Any, default: Callable[[], Any]) -> Any:
        value = self.get(key)
        if value is None:
            value = self[key] = default()
            while len(self) > self.max_keys:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


class RateLimiter:
    """Token buckets: ``per_minute`` events a minute per key, bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst if burst is not None else max(1.0, per_minute)
        self.clock = clock
        self._buckets: _Lru = _Lru()

    def allow(self, key: Any = None, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are; False (and take nothing) otherwise."""
        now = self.clock()
        bucket = self._buckets.touch(key, lambda: [self.burst, now])
        bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if bucket[0] >= cost:
            bucket[0] -= cost
            return True
        return False

    def exhausted(self, key: Any = None) -> bool:
        """True while ``key`` has less than one token (without taking any)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        return min(self.burst, bucket[0] + (self.clock() - bucket[1]) * self.rate) < 1.0


class QuietLog:
    """Logs each kind of refusal once per ``interval`` per key, and at most ``per_second``
    lines a second in all; what it held back is counted into the next line of that key."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0,
                 per_second: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._keys: _Lru = _Lru(4096)  # a forgotten key is only logged again sooner
        self._global = RateLimiter(per_second * 60, per_second, clock)
        self.suppressed = 0
        self.lines = 0

    def warning(self, key: Any, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within ``interval``; True if logged."""
        now = self.clock()
        state = self._keys.touch(key, lambda: [-1e18, 0])
        if now - state[0] < self.interval or not self._global.allow():
            state[1] += 1
            self.suppressed += 1
            return False
        held, state[0], state[1] = state[1], now, 0
        if held:
            msg += " (and %d more like it since)"
            args = (*args, held)
        self.logger.warning(msg, *args)
        self.lines += 1
        return True


def nofile_limit() -> int:
    """This process's soft limit on open file descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_nofile(cap: int = 1 << 20) -> int:
    """Raise this process's soft descriptor limit to its hard limit (at most ``cap``): many
    systems start processes at 1024 under a far higher hard limit. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def open_fds() -> int:
    """File descriptors this process has open now (Linux; elsewhere an upper estimate)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir used
    except OSError:
        return 0


class Admission:
    """Which new device connections are accepted.

    A connection is refused when the gateway holds ``max_total`` device connections, when
    its source address holds ``max_per_address``, or when the process's open descriptors
    come within ``reserve`` of its RLIMIT_NOFILE: those are kept for the REST API, the
    broker, the stores and established devices. Descriptors are counted once a second
    (``measure``), plus the connections admitted since.
    """

    def __init__(self, max_total: int, max_per_address: int, *, reserve: int | None = None,
                 limit: int | None = None) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.limit = limit if limit is not None else nofile_limit()
        self.reserve = reserve if reserve is not None else max(100, self.limit // 10)
        self.total = 0
        self.per_address: dict[str, int] = {}
        self._measured = open_fds()
        self._since = 0
        self._ticks = 0
        self.refused: dict[str, int] = {}

    def measure(self) -> None:
        """Recount open descriptors: every call near the limit, else every tenth (counting
        /proc/self/fd costs about 0.3 us a descriptor)."""
        self._ticks += 1
        if self._ticks % 10 and self.fds_estimate < self.limit - 3 * self.reserve:
            return
        self._measured, self._since = open_fds(), 0

    @property
    def fds_estimate(self) -> int:
        return self._measured + self._since

    def admit(self, address: str) -> str | None:
        """None if a connection from ``address`` may stay (it is counted), else why not."""
        reason = None
        if self.max_total and self.total >= self.max_total:
            reason = f"the gateway holds its maximum of {self.max_total} device connections"
        elif self.max_per_address and self.per_address.get(address, 0) >= self.max_per_address:
            reason = (f"address {address} holds its maximum of {self.max_per_address} "
                      "connections")
        elif self.fds_estimate >= self.limit - self.reserve:
            reason = (f"near the file-descriptor limit ({self.fds_estimate} of {self.limit} "
                      f"open, {self.reserve} kept for the API and established devices)")
        if reason is not None:
            kind = reason.split(" ", 1)[0]
            self.refused[kind] = self.refused.get(kind, 0) + 1
            return reason
        self.total += 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self._since += 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        self._since -= 1
        left = self.per_address.get(address, 0) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)


ACCEPT_EXHAUSTED = "socket.accept() out of system resource"


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, quiet: QuietLog) -> None:
    """Out of descriptors, asyncio's listeners log a traceback per failed ``accept()``, and up to
    100 in one loop tick (CPython 3.11's ``_accept_connection`` keeps looping after EMFILE), so a
    flood of connections floods the log. asyncio itself pauses that listener for a second and
    retries, which is right; this turns each such report into one warning line per listener per
    ``quiet.interval`` (with a count of those held back). Every other report goes to the handler
    installed before, or asyncio's default."""
    previous = loop.get_exception_handler()
    if getattr(previous, "fleetcam_accept_errors", False):
        return  # installed already (two gateways on one loop, in tests)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_EXHAUSTED:
            sock = context.get("socket")
            try:
                where = "%s:%s" % tuple(sock.getsockname()[:2]) if sock is not None else "?"
            except (OSError, TypeError):
                where = "?"
            quiet.warning(("accept", where), "listener %s cannot accept connections: %s; "
                          "it pauses a second and retries", where, context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.fleetcam_accept_errors = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
