"""The ports: what services need from the outside world, as typing.Protocols."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from fleetcam.domain import expr
from fleetcam.domain.models import Device, LogEntry, MediaFile


class Clock(Protocol):
    def now(self) -> float: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectCreated:
    """An object-created notification, the core's view of one S3 event record."""

    bucket: str
    key: str
    size: int
    etag: str = ""
    sequencer: str = ""


class ObjectStore(Protocol):
    """Blob storage. A completed put under ``media/`` produces one ObjectCreated notification."""

    bucket: str

    def put(self, key: str, data: BinaryIO | bytes, *, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo: ...

    def head(self, key: str) -> ObjectInfo:
        """Raises NotFound."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``start`` to ``end`` inclusive. Raises NotFound."""
        ...

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is not an error."""
        ...


class DeviceRepo(Protocol):
    def create(self, fields: dict[str, Any]) -> Device:
        """Raises Conflict on a duplicate ident."""
        ...

    def get(self, device_id: int) -> Device:
        """Raises NotFound."""
        ...

    def find_by_ident(self, ident: str) -> Device | None: ...

    def list(self) -> list[Device]: ...

    def update(self, device: Device) -> Device: ...

    def delete(self, device_id: int) -> None: ...


@dataclass(frozen=True)
class MediaQuery:
    """A search over one or more devices' media, in the index's order with a stable cursor."""

    device_ids: tuple[int, ...]
    filter: expr.Node | None = None
    time_from: float | None = None
    time_to: float | None = None
    count: int = 1000
    reverse: bool = False
    cursor: tuple[float, str] | None = None
    """(created, uuid) of the last file of the previous page."""


class MediaIndex(Protocol):
    def add(self, file: MediaFile) -> bool:
        """Insert; False (and no change) when the uuid exists already."""
        ...

    def get(self, uuid: str) -> MediaFile | None: ...

    def update(self, file: MediaFile) -> None: ...

    def remove(self, files: Iterable[MediaFile]) -> list[MediaFile]:
        """Delete records and, atomically, schedule their objects for deletion.

        Returns the files that were still there (a concurrent delete may have won)."""
        ...

    def pending_deletions(self, limit: int = 1000) -> list[str]:
        """Object keys whose records are gone but whose deletion is unconfirmed."""
        ...

    def deletion_done(self, keys: Iterable[str]) -> None: ...

    def query(self, q: MediaQuery) -> list[MediaFile]: ...

    def usage(self, device_id: int) -> tuple[int, int, int]:
        """(total bytes, protected bytes, file count) of a device."""
        ...

    def oldest_unprotected(self, device_id: int) -> Iterator[MediaFile]: ...

    def uploaded_before(self, device_id: int, cutoff: float, limit: int) -> list[MediaFile]:
        """Unprotected files uploaded before ``cutoff``, oldest first."""
        ...


class LogStore(Protocol):
    def append(self, entry: LogEntry) -> LogEntry: ...

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, events: tuple[str, ...] = (), count: int = 1000,
              reverse: bool = False) -> list[LogEntry]: ...


class EventBus(Protocol):
    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        """Fire and forget; ``payload`` None publishes an empty message."""
        ...
