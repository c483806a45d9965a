"""The local ingest worker: drains the durable event queue into the object-created handler."""
from __future__ import annotations

import asyncio
import logging

from fleetcam.adapters.local.queue import EventQueue, QueuedEvent
from fleetcam.errors import FleetcamError
from fleetcam.services.ingest import IngestService

log = logging.getLogger(__name__)


def process_one(queue: EventQueue, ingest: IngestService, item: QueuedEvent) -> str:
    """Handle one event: 'done', 'rejected' (poison, dropped), 'retry' or 'dead'."""
    try:
        ingest.handle(item.event)
    except FleetcamError as e:
        log.warning("ingest rejected %s: %s", item.event.key, e.reason)
        queue.ack(item.id)
        return "rejected"
    except Exception as e:  # transient until proven otherwise: retry within bounds
        dead = queue.fail(item, f"{type(e).__name__}: {e}")
        log.exception("ingest of %s failed (attempt %d)%s", item.event.key, item.attempts,
                      "; moved to dead letters" if dead else "")
        return "dead" if dead else "retry"
    queue.ack(item.id)
    return "done"


def drain(queue: EventQueue, ingest: IngestService, limit: int = 10_000) -> dict[str, int]:
    """Process what is visible now (synchronously); returns counts by outcome."""
    counts: dict[str, int] = {}
    while limit > 0 and (batch := queue.claim(min(limit, 50))):
        for item in batch:
            outcome = process_one(queue, ingest, item)
            counts[outcome] = counts.get(outcome, 0) + 1
        limit -= len(batch)
    return counts


class IngestWorker:
    """An asyncio task that wakes on new objects (or every ``poll`` seconds)."""

    def __init__(self, queue: EventQueue, ingest: IngestService, poll: float = 1.0) -> None:
        self.queue = queue
        self.ingest = ingest
        self.poll = poll
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Thread-safe: an object was created."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="ingest-worker")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(drain, self.queue, self.ingest)
            except Exception:  # pragma: no cover - the database itself failing
                log.exception("ingest worker pass failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
