"""Run N virtual MDVRs against a gateway."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from fleetcam.simulator.device import DeviceConfig, VirtualMdvr

IDENT_BASE = 13900000000


def ident(i: int, version2019: bool = False) -> str:
    """The terminal phone of simulated device ``i`` (12 BCD digits; 20 in the 2019 edition)."""
    return f"{IDENT_BASE + i:0{20 if version2019 else 12}d}"


class Simulation:
    def __init__(self, count: int, template: DeviceConfig, *, mixed_editions: bool = False
                 ) -> None:
        self.devices = []
        for i in range(1, count + 1):
            v2019 = (i % 2 == 0) if mixed_editions else template.version2019
            cfg = dataclasses.replace(template, phone=ident(i, v2019), version2019=v2019,
                                      base=(template.base[0] + 0.01 * i, template.base[1]),
                                      stats=dict.fromkeys(template.stats, 0))
            self.devices.append(VirtualMdvr(cfg))
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    @property
    def idents(self) -> list[str]:
        return [d.cfg.phone for d in self.devices]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(d.run(self.stop)) for d in self.devices]

    async def wait_authenticated(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(d.authenticated.wait() for d in self.devices)),
                               timeout)

    async def stop_all(self) -> None:
        self.stop.set()
        for t in self.tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 5)
            if not t.done():
                t.cancel()
