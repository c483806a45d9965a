"""The ``backend`` fixture: the storage ports built by each runtime's adapters.

"local" is SQLite and files under ``tmp_path``; "aws" is DynamoDB (PynamoDB) and S3 on the
session's moto server (a real HTTP endpoint), reset before each test so no test sees
another's data. To add a backend, append its name to ``BACKENDS`` and teach
``make_backend`` to build it; every contract test then runs against it too.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.ports import (Clock, CommandStore, ConnectionRegistry, DeviceRepo, LogStore,
                            MediaIndex, MessageStore, ObjectStore)

BACKENDS = ["local", "aws"]


@dataclass
class Backend:
    """One runtime's adapters for the ports, plus whatever tears them down."""

    name: str
    store: ObjectStore
    index: MediaIndex
    devices: DeviceRepo
    logs: LogStore
    messages: MessageStore
    registry: ConnectionRegistry
    commands: CommandStore
    close: Callable[[], None] = lambda: None
    extras: dict[str, Any] = field(default_factory=dict)
    media_requests: Any = None


def _local(tmp_path: Path, clock: Clock) -> Backend:
    from fleetcam.adapters.local.db import Database
    from fleetcam.adapters.local.files import LocalObjectStore
    from fleetcam.adapters.local.gateway_repos import (SqliteCommandStore,
                                                       SqliteConnectionRegistry,
                                                       SqliteMediaRequestStore,
                                                       SqliteMessageStore)
    from fleetcam.adapters.local.queue import EventQueue
    from fleetcam.adapters.local.repos import SqliteDeviceRepo, SqliteLogStore, SqliteMediaIndex

    db = Database(tmp_path / "contract.sqlite3")
    queue = EventQueue(db, clock)
    return Backend(name="local", store=LocalObjectStore(tmp_path / "objects", db, queue),
                   index=SqliteMediaIndex(db), devices=SqliteDeviceRepo(db),
                   logs=SqliteLogStore(db), messages=SqliteMessageStore(db),
                   registry=SqliteConnectionRegistry(db, clock.now), commands=SqliteCommandStore(db),
                   close=db.close, extras={"db": db, "queue": queue},
                   media_requests=SqliteMediaRequestStore(db))


def _aws(url: str, clock: Clock) -> Backend:
    from fleetcam.adapters.aws.dynamodb import (DynamoDeviceRepo, DynamoLogStore,
                                                DynamoMediaIndex)
    from fleetcam.adapters.aws.gateway_dynamodb import (DynamoCommandStore,
                                                        DynamoConnectionRegistry,
                                                        DynamoMediaRequestStore,
                                                        DynamoMessageStore)
    from fleetcam.adapters.aws.s3 import S3ObjectStore
    from tests.aws.motoserver import BUCKET, provision_storage, s3_client

    tables = provision_storage(url)
    s3 = s3_client(url)
    return Backend(name="aws", store=S3ObjectStore(BUCKET, s3), index=DynamoMediaIndex(),
                   devices=DynamoDeviceRepo(), logs=DynamoLogStore(),
                   messages=DynamoMessageStore(), registry=DynamoConnectionRegistry(clock.now),
                   commands=DynamoCommandStore(), extras={"url": url, "tables": tables, "s3": s3},
                   media_requests=DynamoMediaRequestStore())


def make_backend(name: str, tmp_path: Path, clock: Clock, *,
                 moto_url: str | None = None) -> Backend:
    """Build the named backend's adapters, isolated under ``tmp_path`` (local) or on the
    freshly reset moto server at ``moto_url`` (aws)."""
    if name == "local":
        return _local(tmp_path, clock)
    if name == "aws" and moto_url:
        return _aws(moto_url, clock)
    raise ValueError(f"unknown contract backend {name!r} (aws needs moto_url)")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            clock: ManualClock) -> Iterator[Backend]:
    moto_url = None
    if request.param == "aws":  # the server starts with the first test that needs it
        from tests.aws.motoserver import DUMMY_ENV

        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        for k, v in DUMMY_ENV.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        server = request.getfixturevalue("moto")
        server.reset()
        moto_url = server.url
    b = make_backend(request.param, tmp_path, clock, moto_url=moto_url)
    try:
        yield b
    finally:
        b.close()
