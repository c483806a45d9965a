"""DVR retention: expiration, storage limit, episodes protect, deleted streams, store failures."""
from __future__ import annotations

import logging

import pytest

from fleetcam.domain import dvr
from fleetcam.runtime.container import Container

MIN = 60_000


@pytest.fixture
def svc(container: Container, client, device):
    svc = container.dvr
    svc.put_stream("1-1", {"dvr": {"root": "archive", "expiration": 3600}})
    return svc


def add(c: Container, start: int, length: int = 10 * MIN, size: int = 1000) -> dvr.SegmentEntry:
    token = f"{start % 10**8:08x}"[-8:]
    key = dvr.segment_key("1-1", start, token)
    c.dvr_storage.put("archive", key, b"x" * size, content_type="video/iso.segment")
    seg = dvr.SegmentEntry("1-1", dvr.segment_id(start, token), "archive", key, "1-1/init/a.mp4",
                           start, start + length, size, "avc1.42c01e", 320, 240,
                           (dvr.FragmentEntry(start, length, 0, size, 100, 25),))
    assert c.dvr_index.add(seg)
    return seg


def starts(c: Container) -> list[int]:
    return [s for s, _ in c.dvr_index.spans("1-1")]


def test_expired_segments_go_except_inside_episodes(container, svc, clock):
    now = int(clock.now() * 1000)
    segs = [add(container, now - 130 * MIN + i * 10 * MIN) for i in range(13)]
    svc.put_episode(1, {"media": "1-1", "opened_at": segs[2].start_ms + 1000,
                        "closed_at": segs[3].start_ms + 1000})  # touches segments 2 and 3
    assert svc.sweep() == 5  # 0-6 ended over an hour ago; 2 and 3 are protected
    assert starts(container) == [s.start_ms for s in segs[2:4] + segs[7:]]
    assert not container.dvr_storage.exists("archive", segs[0].key)
    assert container.dvr_storage.exists("archive", segs[2].key)
    assert container.dvr_index.pending_deletions() == []


def test_open_episode_protects_up_to_now(container, svc, clock):
    now = int(clock.now() * 1000)
    segs = [add(container, now - 200 * MIN + i * 10 * MIN) for i in range(20)]
    svc.put_episode(1, {"media": "1-1", "opened_at": segs[5].start_ms})
    svc.sweep()
    assert starts(container)[0] == segs[5].start_ms


def test_storage_limit_deletes_oldest_first(container, svc, clock):
    svc.put_stream("1-1", {"dvr": {"root": "archive", "expiration": 0, "storage_limit": 3500}})
    now = int(clock.now() * 1000)
    segs = [add(container, now - 60 * MIN + i * 10 * MIN) for i in range(6)]
    svc.put_episode(9, {"media": "1-1", "opened_at": segs[0].start_ms,
                        "closed_at": segs[0].end_ms})
    assert svc.sweep() == 3
    assert starts(container) == [segs[0].start_ms] + [s.start_ms for s in segs[4:]]


def test_unreadable_episode_store_makes_clean_up_wait(container, svc, clock, caplog):
    now = int(clock.now() * 1000)
    add(container, now - 300 * MIN)

    def broken(*a, **k):
        raise OSError("disk gone")

    container.episodes.overlapping = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        assert svc.sweep() == 0
        assert svc.sweep() == 0
    assert len(starts(container)) == 1
    assert sum("clean-up waits" in r.getMessage() for r in caplog.records) == 1  # rate-limited


def test_deleted_stream_keeps_episodes_for_episodes_expiration(container, svc, clock):
    svc.put_stream("1-1", {"dvr": {"root": "archive", "episodes_expiration": 3600}})
    now = int(clock.now() * 1000)
    segs = [add(container, now - 30 * MIN + i * 10 * MIN) for i in range(3)]
    svc.put_episode(1, {"media": "1-1", "opened_at": segs[1].start_ms + 1,
                        "closed_at": segs[1].end_ms - 1})
    svc.delete_stream("1-1")
    assert svc.sweep() == 2
    assert starts(container) == [segs[1].start_ms]
    clock.advance(3601)
    assert svc.sweep() == 1
    assert container.dvr_streams.get("1-1", include_deleted=True) is None
    assert container.dvr_index.usage("1-1") == (0, 0)


def test_failed_object_deletes_are_retried(container, svc, clock, monkeypatch):
    now = int(clock.now() * 1000)
    seg = add(container, now - 300 * MIN)
    real = container.dvr_storage.delete
    monkeypatch.setattr(container.dvr_storage, "delete",
                        lambda *a: (_ for _ in ()).throw(OSError("busy")))
    assert svc.sweep() == 1
    assert container.dvr_index.pending_deletions() == [("archive", seg.key)]
    monkeypatch.setattr(container.dvr_storage, "delete", real)
    svc.sweep()
    assert container.dvr_index.pending_deletions() == []
    assert not container.dvr_storage.exists("archive", seg.key)


def test_an_object_stored_but_never_indexed_is_deleted_after_an_hour(container, svc, clock):
    key = "1-1/2026/01/01/00/0000000000000-deadbeef.m4s"
    container.dvr_index.intend("archive", key, clock.now())
    container.dvr_storage.put("archive", key, b"x", content_type="video/iso.segment")
    svc.sweep()
    assert container.dvr_storage.exists("archive", key)  # maybe still being indexed
    clock.advance(3601)
    svc.sweep()
    assert not container.dvr_storage.exists("archive", key)
    assert container.dvr_index.abandoned(clock.now()) == []
