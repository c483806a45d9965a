"""DeviceRepo, MediaIndex and LogStore over DynamoDB (PynamoDB models in models.py)."""
from __future__ import annotations

import heapq
from datetime import datetime, timezone
import itertools
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite as _TransactWrite

from fleetcam.adapters.aws.models import (FLEET_SHARDS, DevicesModel, GcModel, IdentsModel,
                                          LogsModel, MediaModel, fleet_shard)
from fleetcam.domain import expr
from fleetcam.domain.keys import parse_media_key
from fleetcam.domain.identity import Identity
from fleetcam.domain.models import Device, LogEntry, MediaFile, Preview
from fleetcam.domain.retention import file_expiry
from fleetcam.errors import Conflict, NotFound
from fleetcam.ports import MediaQuery

LOG_RETENTION = 30 * 86400
"""Seconds a device log entry is kept by default (DynamoDB's TTL deletes it, at no cost)."""
CONFLICT_RETRIES = 6
CONFLICT_BACKOFF = 0.025
"""Seconds of the first retry's backoff ceiling after a TransactionConflict (doubled each
time: at most about 0.8 s over the six tries)."""
RETIME_START = "0"
"""The cursor of a retime job that has not started: below every ``sort_key``."""
RETIME_THREADS = 8
"""UpdateItem calls of one retime batch in flight at once (each is a round trip)."""
RETRIES = 5
GC_ABANDONED = 3600
"""Seconds after which a Gc entry whose record still exists is a removal that died before
its transaction (no removal takes that long: the API's and the sweeper's run for minutes)."""
"""Attempts of an optimistic read-modify-write whose record keeps changing under it."""


def _connection() -> Connection:
    """The connection of transactions: the Devices model's own, cached by PynamoDB and
    renewed by ``models.bind``. A new Connection per transaction would build a new botocore
    client each time (about 0.1 s of CPU)."""
    return DevicesModel._get_connection().connection


class TransactWrite(_TransactWrite):
    """PynamoDB's TransactWrite, whose commit is retried (with jittered exponential backoff)
    when DynamoDB cancels it for a TransactionConflict only: another transaction was writing
    one of its items, typically the device's usage counters during concurrent ingests.
    Nothing of a cancelled transaction was applied, so resending it as is is safe."""

    def _commit(self) -> Any:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return super()._commit()
            except TransactWriteError as e:
                codes = {c for c in _cancelled(e) if c is not None}
                if codes != {"TransactionConflict"} or attempt + 1 == CONFLICT_RETRIES:
                    raise
            time.sleep(random.uniform(0, CONFLICT_BACKOFF * 2 ** attempt))
        raise AssertionError("unreachable")


def _cancelled(e: TransactWriteError) -> list[str | None]:
    """The cancellation code of each item of a failed transaction (None: that item was fine).

    PynamoDB sends a transaction's items grouped by kind, whatever the order of the calls:
    condition checks, then deletes, then puts, then updates. Positions follow that order."""
    return [getattr(r, "code", None) if r else None for r in (e.cancellation_reasons or [])]


def _device(m: DevicesModel) -> Device:
    return Device(id=int(m.id), name=m.name or "", ident=m.ident or "",
                  protocol=m.protocol or "jt808", media_ttl=int(m.media_ttl or 0),
                  media_rotate=int(m.media_rotate or 0), messages_ttl=int(m.messages_ttl or 0),
                  metadata=m.metadata or {}, enabled=bool(m.enabled),
                  identity=Identity.from_stored(m.auth_code))


def _device_model(d: Device) -> DevicesModel:
    return DevicesModel(id=d.id, name=d.name, ident=d.ident, protocol=d.protocol,
                        media_ttl=d.media_ttl, media_rotate=d.media_rotate,
                        messages_ttl=d.messages_ttl, metadata=d.metadata, enabled=d.enabled,
                        auth_code=d.identity.to_stored() or None)


class DynamoDeviceRepo:
    def create(self, fields: dict[str, Any]) -> Device:
        counter = DevicesModel(id=0)
        counter.update(actions=[DevicesModel.next_id.add(1)])
        d = Device(id=int(counter.next_id or 0), **{k: v for k, v in fields.items()
                                                    if k in Device.__dataclass_fields__})
        try:
            with TransactWrite(connection=_connection()) as tx:
                tx.save(IdentsModel(ident=d.ident, device_id=d.id),
                        condition=IdentsModel.ident.does_not_exist())
                tx.save(_device_model(d), condition=DevicesModel.id.does_not_exist())
        except TransactWriteError as e:
            raise Conflict(f"a device with ident {d.ident!r} exists already", field="ident") from e
        return d

    def get(self, device_id: int) -> Device:
        if device_id <= 0:
            raise NotFound(f"device {device_id} not found")
        try:
            return _device(DevicesModel.get(device_id))
        except DoesNotExist as e:
            raise NotFound(f"device {device_id} not found") from e

    def find_by_ident(self, ident: str) -> Device | None:
        try:
            claim = IdentsModel.get(ident)
        except DoesNotExist:
            return None
        try:
            return self.get(int(claim.device_id))
        except NotFound:
            return None

    def list(self) -> list[Device]:
        return sorted((_device(m) for m in DevicesModel.scan(DevicesModel.id > 0)),
                      key=lambda d: d.id)

    def update(self, device: Device) -> Device:
        old = self.get(device.id)
        m = _device_model(device)
        actions = [getattr(DevicesModel, name).set(getattr(m, name)) for name in
                   ("name", "ident", "protocol", "media_ttl", "media_rotate", "messages_ttl",
                    "metadata", "enabled")]
        if old.media_ttl != device.media_ttl:  # queue the move of every file's expires_at
            actions += [DevicesModel.retime.set(1), DevicesModel.retime_cursor.set(RETIME_START)]
        try:
            with TransactWrite(connection=_connection()) as tx:
                if old.ident != device.ident:
                    tx.save(IdentsModel(ident=device.ident, device_id=device.id),
                            condition=IdentsModel.ident.does_not_exist())
                    tx.delete(IdentsModel(ident=old.ident))
                tx.update(DevicesModel(id=device.id), actions=actions,
                          condition=DevicesModel.id.exists())
        except TransactWriteError as e:
            # with a new ident the items go [delete old ident, put new ident, update device]
            if old.ident != device.ident and _cancelled(e)[1:2] == ["ConditionalCheckFailed"]:
                raise Conflict(f"a device with ident {device.ident!r} exists already",
                               field="ident") from e
            raise NotFound(f"device {device.id} not found") from e
        return device.with_changes(identity=old.identity)

    def swap_identity(self, device_id: int, expect: Identity, new: Identity) -> bool:
        if device_id <= 0:
            return False
        old, stored = expect.to_stored(), new.to_stored()
        condition = DevicesModel.id.exists() & (
            DevicesModel.auth_code == old if old else DevicesModel.auth_code.does_not_exist())
        action = (DevicesModel.auth_code.set(stored) if stored
                  else DevicesModel.auth_code.remove())
        try:
            DevicesModel(id=device_id).update(actions=[action], condition=condition)
        except UpdateError as e:
            if "ConditionalCheckFailed" in str(e) or getattr(
                    e, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, device_id: int) -> None:
        try:
            old = self.get(device_id)
        except NotFound:
            return
        with TransactWrite(connection=_connection()) as tx:
            tx.delete(DevicesModel(id=device_id))
            tx.delete(IdentsModel(ident=old.ident))


def sort_key(created: float, uuid: str) -> str:
    """Lexicographic = chronological for 0 <= created < 1e10: the stable cursor."""
    return f"{created:017.6f}#{uuid}"


def _media(m: MediaModel) -> MediaFile:
    return MediaFile(
        uuid=m.uuid, device_id=int(m.device_id), key=m.key, name=m.name, size=int(m.size),
        mime=m.mime, created=float(m.created), uploaded=float(m.uploaded),
        modified=float(m.modified), protected=bool(m.protected), shared=bool(m.shared),
        channel_id=None if m.channel_id is None else int(m.channel_id),
        preview=Preview(jpeg=m.preview_jpeg or "", meta=m.preview_meta or {}),
        attributes=m.attributes or {})


def _media_model(f: MediaFile, ttl: int = 0) -> MediaModel:
    when = file_expiry(f.uploaded, f.protected, ttl)
    expires = None if when is None else datetime.fromtimestamp(when, timezone.utc)
    return MediaModel(
        uuid=f.uuid, device_id=f.device_id, sort_key=sort_key(f.created, f.uuid), key=f.key,
        name=f.name, size=f.size, mime=f.mime, created=f.created, uploaded=f.uploaded,
        modified=f.modified, protected=f.protected, shared=f.shared, channel_id=f.channel_id,
        preview_jpeg=f.preview.jpeg or None, preview_meta=f.preview.meta,
        attributes=f.attributes, expires_at=expires, shard=fleet_shard(f.uuid))


def _whole(uuids: list[str]) -> list[MediaFile]:
    """The table's current records of index rows, in their order, with BatchGetItem
    (PynamoDB pages by 100 and retries unprocessed keys): retention reads check protection
    on the record, not on an index that may lag. A record deleted since is left out."""
    if not uuids:
        return []
    found = {m.uuid: m for m in MediaModel.batch_get(uuids)}
    return [_media(found[u]) for u in uuids if u in found]


def media_from_image(image: dict[str, Any]) -> MediaFile:
    """A media record from a stream image in DynamoDB JSON (a TTL removal's ``OldImage``)."""
    return _media(MediaModel.from_raw_data(image))


def _usage_actions(size: int, protected_size: int, files: int) -> list[Any]:
    return [DevicesModel.media_total.add(size), DevicesModel.media_protected.add(protected_size),
            DevicesModel.media_files.add(files)]


class DynamoMediaIndex:
    """Every write that changes a device's usage updates its counters in one transaction.

    Args:
        fleet_min: a query over at least this many devices reads the fleet-wide index
            (FLEET_SHARDS queries) instead of one query per device.
    """

    def __init__(self, fleet_min: int = 16) -> None:
        self.fleet_min = fleet_min

    def _ttl(self, device_id: int) -> int:
        try:
            return int(DevicesModel.get(device_id, attributes_to_get=["media_ttl"]).media_ttl or 0)
        except DoesNotExist:
            return 0

    def add(self, file: MediaFile) -> bool:
        try:
            with TransactWrite(connection=_connection()) as tx:
                tx.save(_media_model(file, self._ttl(file.device_id)),
                        condition=MediaModel.uuid.does_not_exist())
                tx.update(DevicesModel(id=file.device_id),
                          actions=_usage_actions(file.size, file.size * file.protected, 1),
                          condition=DevicesModel.id.exists())
        except TransactWriteError as e:
            codes = _cancelled(e)
            if codes[:1] == ["ConditionalCheckFailed"]:
                return False
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise NotFound(f"device {file.device_id} not found") from e
            raise
        return True

    def add_many(self, files: Iterable[MediaFile]) -> None:
        """Bulk insert of new files (imports, benchmarks, as SqliteMediaIndex.add_many):
        BatchWriteItem, then one counter update per device. Neither atomic nor conditional."""
        usage: dict[int, list[int]] = {}
        ttls: dict[int, int] = {}
        with MediaModel.batch_write() as batch:
            for f in files:
                if f.device_id not in ttls:
                    ttls[f.device_id] = self._ttl(f.device_id)
                batch.save(_media_model(f, ttls[f.device_id]))
                u = usage.setdefault(f.device_id, [0, 0, 0])
                u[0], u[1], u[2] = u[0] + f.size, u[1] + f.size * f.protected, u[2] + 1
        for device_id, (size, protected_size, count) in usage.items():
            DevicesModel(id=device_id).update(actions=_usage_actions(size, protected_size, count),
                                              condition=DevicesModel.id.exists())

    def get(self, uuid: str) -> MediaFile | None:
        try:
            return _media(MediaModel.get(uuid))
        except DoesNotExist:
            return None

    def _stored(self, uuid: str) -> MediaModel | None:
        try:
            return MediaModel.get(uuid, consistent_read=True)
        except DoesNotExist:
            return None

    def update(self, file: MediaFile) -> None:
        """The counters move by the difference from the stored record, on condition that it
        is still what was read (re-read and retried otherwise)."""
        for _ in range(RETRIES):
            old = self._stored(file.uuid)
            if old is None:
                raise NotFound(f"media file {file.uuid} not found")
            size, prot = int(old.size), bool(old.protected)
            d_size = file.size - size
            d_prot = file.size * file.protected - size * prot
            try:
                with TransactWrite(connection=_connection()) as tx:
                    tx.save(_media_model(file, self._ttl(file.device_id)),
                            condition=(MediaModel.size == size) & (MediaModel.protected == prot))
                    if d_size or d_prot:
                        tx.update(DevicesModel(id=file.device_id),
                                  actions=_usage_actions(d_size, d_prot, 0))
            except TransactWriteError as e:
                if _cancelled(e)[:1] == ["ConditionalCheckFailed"]:
                    continue  # changed or removed meanwhile: read it again
                raise
            return
        raise Conflict(f"media file {file.uuid} keeps changing; try again")

    def remove(self, files: Iterable[MediaFile]) -> list[MediaFile]:
        return [f for f in files if self._remove(f)]

    def _remove(self, f: MediaFile) -> bool:
        """Delete one record, counting off what is *stored* (the caller's copy may be stale),
        as a consistent read says (read again if it changes meanwhile).

        The Gc entry that remembers the objects is written first, on its own (1 write unit;
        inside the transaction it cost 2): a crash before the transaction leaves an entry
        whose record still exists, which ``pending_deletions`` tells apart and drops."""
        current = self._stored(f.uuid)
        if current is None:
            return False  # gone already (or never there): nothing to queue
        size, prot = int(current.size), bool(current.protected)
        GcModel(key=f.key, queued=time.time()).save()
        for _ in range(RETRIES):
            try:
                with TransactWrite(connection=_connection()) as tx:
                    tx.delete(MediaModel(uuid=f.uuid),
                              condition=(MediaModel.size == size) & (MediaModel.protected == prot))
                    tx.update(DevicesModel(id=f.device_id),
                              actions=_usage_actions(-size, -size * prot, -1))
            except TransactWriteError as e:
                if _cancelled(e)[:1] != ["ConditionalCheckFailed"]:  # [delete, update]
                    raise
                current = self._stored(f.uuid)
                if current is None:
                    return False  # someone else removed it first
                size, prot = int(current.size), bool(current.protected)
                continue
            return True
        raise Conflict(f"media file {f.uuid} keeps changing; try again")

    def expired(self, file: MediaFile) -> bool:
        """DynamoDB's TTL deleted ``file``'s record: take it off the device's usage and queue
        its object for deletion, in one transaction (the reaper's ``count_off``). False when
        the object is queued already (a retried stream record): counters change once."""
        try:
            with TransactWrite(connection=_connection()) as tx:
                tx.save(GcModel(key=file.key, queued=0), condition=GcModel.key.does_not_exist())
                tx.update(DevicesModel(id=file.device_id),
                          actions=_usage_actions(-file.size, -file.size * file.protected, -1),
                          condition=DevicesModel.id.exists())
        except TransactWriteError as e:
            if "ConditionalCheckFailed" in _cancelled(e):
                return False  # seen already, or the device (and its counters) is gone
            raise
        return True

    def pending_deletions(self, limit: int = 1000) -> list[str]:
        """Keys whose records are gone. An entry whose record still exists belongs to a
        removal in flight (left alone) or, past GC_ABANDONED seconds, to one that died
        before its transaction: that entry is dropped and the objects kept."""
        entries = list(GcModel.scan(limit=limit))
        uuids = {}
        for m in entries:
            parsed = parse_media_key(m.key)
            if parsed is not None:
                uuids[m.key] = parsed[1]
        live = {m.uuid for m in MediaModel.batch_get(
            sorted(set(uuids.values())), attributes_to_get=["uuid"])} if uuids else set()
        out, abandoned = [], []
        now = time.time()
        for m in entries:
            if uuids.get(m.key) not in live:
                out.append(m.key)
            elif now - float(m.queued or 0) > GC_ABANDONED:
                abandoned.append(m.key)
        if abandoned:
            self.deletion_done(abandoned)
        return out

    def deletion_done(self, keys: Iterable[str]) -> None:
        with GcModel.batch_write() as batch:
            for k in keys:
                batch.delete(GcModel(key=k))

    def deletion_pending(self, key: str) -> bool:
        try:
            GcModel.get(key, consistent_read=True)
        except DoesNotExist:
            return False
        return True

    def _device_stream(self, device_id: int, q: MediaQuery) -> Iterator[MediaFile]:
        return self._stream(MediaModel.by_device_created, device_id, q, None)

    def _stream(self, index: Any, hash_key: int, q: MediaQuery,
                devices: frozenset[int] | None) -> Iterator[MediaFile]:
        """One partition of an index by ``sort_key``, filtered by ``q`` (and to ``devices``)."""
        cond = None
        lo = sort_key(q.time_from, "") if q.time_from is not None else None
        hi = sort_key(q.time_to, "~") if q.time_to is not None else None
        if q.cursor is not None:
            cur = sort_key(*q.cursor)
            if q.reverse:
                hi = cur if hi is None else min(hi, cur)
            else:
                lo = cur + "\x00" if lo is None else max(lo, cur + "\x00")
        if lo is not None and hi is not None:
            cond = MediaModel.sort_key.between(lo, hi)
        elif lo is not None:
            cond = MediaModel.sort_key >= lo
        elif hi is not None:
            cond = MediaModel.sort_key <= hi
        rows = index.query(hash_key, range_key_condition=cond,
                           scan_index_forward=not q.reverse, page_size=min(q.count, 500) + 1)
        for m in rows:
            if devices is not None and int(m.device_id) not in devices:
                continue
            f = _media(m)  # the whole record (see models.MEDIA_LISTED)
            if q.cursor is not None and q.reverse and (f.created, f.uuid) >= q.cursor:
                continue
            if expr.evaluate(q.filter, f.field_value):
                yield f

    def query(self, q: MediaQuery) -> list[MediaFile]:
        if len(q.device_ids) >= self.fleet_min:
            wanted = frozenset(q.device_ids)
            streams = [self._stream(MediaModel.by_shard_created, s, q, wanted)
                       for s in range(FLEET_SHARDS)]
        else:
            streams = [self._device_stream(d, q) for d in q.device_ids]
        merged = heapq.merge(*streams, key=lambda f: (f.created, f.uuid), reverse=q.reverse)
        return list(itertools.islice(merged, q.count))

    def usage(self, device_id: int) -> tuple[int, int, int]:
        try:
            m = DevicesModel.get(device_id)
        except DoesNotExist:
            return 0, 0, 0
        return int(m.media_total or 0), int(m.media_protected or 0), int(m.media_files or 0)

    def oldest_unprotected(self, device_id: int) -> Iterator[MediaFile]:
        """Lazy: whole records are fetched 1, 4, 16, 64, then 100 at a time, as rotation
        usually wants only the first few. A file protected since the index saw it is
        skipped (the table is read after the index)."""
        rows = (m.uuid for m in MediaModel.by_device_created.query(
            device_id, filter_condition=MediaModel.protected == False,  # noqa: E712
            page_size=200))
        size = 1
        while chunk := list(itertools.islice(rows, size)):
            yield from (f for f in _whole(chunk) if not f.protected)
            size = min(size * 4, 100)

    def uploaded_before(self, device_id: int, cutoff: float, limit: int) -> list[MediaFile]:
        """Reads the device's whole ``by-device-created`` partition (filtered): there is no
        index by upload time, as it would cost two write units per file. The AWS runtime
        never calls this (RetentionService ``per_device_ttl`` is off: the sweeper expires
        files from ``by-shard-expiry``); it serves the port for tools and tests."""
        rows = MediaModel.by_device_created.query(
            device_id, filter_condition=(MediaModel.uploaded < cutoff)
            & (MediaModel.protected == False), page_size=500)  # noqa: E712
        found = sorted(((float(m.uploaded), m.uuid) for m in rows))[:limit]
        return [f for f in _whole([u for _, u in found]) if not f.protected]


    def expiring_before(self, now: float, limit: int) -> list[MediaFile]:
        """From the sparse by-shard-expiry index: FLEET_SHARDS queries and the records'
        BatchGetItem, whatever the number of devices."""
        cutoff = datetime.fromtimestamp(now, timezone.utc)
        uuids: list[str] = []
        for shard in range(FLEET_SHARDS):
            want = limit - len(uuids)
            if want <= 0:
                break
            uuids += [m.uuid for m in MediaModel.by_shard_expiry.query(
                shard, range_key_condition=MediaModel.expires_at < cutoff, limit=want,
                page_size=min(want, 1000))]
        return [f for f in _whole(uuids) if not f.protected]

    def over_limit(self) -> list[int]:
        """A parallel Scan of the Devices table, filtered on the device items' own counters:
        pages of 1 MB (some thousands of devices each), RETIME_THREADS segments at once."""
        flt = (DevicesModel.media_rotate > 0) & (DevicesModel.media_total
                                                 > DevicesModel.media_rotate)

        def segment(n: int) -> list[int]:
            return [int(m.id) for m in DevicesModel.scan(
                flt, segment=n, total_segments=RETIME_THREADS, attributes_to_get=["id"])]

        with ThreadPoolExecutor(RETIME_THREADS) as pool:
            return sorted(i for ids in pool.map(segment, range(RETIME_THREADS)) for i in ids)

    def queue_retime_all(self) -> int:
        """Queue a retime job for every device (after an upgrade: it also writes the fleet
        indexes' ``shard`` on records made before them). Returns the number of devices."""
        n = 0
        for m in DevicesModel.scan(DevicesModel.id > 0, attributes_to_get=["id"]):
            DevicesModel(id=m.id).update(actions=[DevicesModel.retime.set(1),
                                                  DevicesModel.retime_cursor.set(RETIME_START)])
            n += 1
        return n

    def expiry(self, uuid: str) -> float | None:
        try:
            m = MediaModel.get(uuid, consistent_read=True, attributes_to_get=["expires_at"])
        except DoesNotExist:
            return None
        return None if m.expires_at is None else m.expires_at.timestamp()

    def retime_jobs(self, limit: int = 100) -> list[tuple[int, str]]:
        return [(int(m.id), m.retime_cursor or RETIME_START)
                for m in DevicesModel.by_retime.query(1, limit=limit)]

    def retime(self, device_id: int, media_ttl: int, cursor: str, limit: int) -> str | None:
        """One batch: the next ``limit`` files by ``sort_key`` from the index, an UpdateItem
        each (in parallel), then the cursor saved on the device item, on condition that the
        job is still this one (same media_ttl, same cursor)."""
        rows = list(MediaModel.by_device_created.query(
            device_id, range_key_condition=MediaModel.sort_key > cursor,
            limit=limit, page_size=limit))
        with ThreadPoolExecutor(RETIME_THREADS) as pool:
            list(pool.map(lambda m: self._set_expiry(m, media_ttl), rows))
        done = len(rows) < limit
        job = (DevicesModel.media_ttl == media_ttl) & (DevicesModel.retime_cursor == cursor)
        actions = ([DevicesModel.retime.remove(), DevicesModel.retime_cursor.remove()] if done
                   else [DevicesModel.retime_cursor.set(rows[-1].sort_key)])
        try:
            DevicesModel(id=device_id).update(actions=actions, condition=job)
        except UpdateError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return None  # replaced by a newer change of media_ttl (or the device is gone)
            raise
        return None if done else rows[-1].sort_key

    @staticmethod
    def _set_expiry(m: MediaModel, media_ttl: int) -> None:
        """On condition that the record is still there with the protection read (a file
        protected meanwhile was written with no expiry, and must stay so)."""
        when = file_expiry(float(m.uploaded), bool(m.protected), media_ttl)
        action = (MediaModel.expires_at.remove() if when is None else
                  MediaModel.expires_at.set(datetime.fromtimestamp(when, timezone.utc)))
        try:
            MediaModel(uuid=m.uuid).update(
                actions=[action, MediaModel.shard.set(fleet_shard(m.uuid))],
                condition=MediaModel.uuid.exists() & (MediaModel.protected == bool(m.protected)))
        except UpdateError as e:
            if e.cause_response_code != "ConditionalCheckFailedException":
                raise

    def restore(self, file: MediaFile, media_ttl: int) -> bool:
        """Put back a record DynamoDB's TTL removed though today's media_ttl keeps the file
        (the reaper's other outcome; counters were never decremented). False if a record
        with that uuid is there already."""
        try:
            _media_model(file, media_ttl).save(condition=MediaModel.uuid.does_not_exist())
        except PutError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _log_sk(timestamp: float, entry_id: int) -> str:
    return f"{timestamp:017.6f}#{entry_id:016d}"


class DynamoLogStore:
    def __init__(self, retention: int = LOG_RETENTION) -> None:
        self._last_id = 0
        self._lock = threading.Lock()
        self.retention = retention

    def expire(self, now: float) -> int:
        return 0  # DynamoDB's TTL deletes entries (expires_at), without write units

    def _next_id(self) -> int:
        """Wall-clock microseconds, strictly increasing in this process: orders entries that
        share a timestamp by insertion, and stays below 2**53 (safe in JSON clients)."""
        with self._lock:
            self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
            return self._last_id

    def append(self, entry: LogEntry) -> LogEntry:
        entry_id = self._next_id()
        LogsModel(device_id=entry.device_id, sk=_log_sk(entry.timestamp, entry_id), id=entry_id,
                  timestamp=entry.timestamp, event=entry.event, data=entry.data,
                  expires_at=None if self.retention <= 0 else datetime.fromtimestamp(
                      entry.timestamp + self.retention, timezone.utc)).save()
        return LogEntry(device_id=entry.device_id, timestamp=entry.timestamp, event=entry.event,
                        data=entry.data, id=entry_id)

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, events: tuple[str, ...] = (), count: int = 1000,
              reverse: bool = False) -> list[LogEntry]:
        lo = _log_sk(time_from, 0) if time_from is not None else None
        hi = _log_sk(time_to, 10**16 - 1) if time_to is not None else None
        cond = (LogsModel.sk.between(lo, hi) if lo and hi else
                LogsModel.sk >= lo if lo else LogsModel.sk <= hi if hi else None)

        def stream(device_id: int) -> Iterator[LogEntry]:
            for m in LogsModel.query(device_id, range_key_condition=cond,
                                     scan_index_forward=not reverse, page_size=200):
                if events and m.event not in events:
                    continue
                yield LogEntry(device_id=int(m.device_id), timestamp=float(m.timestamp),
                               event=m.event, data=m.data or {}, id=int(m.id))

        merged = heapq.merge(*(stream(d) for d in device_ids),
                             key=lambda e: e.timestamp, reverse=reverse)
        return list(itertools.islice(merged, count))
