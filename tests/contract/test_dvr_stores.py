"""The DVR's stores and object storage behave the same on SQLite/folders and DynamoDB/S3."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetcam.domain import dvr
from fleetcam.errors import Invalid, NotFound
from tests.contract.conftest import Backend


@dataclass
class Dvr:
    streams: Any
    index: Any
    episodes: Any
    storage: Any
    root: str
    bad_roots: tuple[str, ...]


@pytest.fixture
def stores(backend: Backend, tmp_path: Path) -> Dvr:
    if backend.name == "local":
        from fleetcam.adapters.local.dvr import (LocalDvrStorage, SqliteDvrIndex,
                                                SqliteDvrStreamStore, SqliteEpisodeStore)
        db = backend.extras["db"]
        return Dvr(SqliteDvrStreamStore(db), SqliteDvrIndex(db), SqliteEpisodeStore(db),
                   LocalDvrStorage(tmp_path / "data"), "dvr",
                   ("", "../x", "/etc", "s3://b/p", "a/../../x", "objects", "objects/media",
                    "exports/x", "fleetcam.sqlite3", "fleetcam.sqlite3-wal/x", str(tmp_path)))
    from fleetcam.adapters.aws.dvr import (DynamoDvrIndex, DynamoDvrStreamStore,
                                           DynamoEpisodeStore, S3DvrStorage)
    from tests.aws.motoserver import BUCKET

    return Dvr(DynamoDvrStreamStore(), DynamoDvrIndex(), DynamoEpisodeStore(),
               S3DvrStorage(BUCKET, backend.extras["s3"]), "dvr",
               ("", "s3://other-bucket/p", "a/../x", "media/x", "http://x/y", "/", "//",
                f"s3://{BUCKET}", f"s3://{BUCKET}/", "raw", "live/x", "previews/x",
                "dvr-downloads", f"s3://{BUCKET}/media/x"))


def seg(stream: str, start: int, length: int = 600_000, size: int = 1000,
        token: str = "00000000") -> dvr.SegmentEntry:
    frags = tuple(dvr.FragmentEntry(start + i * 1000, 1000, i * 10, 10, 100, 25)
                  for i in range(length // 1000))
    return dvr.SegmentEntry(stream, dvr.segment_id(start, token), "dvr",
                            dvr.segment_key(stream, start, token), "s/init/x.mp4", start,
                            start + length, size, "avc1.42c01e", 320, 240, frags)


def test_index_overlap_usage_remove(stores: Dvr):
    idx = stores.index
    t0 = 1_700_000_000_000
    for i in range(6):
        assert idx.add(seg("a", t0 + i * 600_000))
    assert not idx.add(seg("a", t0))
    idx.add(seg("b", t0))
    got = idx.segments("a", t0 + 650_000, t0 + 1_300_000)
    assert [s.start_ms for s in got] == [t0 + 600_000, t0 + 1_200_000]
    assert got[0] == seg("a", t0 + 600_000)
    assert idx.spans("a") == [(t0 + i * 600_000, t0 + (i + 1) * 600_000) for i in range(6)]
    assert idx.spans("a", t0 + 3_000_000) == [(t0 + 3_000_000, t0 + 3_600_000)]
    assert idx.usage("a") == (6000, 6) and idx.streams() == ["a", "b"]
    page = idx.segments("a", limit=2)
    assert [s.start_ms for s in idx.segments("a", limit=2, after=page[-1].segment_id)] == [
        t0 + 1_200_000, t0 + 1_800_000]
    gone = idx.remove("a", [got[0].segment_id, "nope"])
    assert [s.segment_id for s in gone] == [got[0].segment_id]
    assert idx.remove("a", [got[0].segment_id]) == []
    assert idx.usage("a") == (5000, 5)
    assert idx.pending_deletions() == [("dvr", got[0].key)]
    idx.deletion_done(idx.pending_deletions())
    assert idx.pending_deletions() == []


def test_version_moves_by_one_per_segment_added_or_removed(stores: Dvr):
    """Readers keep merged ranges per version: an addition and a deletion between two reads
    leave the segment count as it was, but not the version."""
    idx = stores.index
    t0 = 1_700_000_000_000
    assert idx.version("v") == 0
    assert idx.add(seg("v", t0)) and idx.add(seg("v", t0 + 600_000))
    assert idx.version("v") == 2
    assert not idx.add(seg("v", t0))  # already there: no change
    idx.add(seg("w", t0))
    assert idx.version("v") == 2 and idx.version("w") == 1
    idx.remove("v", [dvr.segment_id(t0, "00000000"), "nope"])
    idx.add(seg("v", t0 + 1_200_000))
    assert idx.usage("v")[1] == 2 and idx.version("v") == 4


def _merged(idx: Any, stream: str) -> list[tuple[int, int]]:
    starts, ends = idx.ranges(stream)
    return list(zip(starts, ends))


def _forget_chunks(backend: Backend, stream: str) -> None:
    """As an index written before ranges were kept in chunks."""
    if backend.name == "local":
        with backend.extras["db"].tx() as c:
            c.execute("DELETE FROM dvr_range_streams WHERE stream=?", (stream,))
            c.execute("DELETE FROM dvr_range_chunks WHERE stream=?", (stream,))
        return
    from fleetcam.adapters.aws.dvr import RANGES, USAGE
    from fleetcam.adapters.aws.models import DvrSegmentsModel

    for m in DvrSegmentsModel.query(stream, DvrSegmentsModel.segment_id.startswith(RANGES)):
        m.delete()
    DvrSegmentsModel(stream=stream, segment_id=USAGE).update(
        actions=[DvrSegmentsModel.ranges_ok.remove()])


def test_merged_ranges_are_kept_with_the_rows(stores: Dvr, backend: Backend):
    """The index keeps merged ranges per week, updated with each row added or removed, and
    builds them once for rows indexed before (both give what merging every row gives)."""
    idx = stores.index
    week = dvr.RANGE_CHUNK_MS
    t0 = 2800 * week - 1_200_000  # 20 minutes before a week's boundary
    assert _merged(idx, "r") == []
    for i, gap in enumerate([0, 0, 0, 1000, 0]):  # a segment across the boundary, a 1 s gap
        idx.add(seg("r", t0 + i * 600_000 + (1000 if i >= 3 else 0), token=f"{i:08x}"))
    idx.add(seg("r", t0 + 2 * week, token="0000000a"))
    want = [(t0, t0 + 1_800_000), (t0 + 1_801_000, t0 + 3_001_000),
            (t0 + 2 * week, t0 + 2 * week + 600_000)]
    assert _merged(idx, "r") == [(a, b) for a, b in want]
    assert _merged(idx, "r") == [(r.start_ms, r.end_ms) for r in dvr.merge_ranges(idx.spans("r"))]
    idx.remove("r", [dvr.segment_id(t0 + 600_000, f"{1:08x}"),
                     dvr.segment_id(t0 + 2 * week, "0000000a")])
    assert _merged(idx, "r") == [(t0, t0 + 600_000), (t0 + 1_200_000, t0 + 1_800_000),
                                 (t0 + 1_801_000, t0 + 3_001_000)]
    _forget_chunks(backend, "r")
    assert _merged(idx, "r") == [(t0, t0 + 600_000), (t0 + 1_200_000, t0 + 1_800_000),
                                 (t0 + 1_801_000, t0 + 3_001_000)]
    idx.add(seg("r", t0 + 600_000, token="0000000b"))  # kept up again after the build
    assert _merged(idx, "r") == [(t0, t0 + 1_800_000), (t0 + 1_801_000, t0 + 3_001_000)]
    assert _merged(idx, "nothing") == []


def test_intents_find_objects_stored_but_never_indexed(stores: Dvr):
    idx = stores.index
    done, orphan = seg("a", 1_700_000_000_000), seg("a", 1_700_000_600_000, token="11111111")
    idx.intend("dvr", done.key, 100.0)
    idx.intend("dvr", orphan.key, 100.0)
    idx.add(done)  # indexing clears its intent
    assert idx.abandoned(before=50.0) == []
    assert idx.abandoned(before=200.0) == [("dvr", orphan.key)]
    assert idx.pending_deletions() == []  # intents are not deletions
    idx.drop_intents([("dvr", orphan.key)])
    assert idx.abandoned(before=200.0) == []


def test_thumbs_are_recorded_once_and_deleted_with_their_segment(stores: Dvr):
    idx = stores.index
    s = seg("a", 1_700_000_000_000)
    mine = dvr.Thumbs(dvr.thumbs_key(s.key, "aaaa"), (dvr.Thumb(s.start_ms, 0, 10),
                                                      dvr.Thumb(s.start_ms + 60_000, 10, 12)))
    other = dvr.Thumbs(dvr.thumbs_key(s.key, "bbbb"), (dvr.Thumb(s.start_ms, 0, 11),))
    assert idx.set_thumbs("a", s.segment_id, "dvr", mine) is None  # no row: caller cleans up
    idx.add(s)
    assert idx.segments("a")[0].thumbs is None
    idx.intend("dvr", mine.key, 100.0)
    idx.intend("dvr", other.key, 100.0)
    assert idx.set_thumbs("a", s.segment_id, "dvr", mine) == mine
    # a second writer (S3 delivers at least once) learns whose are recorded; nothing changes
    assert idx.set_thumbs("a", s.segment_id, "dvr", other) == mine
    assert idx.abandoned(before=200.0) == [("dvr", other.key)]  # the recorded intent cleared
    (row,) = idx.segments("a")
    assert row.thumbs == mine and row == dataclasses.replace(s, thumbs=mine)
    assert idx.usage("a") == (1000, 1)
    idx.remove("a", [s.segment_id])
    assert sorted(idx.pending_deletions()) == sorted([("dvr", s.key), ("dvr", mine.key)])
    none = seg("a", 1_700_000_600_000)
    idx.add(none)
    assert idx.set_thumbs("a", none.segment_id, "dvr", dvr.Thumbs("")) == dvr.Thumbs("")
    assert idx.segments("a")[0].thumbs == dvr.Thumbs("")


def test_watch_marks_expire(stores: Dvr):
    idx = stores.index
    idx.add(seg("a", 1_700_000_000_000))
    idx.watch("a", 200.0)
    idx.watch("b", 100.0)
    assert idx.watched(50.0) == ["a", "b"] and idx.watched(150.0) == ["a"]
    assert idx.segments("a") == [seg("a", 1_700_000_000_000)]  # the mark is not a segment
    assert idx.spans("a") == [(1_700_000_000_000, 1_700_000_600_000)]
    assert idx.usage("a") == (1000, 1) and idx.streams() == ["a"]


def test_streams_and_tombstones(stores: Dvr):
    store = stores.streams
    s = dvr.DvrStream("7-1", 7, 1, dvr.DvrConfig("dvr", 3600), 1.0, 1.0, read_salt="ab" * 16)
    store.put(s)
    store.put(dvr.DvrStream("cam", 7, 2, None, 1.0, 1.0))
    assert store.get("7-1") == s
    assert [x.name for x in store.of_device(7)] == ["7-1", "cam"]
    store.put(s.with_changes(deleted_at=5.0))
    assert store.get("7-1") is None and store.get("7-1", include_deleted=True) is not None
    assert [x.name for x in store.list()] == ["cam"]
    assert [x.name for x in store.list(include_deleted=True)] == ["7-1", "cam"]
    assert [x.name for x in store.of_device(7)] == ["cam"]
    store.purge("7-1")
    assert store.get("7-1", include_deleted=True) is None


def test_episodes(stores: Dvr):
    eps = stores.episodes
    assert eps.put(dvr.Episode(1, "a", 100, 200, 5, "rule", meta={"title": "x"}))
    assert not eps.put(dvr.Episode(1, "a", 0, 1, 5), create_only=True)
    eps.put(dvr.Episode(2, "a", 300, None, 5))
    eps.put(dvr.Episode(3, "b", 100, 200, 5))
    assert eps.get(1).meta == {"title": "x"} and eps.get(1).episode_type == "rule"
    assert [e.episode_id for e in eps.overlapping("a", 150, 1000)] == [1, 2]
    assert [e.episode_id for e in eps.overlapping("a", 200, 300)] == []
    q = dvr.EpisodeQuery
    assert [e.episode_id for e in eps.query(q(media=("a",)))] == [1, 2]
    assert [e.episode_id for e in eps.query(q(episode_type=("rule",)))] == [1]
    assert [e.episode_id for e in eps.query(q(time_from=250))] == [2]
    assert [e.episode_id for e in eps.query(q(time_to=150))] == [1, 3]
    assert [e.episode_id for e in eps.query(q(cursor=1, limit=1))] == [2]
    assert eps.delete(2) and not eps.delete(2)
    assert eps.get(2) is None


def test_storage(stores: Dvr):
    st = stores.storage
    for bad in stores.bad_roots:
        with pytest.raises(Invalid):
            st.resolve(bad)
    assert st.put("dvr", "s/2026/a.m4s", b"0123456789", content_type="video/iso.segment") == 10
    assert st.exists("dvr", "s/2026/a.m4s") and not st.exists("dvr", "s/2026/b.m4s")
    assert b"".join(st.read("dvr", "s/2026/a.m4s", 2, 4)) == b"234"
    assert b"".join(st.read("dvr", "s/2026/a.m4s")) == b"0123456789"
    with pytest.raises(Invalid):
        st.put("dvr", "../../escape", b"x", content_type="x")
    st.delete("dvr", "s/2026/a.m4s")
    st.delete("dvr", "s/2026/a.m4s")
    with pytest.raises(NotFound):
        b"".join(st.read("dvr", "s/2026/a.m4s"))
