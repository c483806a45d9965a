"""The object-created handler: ingest the object, then enforce the device's retention."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from fleetcam.domain import keys
from fleetcam.domain.dvr import parse_segment_key
from fleetcam.domain.models import MediaFile
from fleetcam.ports import DeviceRepo, ObjectCreated
from fleetcam.services.media import MediaService
from fleetcam.services.pipeline import PackagingService
from fleetcam.services.retention import RetentionService

log = logging.getLogger(__name__)


class IngestService:
    """What the queue worker (locally) and the packager Lambda (in AWS) call per event."""

    def __init__(self, media: MediaService, retention: RetentionService,
                 devices: DeviceRepo, packaging: PackagingService | None = None) -> None:
        self.media = media
        self.retention = retention
        self.devices = devices
        self.packaging = packaging
        self.dvr_objects: Callable[[ObjectCreated], object] | None = None
        """DVR segment objects (their thumbnails, services/dvrthumbs.py): the local queue
        carries their events too (on AWS they have their own queue and function)."""

    def handle(self, event: ObjectCreated) -> MediaFile | None:
        """Idempotent. Raises a FleetcamError for a poison object (do not retry), anything
        else for a transient failure (retry). A raw clip is packaged into a media object,
        whose own event then makes the media file."""
        if self.dvr_objects is not None and parse_segment_key(event.key) is not None:
            self.dvr_objects(event)
            return None
        if self.packaging is not None and event.key.startswith(keys.RAW_PREFIX):
            self.packaging.handle(event)
            return None
        f = self.media.ingest(event)
        if f is not None:
            self._retain(f)
        return f

    def upload(self, device_id: int, data: BinaryIO, **kw: Any) -> MediaFile:
        f = self.media.upload(device_id, data, **kw)
        self._retain(f)
        return f

    def _retain(self, f: MediaFile) -> None:
        self.retention.enforce(self.devices.get(f.device_id))
