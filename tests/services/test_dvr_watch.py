"""Readers that cannot reach the gateway's tail (AWS) make the recorder store short objects."""
from __future__ import annotations

import asyncio
from typing import Any

from fleetcam.gateway.dvr import WATCHED_OBJECT_MS, DvrRecorder
from fleetcam.runtime.container import Container
from fleetcam.services.dvr import MARK_EVERY, WATCH_FOR, WatchedTail


class _Gw:
    def __init__(self, c: Container) -> None:
        self.c, self.settings, self.clock = c, c.settings, c.clock

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def loop_time(self) -> float:
        return 0.0


def test_watched_tail_marks_and_the_recorder_shortens_objects(container: Container, client,
                                                               device, clock):
    container.dvr.put_stream("1-1", {"dvr": {"root": "d"}})
    writes: list[float] = []
    real = container.dvr_index.watch
    container.dvr_index.watch = lambda s, until: (writes.append(until), real(s, until))
    tail = WatchedTail(container.dvr_index, clock)
    assert tail.open_segment("1-1") is None
    assert tail.open_segment("1-1") is None  # within MARK_EVERY: no second write
    clock.advance(MARK_EVERY)
    tail.open_segment("1-1")
    assert writes == [clock.now() - MARK_EVERY + WATCH_FOR, clock.now() + WATCH_FOR]

    async def scenario() -> tuple[int, int]:
        rec = DvrRecorder(_Gw(container))  # type: ignore[arg-type]
        await rec.refresh()
        watched = rec.recordings[(1, 1)].object_ms
        clock.advance(WATCH_FOR + 1)
        await rec.refresh()
        idle = rec.recordings[(1, 1)].object_ms
        for r in list(rec.recordings.values()):
            r.queue.put_nowait(None)
            await r.task
        return watched, idle

    watched, idle = asyncio.run(scenario())
    assert watched == WATCHED_OBJECT_MS
    assert idle == container.settings.dvr_object_seconds * 1000
