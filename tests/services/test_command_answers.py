"""A sent command's serial and a fast answer's details are written by two threads of one
gateway copy; neither may drop what the other stored."""
from __future__ import annotations

import threading
import time
from typing import Any

from fleetcam.runtime.container import Container


class SlowReads:
    """The command store with a pause after each read: the window in which a concurrent
    read-merge-write loses an update opens wide."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, cmd_id: int) -> Any:
        got = self._store.get(cmd_id)
        time.sleep(0.05)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_fast_answer_and_the_serial_both_stay(container: Container) -> None:
    svc = container.commands
    (d,) = container.devices.create([{"ident": "013900000042"}])
    [cmd] = svc.enqueue([d.id], [{"name": "take_photo", "properties": {"channel": 1},
                                  "ttl": 60}])
    sent = svc.mark_sent(cmd, None, conn_id=3)
    assert sent is not None
    svc.store = SlowReads(svc.store)  # type: ignore[assignment]
    answer = {"result": 0, "media_ids": [41, 42], "files": [],
              "progress": {"photos": 0, "of": 2}}
    threads = [threading.Thread(target=svc.record_serial, args=(sent, 17)),
               threading.Thread(target=svc.progress, args=(sent, answer))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = svc.store.get(sent.id)
    assert stored.serial == 17
    assert stored.response == answer  # the media ids the device announced are kept
