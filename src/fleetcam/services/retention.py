"""TTL and rotation: after each upload, and periodically for every device."""
from __future__ import annotations

from fleetcam.domain.models import Device, MediaFile
from fleetcam.domain.retention import rotation_victims, ttl_cutoff
from fleetcam.ports import Clock, DeviceRepo, MediaIndex
from fleetcam.services.media import MediaService

BATCH = 500


class RetentionService:
    def __init__(self, media: MediaService, index: MediaIndex, devices: DeviceRepo,
                 clock: Clock) -> None:
        self.media = media
        self.index = index
        self.devices = devices
        self.clock = clock

    def enforce(self, device: Device) -> list[MediaFile]:
        """Expire by TTL, then rotate by size; both emit ``media_file_expired``."""
        expired: list[MediaFile] = []
        cutoff = ttl_cutoff(device, self.clock.now())
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

    def sweep(self) -> int:
        """Enforce retention on every device; returns the number of files expired."""
        n = sum(len(self.enforce(d)) for d in self.devices.list())
        self.media.finish_deletions()
        return n
