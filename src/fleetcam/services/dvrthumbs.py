"""The DVR's segment-indexed handler: a segment's index row was written, so its thumbnails
are made (the first keyframe of each minute) and stored as ONE object of concatenated JPEGs
beside it, recorded in the segment's index row (docs/dvr.md, "Thumbnails").

Triggered by the index, never by the object store, so every root gets thumbnails: on AWS the
DVR thumbnail Lambda reads the index table's stream (a new row's keys); locally the ingest
worker gets an object-created event staged in the same transaction as the row. Never on the
gateway's recording path. Both deliver at least once and a run can die anywhere, so: the
object's key carries a digest of its bytes, an intent is recorded before it is stored, and
the row names it in a conditional write that also clears the intent. A duplicate finds the
row done; a loser (or a run whose segment was deleted meanwhile) deletes its own object; a
crash leaves an intent, whose object the sweeper deletes after an hour.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from fleetcam.domain import dvr
from fleetcam.errors import CorruptMedia, FleetcamError
from fleetcam.ports import Clock, DvrIndex, DvrStorage, ObjectCreated

log = logging.getLogger(__name__)
INIT_CACHE = 64
BACKFILL_WINDOW_S = 25 * 3600
"""``backfill`` looks at rows that started within this many seconds (a daily run overlaps
the previous one by an hour)."""
BACKFILL_SETTLE_S = 3600
"""...and were stored at least this long ago: the trigger has had its retries by then (a row
it is still working on would only make a duplicate, which costs a GET and a PUT)."""
BACKFILL_PAGE = 200
THUMBS_CONTENT_TYPE = "video/x-motion-jpeg"
"""Concatenated JPEGs (what ffmpeg's ``mjpeg`` demuxer reads)."""


class ThumbnailWriter:
    """Makes and stores a segment's thumbnails.

    Args:
        index, storage, clock: the DVR's ports.
        jpeg: ``(init, fragment bytes) -> JPEG`` of the fragment's first picture (PyAV).
        max_reads: ranged reads of the segment object per event at most (None: one per
            thumbnail). S3 bills each GET: on AWS one read spans the keyframes (docs/dvr.md).
    Both entry points run only once the segment's row exists (its object was stored before
    it): a missing row means the segment was deleted since, and there is nothing to do.
    """

    def __init__(self, index: DvrIndex, storage: DvrStorage, clock: Clock,
                 jpeg: Callable[[bytes, bytes], bytes], *, max_reads: int | None = None
                 ) -> None:
        self.index, self.storage, self.clock, self.jpeg = index, storage, clock, jpeg
        self.max_reads = max_reads
        self._inits: dict[tuple[str, str], bytes] = {}

    def handle(self, event: ObjectCreated) -> int | None:
        """The object-created event staged with a row (the local runtime): see ``indexed``;
        None also when the event is not a segment's or names another object than its row."""
        parsed = dvr.parse_segment_key(event.key)
        if parsed is None:
            return None
        _, stream, segment_id = parsed
        seg = self._find(stream, segment_id)
        if seg is not None and not (event.key == seg.key or event.key.endswith("/" + seg.key)):
            log.warning("dvr thumbnails: %s is not the object of %s/%s (%s); skipped",
                        event.key, stream, segment_id, seg.key)
            return None
        return self._row_done(seg)

    def indexed(self, stream: str, segment_id: str) -> int | None:
        """Thumbnails of the segment whose row was just written (on AWS: a new row's keys,
        from the index table's stream): how many were stored now (0: done already, or none
        decodable), None when the row is gone (the segment was deleted since).

        Raises:
            Exception: storage or index failures (retry); nothing half-recorded is left.
        """
        if not dvr.is_segment_id(segment_id):
            return None
        return self._row_done(self._find(stream, segment_id))

    def backfill(self, streams: Iterable[str], *, budget: float,
                 window_s: float = BACKFILL_WINDOW_S,
                 settle_s: float = BACKFILL_SETTLE_S) -> tuple[int, int]:
        """Thumbnails of the rows their trigger missed (on AWS: records that failed every
        retry, or rows indexed before the stream was on): rows of ``streams`` that started in
        the last ``window_s``, were stored more than ``settle_s`` ago and have no ``thumbs``,
        made as ``indexed`` makes them, for ``budget`` seconds at most. Returns (segments
        done, segments left for the next run). A poison segment is logged and skipped;
        storage failures raise (the next run tries again)."""
        now = self.clock.now()
        start_ms, end_ms = int((now - window_s) * 1000), int((now - settle_s) * 1000)
        deadline = time.monotonic() + budget
        done = left = 0
        for stream in streams:
            after: str | None = None
            while True:
                rows = self.index.segments(stream, start_ms, end_ms, limit=BACKFILL_PAGE,
                                           after=after)
                for seg in rows:
                    if seg.thumbs is not None or seg.created_at > now - settle_s:
                        continue
                    if time.monotonic() >= deadline:
                        left += 1
                        continue
                    try:
                        self._make(seg)
                    except FleetcamError as e:
                        log.warning("dvr %s: no thumbnails for %s: %s", stream,
                                    seg.segment_id, e.reason)
                        continue
                    done += 1
                if len(rows) < BACKFILL_PAGE:
                    break
                after = rows[-1].segment_id
        return done, left

    def _row_done(self, seg: dvr.SegmentEntry | None) -> int | None:
        if seg is None:
            return None  # deleted since (the row comes after its object, never before)
        if seg.thumbs is not None:
            return 0  # a repeated event: done already, no request to the store
        return self._make(seg)

    def _find(self, stream: str, segment_id: str) -> dvr.SegmentEntry | None:
        start = int(segment_id.split("-", 1)[0])
        for s in self.index.segments(stream, start, start + 1, limit=50):
            if s.segment_id == segment_id:
                return s
        return None

    def _init(self, seg: dvr.SegmentEntry) -> bytes:
        k = (seg.root, seg.init_key)
        data = self._inits.get(k)
        if data is None:  # content-addressed: never changes, so kept across events
            data = b"".join(self.storage.read(seg.root, seg.init_key))
            if len(self._inits) >= INIT_CACHE:
                self._inits.pop(next(iter(self._inits)))
            self._inits[k] = data
        return data

    def _make(self, seg: dvr.SegmentEntry) -> int:
        frags = dvr.thumb_times(seg)
        jpegs: list[tuple[int, bytes]] = []
        if frags:
            init = self._init(seg)
            for f, data in self._fragments(seg, frags):
                try:
                    jpegs.append((f.start_ms, self.jpeg(init, data)))
                except CorruptMedia as e:  # that minute has no thumbnail; the rest do
                    log.warning("dvr %s: no thumbnail at %d: %s", seg.stream, f.start_ms,
                                e.reason)
        if not jpegs:
            self.index.set_thumbs(seg.stream, seg.segment_id, seg.root, dvr.Thumbs(""))
            return 0
        blob = b"".join(j for _, j in jpegs)
        items, offset = [], 0
        for at, j in jpegs:
            items.append(dvr.Thumb(at, offset, len(j)))
            offset += len(j)
        key = dvr.thumbs_key(seg.key, hashlib.sha1(blob).hexdigest()[:12])
        self.index.intend(seg.root, key, self.clock.now())
        self.storage.put(seg.root, key, blob, content_type=THUMBS_CONTENT_TYPE)
        got = self.index.set_thumbs(seg.stream, seg.segment_id, seg.root,
                                    dvr.Thumbs(key, tuple(items)))
        if got is None or got.key != key:  # segment deleted meanwhile, or another run won
            self.storage.delete(seg.root, key)
            self.index.drop_intents([(seg.root, key)])
            return 0
        return len(items)

    def _fragments(self, seg: dvr.SegmentEntry, frags: list[dvr.FragmentEntry]
                   ) -> Iterator[tuple[dvr.FragmentEntry, bytes]]:
        """Each fragment's bytes, in at most ``max_reads`` ranged reads of the object."""
        spans = [(f.offset, f.offset + f.size) for f in frags]
        for start, end in dvr.plan_reads(spans, self.max_reads):
            inside = [f for f in frags if start <= f.offset < end]
            chunks = self.storage.read(seg.root, seg.key, start, end - 1)
            yield from zip(inside, _slices(chunks, start,
                                           [(f.offset, f.offset + f.size) for f in inside]))


def _slices(chunks: Iterable[bytes], base: int,
            wanted: list[tuple[int, int]]) -> Iterator[bytes]:
    """The ``wanted`` byte ranges (sorted, absolute) of a stream that starts at ``base``,
    keeping only those bytes in memory (the gaps between them are read and dropped)."""
    pos, i, buf = base, 0, bytearray()
    for chunk in chunks:
        end = pos + len(chunk)
        while i < len(wanted):
            a, b = wanted[i]
            lo, hi = max(a, pos), min(b, end)
            if hi > lo:
                buf += chunk[lo - pos:hi - pos]
            if b <= end:
                yield bytes(buf)
                buf.clear()
                i += 1
                continue
            break
        pos = end
        if i >= len(wanted):
            return
    if i < len(wanted):
        raise CorruptMedia(f"segment object ends at {pos}, before byte {wanted[i][1]}")

