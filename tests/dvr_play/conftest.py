"""A recorded stream in a local container: segments stored and indexed as the gateway does."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.domain import dvr
from fleetcam.media import fmp4
from fleetcam.runtime.container import Container
from tests import dvrgen
from tests.conftest import TOKEN

T0 = 1_699_990_000_000
"""Archive start (UTC ms): before the test clock's now (1_700_000_000)."""


@dataclass
class Archive:
    c: Container
    name: str = "7-1"
    segments: list[dvr.SegmentEntry] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)

    def record(self, start_ms: int, seconds: float) -> dvr.SegmentEntry:
        init, gops = dvrgen.encoded()
        root = "dvr"
        ikey = dvr.init_key(self.name, fmp4.init_digest(init))
        self.c.dvr_storage.put(root, ikey, init, content_type="video/mp4")
        seg, data = dvrgen.segment(self.name, start_ms, seconds, gops=gops, root=root,
                                   init_key=ikey)
        self.c.dvr_storage.put(root, seg.key, data, content_type="video/iso.segment")
        assert self.c.dvr_index.add(seg)
        self.segments.append(seg)
        self.objects[seg.key] = data
        return seg


@pytest.fixture
def recorded(container: Container) -> Archive:
    now = container.clock.now()
    container.dvr_streams.put(dvr.DvrStream(
        name="7-1", device_id=7, channel=1, dvr=dvr.DvrConfig(root="dvr", expiration=86400),
        created_at=now, updated_at=now))
    a = Archive(container)
    a.record(T0, 10)
    a.record(T0 + 10_000, 10)
    a.record(T0 + 60_000, 6)  # a 40 s gap before it
    return a


@pytest.fixture
def anon(container: Container) -> TestClient:
    return TestClient(create_app(container))


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"FlespiToken {TOKEN}"}
