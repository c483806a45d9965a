"""The one-pass MP4 download: layout from the index alone, ranges, gaps, damage."""
from __future__ import annotations

import io
import json
import struct

import av
import pytest

from fleetcam.media import archive
from tests import dvrgen

T0 = 1_700_000_000_000


def _build(spans: list[tuple[int, float]]) -> tuple[archive.Layout, dict[str, bytes]]:
    init, gops = dvrgen.encoded()
    objects: dict[str, bytes] = {}
    pieces = []
    for start, seconds in spans:
        seg, data = dvrgen.segment("cam", start, seconds, gops=gops)
        objects[seg.key] = data
        pieces += [(seg.key, f) for f in seg.fragments]
    parsed = archive.parse_init(init)
    return archive.plan(parsed, pieces, meta={"stream": "cam"}), objects


def _reader(objects: dict[str, bytes]):
    def read(source: object, start: int, end: int):
        data = objects[str(source)]
        for i in range(start, end + 1, 7000):
            yield data[i:min(i + 7000, end + 1)]
    return read


def _decode(data: bytes) -> tuple[int, float, dict[str, str]]:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return frames, float(c.duration or 0) / 1e6, dict(c.metadata)


def test_download_plays_whole_and_its_layout_is_exact() -> None:
    layout, objects = _build([(T0, 4), (T0 + 4000, 4)])
    data = b"".join(archive.render(layout, _reader(objects)))
    assert len(data) == layout.total
    frames, duration, meta = _decode(data)
    assert frames == 200
    assert duration == pytest.approx(8.0, abs=0.05)
    info = json.loads(meta["comment"])
    assert info["gaps"] == [] and info["stream"] == "cam"


def test_any_byte_range_equals_the_same_bytes_of_the_whole() -> None:
    layout, objects = _build([(T0, 3), (T0 + 3000, 3)])
    whole = b"".join(archive.render(layout, _reader(objects)))
    for first, last in [(0, 10), (5, len(layout.header) + 100), (len(whole) // 2, len(whole) - 1),
                        (len(whole) - 1, len(whole) - 1), (1234, 99999)]:
        part = b"".join(archive.render(layout, _reader(objects), first, last))
        assert part == whole[first:last + 1]


def test_gap_is_closed_up_and_listed() -> None:
    layout, objects = _build([(T0, 2), (T0 + 60_000, 2)])
    data = b"".join(archive.render(layout, _reader(objects)))
    frames, duration, meta = _decode(data)
    assert frames == 100 and duration == pytest.approx(4.0, abs=0.05)
    gaps = json.loads(meta["comment"])["gaps"]
    assert gaps == [{"from": (T0 + 2000) / 1000, "duration": 58.0, "reason": "not recorded"}]


def test_missing_object_and_corrupt_fragment_leave_a_valid_file() -> None:
    layout, objects = _build([(T0, 2), (T0 + 2000, 2), (T0 + 4000, 2)])
    keys = list(objects)
    del objects[keys[1]]
    bad = bytearray(objects[keys[2]])
    bad[4:8] = b"junk"  # first fragment of the third segment
    objects[keys[2]] = bytes(bad)
    seen: list[str] = []
    data = b"".join(archive.render(layout, _reader(objects), on_bad=lambda p, r: seen.append(r)))
    assert len(data) == layout.total
    frames, _, _ = _decode(data)
    assert frames == 75  # 2 s + the last 1 s
    assert len(seen) == 3 and seen[-1].startswith("corrupt")


def test_track_filter() -> None:
    init, _ = dvrgen.encoded()
    parsed = archive.parse_init(init)
    assert archive.select_tracks(parsed, "v1") == parsed.tracks
    assert archive.select_tracks(parsed, "v1a1") == parsed.tracks
    with pytest.raises(archive.ArchiveError):
        archive.select_tracks(parsed, "a1")
    with pytest.raises(archive.ArchiveError):
        archive.select_tracks(parsed, "x9")


def test_first_bytes_leave_before_the_last_object_is_read() -> None:
    layout, objects = _build([(T0, 2), (T0 + 2000, 2), (T0 + 4000, 2)])
    reads: list[str] = []
    base = _reader(objects)

    def read(source: object, start: int, end: int):
        reads.append(str(source))
        return base(source, start, end)

    out = archive.render(layout, read)
    first = next(out)  # ftyp + moov leave first, then the sidx: from the index alone
    assert first[4:8] == b"ftyp" and layout.header.startswith(first) and reads == []
    sidx = next(out)
    assert first + sidx == layout.header and sidx[4:8] == b"sidx" and reads == []
    next(out)
    assert reads == [list(objects)[0]]
    rest = b"".join(out)
    assert len(layout.header) + len(rest) + layout.all_pieces()[0].size == layout.total


def _table(seg):
    from fleetcam.domain import dvr

    return dvr.unpack_fragments(dvr.pack_fragments(seg.fragments))


@pytest.mark.parametrize("seed", range(12))
def test_stored_tables_lay_out_exactly_as_fragment_by_fragment(seed: int) -> None:
    """A download laid out from stored tables (a run of sidx rows per segment, pieces built
    only when read) is byte for byte the one laid out fragment by fragment, with short
    holes, gaps, overlaps, windows cutting segments and a table with a hole inside."""
    import random

    from fleetcam.domain import dvr

    rnd = random.Random(seed)
    init, gops = dvrgen.encoded()
    parsed = archive.parse_init(init)
    objects: dict[str, bytes] = {}
    segs = []
    t = T0
    for _ in range(rnd.randint(1, 5)):
        seg, data = dvrgen.segment("cam", t, rnd.randint(1, 6), gops=gops)
        if rnd.random() < 0.2:  # a hole inside the table: irregular, laid out one by one
            frags = list(seg.fragments)
            frags[1:] = [dvr.FragmentEntry(f.start_ms + 3000, f.duration_ms, f.offset, f.size,
                                           f.moof_size, f.frames) for f in frags[1:]]
            seg = dvr.SegmentEntry(**{**seg.__dict__, "fragments": tuple(frags),
                                      "end_ms": frags[-1].end_ms})
        seg = dvr.SegmentEntry(**{**seg.__dict__, "fragments": _table(seg)})
        segs.append(seg)
        objects[seg.key] = data
        t = seg.end_ms + rnd.choice([0, 0, 400, 1000, 1001, 7000, -300, -501, -2500])
    lo = T0 + rnd.randint(-1000, 2500)
    hi = max(lo + 1000, t + rnd.randint(-4000, 1000))
    pairs, spans = [], []
    for seg in segs:
        pairs += [(seg.key, f) for f in seg.fragments_in(lo, hi)]
        run = seg.fragments.slice_in(lo, hi)
        spans += ([archive.Span(seg.key, seg.fragments, *run)] if run else
                  [(seg.key, f) for f in seg.fragments_in(lo, hi)])
    if not pairs:
        return
    one = archive.plan(parsed, pairs, meta={"stream": "cam"})
    fast = archive.plan(parsed, spans, meta={"stream": "cam"})
    assert fast.header == one.header and fast.total == one.total
    assert fast.fragments == one.fragments
    assert fast.all_pieces() == one.all_pieces() and fast.gaps == one.gaps
    whole = b"".join(archive.render(one, _reader(objects)))
    assert b"".join(archive.render(fast, _reader(objects))) == whole
    for _ in range(4):
        first = rnd.randrange(fast.total)
        last = rnd.randrange(first, fast.total)
        assert b"".join(archive.render(fast, _reader(objects), first, last)) == \
            whole[first:last + 1]


def test_past_65535_fragments_a_sidx_reference_covers_several() -> None:
    rows = b"".join(struct.pack(">III", 100 + i % 7, 1000, archive.SAP)
                    for i in range(70_000))
    box = archive._sidx(archive.parse_init(dvrgen.encoded()[0]).tracks, rows, 70_000)
    count = struct.unpack_from(">H", box, 38)[0]
    refs = struct.unpack_from(f">{3 * count}I", box, 40)
    assert count == 35_000 and len(box) == 40 + 12 * count
    assert sum(refs[0::3]) == sum(100 + i % 7 for i in range(70_000))
    assert sum(refs[1::3]) == 70_000_000 and set(refs[2::3]) == {archive.SAP}
