"""The cloud DVR on AWS: DynamoDB stores (streams, segment index, episodes) and S3 storage.

Tables (template.yaml declares the same; tests/aws check they agree):

* DvrStreams   ``name`` (S); GSI by-device (``device_id`` N). Tombstones included.
* DvrSegments  ``stream`` (S) + ``segment_id`` (S, ``{start_ms:013d}-{token}``); the item
               ``segment_id="#usage"`` holds the stream's byte and segment counters, updated
               in the same transaction as the rows; ``fragments`` is the packed table (Binary).
* DvrEpisodes  ``episode_id`` (N); GSI by-media (``media`` S, ``opened_at`` N).
* DvrGc        ``item`` (S, ``root`` NUL ``key``): objects whose rows are gone but whose
               deletion is unconfirmed.
"""
from __future__ import annotations

import array
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from fleetcam.adapters.aws.gateway_dynamodb import bump_fleet_marker
from fleetcam.adapters.aws.models import (DvrEpisodesModel, DvrGcModel, DvrSegmentsModel,
                                          DvrStreamsModel)
from fleetcam.adapters.local.dvr import (episode_from_json, gc_items, stream_from_json,
                                         stream_to_json)
from fleetcam.domain.dvr import (RANGE_CHUNK_MS, chunk_add, chunk_ids, chunk_ranges,
                                 join_chunks, merge_ranges, pack_ranges, unpack_ranges)
from fleetcam.domain.dvr import (MAX_SEGMENT_MS, DvrStream, Episode, EpisodeQuery,
                                 SegmentEntry, Thumbs, is_segment_id, pack_fragments,
                                 unpack_fragments)
from fleetcam.errors import Invalid, NotFound

USAGE = "#usage"
WATCH = "#watch"
"""Sorts before every segment id (``#`` < ``0``)."""
FIRST = "0"


def indexed_segment(record: dict[str, Any]) -> tuple[str, str] | None:
    """(stream, segment_id) of a DvrSegments stream record that adds a segment's row (the
    DVR thumbnail function's trigger, docs/dvr.md "Thumbnails"), or None for any other
    record: a modification or removal, or an item kept beside the rows (``#usage``, range
    chunks, export jobs, the ``#watch`` marks)."""
    if record.get("eventName") != "INSERT":
        return None
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    stream = (keys.get("stream") or {}).get("S")
    segment_id = (keys.get("segment_id") or {}).get("S")
    if not isinstance(stream, str) or not isinstance(segment_id, str) or \
            not stream or stream.startswith("#") or not is_segment_id(segment_id):
        return None
    return stream, segment_id


def _pad(ms: int) -> str:
    return f"{max(0, ms):013d}"


def _tx_connection() -> Any:
    return DvrSegmentsModel._get_connection().connection


class DynamoDvrStreamStore:
    def put(self, stream: DvrStream) -> None:
        DvrStreamsModel(name=stream.name, device_id=stream.device_id,
                        data=stream_to_json(stream)).save()
        bump_fleet_marker()  # the gateway copies read the streams again

    def get(self, name: str, *, include_deleted: bool = False) -> DvrStream | None:
        try:
            s = stream_from_json(DvrStreamsModel.get(name, consistent_read=True).data)
        except DoesNotExist:
            return None
        return s if include_deleted or s.deleted_at is None else None

    def list(self, *, include_deleted: bool = False) -> list[DvrStream]:
        out = [stream_from_json(m.data) for m in DvrStreamsModel.scan()]
        return sorted((s for s in out if include_deleted or s.deleted_at is None),
                      key=lambda s: s.name)

    def of_device(self, device_id: int) -> list[DvrStream]:
        out = [stream_from_json(m.data) for m in DvrStreamsModel.by_device.query(device_id)]
        return sorted((s for s in out if s.deleted_at is None),
                      key=lambda s: (s.channel, s.name))

    def purge(self, name: str) -> None:
        DvrStreamsModel(name=name).delete()
        bump_fleet_marker()


def _segment(m: DvrSegmentsModel) -> SegmentEntry:
    d = m.data or {}
    return SegmentEntry(stream=m.stream, segment_id=m.segment_id, root=m.root or "",
                        key=m.key or "", init_key=d["init_key"], start_ms=int(m.start_ms or 0),
                        end_ms=int(m.end_ms or 0), size=int(m.size or 0), codec=d["codec"],
                        width=d["width"], height=d["height"],
                        fragments=unpack_fragments(bytes(m.fragments or b"")),
                        source=d["source"], created_at=d["created_at"],
                        tracks=tuple(d["tracks"]), thumbs=Thumbs.unpack(m.thumbs))


def _segment_model(s: SegmentEntry) -> DvrSegmentsModel:
    return DvrSegmentsModel(
        stream=s.stream, segment_id=s.segment_id, start_ms=s.start_ms, end_ms=s.end_ms,
        size=s.size, root=s.root, key=s.key, fragments=pack_fragments(s.fragments),
        thumbs=s.thumbs.pack() if s.thumbs is not None else None,
        data={"init_key": s.init_key, "codec": s.codec, "width": s.width, "height": s.height,
              "source": s.source, "created_at": s.created_at, "tracks": list(s.tracks)})


RANGES = "#ranges#"
"""Prefix of the items holding merged ranges per chunk (sorts before every segment id)."""
TX_ATTEMPTS = 8


def _chunk_id(chunk: int) -> str:
    return f"{RANGES}{chunk:08d}"


def _put_chunk(tx: TransactWrite, stream: str, chunk: int,
               ranges: list[tuple[int, int]]) -> None:
    if ranges:
        tx.save(DvrSegmentsModel(stream=stream, segment_id=_chunk_id(chunk),
                                 ranges=pack_ranges(ranges)))
    else:
        tx.delete(DvrSegmentsModel(stream=stream, segment_id=_chunk_id(chunk)))


def _same_version(usage: DvrSegmentsModel | None) -> Any:
    """The usage item still at the version read (or still without one)."""
    if usage is None or usage.version is None:
        return DvrSegmentsModel.version.does_not_exist()
    return DvrSegmentsModel.version == int(usage.version)


def _codes(e: TransactWriteError) -> list[str | None]:
    return [getattr(r, "code", None) if r else None for r in (e.cancellation_reasons or [])]


def _gc_item(root: str, key: str) -> str:
    return f"{root}\x00{key}"


INTENT = "?"
"""Prefix of intent items in the DvrGc table (an object about to be stored)."""


class DynamoDvrIndex:
    def add(self, segment: SegmentEntry) -> bool:
        """The row, the usage counters and (once the stream's chunks hold every row) the
        merged ranges of its weeks in one transaction, conditional on the usage item's
        version: a concurrent writer makes it read the chunks again."""
        for _ in range(TX_ATTEMPTS):
            usage = self._usage(segment.stream)
            maintain = usage is None or bool(usage.ranges_ok) or not usage.segments
            chunks = {k: chunk_add(self._chunk(segment.stream, k),
                                   (segment.start_ms, segment.end_ms), k)
                      for k in (chunk_ids(segment.start_ms, segment.end_ms) if maintain else ())}
            actions = [DvrSegmentsModel.bytes.add(segment.size),
                       DvrSegmentsModel.segments.add(1), DvrSegmentsModel.version.add(1)]
            if maintain:
                actions.append(DvrSegmentsModel.ranges_ok.set(True))
            try:
                with TransactWrite(connection=_tx_connection()) as tx:
                    tx.save(_segment_model(segment),
                            condition=DvrSegmentsModel.segment_id.does_not_exist())
                    tx.update(DvrSegmentsModel(stream=segment.stream, segment_id=USAGE),
                              actions=actions, condition=_same_version(usage))
                    tx.delete(DvrGcModel(item=INTENT + _gc_item(segment.root, segment.key)))
                    for k, ranges in chunks.items():
                        _put_chunk(tx, segment.stream, k, ranges)
            except TransactWriteError as e:
                if "ConditionalCheckFailed" not in _codes(e):
                    raise
                if self._exists(segment.stream, segment.segment_id):
                    return False  # (which condition failed is not relied on: moto misplaces it)
                continue  # the stream changed meanwhile: read again
            return True
        raise RuntimeError(f"dvr index: {segment.stream} kept changing; row not added")

    @staticmethod
    def _exists(stream: str, segment_id: str) -> bool:
        try:
            DvrSegmentsModel.get(stream, segment_id, consistent_read=True,
                                 attributes_to_get=["segment_id"])
        except DoesNotExist:
            return False
        return True

    @staticmethod
    def _usage(stream: str) -> DvrSegmentsModel | None:
        try:
            return DvrSegmentsModel.get(stream, USAGE, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def _chunk(stream: str, chunk: int) -> list[tuple[int, int]]:
        try:
            m = DvrSegmentsModel.get(stream, _chunk_id(chunk), consistent_read=True)
        except DoesNotExist:
            return []
        return unpack_ranges(bytes(m.ranges or b""))

    def ranges(self, stream: str) -> tuple[array.array[int], array.array[int]]:
        for _ in range(TX_ATTEMPTS):
            items = list(DvrSegmentsModel.query(
                stream, DvrSegmentsModel.segment_id.startswith(RANGES), consistent_read=True))
            usage = self._usage(stream)
            if usage is None or usage.ranges_ok or not usage.segments:
                return join_chunks(bytes(m.ranges or b"") for m in items)
            # rows indexed before chunks existed: build the chunks once, if nothing changed
            spans = self.spans(stream)
            ks = sorted({k for a, b in spans for k in chunk_ids(a, b)})
            stale = {m.segment_id for m in items} - {_chunk_id(k) for k in ks}
            ops = [*((k, None) for k in ks), *((None, sid) for sid in sorted(stale))]
            try:
                for i in range(0, max(len(ops), 1), 90):  # a transaction holds 100 items
                    with TransactWrite(connection=_tx_connection()) as tx:
                        for k, sid in ops[i:i + 90]:
                            if k is not None:
                                _put_chunk(tx, stream, k, chunk_ranges(spans, k))
                            else:
                                tx.delete(DvrSegmentsModel(stream=stream, segment_id=sid))
                        if i + 90 >= len(ops):
                            tx.update(DvrSegmentsModel(stream=stream, segment_id=USAGE),
                                      actions=[DvrSegmentsModel.ranges_ok.set(True)],
                                      condition=_same_version(usage))
            except TransactWriteError as e:
                if "ConditionalCheckFailed" in _codes(e):
                    continue
                raise
        starts, ends = array.array("q"), array.array("q")
        for r in merge_ranges(self.spans(stream)):  # still changing: answer from the rows
            starts.append(r.start_ms)
            ends.append(r.end_ms)
        return starts, ends

    def _query(self, stream: str, start_ms: int | None, end_ms: int | None,
               after: str | None, limit: int | None = None,
               attributes: list[str] | None = None) -> Iterator[DvrSegmentsModel]:
        lo = _pad(start_ms - MAX_SEGMENT_MS) if start_ms is not None else FIRST
        if after is not None and after >= lo:
            lo = after + "\x00"
        hi = _pad(end_ms) if end_ms is not None else "\x7f"
        cond = DvrSegmentsModel.segment_id.between(lo, hi)
        filt = None
        if start_ms is not None:
            filt = DvrSegmentsModel.end_ms > start_ms
        if end_ms is not None:
            c = DvrSegmentsModel.start_ms < end_ms
            filt = c if filt is None else filt & c
        n = 0
        for m in DvrSegmentsModel.query(stream, cond, filter_condition=filt,
                                        consistent_read=True, attributes_to_get=attributes):
            yield m
            n += 1
            if limit is not None and n >= limit:
                return

    def segments(self, stream: str, start_ms: int | None = None, end_ms: int | None = None,
                 *, limit: int = 1000, after: str | None = None) -> list[SegmentEntry]:
        return [_segment(m) for m in self._query(stream, start_ms, end_ms, after, limit)]

    def spans(self, stream: str, start_ms: int | None = None,
              end_ms: int | None = None) -> list[tuple[int, int]]:
        return [(int(m.start_ms), int(m.end_ms)) for m in self._query(
            stream, start_ms, end_ms, None, attributes=["start_ms", "end_ms", "segment_id"])]

    def usage(self, stream: str) -> tuple[int, int]:
        try:
            m = DvrSegmentsModel.get(stream, USAGE, consistent_read=True)
        except DoesNotExist:
            return 0, 0
        return int(m.bytes or 0), int(m.segments or 0)

    def version(self, stream: str) -> int:
        try:
            m = DvrSegmentsModel.get(stream, USAGE, consistent_read=True,
                                     attributes_to_get=["version"])
        except DoesNotExist:
            return 0
        return int(m.version or 0)

    def streams(self) -> list[str]:
        return sorted(m.stream for m in DvrSegmentsModel.scan(
            (DvrSegmentsModel.segment_id == USAGE) & (DvrSegmentsModel.segments > 0)))

    def remove(self, stream: str, segment_ids: Iterable[str]) -> list[SegmentEntry]:
        gone: list[SegmentEntry] = []
        for sid in dict.fromkeys(segment_ids):
            try:
                seg = _segment(DvrSegmentsModel.get(stream, sid, consistent_read=True))
            except DoesNotExist:
                continue
            if self._remove_one(stream, seg):
                gone.append(seg)
        return gone

    def _remove_one(self, stream: str, seg: SegmentEntry) -> bool:
        for _ in range(TX_ATTEMPTS):
            usage = self._usage(stream)
            chunks = {}
            if usage is not None and usage.ranges_ok:
                for k in chunk_ids(seg.start_ms, seg.end_ms):
                    lo = k * RANGE_CHUNK_MS
                    spans = [sp for sp in self._spans_ids(stream, lo, lo + RANGE_CHUNK_MS)
                             if sp[2] != seg.segment_id]
                    chunks[k] = chunk_ranges([(a, b) for a, b, _ in spans], k)
            try:
                with TransactWrite(connection=_tx_connection()) as tx:
                    tx.delete(DvrSegmentsModel(stream=stream, segment_id=seg.segment_id),
                              condition=DvrSegmentsModel.segment_id.exists())
                    for root, key in gc_items(seg):
                        tx.save(DvrGcModel(item=_gc_item(root, key), queued=seg.created_at))
                    tx.update(DvrSegmentsModel(stream=stream, segment_id=USAGE),
                              actions=[DvrSegmentsModel.bytes.add(-seg.size),
                                       DvrSegmentsModel.segments.add(-1),
                                       DvrSegmentsModel.version.add(1)],
                              condition=_same_version(usage))
                    for k, ranges in chunks.items():
                        _put_chunk(tx, stream, k, ranges)
            except TransactWriteError as e:
                if "ConditionalCheckFailed" not in _codes(e):
                    raise
                if not self._exists(stream, seg.segment_id):
                    return False  # removed meanwhile by someone else
                continue  # the stream changed meanwhile: read again
            return True
        raise RuntimeError(f"dvr index: {stream} kept changing; row not removed")

    def _spans_ids(self, stream: str, start_ms: int, end_ms: int) -> list[tuple[int, int, str]]:
        return [(int(m.start_ms), int(m.end_ms), m.segment_id) for m in self._query(
            stream, start_ms, end_ms, None, attributes=["start_ms", "end_ms", "segment_id"])]

    def pending_deletions(self, limit: int = 1000) -> list[tuple[str, str]]:
        out = []
        for m in DvrGcModel.scan(~DvrGcModel.item.startswith(INTENT)):
            root, _, key = m.item.partition("\x00")
            out.append((root, key))
            if len(out) >= limit:
                break
        return out

    def intend(self, root: str, key: str, at: float) -> None:
        DvrGcModel(item=INTENT + _gc_item(root, key), queued=at).save()

    def abandoned(self, before: float, limit: int = 1000) -> list[tuple[str, str]]:
        out = []
        for m in DvrGcModel.scan(DvrGcModel.item.startswith(INTENT)
                                 & (DvrGcModel.queued < before)):
            root, _, key = m.item[len(INTENT):].partition("\x00")
            out.append((root, key))
            if len(out) >= limit:
                break
        return out

    def drop_intents(self, items: Iterable[tuple[str, str]]) -> None:
        with DvrGcModel.batch_write() as batch:
            for root, key in items:
                batch.delete(DvrGcModel(item=INTENT + _gc_item(root, key)))

    def deletion_done(self, items: Iterable[tuple[str, str]]) -> None:
        with DvrGcModel.batch_write() as batch:
            for root, key in items:
                batch.delete(DvrGcModel(item=_gc_item(root, key)))


    def set_thumbs(self, stream: str, segment_id: str, root: str,
                   thumbs: Thumbs) -> Thumbs | None:
        row = DvrSegmentsModel(stream=stream, segment_id=segment_id)
        try:
            with TransactWrite(connection=_tx_connection()) as tx:
                tx.update(row, actions=[DvrSegmentsModel.thumbs.set(thumbs.pack())],
                          condition=DvrSegmentsModel.segment_id.exists()
                          & DvrSegmentsModel.thumbs.does_not_exist())
                if thumbs.key:
                    tx.delete(DvrGcModel(item=INTENT + _gc_item(root, thumbs.key)))
        except TransactWriteError as e:
            codes = [getattr(r, "code", None) if r else None
                     for r in (e.cancellation_reasons or [])]
            if "ConditionalCheckFailed" not in codes:
                raise
            try:
                m = DvrSegmentsModel.get(stream, segment_id, consistent_read=True)
            except DoesNotExist:
                return None
            return Thumbs.unpack(m.thumbs)
        return thumbs

    def watch(self, stream: str, until: float) -> None:
        """One item per stream in the WATCH partition (not a stream name: names start with
        a letter or digit), so ``watched`` reads the marks alone."""
        DvrSegmentsModel(stream=WATCH, segment_id=stream, watched_until=until).save()
        bump_fleet_marker()  # recorders switch to short objects now, not at their next read

    def watched(self, now: float) -> list[str]:
        """One Query of the WATCH partition (it was a Scan of every segment row, by each
        gateway copy every 10 s)."""
        return sorted(m.segment_id for m in DvrSegmentsModel.query(
            WATCH, filter_condition=DvrSegmentsModel.watched_until > now))


class DynamoEpisodeStore:
    def put(self, episode: Episode, *, create_only: bool = False) -> bool:
        m = DvrEpisodesModel(episode_id=episode.episode_id, media=episode.media,
                             opened_at=episode.opened_at, data=episode.as_json())
        try:
            m.save(condition=DvrEpisodesModel.episode_id.does_not_exist() if create_only
                   else None)
        except PutError as e:
            if create_only and "ConditionalCheckFailed" in str(e):
                return False
            raise
        return True

    def get(self, episode_id: int) -> Episode | None:
        try:
            return episode_from_json(DvrEpisodesModel.get(episode_id, consistent_read=True).data)
        except DoesNotExist:
            return None

    def delete(self, episode_id: int) -> bool:
        if self.get(episode_id) is None:
            return False
        DvrEpisodesModel(episode_id=episode_id).delete()
        return True

    def query(self, q: EpisodeQuery) -> list[Episode]:
        if q.media:
            found = [episode_from_json(m.data) for media in q.media
                     for m in DvrEpisodesModel.by_media.query(media)]
        else:
            found = [episode_from_json(m.data) for m in DvrEpisodesModel.scan()]
        out = []
        for e in sorted(found, key=lambda e: e.episode_id):
            if q.cursor is not None and e.episode_id <= q.cursor:
                continue
            if q.episode_type and e.episode_type not in q.episode_type:
                continue
            if q.time_to is not None and e.opened_at >= q.time_to:
                continue
            if q.time_from is not None and e.closed_at is not None and \
                    e.closed_at <= q.time_from:
                continue
            out.append(e)
            if len(out) >= q.limit:
                break
        return out

    def overlapping(self, media: str, start_ms: int, end_ms: int) -> list[Episode]:
        found = [episode_from_json(m.data) for m in DvrEpisodesModel.by_media.query(
            media, DvrEpisodesModel.opened_at < end_ms)]
        return [e for e in found if e.closed_at is None or e.closed_at > start_ms]


MEDIA_BUCKET_PREFIXES = ("media", "raw", "live", "tmp", "previews", "dvr-downloads")
"""The media bucket's own prefixes (template.yaml: the ingest notifications on media/ and
raw/, lifecycle rules on raw/, live/, previews/, media/ and dvr-downloads/): DVR segments
there would be ingested as files or expired by a rule."""


class S3DvrStorage:
    """Roots are ``prefix`` (in the media bucket) or ``s3://bucket/prefix`` (an allowed
    bucket). Objects go up in one PutObject each (never multipart: a multipart upload costs
    2 + parts requests, docs/dvr.md)."""

    def __init__(self, media_bucket: str, client: Any, allowed_buckets: Iterable[str] = ()):
        self.media_bucket = media_bucket
        self.s3 = client
        self.allowed = {media_bucket, *allowed_buckets}

    def _split(self, root: str) -> tuple[str, str]:
        if not isinstance(root, str) or not root.strip() or len(root) > 512 or "\x00" in root:
            raise Invalid("dvr.root must be a key prefix or s3://bucket/prefix",
                          field="dvr.root")
        if root.startswith("s3://"):
            bucket, _, prefix = root[5:].partition("/")
            if bucket not in self.allowed:
                raise Invalid(f"bucket {bucket!r} is not allowed for DVR roots "
                              "(FLEETCAM_DVR_BUCKETS)", field="dvr.root")
        elif "://" in root:
            raise Invalid("dvr.root must be a key prefix or s3://bucket/prefix",
                          field="dvr.root")
        else:
            bucket, prefix = self.media_bucket, root
        prefix = prefix.strip("/")
        parts = prefix.split("/") if prefix else []
        if any(p in ("", ".", "..") for p in parts):
            raise Invalid("dvr.root may not contain empty, '.' or '..' parts", field="dvr.root")
        if bucket == self.media_bucket and not parts:
            raise Invalid("dvr.root may not be the media bucket's top: give it a prefix of "
                          "its own (dvr/ by default)", field="dvr.root")
        if bucket == self.media_bucket and parts[0] in MEDIA_BUCKET_PREFIXES:
            raise Invalid(f"dvr.root may not be under {parts[0]}/ (the media store's: its "
                          "notifications and lifecycle rules act there)", field="dvr.root")
        return bucket, prefix

    def resolve(self, root: str) -> str:
        bucket, prefix = self._split(root)
        return f"s3://{bucket}/{prefix}"

    def _where(self, root: str, key: str) -> tuple[str, str]:
        bucket, prefix = self._split(root)
        if ".." in key.split("/") or key.startswith("/"):
            raise Invalid(f"object key escapes its root: {key[:80]!r}")
        return bucket, f"{prefix}/{key}" if prefix else key

    def put(self, root: str, key: str, data: bytes, *, content_type: str) -> int:
        bucket, k = self._where(root, key)
        self.s3.put_object(Bucket=bucket, Key=k, Body=data, ContentType=content_type)
        return len(data)

    def read(self, root: str, key: str, start: int = 0,
             end: int | None = None) -> Iterator[bytes]:
        bucket, k = self._where(root, key)
        kw: dict[str, Any] = {}
        if start or end is not None:
            kw["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.s3.get_object(Bucket=bucket, Key=k, **kw)["Body"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"no object {key}") from None
            raise
        return iter(lambda: body.read(256 * 1024), b"")

    def exists(self, root: str, key: str) -> bool:
        bucket, k = self._where(root, key)
        try:
            self.s3.head_object(Bucket=bucket, Key=k)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, root: str, key: str) -> None:
        bucket, k = self._where(root, key)
        self.s3.delete_object(Bucket=bucket, Key=k)
