"""A change of a device's media_ttl moves every existing file's expiry with it.

Issue 14: DynamoDB kept each file's ``expires_at`` from its upload, so raising media_ttl (or
setting it to 0) let TTL delete files the device now keeps. The rule, in both runtimes:
once the retime jobs are drained, ``expiry`` is what ``retention.file_expiry`` gives under
the device's *current* media_ttl, for every file (protected ones: never).
"""
from __future__ import annotations

import pytest

from fleetcam.domain.models import MediaFile
from fleetcam.domain.retention import file_expiry
from fleetcam.services.retention import RETIME_BATCH
from tests.contract.conftest import Backend

DAY = 86400
N = RETIME_BATCH * 2 + 30  # more than one batch, and a last partial one


def _files(device_id: int, n: int) -> list[MediaFile]:
    out = []
    for i in range(n):
        uuid = f"{device_id:04x}{i:028x}"
        # uploaded whole seconds apart, in an order unlike created's
        out.append(MediaFile(uuid=uuid, device_id=device_id, key=f"media/{device_id}/{uuid}.jpg",
                             name=f"{i}.jpg", size=10, mime="image/jpeg",
                             created=1_600_000_000.0 + (i * 7919) % n,
                             uploaded=1_700_000_000.0 + i, modified=1_700_000_000.0 + i,
                             protected=i % 17 == 0))
    return out


def _drain(b: Backend) -> int:
    """Run the retime jobs to the end, as RetentionService.retime does; returns the calls."""
    calls = 0
    while jobs := b.index.retime_jobs():
        for device_id, cursor in jobs:
            ttl = b.devices.get(device_id).media_ttl
            nxt: str | None = cursor
            while nxt is not None:
                nxt = b.index.retime(device_id, ttl, nxt, RETIME_BATCH)
                calls += 1
                assert calls < 100, "retime does not finish"
    return calls


@pytest.mark.parametrize("new_ttl", [30 * DAY, 60, 0], ids=["longer", "shorter", "zero"])
def test_a_change_of_media_ttl_moves_every_files_expiry(backend: Backend, new_ttl: int) -> None:
    device = backend.devices.create({"name": "cam", "ident": "ttl-cam", "media_ttl": DAY})
    other = backend.devices.create({"name": "cam2", "ident": "ttl-cam2", "media_ttl": DAY})
    files = _files(device.id, N)
    bystander = _files(other.id, 3)
    backend.index.add_many(files + bystander)  # type: ignore[attr-defined]
    for f in files[:5] + files[-5:]:
        assert backend.index.expiry(f.uuid) == file_expiry(f.uploaded, f.protected, DAY)

    backend.devices.update(device.with_changes(media_ttl=new_ttl))
    _drain(backend)

    for f in files:
        assert backend.index.expiry(f.uuid) == file_expiry(f.uploaded, f.protected, new_ttl), f
    for f in bystander:  # another device's files keep theirs
        assert backend.index.expiry(f.uuid) == file_expiry(f.uploaded, f.protected, DAY)
    assert backend.index.retime_jobs() == []
    assert backend.index.usage(device.id) == (10 * N, 10 * len(files[::17]), N)


def test_a_change_of_something_else_queues_no_job(backend: Backend) -> None:
    device = backend.devices.create({"name": "cam", "ident": "ttl-cam", "media_ttl": DAY})
    backend.index.add_many(_files(device.id, 3))  # type: ignore[attr-defined]
    backend.devices.update(device.with_changes(name="renamed"))
    assert backend.index.retime_jobs() == []
    assert backend.index.expiry(f"{device.id:04x}{1:028x}") == 1_700_000_001.0 + DAY


def test_expiry_of_a_missing_file_is_none(backend: Backend) -> None:
    assert backend.index.expiry("f" * 32) is None


def test_expiring_before_finds_expired_files_of_any_device(backend: Backend) -> None:
    short = backend.devices.create({"name": "a", "ident": "a", "media_ttl": 100})
    keep = backend.devices.create({"name": "b", "ident": "b", "media_ttl": 0})
    long = backend.devices.create({"name": "c", "ident": "c", "media_ttl": DAY})
    files = {d.id: _files(d.id, 40) for d in (short, keep, long)}
    backend.index.add_many([f for fs in files.values() for f in fs])  # type: ignore[attr-defined]
    now = 1_700_000_000.0 + 100 + 20  # files 0..19 of `short` are past their 100 s
    due = backend.index.expiring_before(now, 1000)
    want = {f.uuid for f in files[short.id][:20] if not f.protected}
    assert {f.uuid for f in due} == want and len(due) == len(want)
    assert all(f.device_id == short.id and not f.protected for f in due)
    assert len(backend.index.expiring_before(now, 5)) == 5
    assert backend.index.expiring_before(1_700_000_000.0, 1000) == []


def test_over_limit_names_the_devices_rotation_must_trim(backend: Backend) -> None:
    over = backend.devices.create({"name": "a", "ident": "a", "media_rotate": 100})
    under = backend.devices.create({"name": "b", "ident": "b", "media_rotate": 1000})
    unlimited = backend.devices.create({"name": "c", "ident": "c"})
    backend.index.add_many([f for d in (over, under, unlimited)  # type: ignore[attr-defined]
                            for f in _files(d.id, 20)])  # 200 bytes each
    assert backend.index.over_limit() == [over.id]
