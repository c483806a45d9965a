"""PynamoDB models of fleetcam's tables; ``bind()`` points them at real tables once.

Key design (template.yaml declares the same; tests/aws check the two agree):

* Devices  ``id`` (N). Item ``id=0`` holds the id counter (``next_id``). Each device item
  carries its media usage counters, updated in the same transaction as its media records.
* Idents   ``ident`` (S) → ``device_id``. A table, not a GSI, because a GSI cannot enforce
  that an ident is unique; a conditional put in a transaction can.
* Media    ``uuid`` (S); GSI ``by-device-created`` (``device_id`` N, ``sort_key`` S =
  zero-padded created + uuid, the stable cursor); TTL attribute ``expires_at`` as a safety
  net behind the sweeper (its removals reach the reaper through the table's stream). The
  item is ≈0.4 KB: previews are objects (``previews/{device_id}/{uuid}.jpg``);
  ``preview_jpeg`` is only read from records written before that. ``by-device-created``
  INCLUDEs every field but ``preview_jpeg``, so a page of results is the index rows
  themselves. No index by upload time: every GSI costs a write unit when a file is added
  and another when it goes; the sweeper finds expired files in ``by-shard-expiry``.
* Logs     ``device_id`` (N) + ``sk`` (S = zero-padded id); TTL attribute ``expires_at``.
* Gc       ``key`` (S): objects whose records are gone but whose deletion is unconfirmed.
"""
from __future__ import annotations

import zlib
from typing import Any

from pynamodb.attributes import (BinaryAttribute, BooleanAttribute, JSONAttribute,
                                 NumberAttribute, TTLAttribute, UnicodeAttribute)
from pynamodb.indexes import (AllProjection, GlobalSecondaryIndex, IncludeProjection,
                              KeysOnlyProjection)
from pynamodb.models import Model


class _Base(Model):
    class Meta:
        abstract = True
        region = "us-east-1"


class DevicesByRetime(GlobalSecondaryIndex["DevicesModel"]):
    """Sparse: only devices whose media_ttl changed and whose files' ``expires_at`` is not
    yet moved with it (the retime job; ``retime_cursor`` is its progress)."""

    class Meta:
        index_name = "by-retime"
        projection = IncludeProjection(["retime_cursor"])

    retime = NumberAttribute(hash_key=True)


class DevicesModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-devices"

    id = NumberAttribute(hash_key=True)
    next_id = NumberAttribute(null=True)
    next_command_id = NumberAttribute(null=True)
    next_rule_id = NumberAttribute(null=True)
    name = UnicodeAttribute(null=True)
    ident = UnicodeAttribute(null=True)
    protocol = UnicodeAttribute(null=True)
    media_ttl = NumberAttribute(default=0)
    media_rotate = NumberAttribute(default=0)
    messages_ttl = NumberAttribute(default=31536000)
    metadata = JSONAttribute(null=True)
    enabled = BooleanAttribute(default=True)
    auth_code = UnicodeAttribute(null=True)
    media_total = NumberAttribute(default=0)
    media_protected = NumberAttribute(default=0)
    media_files = NumberAttribute(default=0)
    retime = NumberAttribute(null=True)
    retime_cursor = UnicodeAttribute(null=True)
    by_retime = DevicesByRetime()


class IdentsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-idents"

    ident = UnicodeAttribute(hash_key=True)
    device_id = NumberAttribute()


MEDIA_LISTED = ["key", "name", "size", "mime", "created", "uploaded", "modified", "protected",
                "shared", "channel_id", "preview_meta", "attributes"]
"""What ``by-device-created`` projects besides the keys: every field a filter can read, so
non-matching files are skipped, and a page of results needs no read of the table. Not
``preview_jpeg`` (inline thumbnails of records made before previews became objects)."""


class ByDeviceCreated(GlobalSecondaryIndex["MediaModel"]):
    class Meta:
        index_name = "by-device-created"
        projection = IncludeProjection(MEDIA_LISTED)

    device_id = NumberAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


FLEET_SHARDS = 4
"""Partitions of the fleet-wide media indexes: a fleet-wide read is this many queries (plus
their pages), whatever the number of devices; writes spread over as many index partitions."""


def fleet_shard(uuid: str) -> int:
    return zlib.crc32(uuid.encode()) % FLEET_SHARDS


class ByShardCreated(GlobalSecondaryIndex["MediaModel"]):
    """Every file of the fleet by creation time, in FLEET_SHARDS partitions: ``all`` and
    large selectors read it instead of one query per device."""

    class Meta:
        index_name = "by-shard-created"
        projection = IncludeProjection([*MEDIA_LISTED, "device_id"])

    shard = NumberAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)


class ByShardExpiry(GlobalSecondaryIndex["MediaModel"]):
    """Sparse (only files with an ``expires_at``): what the sweeper expires, found directly."""

    class Meta:
        index_name = "by-shard-expiry"
        projection = KeysOnlyProjection()

    shard = NumberAttribute(hash_key=True)
    expires_at = NumberAttribute(range_key=True)


class MediaModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-media"

    uuid = UnicodeAttribute(hash_key=True)
    device_id = NumberAttribute()
    sort_key = UnicodeAttribute()
    key = UnicodeAttribute()
    name = UnicodeAttribute()
    size = NumberAttribute()
    mime = UnicodeAttribute()
    created = NumberAttribute()
    uploaded = NumberAttribute()
    modified = NumberAttribute()
    protected = BooleanAttribute(default=False)
    shared = BooleanAttribute(default=False)
    channel_id = NumberAttribute(null=True)
    preview_jpeg = UnicodeAttribute(null=True)
    preview_meta = JSONAttribute(null=True)
    attributes = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    shard = NumberAttribute(null=True)
    by_device_created = ByDeviceCreated()
    by_shard_created = ByShardCreated()
    by_shard_expiry = ByShardExpiry()


class LogsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-logs"

    device_id = NumberAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = NumberAttribute()
    timestamp = NumberAttribute()
    event = UnicodeAttribute()
    data = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class GcModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-gc"

    key = UnicodeAttribute(hash_key=True)
    queued = NumberAttribute(default=0)


MODELS: tuple[type[Model], ...] = (DevicesModel, IdentsModel, MediaModel, LogsModel, GcModel)


def bind(tables: dict[str, str], *, region: str, host: str | None = None) -> None:
    """Point every model at its table (names keyed by model class name), once per process."""
    for model in MODELS:
        meta: Any = model.Meta
        before = (meta.table_name, meta.region, getattr(meta, "host", None))
        meta.table_name = tables.get(model.__name__, meta.table_name)
        meta.region = region
        meta.host = host
        if (meta.table_name, region, host) != before:
            model._connection = None  # forget a connection made for another endpoint


def create_tables() -> None:
    """Create the tables as template.yaml declares them (tests against moto only)."""
    for model in MODELS:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


# -- the gateway's tables (issue 5) -------------------------------------------------------
# * Messages     ``device_id`` (N) + ``sk`` (S = zero-padded timestamp + id); TTL expires_at
#                (the device's messages_ttl).
# * Connections  ``id`` (N); GSIs by-device (device_id) and by-gateway (gateway_id); TTL
#                expires_at, refreshed while the connection lives, so a crashed gateway copy's
#                entries clean themselves up.
# * Commands     ``id`` (N, from the counter item of Devices); GSIs by-device (device_id, id),
#                by-gateway-queued (sparse: gateway_queued set only while queued),
#                by-open-expiry (sparse: ``open`` set until final, range expires) and
#                by-device-finished (sparse: finished set when final); TTL expires_at keeps
#                results for 30 days. The indexes hold keys only (by-device also ``status``,
#                which its query filters on): a command's item is rewritten as it is queued,
#                sent, progresses and is answered, and an index projecting ALL copied each
#                rewrite into all four (issue 14, Cost); the store reads the items themselves
#                with BatchGetItem.


class MessagesModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-messages"

    device_id = NumberAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    timestamp = NumberAttribute()
    data = JSONAttribute()
    expires_at = TTLAttribute(null=True)


class ConnectionsByDevice(GlobalSecondaryIndex["ConnectionsModel"]):
    class Meta:
        index_name = "by-device"
        projection = AllProjection()

    device_id = NumberAttribute(hash_key=True)


class ConnectionsByGateway(GlobalSecondaryIndex["ConnectionsModel"]):
    class Meta:
        index_name = "by-gateway"
        projection = AllProjection()

    gateway_id = UnicodeAttribute(hash_key=True)


class ConnectionsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-connections"

    id = NumberAttribute(hash_key=True)
    device_id = NumberAttribute()
    gateway_id = UnicodeAttribute()
    data = JSONAttribute()
    expires_at = TTLAttribute(null=True)
    changes = NumberAttribute(null=True)
    """On a gateway copy's lease item: bumped by whoever drops one of its connections or
    queues a command for it (the copy's change marker, with ``epoch``)."""
    epoch = UnicodeAttribute(null=True)
    """On a lease item: random, set when the item is created (a lease removed and written
    again is a change too)."""
    by_device = ConnectionsByDevice()
    by_gateway = ConnectionsByGateway()


class CommandsByDevice(GlobalSecondaryIndex["CommandsModel"]):
    class Meta:
        index_name = "by-device"
        projection = IncludeProjection(["status"])

    device_id = NumberAttribute(hash_key=True)
    id = NumberAttribute(range_key=True)


class CommandsByGatewayQueued(GlobalSecondaryIndex["CommandsModel"]):
    class Meta:
        index_name = "by-gateway-queued"
        projection = KeysOnlyProjection()

    gateway_queued = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(range_key=True)


class CommandsByOpenExpiry(GlobalSecondaryIndex["CommandsModel"]):
    class Meta:
        index_name = "by-open-expiry"
        projection = KeysOnlyProjection()

    open = UnicodeAttribute(hash_key=True)
    expires = NumberAttribute(range_key=True)


class CommandsByDeviceFinished(GlobalSecondaryIndex["CommandsModel"]):
    class Meta:
        index_name = "by-device-finished"
        projection = KeysOnlyProjection()

    device_id = NumberAttribute(hash_key=True)
    finished = NumberAttribute(range_key=True)


class CommandsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-commands"

    id = NumberAttribute(hash_key=True)
    device_id = NumberAttribute()
    status = UnicodeAttribute()
    expires = NumberAttribute()
    gateway_queued = UnicodeAttribute(null=True)
    open = UnicodeAttribute(null=True)
    finished = NumberAttribute(null=True)
    data = JSONAttribute()
    expires_at = TTLAttribute(null=True)
    by_device = CommandsByDevice()
    by_gateway_queued = CommandsByGatewayQueued()
    by_open_expiry = CommandsByOpenExpiry()
    by_device_finished = CommandsByDeviceFinished()


class RulesModel(_Base):
    """Event-triggered clip rules: ``id`` (N, from the counter item of Devices)."""

    class Meta(_Base.Meta):
        table_name = "fleetcam-rules"

    id = NumberAttribute(hash_key=True)
    data = JSONAttribute()


class MediaRequestsByHolder(GlobalSecondaryIndex["MediaRequestsModel"]):
    class Meta:
        index_name = "by-holder"
        projection = AllProjection()

    holder = UnicodeAttribute(hash_key=True)


class MediaRequestsModel(_Base):
    """Outstanding media requests (domain/admission.py): ``key`` (S) = ``device_id:channel``;
    GSI by-holder (the gateway copy that sent it); ``version`` for compare-and-swap; TTL
    expires_at a while after the request closes (readers check ``expires`` themselves)."""

    class Meta(_Base.Meta):
        table_name = "fleetcam-mediarequests"

    key = UnicodeAttribute(hash_key=True)
    holder = UnicodeAttribute()
    version = NumberAttribute()
    expires = NumberAttribute()
    data = JSONAttribute()
    expires_at = TTLAttribute(null=True)
    by_holder = MediaRequestsByHolder()



MODELS = (*MODELS, MessagesModel, ConnectionsModel, CommandsModel, RulesModel)


# -- access tokens (issue 11) ------------------------------------------------------------
# * Tokens  ``key_hash`` (S: SHA-256 of the key; the key itself is never stored), so that
#           authenticating is one consistent GetItem; GSI by-id (``id`` N) for the API's
#           ``/platform/customer/tokens/{id}``; the item ``key_hash="#counter"`` holds the
#           id counter (``next_id``); TTL ``expires_at`` removes tokens a day after they
#           expire.
class TokensById(GlobalSecondaryIndex["TokensModel"]):
    class Meta:
        index_name = "by-id"
        projection = AllProjection()

    id = NumberAttribute(hash_key=True)


class TokensModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-tokens"

    key_hash = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(null=True)
    next_id = NumberAttribute(null=True)
    data = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    by_id = TokensById()


MODELS = (*MODELS, TokensModel, MediaRequestsModel)


# * Shares  ``id`` (S, 128 random bits); GSI by-uuid (``uuid`` S) to revoke a file's links;
#           TTL ``expires_at`` a day after the link's expiry (revoked links answer 410 till then).
class SharesByUuid(GlobalSecondaryIndex["SharesModel"]):
    class Meta:
        index_name = "by-uuid"
        projection = AllProjection()

    uuid = UnicodeAttribute(hash_key=True)


class SharesModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-shares"

    id = UnicodeAttribute(hash_key=True)
    uuid = UnicodeAttribute()
    device_id = NumberAttribute()
    expire = NumberAttribute()
    created = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    expires_at = TTLAttribute(null=True)
    by_uuid = SharesByUuid()


MODELS = (*MODELS, SharesModel)


# -- the cloud DVR (issue 12; adapters/aws/dvr.py, docs/dvr.md) ----------------------------
# * DvrStreams   ``name`` (S); GSI by-device (``device_id`` N). Tombstones included.
# * DvrSegments  ``stream`` (S) + ``segment_id`` (S); item ``segment_id="#usage"`` holds the
#                stream's counters, updated in the rows' transactions.
# * DvrEpisodes  ``episode_id`` (N); GSI by-media (``media`` S, ``opened_at`` N).
# * DvrGc        ``item`` (S, root NUL key): deletions not yet confirmed.
class DvrStreamsByDevice(GlobalSecondaryIndex["DvrStreamsModel"]):
    class Meta:
        index_name = "by-device"
        projection = AllProjection()

    device_id = NumberAttribute(hash_key=True)


class DvrStreamsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-dvrstreams"

    name = UnicodeAttribute(hash_key=True)
    device_id = NumberAttribute()
    data = JSONAttribute()
    by_device = DvrStreamsByDevice()


class DvrSegmentsModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-dvrsegments"

    stream = UnicodeAttribute(hash_key=True)
    segment_id = UnicodeAttribute(range_key=True)
    start_ms = NumberAttribute(null=True)
    end_ms = NumberAttribute(null=True)
    size = NumberAttribute(null=True)
    root = UnicodeAttribute(null=True)
    key = UnicodeAttribute(null=True)
    data = JSONAttribute(null=True)
    fragments = BinaryAttribute(null=True, legacy_encoding=False)
    bytes = NumberAttribute(null=True)
    segments = NumberAttribute(null=True)
    version = NumberAttribute(null=True)
    """On the ``#usage`` item: +1 on every segment added or removed (``DvrIndex.version``)."""
    ranges_ok = BooleanAttribute(null=True)
    """On the ``#usage`` item: the ``#ranges#`` chunks hold every row (set by the first row,
    or when ``DvrIndex.ranges`` built them for rows indexed before chunks existed)."""
    ranges = BinaryAttribute(null=True, legacy_encoding=False)
    """On ``#ranges#{chunk:08d}`` items: the merged ranges of that week (``pack_ranges``)."""
    watched_until = NumberAttribute(null=True)
    """On the ``#watch`` item: until when readers want the newest minutes stored."""
    thumbs = UnicodeAttribute(null=True)
    """The segment's stored thumbnails (``Thumbs.pack()``), set once by the DVR thumbnail
    function (services/dvrthumbs.py)."""
    job_status = UnicodeAttribute(null=True)
    job_beat = NumberAttribute(null=True)
    """On ``#export:{id}`` items (adapters/aws/dvrjobs.py): a job's status and heartbeat, the
    condition of a takeover."""


class DvrEpisodesByMedia(GlobalSecondaryIndex["DvrEpisodesModel"]):
    class Meta:
        index_name = "by-media"
        projection = AllProjection()

    media = UnicodeAttribute(hash_key=True)
    opened_at = NumberAttribute(range_key=True)


class DvrEpisodesModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-dvrepisodes"

    episode_id = NumberAttribute(hash_key=True)
    media = UnicodeAttribute()
    opened_at = NumberAttribute()
    data = JSONAttribute()
    by_media = DvrEpisodesByMedia()


class DvrGcModel(_Base):
    class Meta(_Base.Meta):
        table_name = "fleetcam-dvrgc"

    item = UnicodeAttribute(hash_key=True)
    queued = NumberAttribute(default=0)


MODELS = (*MODELS, DvrStreamsModel, DvrSegmentsModel, DvrEpisodesModel, DvrGcModel)


