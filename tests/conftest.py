"""Shared fixtures: a local container on a temporary directory with a manual clock."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from fleetcam.adapters.local.clock import ManualClock  # noqa: E402
from fleetcam.api.app import create_app  # noqa: E402
from fleetcam.config import Settings  # noqa: E402
from fleetcam.runtime.container import Container  # noqa: E402
from fleetcam.runtime.local import build_local  # noqa: E402

if TYPE_CHECKING:
    from tests.aws.motoserver import MotoServer

TOKEN = "T" * 64


class RecordingBus:
    """Keeps what was published, in order (the MQTT path has its own test)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any, bool]] = []

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        self.messages.append((topic, payload, retain))

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.messages]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_token=TOKEN,
                    public_url="http://fleetcam.test", default_media_ttl=0)


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def container(settings: Settings, clock: ManualClock, bus: RecordingBus) -> Iterator[Container]:
    c = build_local(settings, clock=clock, bus=bus)
    yield c
    # each request thread of a TestClient opened its own SQLite connection: close them all,
    # or a long run piles up descriptors past 1024, where select()-based clients (paho) fail
    c.extras["db"].close_all()


@pytest.fixture
def client(container: Container) -> TestClient:
    c = TestClient(create_app(container))
    c.headers["Authorization"] = f"FlespiToken {TOKEN}"
    return c


@pytest.fixture
def device(client: TestClient) -> dict[str, Any]:
    r = client.post("/gw/devices", json=[{"name": "cam-1", "ident": "013912345678"}])
    assert r.status_code == 200, r.text
    return r.json()["result"][0]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server (HTTP, a subprocess on 127.0.0.1) for every AWS test of the session;
    started only when a test asks for it. Its transactions back up the items they write,
    not whole tables (tests/aws/moto_txfix.py): safe with concurrent requests, and fast."""
    from tests.aws.motoserver import MotoServer

    server = MotoServer(txfix=True).start()
    yield server
    server.stop()
