"""MediaIndex contract: records, deletion bookkeeping, queries, usage and retention reads."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from fleetcam.domain import expr
from fleetcam.domain.models import MediaFile, Preview
from fleetcam.errors import NotFound
from fleetcam.ports import MediaQuery
from tests.contract.conftest import Backend


@pytest.fixture(autouse=True)
def devices(backend: Backend) -> None:
    """Devices 1 and 2 exist (the media of a missing device cannot be recorded)."""
    made = [backend.devices.create({"name": f"cam{n}", "ident": f"i{n}"}).id for n in (1, 2)]
    assert made == [1, 2]


def mf(n: int, device_id: int = 1, **kw: Any) -> MediaFile:
    """The n-th test file: created and uploaded at 1000+n unless told otherwise."""
    uuid = kw.pop("uuid", f"{n:032x}")
    fields: dict[str, Any] = dict(
        uuid=uuid, device_id=device_id, key=f"media/{device_id}/{uuid}.jpg", name=f"f{n}.jpg",
        size=100, mime="image/jpeg", created=1000.0 + n, uploaded=1000.0 + n,
        modified=1000.0 + n)
    fields.update(kw)
    return MediaFile(**fields)


def _all(b: Backend, *device_ids: int, **kw: Any) -> list[MediaFile]:
    return b.index.query(MediaQuery(device_ids=device_ids or (1,), count=10_000, **kw))


def test_add_get_round_trip(backend: Backend) -> None:
    f = mf(1, name="x y.jpg", size=12345, created=1700000000.25, protected=True, shared=True,
           channel_id=3, preview=Preview(jpeg="AAAA", meta={"type": "image", "width": 4}),
           attributes={"plate": "AB123", "speed": 42.5, "tags": ["a"], "ok": True})
    assert backend.index.add(f) is True
    assert backend.index.get(f.uuid) == f
    assert backend.index.get("f" * 32) is None


def test_add_for_a_missing_device_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.index.add(mf(1, device_id=99))
    assert backend.index.get(mf(1).uuid) is None
    assert backend.index.usage(99) == (0, 0, 0)


def test_add_is_idempotent(backend: Backend) -> None:
    f = mf(1)
    assert backend.index.add(f) is True
    assert backend.index.add(f.with_changes(name="other", size=999)) is False
    assert backend.index.get(f.uuid) == f
    assert backend.index.usage(1) == (100, 0, 1)


def test_update(backend: Backend) -> None:
    f = mf(1)
    backend.index.add(f)
    new = f.with_changes(name="renamed", modified=2000.0, shared=True,
                         attributes={"note": "n"}, channel_id=2)
    backend.index.update(new)
    assert backend.index.get(f.uuid) == new


def test_remove_returns_only_present_files(backend: Backend) -> None:
    a, b, c = mf(1), mf(2), mf(3)
    for f in (a, b):
        backend.index.add(f)
    assert backend.index.remove([a, c]) == [a]
    assert backend.index.get(a.uuid) is None and backend.index.get(b.uuid) == b
    assert backend.index.remove([a]) == []
    assert backend.index.remove([]) == []


def test_remove_schedules_object_deletion(backend: Backend) -> None:
    files = [mf(n) for n in range(5)]
    for f in files:
        backend.index.add(f)
    assert backend.index.pending_deletions() == []
    backend.index.remove(files[:3] + [mf(99)])
    assert sorted(backend.index.pending_deletions()) == sorted(f.key for f in files[:3])
    assert len(backend.index.pending_deletions(limit=2)) == 2
    backend.index.deletion_done([files[0].key, "media/1/never"])
    assert sorted(backend.index.pending_deletions()) == sorted(f.key for f in files[1:3])
    backend.index.deletion_done(f.key for f in files[1:3])
    assert backend.index.pending_deletions() == []


def test_usage_counters(backend: Backend) -> None:
    assert backend.index.usage(1) == (0, 0, 0)
    a, b, c = mf(1, size=100), mf(2, size=250, protected=True), mf(3, size=50)
    for f in (a, b, c):
        backend.index.add(f)
    backend.index.add(mf(4, device_id=2, size=7))
    assert backend.index.usage(1) == (400, 250, 3)
    backend.index.update(a.with_changes(protected=True))
    assert backend.index.usage(1) == (400, 350, 3)
    backend.index.update(b.with_changes(protected=False, name="n"))
    assert backend.index.usage(1) == (400, 100, 3)
    backend.index.update(c.with_changes(name="unchanged size"))
    assert backend.index.usage(1) == (400, 100, 3)
    backend.index.remove([a.with_changes(protected=True)])
    assert backend.index.usage(1) == (300, 0, 2)
    backend.index.remove([b, c, a])
    assert backend.index.usage(1) == (0, 0, 0)
    assert backend.index.usage(2) == (7, 0, 1)


def _sorted(files: list[MediaFile], reverse: bool = False) -> list[MediaFile]:
    return sorted(files, key=lambda f: (f.created, f.uuid), reverse=reverse)


@pytest.fixture
def spread(backend: Backend, devices: None) -> list[MediaFile]:
    """30 files over two devices, with created times that tie in pairs."""
    files = [mf(n, device_id=1 + n % 2, created=1000.0 + n // 2, size=10 * n,
                protected=n % 5 == 0, channel_id=n % 3 or None,
                attributes={"plate": "AB" if n % 4 else "CD"}) for n in range(30)]
    for f in files:
        backend.index.add(f)
    return files


def test_query_orders_by_created_then_uuid(backend: Backend, spread: list[MediaFile]) -> None:
    assert _all(backend, 1, 2) == _sorted(spread)
    assert _all(backend, 1, 2, reverse=True) == _sorted(spread, reverse=True)
    assert _all(backend, 2) == _sorted([f for f in spread if f.device_id == 2])
    assert _all(backend, 3) == []
    assert backend.index.query(MediaQuery(device_ids=())) == []


def test_query_time_range_is_inclusive(backend: Backend, spread: list[MediaFile]) -> None:
    got = _all(backend, 1, 2, time_from=1003.0, time_to=1006.0)
    assert got == _sorted([f for f in spread if 1003 <= f.created <= 1006])
    assert len(got) == 8
    got = _all(backend, 1, 2, time_from=1010.0, reverse=True)
    assert got == _sorted([f for f in spread if f.created >= 1010], reverse=True)


@pytest.mark.parametrize("text", [
    "size>=100&&size<200", "protected", "!protected", "plate=CD", "plate=A*",
    "channel_id=null", "channel_id=2||size<30", "name=f1*.jpg",
])
def test_query_filter(backend: Backend, spread: list[MediaFile], text: str) -> None:
    node = expr.parse(text)
    expected = [f for f in _sorted(spread) if expr.evaluate(node, f.field_value)]
    assert expected and len(expected) < len(spread)
    assert _all(backend, 1, 2, filter=node) == expected


def test_query_count_and_cursor_pages(backend: Backend, spread: list[MediaFile]) -> None:
    for reverse in (False, True):
        pages: list[MediaFile] = []
        cursor = None
        while True:
            page = backend.index.query(MediaQuery(device_ids=(1, 2), count=4, reverse=reverse,
                                                  cursor=cursor))
            assert len(page) <= 4
            pages += page
            if len(page) < 4:
                break
            cursor = (page[-1].created, page[-1].uuid)
        assert pages == _sorted(spread, reverse=reverse)


def test_cursor_combines_with_filter_and_time(backend: Backend,
                                              spread: list[MediaFile]) -> None:
    node = expr.parse("!protected")
    expected = [f for f in _sorted(spread) if not f.protected and f.created >= 1002]
    first = backend.index.query(MediaQuery(device_ids=(1, 2), filter=node, time_from=1002.0,
                                           count=5))
    rest = backend.index.query(MediaQuery(device_ids=(1, 2), filter=node, time_from=1002.0,
                                          count=1000,
                                          cursor=(first[-1].created, first[-1].uuid)))
    assert first + rest == expected


def test_oldest_unprotected(backend: Backend) -> None:
    files = [mf(n, created=1000.0 + (n * 7919) % 601, protected=n % 7 == 0) for n in range(601)]
    files += [mf(n, device_id=2) for n in range(1000, 1010)]
    # in bulk where the index can (moto copies a table for every transaction: 600 adds
    # would take most of the AWS run); add() itself is covered above
    add_many = getattr(backend.index, "add_many", None)
    if add_many is not None:
        add_many(files)
    else:
        for f in files:
            backend.index.add(f)
    assert backend.index.usage(1)[2] == 601
    got = list(backend.index.oldest_unprotected(1))
    assert got == _sorted([f for f in files if f.device_id == 1 and not f.protected])
    assert list(backend.index.oldest_unprotected(3)) == []


def test_oldest_unprotected_is_lazy(backend: Backend) -> None:
    for n in range(3):
        backend.index.add(mf(n))
    it = backend.index.oldest_unprotected(1)
    assert next(it).uuid == mf(0).uuid


def test_uploaded_before(backend: Backend) -> None:
    files = [mf(n, created=5000.0 - n, uploaded=1000.0 + n, protected=n % 4 == 0)
             for n in range(20)]
    files.append(mf(50, device_id=2, uploaded=0.0))
    for f in files:
        backend.index.add(f)
    got = backend.index.uploaded_before(1, 1010.0, 100)
    assert got == [f for f in files[:10] if not f.protected]  # oldest upload first
    assert backend.index.uploaded_before(1, 1010.0, 3) == got[:3]
    assert backend.index.uploaded_before(1, 1000.0, 100) == []  # strictly before
    assert backend.index.uploaded_before(1, 1001.0, 100) == []  # n=0 is protected
    assert backend.index.uploaded_before(2, 1.0, 10) == [files[-1]]


def test_every_read_returns_whole_records(backend: Backend) -> None:
    """Lists and retention reads carry the preview's meta and attributes, as get() does. An
    inline preview image (records made before previews became objects) is read by get()
    alone (the AWS indexes do not project it; lists link to the preview instead)."""
    jpeg = "/9j/" + "A" * 18_000  # the size of a real 720p preview in base64
    files = [mf(n, created=2000.0 - n, protected=n == 3, channel_id=n,
                preview=Preview(jpeg=jpeg + str(n), meta={"type": "image", "width": 640 + n}),
                attributes={"plate": f"P{n}", "nested": {"k": [n]}}) for n in range(6)]
    for f in files:
        backend.index.add(f)
    unprotected = [f for f in files if not f.protected]

    def bare(fs: Iterable[MediaFile]) -> list[MediaFile]:
        return [f.with_changes(preview=Preview(meta=f.preview.meta)) for f in fs]

    assert bare(_all(backend)) == bare(_sorted(files))
    page = backend.index.query(MediaQuery(device_ids=(1,), filter=expr.parse("meta.width>=642"),
                                          count=2))
    assert bare(page) == bare(_sorted(files[2:])[:2])
    assert bare(backend.index.oldest_unprotected(1)) == bare(_sorted(unprotected))
    assert bare(backend.index.uploaded_before(1, 1004.0, 10)) == bare(
        [f for f in unprotected if f.uploaded < 1004])
    assert all(backend.index.get(f.uuid) == f for f in files)


def test_the_filters_of_bulk_delete_and_the_unknown_field_probe(
        backend: Backend, spread: list[MediaFile]) -> None:
    """What MediaService.delete_all (protected==false / ==true) and the media route's
    unknown-field check (name!=null: does any file have this attribute) ask of an index."""
    for node, expected in (
            (expr.Cmp("protected", "==", False), [f for f in spread if not f.protected]),
            (expr.Cmp("protected", "==", True), [f for f in spread if f.protected]),
            (expr.Cmp("plate", "!=", None), spread),
            (expr.Cmp("colour", "!=", None), [])):
        assert _all(backend, 1, 2, filter=node) == _sorted(expected), node
    one = backend.index.query(MediaQuery(device_ids=(1, 2), count=1,
                                         filter=expr.Cmp("plate", "!=", None)))
    assert len(one) == 1
