"""The DVR object-created handler (services/dvrthumbs.py) in the local runtime: what it reads,
and that no run leaves a half record or an orphan object behind."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetcam.adapters.local.dvr import LOCAL_DVR_BUCKET
from fleetcam.domain import dvr
from fleetcam.media import fmp4
from fleetcam.ports import ObjectCreated
from fleetcam.runtime.container import Container
from fleetcam.runtime.worker import drain
from fleetcam.services.dvrthumbs import ThumbnailWriter, _slices
from tests import dvrgen

T0 = 1_699_990_000_000


def _record(c: Container, seconds: float, data_fn: Any = None) -> dvr.SegmentEntry:
    init, gops = dvrgen.encoded()
    ikey = dvr.init_key("7-1", fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    seg, data = dvrgen.segment("7-1", T0, seconds, gops=gops, root="dvr", init_key=ikey)
    c.dvr_storage.put("dvr", seg.key, data_fn(seg, data) if data_fn else data,
                      content_type="video/iso.segment")
    assert c.dvr_index.add(seg)
    return seg


def _files(c: Container) -> list[str]:
    root = Path(c.dvr_storage.resolve("dvr"))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.mjpeg"))


class _Reads:
    def __init__(self, storage: Any) -> None:
        self.s, self.calls = storage, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s, name)

    def read(self, root: str, key: str, start: int = 0, end: int | None = None) -> Any:
        self.calls.append((key, start, end))
        return self.s.read(root, key, start, end)


def test_one_read_or_one_per_thumbnail_give_the_same_object(container: Container) -> None:
    made = []
    for max_reads in (None, 1):
        seg = _record(container, 200)  # from hh:mm:40: its first keyframe + 3 minutes'
        reads = _Reads(container.dvr_storage)
        w = ThumbnailWriter(container.dvr_index, reads, container.clock,
                            lambda init, frag: b"\xff\xd8" + frag[-64:] + b"\xff\xd9",
                            max_reads=max_reads)
        assert w.handle(ObjectCreated(LOCAL_DVR_BUCKET, seg.key, seg.size)) == 4
        (row,) = [s for s in container.dvr_index.segments("7-1")
                  if s.segment_id == seg.segment_id]
        made.append((row.thumbs.items, b"".join(container.dvr_storage.read("dvr",
                                                                           row.thumbs.key))))
        seg_reads = [r for r in reads.calls if r[0] == seg.key]
        assert len(seg_reads) == (4 if max_reads is None else 1)
        container.dvr_index.remove("7-1", [seg.segment_id])
        container.dvr.finish_deletions()
        assert _files(container) == []
    assert made[0] == made[1]


def test_slices_keep_only_the_wanted_bytes() -> None:
    data = bytes(range(256)) * 4
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    wanted = [(10, 20), (20, 21), (100, 300), (1000, 1024)]
    assert list(_slices(iter(chunks), 0, wanted)) == [data[a:b] for a, b in wanted]
    assert list(_slices(iter(chunks[2:]), 14, [(14, 15), (30, 40)])) == [data[14:15],
                                                                         data[30:40]]


def test_worker_path_and_no_orphan_when_the_segment_goes_meanwhile(
        container: Container) -> None:
    seg = _record(container, 70)

    class Deleting:
        """The index, with the segment removed (retention) between the PUT and the row."""

        def __getattr__(self, name: str) -> Any:
            return getattr(container.dvr_index, name)

        def set_thumbs(self, *a: Any) -> Any:
            container.dvr_index.remove("7-1", [seg.segment_id])
            return container.dvr_index.set_thumbs(*a)

    w = ThumbnailWriter(Deleting(), container.dvr_storage, container.clock,  # type: ignore[arg-type]
                        lambda init, frag: b"\xff\xd8x\xff\xd9")
    assert w.handle(ObjectCreated(LOCAL_DVR_BUCKET, seg.key, seg.size)) == 0
    assert _files(container) == []  # its own object deleted
    assert container.dvr_index.abandoned(before=1e12) == []  # and its intent dropped
    # the queued event finds the segment gone: done, nothing made
    assert drain(container.extras["queue"], container.ingest) == {"done": 1}
    assert _files(container) == []


def test_undecodable_keyframes_are_recorded_as_none(container: Container) -> None:
    def garbage(seg: dvr.SegmentEntry, data: bytes) -> bytes:
        out = bytearray(data)
        for f in seg.fragments:  # keep the boxes, ruin the pictures
            start = f.offset + f.moof_size + 8
            out[start:f.offset + f.size] = b"\x00" * (f.offset + f.size - start)
        return bytes(out)

    seg = _record(container, 70, garbage)
    assert drain(container.extras["queue"], container.ingest) == {"done": 1}
    (row,) = container.dvr_index.segments("7-1")
    assert row.thumbs == dvr.Thumbs("") and _files(container) == []
    assert seg.segment_id == row.segment_id


def test_backfill_makes_what_no_event_did_and_a_late_event_finds_it_done(
        container: Container) -> None:
    seg = _record(container, 70)  # its event waits in the queue (as if lost or delayed)
    assert container.clock.now() - seg.start_ms / 1000 < 25 * 3600
    assert container.dvr_thumbs.backfill(["7-1", "9-9"], budget=60) == (1, 0)
    (row,) = container.dvr_index.segments("7-1")
    assert row.thumbs is not None and len(row.thumbs.items) == len(dvr.thumb_times(seg))
    files = _files(container)
    assert len(files) == 1 and container.dvr_index.abandoned(before=1e12) == []
    assert container.dvr_thumbs.backfill(["7-1"], budget=60) == (0, 0)
    assert drain(container.extras["queue"], container.ingest) == {"done": 1}
    assert _files(container) == files  # the late event: done already, nothing made again
    assert container.dvr_index.segments("7-1")[0].thumbs == row.thumbs
    # rows that started more than 25 hours ago are left alone (recent ones: tests/aws)
    container.dvr_index.remove("7-1", [seg.segment_id])
    container.dvr.finish_deletions()
    _record(container, 70)
    container.clock.set(seg.start_ms / 1000 + 26 * 3600)
    assert container.dvr_thumbs.backfill(["7-1"], budget=60) == (0, 0)
    assert container.dvr_thumbs.backfill(["7-1"], budget=60, window_s=27 * 3600) == (1, 0)
