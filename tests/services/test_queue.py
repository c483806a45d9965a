"""The durable ingest queue: leases, acks, backoff, dead letters, replay, drain and the CLI."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import cast

import pytest

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.adapters.local.db import Database
from fleetcam.adapters.local.queue import EventQueue, QueuedEvent
from fleetcam.cli import main
from fleetcam.config import (ENV_ADMIN_TOKEN, ENV_DATA_DIR, ENV_INGEST_MAX_ATTEMPTS,
                             Settings)
from fleetcam.domain.keys import media_key
from fleetcam.domain.models import MediaFile
from fleetcam.errors import CorruptMedia
from fleetcam.ports import MediaQuery, ObjectCreated
from fleetcam.runtime.container import Container
from fleetcam.runtime.local import build_local
from fleetcam.runtime.worker import drain
from fleetcam.services.ingest import IngestService
from mediagen import make_image


@pytest.fixture
def queue(tmp_path: Path, clock: ManualClock) -> EventQueue:
    return EventQueue(Database(tmp_path / "q.sqlite3"), clock, lease=60.0, max_attempts=3,
                      backoff=2.0)


def _push(q: EventQueue, key: str, *, release: bool = True) -> int:
    with q.db.tx() as c:
        event_id = q.stage(c, ObjectCreated("local", key, 1))
    if release:
        q.release(event_id)
    return event_id


def _drain(q: EventQueue, handler: object, limit: int = 10_000) -> dict[str, int]:
    """drain() with a stand-in handler (it only needs ``handle``)."""
    return drain(q, cast(IngestService, handler), limit)


class Failing:
    """An ingest handler that fails the same way on every call."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def handle(self, event: ObjectCreated) -> MediaFile | None:
        self.calls += 1
        raise self.error


class Ok:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def handle(self, event: ObjectCreated) -> MediaFile | None:
        self.keys.append(event.key)
        return None


def test_staged_events_are_invisible_until_released(queue: EventQueue) -> None:
    event_id = _push(queue, "media/a", release=False)
    assert queue.claim() == [] and queue.pending() == 0
    queue.release(event_id)
    assert queue.pending() == 1
    (item,) = queue.claim()
    assert (item.id, item.event, item.attempts) == (event_id, ObjectCreated("local", "media/a", 1),
                                                    1)


def test_claim_leases_events(queue: EventQueue, clock: ManualClock) -> None:
    ids = [_push(queue, f"media/{n}") for n in range(5)]
    first = queue.claim(limit=3)
    assert [i.id for i in first] == ids[:3]  # oldest first
    assert [i.id for i in queue.claim()] == ids[3:]
    assert queue.claim() == []  # all leased
    clock.advance(59.9)
    assert queue.claim() == []
    clock.advance(0.1)  # the lease ran out without an ack: delivered again
    again = queue.claim()
    assert [i.id for i in again] == ids and {i.attempts for i in again} == {2}


def test_ack_removes(queue: EventQueue, clock: ManualClock) -> None:
    _push(queue, "media/a")
    (item,) = queue.claim()
    queue.ack(item.id)
    clock.advance(3600)
    assert queue.claim() == [] and queue.pending() == 0 and queue.dead_letters() == []


def test_fail_backs_off_exponentially_then_dead_letters(queue: EventQueue,
                                                      clock: ManualClock) -> None:
    event_id = _push(queue, "media/a")
    for attempt, delay in ((1, 2.0), (2, 4.0)):
        (item,) = queue.claim()
        assert item.attempts == attempt
        assert queue.fail(item, f"boom {attempt}") is False
        clock.advance(delay - 0.01)
        assert queue.claim() == []
        clock.advance(0.01)
    (item,) = queue.claim()
    assert item.attempts == 3 and item.last_error == "boom 2"
    assert queue.fail(item, "x" * 5000) is True  # max_attempts reached
    clock.advance(10_000)
    assert queue.claim() == [] and queue.pending() == 0
    (dead,) = queue.dead_letters()
    assert (dead.id, dead.event.key, dead.attempts) == (event_id, "media/a", 3)
    assert dead.last_error == "x" * 2000  # bounded


def test_replay_restores_dead_letters_with_a_fresh_budget(queue: EventQueue,
                                                         clock: ManualClock) -> None:
    _push(queue, "media/a")
    _push(queue, "media/b")
    for item in queue.claim():
        queue.fail(QueuedEvent(item.id, item.event, queue.max_attempts), "gone")
    assert len(queue.dead_letters()) == 2
    assert queue.replay() == 2
    assert queue.dead_letters() == [] and queue.pending() == 2
    items = queue.claim()
    assert [i.event.key for i in items] == ["media/a", "media/b"]
    assert {i.attempts for i in items} == {1}
    assert queue.replay() == 0


def test_drain_counts_outcomes(queue: EventQueue) -> None:
    for n in range(120):  # more than one claim batch
        _push(queue, f"media/{n}")
    ok = Ok()
    assert _drain(queue, ok) == {"done": 120}
    assert ok.keys == [f"media/{n}" for n in range(120)]
    assert _drain(queue, ok) == {}
    assert queue.pending() == 0


def test_drain_limit(queue: EventQueue) -> None:
    for n in range(10):
        _push(queue, f"media/{n}")
    assert _drain(queue, Ok(), limit=4) == {"done": 4}
    assert queue.pending() == 6


def test_a_transient_error_is_retried_then_dead_lettered(queue: EventQueue,
                                                        clock: ManualClock) -> None:
    _push(queue, "media/a")
    handler = Failing(OSError("disk hiccup"))
    assert _drain(queue, handler) == {"retry": 1}
    assert _drain(queue, handler) == {}  # still backing off
    clock.advance(2)
    assert _drain(queue, handler) == {"retry": 1}
    clock.advance(4)
    assert _drain(queue, handler) == {"dead": 1}
    assert handler.calls == 3
    (dead,) = queue.dead_letters()
    assert dead.last_error == "OSError: disk hiccup"
    clock.advance(10_000)
    assert _drain(queue, handler) == {}


def test_a_fleetcam_error_is_rejected_not_retried(queue: EventQueue,
                                                 clock: ManualClock) -> None:
    _push(queue, "media/a")
    handler = Failing(CorruptMedia("not an image"))
    assert _drain(queue, handler) == {"rejected": 1}
    clock.advance(10_000)
    assert _drain(queue, handler) == {}
    assert handler.calls == 1
    assert queue.dead_letters() == [] and queue.pending() == 0


def test_drain_ingests_what_the_store_queued(container: Container) -> None:
    c = container
    cam = c.devices.create([{"name": "cam", "ident": "q-cam"}])[0]
    keys = []
    for n in range(3):
        key = media_key(cam.id, f"{n:032x}", "jpg")
        c.store.put(key, make_image(32, 32, seed=n), content_type="image/jpeg")
        keys.append(key)
    c.store.put(media_key(cam.id, "f" * 32, "jpg"), b"junk", content_type="image/jpeg")
    c.store.put("other/x", b"not announced", content_type="text/plain")
    assert c.extras["queue"].pending() == 4
    assert drain(c.extras["queue"], c.ingest) == {"done": 3, "rejected": 1}
    files = c.index.query(MediaQuery(device_ids=(cam.id,)))
    assert sorted(f.key for f in files) == keys


# -- fleetcam dlq list / replay ------------------------------------------------------------


def test_cli_dlq_list_and_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "cli-data"
    monkeypatch.setenv(ENV_DATA_DIR, str(data_dir))
    monkeypatch.setenv(ENV_ADMIN_TOKEN, "")
    monkeypatch.setenv(ENV_INGEST_MAX_ATTEMPTS, "1")
    c = build_local(Settings.from_env())
    cam = c.devices.create([{"name": "cam", "ident": "cli-cam"}])[0]
    key = media_key(cam.id, "a" * 32, "jpg")
    c.store.put(key, make_image(32, 32), content_type="image/jpeg")
    q: EventQueue = c.extras["queue"]
    assert _drain(q, Failing(RuntimeError("database locked"))) == {"dead": 1}
    (dead,) = q.dead_letters()
    c.extras["db"].close()

    assert main(["dlq", "list"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"id": dead.id, "key": key, "attempts": 1,
                      "error": "RuntimeError: database locked"}]

    assert main(["dlq", "replay"]) == 0
    out = capsys.readouterr().out
    assert "replaying 1 events" in out and "'done': 1" in out

    assert main(["dlq", "list"]) == 0
    assert capsys.readouterr().out == ""
    c2 = build_local(Settings.from_env())
    (f,) = c2.index.query(MediaQuery(device_ids=(cam.id,)))
    assert f.key == key and c2.extras["queue"].pending() == 0
    assert c2.store.head(key).size == len(b"".join(c2.store.read(key)))
    assert io.BytesIO(b"".join(c2.store.read(key))).read(2) == b"\xff\xd8"
