"""TTL and rotation: after each upload, and periodically for every device."""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor

from fleetcam.domain.models import Device, MediaFile
from fleetcam.domain.retention import file_expiry, rotation_victims, ttl_cutoff
from fleetcam.errors import NotFound
from fleetcam.ports import Clock, DeviceRepo, MediaIndex
from fleetcam.services.media import MediaService

BATCH = 500
CHUNK = 25
"""Expired files one worker removes in a row (when the sweep has ``workers``)."""
RETIME_BATCH = 100
"""Files whose stored expiry one retime step moves (then its progress is saved)."""


class RetentionService:
    def __init__(self, media: MediaService, index: MediaIndex, devices: DeviceRepo,
                 clock: Clock, *, per_device_ttl: bool = True) -> None:
        self.media = media
        self.index = index
        self.devices = devices
        self.clock = clock
        self.per_device_ttl = per_device_ttl
        """Whether ``enforce`` (after each upload) also expires the device's files past its
        TTL. False where the index finds expired files fleet-wide for the sweeper and a
        per-device read would cost an index (DynamoDB: ``by-shard-expiry`` only, so that a
        file's writes skip a fourth GSI); TTL then applies at the next sweep."""
        self.workers: Executor | None = None
        """Where a sweep removes expired files, CHUNK at a time (the AWS runtime gives a
        bounded thread pool: each removal is a few round trips, so a sweep of thousands of
        files would otherwise be their sum); None: in the calling thread, in order."""

    def _remove(self, batch: list[MediaFile]) -> list[MediaFile]:
        if self.workers is None or len(batch) <= CHUNK:
            return self.media.remove(batch, "media_file_expired")
        chunks = [batch[i:i + CHUNK] for i in range(0, len(batch), CHUNK)]
        return [f for gone in self.workers.map(
            lambda chunk: self.media.remove(chunk, "media_file_expired"), chunks) for f in gone]

    def enforce(self, device: Device) -> list[MediaFile]:
        """Expire by TTL (when ``per_device_ttl``), then rotate by size; both emit
        ``media_file_expired``."""
        expired: list[MediaFile] = []
        cutoff = ttl_cutoff(device, self.clock.now()) if self.per_device_ttl else None
        if cutoff is not None:
            while batch := self.index.uploaded_before(device.id, cutoff, BATCH):
                expired += self.media.remove(batch, "media_file_expired")
        total, _, _ = self.index.usage(device.id)
        limit = device.storage_limit()
        while total > limit:
            sizes = {}

            def candidates():  # noqa: ANN202 - a lazy (uuid, size) stream
                for f in self.index.oldest_unprotected(device.id):
                    sizes[f.uuid] = f
                    yield f.uuid, f.size

            victims = rotation_victims(total, limit, candidates())
            if not victims:
                break  # only protected files left
            gone = self.media.remove([sizes[u] for u in victims], "media_file_expired")
            expired += gone
            total, _, _ = self.index.usage(device.id)
        return expired

    def retime(self, budget: float) -> int:
        """Move the stored expiry of files whose device's media_ttl changed, in batches of
        RETIME_BATCH, for at most about ``budget`` seconds (one batch past it at worst);
        each batch saves its progress, so the next call (the next sweep) resumes.

        Returns:
            The number of batches done.
        """
        deadline = time.monotonic() + budget
        batches = 0
        while jobs := self.index.retime_jobs():
            for device_id, cursor in jobs:
                try:
                    ttl = self.devices.get(device_id).media_ttl
                except NotFound:
                    continue  # deleted: its job went with it
                next_cursor: str | None = cursor
                while next_cursor is not None:
                    if time.monotonic() >= deadline:
                        return batches
                    next_cursor = self.index.retime(device_id, ttl, next_cursor, RETIME_BATCH)
                    batches += 1
        return batches

    def ttl_removed(self, f: MediaFile, *, restore: Callable[[MediaFile, int], object],
                    count_off: Callable[[MediaFile], object]) -> bool:
        """The store's own expiry (DynamoDB TTL) removed ``f``'s record. If the device's
        media_ttl today keeps the file (raised, or set to 0, before the stored expiry was
        moved), the record is put back and nothing is lost; otherwise the file is reaped.

        Returns:
            True when the file was reaped now, False when restored or reaped already.
        """
        try:
            ttl: int | None = self.devices.get(f.device_id).media_ttl
        except NotFound:
            ttl = None
        if ttl is not None:
            when = file_expiry(f.uploaded, f.protected, ttl)
            if when is None or when > self.clock.now():
                if self._object_kept(f):  # not a stale record of a file deleted since
                    restore(f, ttl)
                return False
        return self.media.reap(f, count_off=count_off)

    def _object_kept(self, f: MediaFile) -> bool:
        if self.index.deletion_pending(f.key):
            return False
        try:
            self.media.store.head(f.key)
        except NotFound:
            return False
        return True

    def sweep(self) -> int:
        """Enforce retention on the whole fleet: files past their expiry, then rotation of
        the devices over their limit, each found by the index directly (the work grows with
        what is expired, not with the number of devices). Returns the files expired."""
        expired = 0
        now = self.clock.now()
        while batch := self.index.expiring_before(now, BATCH):
            gone = self._remove(batch)
            expired += len(gone)
            if not gone:
                break  # removed by someone else meanwhile, or not removable: next sweep
        for device_id in self.index.over_limit():
            try:
                device = self.devices.get(device_id)
            except NotFound:
                continue
            expired += len(self.enforce(device))
        self.media.finish_deletions()
        return expired
