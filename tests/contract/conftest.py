"""The ``backend`` fixture: the four storage ports built by each runtime's adapters.

To add a backend, append its name to ``BACKENDS`` and teach ``make_backend`` to build it
(the AWS one against moto's server); every contract test then runs against it too.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.ports import Clock, DeviceRepo, LogStore, MediaIndex, ObjectStore

BACKENDS = ["local"]


@dataclass
class Backend:
    """One runtime's adapters for the ports, plus whatever tears them down."""

    name: str
    store: ObjectStore
    index: MediaIndex
    devices: DeviceRepo
    logs: LogStore
    close: Callable[[], None] = lambda: None
    extras: dict[str, Any] = field(default_factory=dict)


def _local(tmp_path: Path, clock: Clock) -> Backend:
    from fleetcam.adapters.local.db import Database
    from fleetcam.adapters.local.files import LocalObjectStore
    from fleetcam.adapters.local.queue import EventQueue
    from fleetcam.adapters.local.repos import SqliteDeviceRepo, SqliteLogStore, SqliteMediaIndex

    db = Database(tmp_path / "contract.sqlite3")
    queue = EventQueue(db, clock)
    return Backend(name="local", store=LocalObjectStore(tmp_path / "objects", db, queue),
                   index=SqliteMediaIndex(db), devices=SqliteDeviceRepo(db),
                   logs=SqliteLogStore(db), close=db.close, extras={"db": db, "queue": queue})


def make_backend(name: str, tmp_path: Path, clock: Clock) -> Backend:
    """Build the named backend's adapters, isolated under ``tmp_path``."""
    if name == "local":
        return _local(tmp_path, clock)
    raise ValueError(f"unknown contract backend {name!r}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            clock: ManualClock) -> Iterator[Backend]:
    b = make_backend(request.param, tmp_path, clock)
    try:
        yield b
    finally:
        b.close()
