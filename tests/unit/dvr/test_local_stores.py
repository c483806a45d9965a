"""The local folder storage's roots (both runtimes' stores are in tests/contract)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleetcam.adapters.local.db import Database
from fleetcam.adapters.local.dvr import LocalDvrStorage
from fleetcam.domain import dvr
from fleetcam.errors import Invalid, NotFound


def seg(stream: str, start: int, length: int = 600_000, size: int = 1000,
        token: str = "00000000") -> dvr.SegmentEntry:
    frags = tuple(dvr.FragmentEntry(start + i * 1000, 1000, i * 10, 10, 100, 25)
                  for i in range(length // 1000))
    return dvr.SegmentEntry(stream, dvr.segment_id(start, token), "dvr",
                            dvr.segment_key(stream, start, token), "s/init/x.mp4", start,
                            start + length, size, "avc1.42c01e", 320, 240, frags)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "t.sqlite3")


def test_local_storage_roots(tmp_path: Path):
    allowed = tmp_path / "allowed"
    st = LocalDvrStorage(tmp_path / "data", [allowed])
    assert st.resolve("dvr") == str((tmp_path / "data" / "dvr").resolve())
    assert st.resolve(str(allowed / "x")) == str(allowed / "x")
    for bad in ("", "../x", "/etc", str(tmp_path / "other"), "s3://b/p", "a/../../x", "a\x00"):
        with pytest.raises(Invalid):
            st.resolve(bad)
    n = st.put("dvr", "s/2026/a.m4s", b"0123456789", content_type="video/iso.segment")
    assert n == 10 and st.exists("dvr", "s/2026/a.m4s")
    assert b"".join(st.read("dvr", "s/2026/a.m4s", 2, 4)) == b"234"
    with pytest.raises(Invalid):
        st.put("dvr", "../../escape", b"x", content_type="x")
    st.delete("dvr", "s/2026/a.m4s")
    st.delete("dvr", "s/2026/a.m4s")
    with pytest.raises(NotFound):
        st.read("dvr", "s/2026/a.m4s")
    assert not list((tmp_path / "data" / "dvr" / "s" / "2026").iterdir())  # no temp files left


def test_local_roots_keep_out_of_the_servers_own_files(tmp_path: Path):
    """A DVR root may not be the object store, the export folder, the database, or a folder
    that holds the data folder (a stream named like one of its folders would write there)."""
    data = tmp_path / "srv" / "data"
    st = LocalDvrStorage(data, [tmp_path / "srv"])
    for bad in ("objects", "objects/live", "exports", "fleetcam.sqlite3",
                str(tmp_path / "srv"), str(data), str(data / "objects" / "media")):
        with pytest.raises(Invalid):
            st.resolve(bad)
    assert st.resolve("dvr/objects") == str((data / "dvr" / "objects").resolve())
    assert st.resolve(str(tmp_path / "srv" / "cams")) == str(tmp_path / "srv" / "cams")
