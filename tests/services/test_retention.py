"""Retention at scale: TTL expiry and size rotation over 10 000 files, and rotation on upload.

The 10 000 files are seeded in bulk: ``SqliteMediaIndex.add_many`` for the records and, for
the content, each object file written at its final path plus its ``objects`` row in one
transaction. That is exactly the state a completed ``LocalObjectStore.put`` leaves (file in
place, row with no ``tmp``), minus the per-object fsync and the queued ingest event, which
would make seeding take ~20 s and are covered by the ingest and crash-recovery tests.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.adapters.local.repos import SqliteMediaIndex
from fleetcam.domain.keys import media_key
from fleetcam.domain.models import Device, MediaFile
from fleetcam.errors import NotFound
from fleetcam.ports import MediaQuery
from fleetcam.runtime.container import Container
from mediagen import make_image
from tests.conftest import RecordingBus

N = 10_000
SIZE = 100
PAYLOAD = b"\x00" * SIZE


def _device(c: Container, **fields: object) -> Device:
    return c.devices.create([{"name": "cam", "ident": "retention-cam", **fields}])[0]


def _file(device: Device, n: int, *, created: float, uploaded: float,
          protected: bool = False) -> MediaFile:
    uuid = f"{n:032x}"
    return MediaFile(uuid=uuid, device_id=device.id, key=media_key(device.id, uuid, "jpg"),
                     name=f"{n}.jpg", size=SIZE, mime="image/jpeg", created=created,
                     uploaded=uploaded, modified=uploaded, protected=protected)


def seed(c: Container, files: list[MediaFile]) -> None:
    """Records and objects as completed puts would leave them (see the module docstring)."""
    root: Path = c.store.root  # type: ignore[attr-defined]
    for parent in {f.key.rsplit("/", 1)[0] for f in files}:
        (root / parent).mkdir(parents=True, exist_ok=True)
    for f in files:
        (root / f.key).write_bytes(PAYLOAD)
    with c.extras["db"].tx() as conn:
        conn.executemany("INSERT INTO objects (key, size, content_type, metadata, tmp)"
                         " VALUES (?, ?, 'image/jpeg', '{}', NULL)",
                         [(f.key, SIZE) for f in files])
    index = c.index
    assert isinstance(index, SqliteMediaIndex)
    index.add_many(files)


def _exists(c: Container, f: MediaFile) -> bool:
    return (c.store.root / f.key).exists()  # type: ignore[attr-defined]


def _expired_uuids(bus: RecordingBus) -> list[str]:
    return [p["uuid"] for t, p, _ in bus.messages if t.endswith("/media_file_expired")]


def test_ttl_sweep_expires_exactly_the_old_unprotected_files(
        container: Container, clock: ManualClock, bus: RecordingBus) -> None:
    c = container
    device = _device(c, media_ttl=3600)
    t0 = clock.now()
    old = [_file(device, n, created=t0 - n, uploaded=t0, protected=n % 10 == 0)
           for n in range(N // 2)]
    clock.advance(1800)
    new = [_file(device, n, created=clock.now() - n, uploaded=clock.now(),
                 protected=n % 10 == 0) for n in range(N // 2, N)]
    seed(c, old + new)
    assert c.store.head(old[1].key).size == SIZE  # seeded objects are real objects
    assert c.retention.sweep() == 0  # nothing is an hour old yet

    clock.advance(1801)  # old files are 3601 s old, new ones 1801 s
    expired = [f for f in old if not f.protected]
    assert c.retention.sweep() == len(expired) == 4500

    assert sorted(_expired_uuids(bus)) == sorted(f.uuid for f in expired)
    assert not any(t.endswith("/media_file_deleted") for t in bus.topics())
    logged = c.logs.query((device.id,), events=("media_file_expired",), count=N)
    assert len(logged) == len(expired)
    survivors = [f for f in old if f.protected] + new
    assert all(c.index.get(f.uuid) is None and not _exists(c, f) for f in expired)
    assert all(c.index.get(f.uuid) == f and _exists(c, f) for f in survivors)
    with pytest.raises(NotFound):
        c.store.head(expired[0].key)
    assert c.index.usage(device.id) == (len(survivors) * SIZE, 1000 * SIZE, len(survivors))
    assert c.index.pending_deletions() == []
    assert c.retention.sweep() == 0  # idempotent

    clock.advance(1800)  # now the second half has outlived the TTL too
    assert c.retention.sweep() == 4500
    left = c.index.query(MediaQuery(device_ids=(device.id,), count=N))
    assert {f.uuid for f in left} == {f.uuid for f in old + new if f.protected}


def test_rotation_deletes_oldest_unprotected_until_under_the_limit(
        container: Container, clock: ManualClock, bus: RecordingBus) -> None:
    c = container
    limit = 600_000
    device = _device(c, media_rotate=limit)
    t0 = clock.now()
    # created times interleave with the uuid order, and every 7th file is protected
    files = [_file(device, n, created=t0 - 86400 + (n * 7919) % N, uploaded=t0,
                   protected=n % 7 == 0) for n in range(N)]
    seed(c, files)
    assert c.index.usage(device.id) == (N * SIZE, 1429 * SIZE, N)

    total, victims = N * SIZE, []
    for f in sorted(files, key=lambda f: (f.created, f.uuid)):
        if total <= limit:
            break
        if not f.protected:
            victims.append(f)
            total -= f.size

    assert c.retention.sweep() == len(victims) == 4000
    assert _expired_uuids(bus) == [f.uuid for f in victims]  # oldest first
    gone = {f.uuid for f in victims}
    kept = [f for f in files if f.uuid not in gone]
    assert all(c.index.get(f.uuid) is None and not _exists(c, f) for f in victims)
    assert all(_exists(c, f) for f in kept)
    assert all(f.uuid not in gone for f in files if f.protected)
    assert c.index.usage(device.id) == (total, 1429 * SIZE, len(kept)) == (limit, 142_900, 6000)
    newest_victim = max((f.created, f.uuid) for f in victims)
    assert all((f.created, f.uuid) > newest_victim for f in kept if not f.protected)
    assert c.retention.sweep() == 0


def test_rotation_stops_at_protected_files(container: Container, bus: RecordingBus) -> None:
    c = container
    device = _device(c, media_rotate=250)
    files = [_file(device, n, created=float(n), uploaded=float(n), protected=n >= 2)
             for n in range(5)]
    seed(c, files)
    assert c.retention.sweep() == 2  # only the two unprotected files can go
    assert c.index.usage(device.id) == (300, 300, 3)
    assert sorted(_expired_uuids(bus)) == [files[0].uuid, files[1].uuid]


def test_upload_enforces_rotation_right_away(container: Container,
                                             bus: RecordingBus) -> None:
    c = container
    images = [make_image(64, 48, "jpeg", seed=i * 40) for i in range(6)]
    limit = 3 * max(len(i) for i in images)
    device = _device(c, media_rotate=limit)
    kept: list[MediaFile] = []
    for i, data in enumerate(images):
        f = c.ingest.upload(device.id, io.BytesIO(data), filename=f"{i}.jpg",
                            content_type="image/jpeg",
                            raw_options={"created": 1000 + i, "protected": i == 1})
        kept.append(f)
        while sum(k.size for k in kept) > limit:  # what rotation must have done, oldest first
            kept.remove(next(k for k in kept if not k.protected))
        total, _, count = c.index.usage(device.id)
        assert total <= limit
        stored = c.index.query(MediaQuery(device_ids=(device.id,)))
        assert [s.uuid for s in stored] == [k.uuid for k in kept]
        assert count == len(kept)
    assert any(k.protected for k in kept)
    expired = _expired_uuids(bus)
    assert expired and not set(expired) & {k.uuid for k in kept}
    assert len(expired) + len(kept) == len(images)
