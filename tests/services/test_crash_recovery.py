"""Crash recovery: a put killed at any step leaves all of a file or none of it, never half.

``LocalObjectStore.crash_hook`` raises a ``BaseException`` (simulated process death, which
``put`` does not clean up) after the named step; a fresh container on the same data directory
then runs what ``fleetcam serve`` runs at start-up, and the ingest queue is drained.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.config import Settings
from fleetcam.domain.keys import preview_key
from fleetcam.domain.models import Device
from fleetcam.errors import NotFound
from fleetcam.ports import MediaQuery
from fleetcam.runtime.container import Container
from fleetcam.runtime.local import build_local
from fleetcam.runtime.worker import drain
from mediagen import make_image
from tests.conftest import RecordingBus

STEPS = ["written", "recorded", "renamed"]


class ProcessDied(BaseException):
    """Not an Exception: nothing in put may catch it, like SIGKILL."""


def _crash_at(step: str, put: int = 1):  # noqa: ANN202
    """Die after ``step`` of the ``put``-th put (1: the file's content, 2: its preview)."""
    seen = [0]

    def hook(name: str) -> None:
        if name == STEPS[0]:
            seen[0] += 1
        if name == step and seen[0] == put:
            raise ProcessDied(step)
    return hook


def _restart(old: Container, settings: Settings, clock: ManualClock) -> tuple[Container,
                                                                                RecordingBus]:
    old.extras["db"].close()
    bus = RecordingBus()
    c = build_local(settings, clock=clock, bus=bus)
    c.store.recover()  # type: ignore[attr-defined]
    c.media.finish_deletions()
    drain(c.extras["queue"], c.ingest)
    return c, bus


def _object_files(settings: Settings) -> list[Path]:
    root = Path(settings.data_dir) / "objects"
    return [p for p in root.rglob("*") if p.is_file()]


def _count(c: Container, table: str) -> int:
    return int(c.extras["db"].conn().execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def cam(container: Container) -> Device:
    return container.devices.create([{"name": "cam", "ident": "crash-cam"}])[0]


@pytest.mark.parametrize("put", [1, 2], ids=["content", "preview"])
@pytest.mark.parametrize("step", STEPS)
def test_a_put_killed_at_any_step_is_all_or_nothing(container: Container, settings: Settings,
                                                    clock: ManualClock, cam: Device,
                                                    step: str, put: int) -> None:
    container.store.crash_hook = _crash_at(step, put)  # type: ignore[attr-defined]
    with pytest.raises(ProcessDied):
        container.ingest.upload(cam.id, io.BytesIO(make_image(48, 32)), filename="a.jpg",
                                content_type="image/jpeg", raw_options={"created": 1000})

    c, bus = _restart(container, settings, clock)

    files = c.index.query(MediaQuery(device_ids=(cam.id,)))
    objects = _object_files(settings)
    assert _count(c, "events") == 0  # nothing staged, ready or dead is left
    assert not list((Path(settings.data_dir) / "objects" / ".tmp").iterdir())
    assert c.index.pending_deletions() == []
    uploaded = c.logs.query((cam.id,), events=("media_file_uploaded",))
    if files:  # the whole file
        (f,) = files
        root = Path(settings.data_dir) / "objects"
        assert sorted(objects) == [root / f.key, root / preview_key(cam.id, f.uuid)]
        assert c.store.head(f.key).size == f.size == objects[0].stat().st_size
        assert b"".join(c.store.read(f.key)) == objects[0].read_bytes()
        assert c.media.preview(f)[:2] == b"\xff\xd8"
        assert [e.data["uuid"] for e in uploaded] == [f.uuid]
        assert [p["uuid"] for t, p, _ in bus.messages
                if t.endswith("/media_file_uploaded")] == [f.uuid]
        assert _count(c, "objects") == 2
    else:  # or nothing at all
        assert objects == []
        assert uploaded == []
        assert _count(c, "objects") == 0
        assert bus.messages == []
    assert c.index.usage(cam.id) == ((files[0].size, 0, 1) if files else (0, 0, 0))
    # a content put that completed (renamed) is ingested from its queued event; so is one
    # whose preview put died at any step (the retry writes the preview again)
    assert bool(files) == (put == 2 or step == "renamed")


@pytest.mark.parametrize("step", STEPS)
def test_the_store_works_after_recovery(container: Container, settings: Settings,
                                        clock: ManualClock, cam: Device, step: str) -> None:
    container.store.crash_hook = _crash_at(step)  # type: ignore[attr-defined]
    with pytest.raises(ProcessDied):
        container.ingest.upload(cam.id, io.BytesIO(make_image(48, 32)), filename="a.jpg",
                                content_type="image/jpeg", raw_options={"created": 1000})
    c, _ = _restart(container, settings, clock)
    f = c.ingest.upload(cam.id, io.BytesIO(make_image(40, 30)), filename="b.jpg",
                        content_type="image/jpeg", raw_options={"created": 2000})
    assert c.media.get(f.uuid) == f
    assert drain(c.extras["queue"], c.ingest) == {"done": 1}  # its event finds it ingested
    assert len(c.index.query(MediaQuery(device_ids=(cam.id,)))) == (2 if step == "renamed"
                                                                    else 1)


def test_recovery_twice_changes_nothing(container: Container, settings: Settings,
                                        clock: ManualClock, cam: Device) -> None:
    container.store.crash_hook = _crash_at("renamed")  # type: ignore[attr-defined]
    with pytest.raises(ProcessDied):
        container.ingest.upload(cam.id, io.BytesIO(make_image(48, 32)), filename="a.jpg",
                                content_type="image/jpeg", raw_options={})
    c, _ = _restart(container, settings, clock)
    assert c.store.recover() == (0, 0)  # type: ignore[attr-defined]
    assert c.media.finish_deletions() == 0
    assert drain(c.extras["queue"], c.ingest) == {}


def test_a_crash_between_record_and_object_deletion_is_finished(
        container: Container, settings: Settings, clock: ManualClock, cam: Device) -> None:
    c = container
    f = c.ingest.upload(cam.id, io.BytesIO(make_image(48, 32)), filename="a.jpg",
                        content_type="image/jpeg", raw_options={})
    assert c.index.remove([f]) == [f]  # the record is gone; the process dies right here
    assert c.index.pending_deletions() == [f.key]
    assert c.store.head(f.key).size == f.size  # an orphan object, remembered in gc

    c2 = build_local(settings, clock=clock, bus=RecordingBus())
    assert c2.index.pending_deletions() == [f.key]
    assert c2.media.finish_deletions() == 1
    with pytest.raises(NotFound):
        c2.store.head(f.key)
    with pytest.raises(NotFound):  # its preview went with it
        c2.store.head(preview_key(cam.id, f.uuid))
    assert _object_files(settings) == []
    assert c2.index.pending_deletions() == []
    assert c2.media.finish_deletions() == 0
