"""The DVR data model: names, sources, ranges, fragment tables."""
from __future__ import annotations

import pytest

from fleetcam.domain import dvr
from fleetcam.errors import Invalid


def test_ranges_merge_touching_and_overlapping_spans_only():
    spans = [(50, 60), (0, 10), (10, 20), (15, 30), (31, 40), (40, 40)]
    assert dvr.merge_ranges(spans) == [dvr.Range(0, 30), dvr.Range(31, 40), dvr.Range(50, 60)]
    assert dvr.merge_ranges(spans, tolerance_ms=1) == [dvr.Range(0, 40), dvr.Range(50, 60)]
    assert dvr.Range(1_000_500, 1_002_100).as_flussonic() == {"from": 1000, "duration": 3}


def test_subtract_and_covered():
    assert dvr.subtract((0, 100), [(10, 20), (50, 150)]) == [(0, 10), (20, 50)]
    assert dvr.covered((0, 10_000), [(0, 4_000), (4_500, 10_000)])
    assert not dvr.covered((0, 10_000), [(0, 4_000), (6_000, 10_000)])


def test_fragment_tables_round_trip():
    frags = tuple(dvr.FragmentEntry(1_700_000_000_000 + i * 1000, 1000, i * 5000, 5000, 400,
                                    25, i % 7 != 3) for i in range(600))
    blob = dvr.pack_fragments(frags)
    assert dvr.unpack_fragments(blob) == frags
    assert len(blob) < 8000  # a 10-minute segment stays a few KB in an index row


def _frags(n: int, hole_at: int | None = None) -> tuple[dvr.FragmentEntry, ...]:
    import random

    rnd = random.Random(n)
    out, t, o = [], 1_700_000_000_000, 0
    for i in range(n):
        d, size = rnd.randint(900, 1100), rnd.randint(8, 30_000)
        out.append(dvr.FragmentEntry(t, d, o, size, 388, 25, rnd.random() > 0.1))
        t, o = t + d + (4000 if i == hole_at else 0), o + size
    return tuple(out)


@pytest.mark.parametrize("hole_at", [None, 300])
def test_stored_tables_answer_without_building_entries(hole_at):
    import struct
    import zlib

    frags = _frags(600, hole_at)
    table = dvr.unpack_fragments(dvr.pack_fragments(frags))
    assert table.regular is (hole_at is None)
    assert (len(table), table.start_ms, table.end_ms, table.offset, table.size) == (
        600, frags[0].start_ms, frags[-1].end_ms, 0, frags[-1].offset + frags[-1].size)
    assert table.sidx_rows(5, 7) == b"".join(struct.pack(
        ">III", f.size, f.duration_ms, dvr.SAP if f.keyframe else 0) for f in frags[5:7])
    assert table.bounds(10, 20) == (frags[10].start_ms, frags[19].end_ms, frags[10].offset,
                                    sum(f.size for f in frags[10:20]))
    assert table == frags and list(table[3:5]) == list(frags[3:5]) and table[-1] == frags[-1]
    seg = dvr.SegmentEntry("s", "x", "r", "k", "i", table.start_ms, table.end_ms, 1, "c", 1,
                           1, frags)
    for lo, hi in [(0, 2**62), (frags[0].start_ms + 1, frags[0].start_ms + 2),
                   (frags[9].end_ms, frags[20].start_ms), (frags[9].end_ms - 1, frags[20].end_ms),
                   (frags[-1].end_ms, 2**62), (0, frags[0].start_ms)]:
        run = table.slice_in(lo, hi)
        if hole_at is None:
            assert list(table[run[0]:run[1]]) == seg.fragments_in(lo, hi)
        else:
            assert run is None
    # rows written before the tables were packed this way (zlib over 37-byte records)
    v1 = zlib.compress(b"".join(struct.pack(">qIQIIIB", f.start_ms, f.duration_ms, f.offset,
                                            f.size, f.moof_size, f.frames, f.keyframe)
                                for f in frags))
    old = dvr.unpack_fragments(v1)
    assert old == frags and old.blob == dvr.pack_fragments(frags) and old.regular == table.regular


def test_a_truncated_table_is_refused():
    blob = dvr.pack_fragments(_frags(10))
    with pytest.raises(ValueError):
        dvr.unpack_fragments(blob[:20])
    cut = dvr.unpack_fragments(blob[:100])  # the header is whole: the rest is read lazily
    with pytest.raises(ValueError):
        list(cut)
    with pytest.raises(ValueError):
        cut.slice_in(0, 1)
    with pytest.raises(ValueError):
        dvr.unpack_fragments(b"\x78garbage")


@pytest.mark.parametrize("name", ["7-1", "truck_7.front", "A"])
def test_good_names(name):
    assert dvr.check_stream_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "x" * 129, "..", "é"])
def test_bad_names(name):
    with pytest.raises(Invalid):
        dvr.check_stream_name(name)


def test_sources():
    assert dvr.parse_source(dvr.source_url(12, 3)) == (12, 3)
    for bad in ("jt1078://0/1", "jt1078://1/0", "jt1078://1/999", "rtsp://x/1", "jt1078://1"):
        with pytest.raises(Invalid):
            dvr.parse_source(bad)


def test_keys_sort_by_time_and_name_their_hour():
    key = dvr.segment_key("7-1", 1_778_300_000_123, "0a1b2c3d")
    assert key == "7-1/2026/05/09/04/1778300000123-0a1b2c3d.m4s"
    assert dvr.segment_id(5, "ff") < dvr.segment_id(10, "00")


def test_protected_spans_include_open_episodes_up_to_now():
    eps = [dvr.Episode(1, "s", 0, 100, 0), dvr.Episode(2, "s", 90, None, 0),
           dvr.Episode(3, "s", 500, 600, 0)]
    assert dvr.protected_spans(eps, now_ms=300) == [(0, 300), (500, 600)]
