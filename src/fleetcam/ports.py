"""The ports: what services need from the outside world, as typing.Protocols."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from fleetcam.domain import expr
from fleetcam.domain.access import TokenRecord
from fleetcam.domain.shares import ShareLink
from fleetcam.domain.dvrjobs import ExportJob
from fleetcam.domain.dvr import DvrStream, Episode, EpisodeQuery, SegmentEntry, Thumbs
from fleetcam.domain.admission import MediaRequest
from fleetcam.domain.gateway import Command, Connection
from fleetcam.domain.identity import Identity
from fleetcam.domain.models import Device, LogEntry, MediaFile
from fleetcam.domain.rules import VideoRule


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


class PresignedLinks(Protocol):
    """An optional capability of an ObjectStore (S3 has it, the local store does not): a
    time-limited link that serves an object's bytes, ranges included, without us. Callers
    check for it with ``getattr(store, "presigned_url", None)``."""

    def presigned_url(self, key: str, expires: int = 3600, *, content_type: str | None = None,
                      disposition: str | None = None) -> str: ...


class DeviceRepo(Protocol):
    def create(self, fields: dict[str, Any]) -> Device:
        """Raises Conflict on a duplicate ident."""
        ...

    def get(self, device_id: int) -> Device:
        """Raises NotFound."""
        ...

    def find_by_ident(self, ident: str) -> Device | None: ...

    def list(self) -> list[Device]: ...

    def update(self, device: Device) -> Device:
        """Writes every field but ``identity`` (see ``swap_identity``)."""
        ...

    def swap_identity(self, device_id: int, expect: Identity, new: Identity) -> bool:
        """Replace the device's identity with ``new`` only if it is still ``expect`` (a
        compare-and-set: two registrations never both get a code). False when it changed or
        the device is gone."""
        ...

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
        """Insert; False (and no change) when the uuid exists already. Raises NotFound when
        the device does not exist (DynamoDB keeps the usage counters on the device item)."""
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

    def deletion_pending(self, key: str) -> bool:
        """True while an object's record is gone and its deletion unconfirmed: a late ingest
        event for it must not bring the file back."""
        ...

    def query(self, q: MediaQuery) -> list[MediaFile]: ...

    def usage(self, device_id: int) -> tuple[int, int, int]:
        """(total bytes, protected bytes, file count) of a device."""
        ...

    def oldest_unprotected(self, device_id: int) -> Iterator[MediaFile]: ...

    def uploaded_before(self, device_id: int, cutoff: float, limit: int) -> list[MediaFile]:
        """Unprotected files uploaded before ``cutoff``, oldest first."""
        ...

    def expiring_before(self, now: float, limit: int) -> list[MediaFile]:
        """Up to ``limit`` unprotected files of any device whose expiry is before ``now``:
        what a sweep expires, found without visiting every device."""
        ...

    def over_limit(self) -> list[int]:
        """Ids of devices with ``media_rotate`` set that store more bytes than it allows."""
        ...

    def expiry(self, uuid: str) -> float | None:
        """When the store will drop this file on its own (DynamoDB TTL), as it stands now;
        None: never, or no such file. Must equal ``retention.file_expiry`` under the
        device's current ``media_ttl`` once ``retime_jobs`` is empty."""
        ...

    def retime_jobs(self, limit: int = 100) -> list[tuple[int, str]]:
        """(device id, cursor) of devices whose ``media_ttl`` changed and whose files'
        stored expiry is not yet moved with it (``DeviceRepo.update`` queues the job in the
        same write as the change). Empty for a store that keeps no per-file expiry."""
        ...

    def retime(self, device_id: int, media_ttl: int, cursor: str, limit: int) -> str | None:
        """Set the stored expiry of up to ``limit`` of the device's files, from ``cursor``
        (oldest upload first), to what ``media_ttl`` gives, and save the progress; returns
        the cursor to resume from, or None when the job is done. Does nothing (returns None)
        if the device's ``media_ttl`` is no longer ``media_ttl``: a newer job replaced it."""
        ...


class LogStore(Protocol):
    """The device log; an entry is kept ``retention`` seconds (0: forever)."""

    retention: int

    def append(self, entry: LogEntry) -> LogEntry: ...

    def expire(self, now: float) -> int:
        """Delete entries older than the retention; returns how many (0 where the store's
        own TTL deletes them: DynamoDB)."""
        ...

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, events: tuple[str, ...] = (), count: int = 1000,
              reverse: bool = False) -> list[LogEntry]: ...


class EventBus(Protocol):
    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        """Fire and forget; ``payload`` None publishes an empty message."""
        ...


class MessageStore(Protocol):
    """Device messages (flat flespi-style dicts with a ``timestamp``), by device and time;
    a message is kept ``retention`` seconds after its timestamp (0: forever)."""

    retention: int

    def append(self, device_id: int, messages: list[dict[str, Any]]) -> None: ...

    def expire(self, now: float) -> int:
        """Delete messages older than the retention; returns how many (0 where the store's
        own TTL deletes them: DynamoDB)."""
        ...

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, count: int = 1000,
              reverse: bool = False) -> list[dict[str, Any]]: ...

    def nearest(self, device_id: int, when: float, within: float) -> dict[str, Any] | None:
        """The message closest in time to ``when`` (at most ``within`` seconds away)."""
        ...


class ConnectionRegistry(Protocol):
    """Which gateway copy holds which device connection (shared by every copy)."""

    def open(self, conn: Connection) -> None: ...

    def close(self, conn_id: int, by_gateway: str | None = None) -> Connection | None:
        """Forget a connection. ``by_gateway``: the copy closing it (when it is the copy
        that holds it, that copy needs no change marker to learn of it; see ``inbox``)."""
        ...

    def get(self, conn_id: int) -> Connection | None: ...

    def list(self, device_ids: tuple[int, ...] | None = None) -> list[Connection]: ...

    def of_gateway(self, gateway_id: str) -> list[Connection]:
        """Connections a gateway copy holds, as the shared store sees them."""
        ...

    def touch(self, conn_id: int, when: float) -> bool:
        """Record that a viewer used the connection (a stream's playlist was fetched)."""
        ...

    def drop_gateway(self, gateway_id: str) -> list[Connection]:
        """Forget every connection of a gateway copy and its lease (on SIGTERM, on restart, or
        once its lease expired)."""
        ...

    def heartbeat(self, gateway_id: str, until: float) -> None:
        """Renew the lease of a gateway copy: its connections are live until ``until``. A
        copy's connections whose lease passed are ignored by every read (a copy that died
        leaves nothing that looks alive once its lease passed)."""
        ...

    def expired_gateways(self, now: float) -> list[str]:
        """Gateway copies whose lease passed (their connections are for ``drop_gateway``)."""
        ...

    def inbox(self, gateway_id: str, fleet: bool = True) -> tuple[object, object] | None:
        """Change markers of what a gateway copy reads in full, as (its own, the fleet's).
        Its own changes whenever someone drops one of the copy's connections, queues a
        command for it, or removes its lease item: the copy reads its connections and
        assigned commands only then (and now and again as a safety net). The fleet's
        changes with the DVR streams' configuration and watch marks (None when not asked
        for: ``fleet`` False reads the copy's own alone, for less). None: this store keeps no
        markers; read everything every time."""
        ...


class MediaRequestStore(Protocol):
    """Outstanding media requests, one per device channel, shared by every gateway copy
    (domain/admission.py): what a media connection may feed, and who serves it."""

    def open(self, req: MediaRequest) -> MediaRequest:
        """Store ``req`` (version 0), replacing whatever the device channel had."""
        ...

    def get(self, device_id: int, channel: int) -> MediaRequest | None: ...

    def swap(self, req: MediaRequest) -> MediaRequest | None:
        """Compare-and-swap: write ``req`` with its version plus one, only if the stored
        request still has ``req.version`` (None otherwise, or if it is gone)."""
        ...

    def close(self, device_id: int, channel: int, ref: str) -> bool:
        """Forget the device channel's request if it is still the one ``ref`` names."""
        ...

    def of_holder(self, gateway_id: str) -> list[MediaRequest]:
        """Requests a gateway copy sent (it holds those devices' signalling connections)."""
        ...

    def purge(self, before: float) -> int:
        """Forget requests that expired before ``before``."""
        ...


class CommandStore(Protocol):
    def add(self, cmd: Command) -> Command:
        """Store a new command; returns it with its id assigned."""
        ...

    def get(self, command_id: int) -> Command | None: ...

    def update(self, cmd: Command, *, expect_status: str | None = None) -> bool:
        """Write ``cmd``; with ``expect_status``, only if the stored status is still that
        (False otherwise): two gateway copies never both send or finish one command."""
        ...

    def pending(self, device_id: int) -> list[Command]:
        """Commands of a device not yet final (queued or sent), oldest first."""
        ...

    def assigned(self, gateway_id: str) -> list[Command]:
        """Queued (unsent) commands assigned to a gateway copy, oldest first: what each copy
        polls, so a command reaches the copy that holds the device's connection."""
        ...

    def expiring(self, now: float, limit: int = 500) -> list[Command]:
        """Commands not final whose ttl has passed."""
        ...

    def results(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
                time_to: float | None = None, count: int = 1000) -> list[Command]:
        """Final commands, by the time they finished."""
        ...


class RuleStore(Protocol):
    """Event-triggered clip rules."""

    def add(self, rule: VideoRule) -> VideoRule:
        """Store a new rule; returns it with its id assigned."""
        ...

    def get(self, rule_id: int) -> VideoRule | None: ...

    def list(self) -> list[VideoRule]: ...

    def update(self, rule: VideoRule) -> None: ...

    def delete(self, rule_id: int) -> bool: ...


class TokenStore(Protocol):
    """Access tokens, stored by the hash of their key (never the key)."""

    def add(self, record: TokenRecord) -> TokenRecord:
        """Store a new token (its ``id`` is ignored); returns it with its id assigned."""
        ...

    def get(self, token_id: int) -> TokenRecord | None: ...

    def by_hash(self, key_hash: str) -> TokenRecord | None: ...

    def list(self) -> list[TokenRecord]: ...

    def update(self, record: TokenRecord) -> bool:
        """Replace a stored token; False when it is gone."""
        ...

    def touch(self, token_id: int, accessed: float) -> None:
        """Record a use (``accessed``, which prolongs a ttl token)."""
        ...

    def delete(self, token_id: int) -> bool: ...
# -- cloud DVR (docs/dvr.md) -------------------------------------------------------------------
class DvrStreamStore(Protocol):
    """Stream configurations (``/streamer/api/v3/streams``), tombstones included."""

    def put(self, stream: DvrStream) -> None:
        """Create or replace by name."""
        ...

    def get(self, name: str, *, include_deleted: bool = False) -> DvrStream | None: ...

    def list(self, *, include_deleted: bool = False) -> list[DvrStream]:
        """By name."""
        ...

    def of_device(self, device_id: int) -> list[DvrStream]:
        """Live (not deleted) streams of a device, any channel."""
        ...

    def purge(self, name: str) -> None:
        """Forget a (deleted) stream's row for good."""
        ...


class DvrIndex(Protocol):
    """The segment index: one row per stored segment object, fragment table inside."""

    def add(self, segment: SegmentEntry) -> bool:
        """Insert; False (and no change) when (stream, segment_id) exists already."""
        ...

    def segments(self, stream: str, start_ms: int | None = None, end_ms: int | None = None,
                 *, limit: int = 1000, after: str | None = None) -> list[SegmentEntry]:
        """Segments overlapping ``[start_ms, end_ms)``, by start time (then segment_id);
        ``after`` (a segment_id) continues a previous page."""
        ...

    def spans(self, stream: str, start_ms: int | None = None,
              end_ms: int | None = None) -> list[tuple[int, int]]:
        """``(start_ms, end_ms)`` of the segments overlapping the interval, by start: the
        ranges' raw material, without fragment tables."""
        ...

    def usage(self, stream: str) -> tuple[int, int]:
        """(bytes, segments) of a stream."""
        ...

    def ranges(self, stream: str) -> tuple[Sequence[int], Sequence[int]]:
        """(starts, ends) of the stream's merged ranges, in time order, as ``merge_ranges``
        of every row's span would give, read from chunks the index keeps materialized
        (``domain.dvr.RANGE_CHUNK_MS``): one query for a year."""
        ...

    def version(self, stream: str) -> int:
        """A counter that grows by exactly one for every segment of the stream added or
        removed (0: none ever): readers keep derived data (merged ranges) until it moves."""
        ...

    def streams(self) -> list[str]:
        """Names of the streams that have segments (deleted streams' included)."""
        ...

    def remove(self, stream: str, segment_ids: Iterable[str]) -> list[SegmentEntry]:
        """Delete rows and, atomically, schedule their objects for deletion. Returns the
        rows that were still there."""
        ...

    def pending_deletions(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(root, key) of objects whose rows are gone but whose deletion is unconfirmed."""
        ...

    def deletion_done(self, items: Iterable[tuple[str, str]]) -> None: ...

    def intend(self, root: str, key: str, at: float) -> None:
        """Record that an object is about to be stored; ``add`` of its row clears the intent
        in the same write, so an object whose writer died before indexing it is found."""
        ...

    def abandoned(self, before: float, limit: int = 1000) -> list[tuple[str, str]]:
        """(root, key) of intents older than ``before``: objects stored (maybe) but never
        indexed, to delete."""
        ...

    def drop_intents(self, items: Iterable[tuple[str, str]]) -> None: ...

    def set_thumbs(self, stream: str, segment_id: str, root: str,
                   thumbs: Thumbs) -> Thumbs | None:
        """Record a segment's stored thumbnails unless some are recorded already, clearing
        the intent of ``(root, thumbs.key)`` in the same write. Returns the thumbnails the row now
        names (these, or an earlier writer's: S3 delivers events at least once), or None
        when the row is gone (the caller deletes its object). ``remove`` schedules the
        recorded thumbnails object for deletion with its segment."""
        ...

    def watch(self, stream: str, until: float) -> None:
        """Someone reads the stream's newest minutes where the gateway's tail cannot be
        reached (AWS): until then, the recorder stores short objects."""
        ...

    def watched(self, now: float) -> list[str]:
        """Streams watched at ``now``."""
        ...


class EpisodeStore(Protocol):
    """Episodes (``/streamer/api/v3/episodes``)."""

    def put(self, episode: Episode, *, create_only: bool = False) -> bool:
        """Create or replace by id; with ``create_only``, False (no change) if it exists."""
        ...

    def get(self, episode_id: int) -> Episode | None: ...

    def delete(self, episode_id: int) -> bool: ...

    def query(self, q: EpisodeQuery) -> list[Episode]:
        """Matching episodes by id, at most ``q.limit``, after ``q.cursor``."""
        ...

    def overlapping(self, media: str, start_ms: int, end_ms: int) -> list[Episode]:
        """Every episode of ``media`` overlapping ``[start_ms, end_ms)`` (open ones too).
        Raises on a store failure: retention must then wait, never guess."""
        ...


class DvrStorage(Protocol):
    """Segment objects under a stream's ``dvr.root``: a folder locally, S3 on AWS."""

    def resolve(self, root: str) -> str:
        """The canonical form of a root (absolute folder, ``s3://bucket/prefix``).

        Raises:
            Invalid: malformed, or outside the allowed roots.
        """
        ...

    def put(self, root: str, key: str, data: bytes, *, content_type: str) -> int:
        """Store an object whole (atomically: never half-written). Returns its size."""
        ...

    def read(self, root: str, key: str, start: int = 0,
             end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive. Raises NotFound."""
        ...

    def exists(self, root: str, key: str) -> bool: ...

    def delete(self, root: str, key: str) -> None:
        """Idempotent."""
        ...


class ExportJobStore(Protocol):
    """DVR export jobs (domain/dvrjobs.py), by stream and id."""

    def create(self, job: ExportJob) -> None: ...

    def get(self, media: str, job_id: str) -> ExportJob | None: ...

    def list(self, media: str, limit: int = 50) -> list[ExportJob]:
        """Newest first."""
        ...

    def claim(self, media: str, job_id: str, now: float) -> ExportJob | None:
        """Mark a claimable job running (atomically: one worker wins); None otherwise."""
        ...

    def save(self, job: ExportJob) -> None:
        """Progress and the end, written by the job's worker."""
        ...

    def purge(self, media: str, before: float) -> int:
        """Forget finished jobs last updated before ``before``."""
        ...


class DvrTail(Protocol):
    """The newest fragments, not yet in a stored segment (the gateway holds them)."""

    def open_segment(self, stream: str) -> SegmentEntry | None:
        """The segment being written (``key`` empty, ``size`` so far), or None."""
        ...

    def read_open(self, stream: str, segment_id: str, start: int = 0,
                  end: int | None = None) -> bytes:
        """Bytes of the open segment. Raises NotFound once it was stored or dropped."""
        ...


class ShareStore(Protocol):
    """Share links by id; revoked ones are kept (flagged) until a day after their expiry."""

    def add(self, link: ShareLink) -> None: ...

    def get(self, share_id: str) -> ShareLink | None: ...

    def of_file(self, uuid: str) -> list[ShareLink]: ...

    def revoke(self, share_id: str) -> bool:
        """False when unknown or revoked already."""
        ...
