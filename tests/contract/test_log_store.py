"""LogStore contract: append, then query by devices, time range, events, order and count."""
from __future__ import annotations

from fleetcam.domain.models import LogEntry
from tests.contract.conftest import Backend

EVENTS = ["media_file_uploaded", "media_file_updated", "media_file_deleted",
          "media_file_expired"]


def _fill(b: Backend) -> list[LogEntry]:
    out = []
    for i in range(20):
        out.append(b.logs.append(LogEntry(device_id=1 + i % 2, timestamp=1000.0 + i,
                                          event=EVENTS[i % 4], data={"i": i, "uuid": f"u{i}"})))
    return out


def test_append_assigns_increasing_ids(backend: Backend) -> None:
    e = backend.logs.append(LogEntry(device_id=1, timestamp=5.5, event="media_file_uploaded",
                                     data={"a": {"b": [1, 2]}, "s": "é"}))
    assert isinstance(e.id, int)
    assert (e.device_id, e.timestamp, e.event, e.data) == (1, 5.5, "media_file_uploaded",
                                                           {"a": {"b": [1, 2]}, "s": "é"})
    f = backend.logs.append(LogEntry(device_id=1, timestamp=6.0, event="x"))
    assert f.id is not None and f.id > e.id
    assert backend.logs.query((1,)) == [e, f]


def test_query_by_device(backend: Backend) -> None:
    entries = _fill(backend)
    assert backend.logs.query((1,)) == [e for e in entries if e.device_id == 1]
    assert backend.logs.query((1, 2)) == entries
    assert backend.logs.query((3,)) == []
    assert backend.logs.query(()) == []


def test_time_range_is_inclusive(backend: Backend) -> None:
    entries = _fill(backend)
    got = backend.logs.query((1, 2), time_from=1005.0, time_to=1010.0)
    assert got == entries[5:11]
    assert backend.logs.query((1, 2), time_from=1018.0) == entries[18:]
    assert backend.logs.query((1, 2), time_to=1001.0) == entries[:2]
    assert backend.logs.query((1, 2), time_from=2000.0) == []


def test_events_filter(backend: Backend) -> None:
    entries = _fill(backend)
    got = backend.logs.query((1, 2), events=("media_file_deleted", "media_file_expired"))
    assert got == [e for e in entries if e.event in ("media_file_deleted", "media_file_expired")]
    assert backend.logs.query((2,), events=("media_file_uploaded",)) == []


def test_reverse_and_count(backend: Backend) -> None:
    entries = _fill(backend)
    assert backend.logs.query((1, 2), reverse=True) == entries[::-1]
    assert backend.logs.query((1, 2), count=3) == entries[:3]
    assert backend.logs.query((1, 2), count=3, reverse=True) == entries[::-1][:3]
    assert backend.logs.query((1,), count=2, time_from=1004.0) == [entries[4], entries[6]]

