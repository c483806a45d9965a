"""The cloud DVR's data model: streams, stored segments and their fragments, episodes, ranges.

Pure: no I/O. Times are UTC milliseconds since the epoch (``*_ms``) unless a name says
otherwise; intervals are half-open ``[start, end)``. docs/dvr.md describes the storage layout
these types index; keep both stable (extend, don't rename): the read side builds on them.
"""
from __future__ import annotations

import array
import bisect
import itertools
import json
import re
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetcam.errors import Invalid

# -- streams --------------------------------------------------------------------------------
STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A stream name: a path segment (no ``/``), so ``/{name}/index.m3u8`` is unambiguous."""
DEFAULT_NAME = re.compile(r"^(?P<device_id>[1-9]\d{0,11})-(?P<channel>\d{1,3})$")
SOURCE_URL = re.compile(r"^jt1078://(?P<device_id>[1-9]\d{0,11})/(?P<channel>\d{1,3})$")
MAX_CHANNEL = 255
MAX_EXPIRATION = 10 * 365 * 86400
DEFAULT_EPISODES_EXPIRATION = 30 * 86400
"""How long episodes keep protecting a deleted stream's footage (Flussonic:
``episodes_expiration``)."""


def default_stream_name(device_id: int, channel: int) -> str:
    """``{device_id}-{channel}``: the name of a device channel's stream unless configured."""
    return f"{device_id}-{channel}"


def source_url(device_id: int, channel: int) -> str:
    """The stream's input, in Flussonic's ``inputs[].url`` form."""
    return f"jt1078://{device_id}/{channel}"


def parse_source(url: str) -> tuple[int, int]:
    """(device_id, channel) of a ``jt1078://{device_id}/{channel}`` input URL.

    Raises:
        Invalid: any other form.
    """
    m = SOURCE_URL.match(url)
    if not m or not 1 <= int(m["channel"]) <= MAX_CHANNEL:
        raise Invalid(f"input url must be jt1078://{{device_id}}/{{channel}} "
                      f"(channel 1-{MAX_CHANNEL}), not {url[:80]!r}", field="inputs")
    return int(m["device_id"]), int(m["channel"])


def check_stream_name(name: str) -> str:
    """Raises Invalid unless ``name`` is a valid stream name."""
    if not STREAM_NAME.match(name):
        raise Invalid("stream name must be 1-128 characters of A-Z a-z 0-9 _ . - "
                      "starting with a letter or digit", field="name")
    return name


@dataclass(frozen=True)
class DvrConfig:
    """A stream's ``dvr`` section, as Flussonic names it.

    Attributes:
        root: where segments go, as given: locally a folder (relative to the data folder, or
            absolute under an allowed root); on AWS a key prefix in the media bucket or
            ``s3://bucket/prefix``. Resolved by the DvrStorage adapter.
        expiration: seconds of archive kept (0: no age limit).
        storage_limit: bytes of archive kept, oldest deleted first (0: no size limit).
        episodes_expiration: seconds that episodes keep protecting footage once the stream
            itself is deleted.
    """

    root: str
    expiration: int = 0
    storage_limit: int = 0
    episodes_expiration: int = DEFAULT_EPISODES_EXPIRATION

    def as_json(self) -> dict[str, Any]:
        return {"root": self.root, "expiration": self.expiration,
                "storage_limit": self.storage_limit,
                "episodes_expiration": self.episodes_expiration}


@dataclass(frozen=True)
class DvrStream:
    """One recorded (or configured) device channel.

    Attributes:
        name: the stream name (``{device_id}-{channel}`` by default).
        device_id, channel: the source.
        dvr: recording settings; None: configured but not recording.
        created_at, updated_at: seconds (server time).
        deleted_at: seconds; set once DELETE removed the stream. The row stays (a tombstone)
            while episodes still protect its footage, so retention can finish the clean-up.
        title: free text (Flussonic's ``title``).
        read_salt: random, part of the stream's read token; replaced to revoke that token, and
            new whenever the stream is (re)created.
    """

    name: str
    device_id: int
    channel: int
    dvr: DvrConfig | None
    created_at: float
    updated_at: float
    deleted_at: float | None = None
    title: str = ""
    read_salt: str = ""

    @property
    def recording(self) -> bool:
        return self.dvr is not None and self.deleted_at is None

    def with_changes(self, **changes: Any) -> DvrStream:
        return replace(self, **changes)


# -- segments and fragments ----------------------------------------------------------------
TIMESCALE = 1000
"""Ticks per second of every stored track (tfdt and sample durations are milliseconds)."""
VIDEO_TRACK = 1
AUDIO_TRACK = 2
MAX_SEGMENT_MS = 3600_000
"""No segment spans more than this (bounds the index's overlap queries)."""
SOURCE_CLOUD = "cloud"
"""Recorded continuously by the gateway."""
SOURCE_DEVICE = "device"
"""A clip fetched from the device's SD card (request_video) and folded into the archive."""


@dataclass(frozen=True)
class FragmentEntry:
    """One fMP4 fragment (``moof`` + ``mdat``) inside a segment object.

    Attributes:
        start_ms: UTC ms of its first sample; equals the fragment's ``tfdt`` (timescale 1000).
        duration_ms: sum of its sample durations.
        offset: byte offset of its ``moof`` in the segment object.
        size: bytes of ``moof`` + ``mdat``.
        moof_size: bytes of the ``moof`` box (the ``mdat`` header follows at
            ``offset + moof_size``; samples start 8 bytes after that).
        frames: samples (video access units) in it.
        keyframe: True when it starts with a keyframe (always, for the gateway's fragments).
    """

    start_ms: int
    duration_ms: int
    offset: int
    size: int
    moof_size: int
    frames: int
    keyframe: bool = True

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True)
class Thumb:
    """One stored thumbnail: a JPEG inside its segment's thumbnails object.

    Attributes:
        utc_ms: UTC ms of the keyframe it shows (a fragment's ``start_ms``).
        offset, size: where its bytes are in the thumbnails object.
    """

    utc_ms: int
    offset: int
    size: int


@dataclass(frozen=True)
class Thumbs:
    """A segment's stored thumbnails: one object of concatenated JPEGs (``key``, relative to
    the segment's root; empty when none could be made) and where each one is in it."""

    key: str
    items: tuple[Thumb, ...] = ()

    def pack(self) -> str:
        """The index row's ``thumbs`` field: compact JSON (about 25 bytes a thumbnail)."""
        return json.dumps({"key": self.key, "at": [[t.utc_ms, t.offset, t.size]
                                                   for t in self.items]},
                          separators=(",", ":"))

    @staticmethod
    def unpack(raw: str | None) -> Thumbs | None:
        if not raw:
            return None
        d = json.loads(raw)
        return Thumbs(str(d["key"]), tuple(Thumb(int(a), int(b), int(c)) for a, b, c in d["at"]))


@dataclass(frozen=True)
class SegmentEntry:
    """One stored segment object: fragments of one stream, back to back, no gaps inside.

    Attributes:
        stream: the stream name.
        segment_id: unique within the stream and sortable by time
            (``{start_ms:013d}-{8 hex}``); see ``segment_id()``.
        root: the stream's ``dvr.root`` when this was written (the object stays readable
            after the root changes).
        key: object key (path) relative to ``root``.
        init_key: key, relative to ``root``, of the init segment (``ftyp`` + ``moov``) these
            fragments need; shared by every segment with the same codec parameters.
        start_ms, end_ms: UTC ms, ``[start, end)``: first sample to the end of the last.
        size: bytes of the object.
        codec: RFC 6381 codec string of the video track (``avc1.64001f``).
        width, height: picture size.
        fragments: the fragment table, in order (offsets ascending, contiguous).
        source: ``"cloud"`` (continuous recording) or ``"device"`` (a request_video clip).
        created_at: seconds (server time) when the object was stored.
        tracks: track ids present (1 = video, 2 = audio).
        thumbs: its stored thumbnails, once the object-created handler made them (None
            before; ``DvrIndex.set_thumbs``).
    """

    stream: str
    segment_id: str
    root: str
    key: str
    init_key: str
    start_ms: int
    end_ms: int
    size: int
    codec: str
    width: int
    height: int
    fragments: Sequence[FragmentEntry]
    source: str = SOURCE_CLOUD
    created_at: float = 0.0
    tracks: tuple[int, ...] = (VIDEO_TRACK,)
    thumbs: Thumbs | None = None

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def fragments_in(self, start_ms: int, end_ms: int) -> list[FragmentEntry]:
        """Fragments overlapping ``[start_ms, end_ms)``."""
        return [f for f in self.fragments if f.start_ms < end_ms and f.end_ms > start_ms]


def segment_id(start_ms: int, token: str) -> str:
    """A segment's id: sortable by start time, unique thanks to ``token`` (8 hex chars)."""
    return f"{start_ms:013d}-{token}"


def segment_key(stream: str, start_ms: int, token: str) -> str:
    """``{stream}/{YYYY}/{MM}/{DD}/{HH}/{start_ms}-{token}.m4s`` (UTC), relative to the root."""
    y, mo, d, h = _utc_parts(start_ms)
    return f"{stream}/{y:04d}/{mo:02d}/{d:02d}/{h:02d}/{segment_id(start_ms, token)}.m4s"


def init_key(stream: str, digest: str) -> str:
    """``{stream}/init/{digest}.mp4``: content-addressed, written once, never overwritten."""
    return f"{stream}/init/{digest}.mp4"


SEGMENT_SUFFIX = ".m4s"
THUMBS_SUFFIX = ".mjpeg"
_SEGMENT_TAIL = re.compile(r"^(?:(?P<prefix>.*)/)?(?P<stream>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})/"
                           r"\d{4}/\d{2}/\d{2}/\d{2}/(?P<sid>\d{13}-[0-9a-zA-Z_-]{1,40})\.m4s$")


def parse_segment_key(key: str) -> tuple[str, str, str] | None:
    """(prefix before the stream, stream, segment_id) of a segment object's full key (an
    object-created event's), or None when ``key`` is not a segment's."""
    m = _SEGMENT_TAIL.match(key) if len(key) <= 2048 else None
    if m is None:
        return None
    return m["prefix"] or "", m["stream"], m["sid"]


_SEGMENT_ID = re.compile(r"\d{13}-[0-9a-zA-Z_-]{1,40}")


def is_segment_id(text: str) -> bool:
    """Whether ``text`` is a segment's id (``{start_ms:013d}-{token}``), not one of the other
    items an index keeps beside the rows (usage, range chunks, watch marks, export jobs)."""
    return _SEGMENT_ID.fullmatch(text) is not None


def thumbs_key(segment_key: str, digest: str) -> str:
    """``{segment key without .m4s}.{digest}.mjpeg``: the segment's thumbnails object, beside
    it. ``digest`` (of the bytes) makes two writers of one segment write two objects, so the
    index row never names an object that another writer replaced."""
    return f"{segment_key.removesuffix(SEGMENT_SUFFIX)}.{digest}{THUMBS_SUFFIX}"


THUMB_EVERY_MS = 60_000
"""Stored thumbnails: the first keyframe at or after each minute of recording."""


def thumb_times(seg: SegmentEntry) -> list[FragmentEntry]:
    """The fragments of ``seg`` whose keyframes are stored as thumbnails."""
    out, boundary = [], None
    for f in seg.fragments:
        b = f.start_ms - f.start_ms % THUMB_EVERY_MS
        if b != boundary and f.keyframe:
            out.append(f)
            boundary = b
    return out


def plan_reads(spans: Sequence[tuple[int, int]],
               max_reads: int | None) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` to read so that every span (sorted, disjoint) is covered
    in at most ``max_reads`` reads (None: one per span): the smallest gaps are read through.
    Each read is a request (S3 bills GETs); reading through a gap costs only transfer."""
    if not spans:
        return []
    runs = [list(sp) for sp in spans]
    if max_reads is None or len(runs) <= max_reads:
        return [(a, b) for a, b in runs]
    gaps = sorted(range(len(runs) - 1), key=lambda i: runs[i + 1][0] - runs[i][1])
    joined = set(gaps[:len(runs) - max(1, max_reads)])
    out: list[list[int]] = [runs[0]]
    for i in range(1, len(runs)):
        if i - 1 in joined:
            out[-1][1] = runs[i][1]
        else:
            out.append(runs[i])
    return [(a, b) for a, b in out]


def _utc_parts(ms: int) -> tuple[int, int, int, int]:
    import time

    t = time.gmtime(ms // 1000)
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour


_FRAG = struct.Struct(">qIQIIIB")  # v1 record: start, duration, offset, size, moof, frames, flags
_TABLE = struct.Struct(">BBIqqQQ")  # v2 header: magic, flags, count, start, end, offset, bytes
TABLE_MAGIC = 0xF2
"""First byte of a v2 packed table (a zlib stream, the v1 form, starts with 0x08-0x78)."""
REGULAR = 0x01
"""v2 flag: fragments contiguous in time and bytes, every size 8 bytes to MAX_FRAGMENT_BYTES."""
MAX_FRAGMENT_BYTES = 64 * 1024 * 1024
"""No stored fragment is larger (the gateway closes objects at 64 MB)."""
SAP = 0x90000000
"""``sidx`` reference flags of a fragment starting with a keyframe (starts_with_SAP, type 1)."""


def pack_fragments(fragments: Sequence[FragmentEntry]) -> bytes:
    """The fragment table as stored in index rows (docs/dvr.md, "Index rows").

    Version 2: a 38-byte header (count, first start, last end, first offset, total bytes,
    whether the table is regular), the ``sidx`` rows as they are (size, duration, SAP flags:
    12 bytes a fragment, exactly as a download's ``sidx`` lists them), then zlib over the
    other columns: ``moof`` sizes, frame counts, and only for an irregular table the start
    times and offsets (a regular one derives them by summing durations and sizes). A
    download's header is copied from these rows: no inflating, no object per fragment.
    """
    if isinstance(fragments, FragmentTable):
        return fragments.blob
    n = len(fragments)
    regular = True
    prev: FragmentEntry | None = None
    for f in fragments:
        if not 8 <= f.size <= MAX_FRAGMENT_BYTES or prev is not None and (
                f.start_ms != prev.start_ms + prev.duration_ms
                or f.offset != prev.offset + prev.size):
            regular = False
            break
        prev = f
    rows = struct.pack(f">{3 * n}I", *[v for f in fragments for v in (
        f.size, f.duration_ms, SAP if f.keyframe else 0)])
    cols = [struct.pack(f">{n}I", *[f.moof_size for f in fragments]),
            struct.pack(f">{n}I", *[f.frames for f in fragments])]
    if not regular:
        cols += [struct.pack(f">{n}q", *[f.start_ms for f in fragments]),
                 struct.pack(f">{n}Q", *[f.offset for f in fragments])]
    first, last = (fragments[0], fragments[-1]) if n else (None, None)
    head = _TABLE.pack(TABLE_MAGIC, REGULAR if regular else 0, n,
                       first.start_ms if first else 0, last.end_ms if last else 0,
                       first.offset if first else 0,
                       last.offset + last.size - first.offset if first and last else 0)
    return head + rows + zlib.compress(b"".join(cols), 6)


def unpack_fragments(blob: bytes) -> FragmentTable:
    """The table of an index row (either stored version), read lazily.

    Raises:
        ValueError: a malformed blob.
    """
    return FragmentTable(bytes(blob))


class FragmentTable(Sequence[FragmentEntry]):
    """A segment's fragment table in its stored form, read lazily: counts, first start,
    last end, total bytes and regularity come from the header, the ``sidx`` rows are a
    slice of it; ``FragmentEntry`` objects are built only when asked for. Compares equal
    to the tuple of its entries. Immutable (lazily computed parts are cached).
    """

    __slots__ = ("blob", "count", "start_ms", "end_ms", "offset", "size", "regular", "_body",
                 "_items")

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self._body: bytes | None = None
        self._items: tuple[FragmentEntry, ...] | None = None
        if blob[:1] == bytes([TABLE_MAGIC]):
            if len(blob) < _TABLE.size:
                raise ValueError("fragment table header is truncated")
            _, flags, self.count, self.start_ms, self.end_ms, self.offset, self.size = \
                _TABLE.unpack_from(blob)
            self.regular = bool(flags & REGULAR)
            return
        items = _unpack_v1(blob)  # version 1: zlib over 37-byte records
        fresh = FragmentTable(pack_fragments(items))
        for name in ("blob", "count", "start_ms", "end_ms", "offset", "size", "regular"):
            setattr(self, name, getattr(fresh, name))
        self._items = items

    @classmethod
    def of(cls, fragments: Sequence[FragmentEntry]) -> FragmentTable:
        return fragments if isinstance(fragments, FragmentTable) else cls(
            pack_fragments(fragments))

    def _rows(self) -> array.array[int]:
        """The rows as native integers (size, duration, flags, size, ...)."""
        rows = array.array("I", self.sidx_rows())
        if len(rows) != 3 * self.count:
            raise ValueError("fragment table is truncated")
        if sys.byteorder == "little":
            rows.byteswap()
        return rows

    def body(self) -> bytes:
        """The inflated columns after the rows (cached)."""
        if self._body is None:
            try:
                body = zlib.decompress(self.blob[_TABLE.size + 12 * self.count:])
            except zlib.error as e:
                raise ValueError(f"fragment table is damaged: {e}") from None
            if len(body) != self.count * (8 if self.regular else 24):
                raise ValueError("fragment table is truncated")
            self._body = body
        return self._body

    def columns(self) -> tuple[array.array[int], array.array[int], array.array[int],
                               array.array[int]]:
        """(sizes, durations, SAP flags, moof sizes) of every fragment, as arrays: pieces of
        a download are built from them one at a time, with no entry object."""
        rows = self._rows()
        moofs = array.array("I", self.body()[:4 * self.count])
        if sys.byteorder == "little":
            moofs.byteswap()
        return rows[0::3], rows[1::3], rows[2::3], moofs

    def sidx_rows(self, first: int = 0, stop: int | None = None) -> bytes:
        """``sidx`` references of fragments ``[first, stop)``: size, duration, SAP flags."""
        stop = self.count if stop is None else stop
        return self.blob[_TABLE.size + 12 * first:_TABLE.size + 12 * stop]

    def bounds(self, first: int, stop: int) -> tuple[int, int, int, int]:
        """(start_ms, end_ms, offset, size) of fragments ``[first, stop)`` (non-empty) of a
        regular table, from the header or by summing the rows (no entry is built)."""
        if first == 0 and stop == self.count:
            return self.start_ms, self.end_ms, self.offset, self.size
        if not self.regular:
            fs = self._entries()
            return (fs[first].start_ms, fs[stop - 1].end_ms, fs[first].offset,
                    fs[stop - 1].offset + fs[stop - 1].size - fs[first].offset)
        rows = self._rows()[:3 * stop]
        start = self.start_ms + sum(rows[1:3 * first:3])
        offset = self.offset + sum(rows[0:3 * first:3])
        return (start, start + sum(rows[3 * first + 1::3]), offset,
                sum(rows[3 * first::3]))

    def _entries(self) -> tuple[FragmentEntry, ...]:
        if self._items is None:
            body, n, rows = self.body(), self.count, self._rows()
            moofs = struct.unpack_from(f">{n}I", body)
            frames = struct.unpack_from(f">{n}I", body, 4 * n)
            if self.regular:
                starts, offsets, t, o = [], [], self.start_ms, self.offset
                for i in range(n):
                    starts.append(t)
                    offsets.append(o)
                    t += rows[3 * i + 1]
                    o += rows[3 * i]
            else:
                starts = list(struct.unpack_from(f">{n}q", body, 8 * n))
                offsets = list(struct.unpack_from(f">{n}Q", body, 16 * n))
            # Fill each frozen instance's __dict__ at once instead of its generated __init__
            # (one object.__setattr__ per field): about 5x faster; same objects.
            new, out = object.__new__, []
            for i in range(n):
                f = new(FragmentEntry)
                f.__dict__.update(start_ms=starts[i], duration_ms=rows[3 * i + 1],
                                  offset=offsets[i], size=rows[3 * i], moof_size=moofs[i],
                                  frames=frames[i], keyframe=bool(rows[3 * i + 2] & SAP))
                out.append(f)
            self._items = tuple(out)
        return self._items

    def slice_in(self, start_ms: int, end_ms: int) -> tuple[int, int] | None:
        """``(first, stop)``: the fragments overlapping ``[start_ms, end_ms)`` of a regular
        table (time-ordered and contiguous, so they are one run); None for an irregular one.
        Found by bisecting the summed durations: no entry is built."""
        if not self.regular:
            return None
        if start_ms <= self.start_ms and end_ms >= self.end_ms:
            return 0, self.count
        n = self.count
        durations = self._rows()[1::3]
        bounds = list(itertools.accumulate(durations, initial=self.start_ms))  # n + 1
        first = bisect.bisect_right(bounds, start_ms, 1) - 1  # ends after start_ms
        stop = bisect.bisect_left(bounds, end_ms, first, n)  # starts before end_ms
        return first, max(first, stop)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: Any) -> Any:
        return self._entries()[i]

    def __iter__(self) -> Iterator[FragmentEntry]:
        return iter(self._entries())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FragmentTable):
            return self.blob == other.blob or self._entries() == other._entries()
        if isinstance(other, (tuple, list)):
            return self._entries() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._entries())

    def __repr__(self) -> str:
        return (f"FragmentTable(count={self.count}, start_ms={self.start_ms}, "
                f"end_ms={self.end_ms}, size={self.size}, regular={self.regular})")


def _unpack_v1(blob: bytes) -> tuple[FragmentEntry, ...]:
    try:
        raw = zlib.decompress(blob)
    except zlib.error as e:
        raise ValueError(f"fragment table is damaged: {e}") from None
    if len(raw) % _FRAG.size:
        raise ValueError("fragment table is truncated")
    new, names, out = object.__new__, _FRAG_FIELDS, []
    for row in _FRAG.iter_unpack(raw):
        f = new(FragmentEntry)
        f.__dict__.update(zip(names, row))
        f.__dict__["keyframe"] = bool(row[6] & 1)
        out.append(f)
    return tuple(out)


_FRAG_FIELDS = ("start_ms", "duration_ms", "offset", "size", "moof_size", "frames", "keyframe")


# -- ranges -----------------------------------------------------------------------------------
MERGE_TOLERANCE_MS = 0
"""Segments closer than this merge into one range. 0: only touching segments merge (the
gateway's consecutive segments touch exactly: each starts where the previous ended)."""


@dataclass(frozen=True)
class Range:
    """A recorded interval, ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def as_flussonic(self) -> dict[str, int]:
        """Flussonic's ``{"from": s, "duration": s}`` (seconds, rounded outwards)."""
        start = self.start_ms // 1000
        return {"from": start, "duration": max(1, -(-self.end_ms // 1000) - start)}


def merge_ranges(spans: Iterable[tuple[int, int]],
                 tolerance_ms: int = MERGE_TOLERANCE_MS) -> list[Range]:
    """Merge ``(start_ms, end_ms)`` spans (any order) into sorted, disjoint ranges."""
    out: list[Range] = []
    cur_s = cur_e = None
    for s, e in sorted(spans):
        if e <= s:
            continue
        if cur_e is not None and s <= cur_e + tolerance_ms:
            cur_e = max(cur_e, e)
            continue
        if cur_s is not None and cur_e is not None:
            out.append(Range(cur_s, cur_e))
        cur_s, cur_e = s, e
    if cur_s is not None and cur_e is not None:
        out.append(Range(cur_s, cur_e))
    return out


RANGE_CHUNK_MS = 7 * 86_400_000
"""The index keeps a stream's merged ranges materialized per week of UTC time (a *chunk*,
clipped at its bounds), updated with every row added or removed: a year is ~53 chunks read
in one query instead of 52,560 rows (10-minute segments with 1 s gaps)."""


def chunk_ids(start_ms: int, end_ms: int) -> range:
    """The chunks ``[start_ms, end_ms)`` touches."""
    return range(start_ms // RANGE_CHUNK_MS, max(start_ms, end_ms - 1) // RANGE_CHUNK_MS + 1)


def chunk_ranges(spans: Iterable[tuple[int, int]], chunk: int) -> list[tuple[int, int]]:
    """``spans`` merged and clipped to ``chunk``."""
    lo, hi = chunk * RANGE_CHUNK_MS, (chunk + 1) * RANGE_CHUNK_MS
    return [(r.start_ms, r.end_ms) for r in merge_ranges(
        (max(a, lo), min(b, hi)) for a, b in spans if a < hi and b > lo)]


def chunk_add(have: list[tuple[int, int]], span: tuple[int, int],
              chunk: int) -> list[tuple[int, int]]:
    """A chunk's merged ranges with ``span`` merged in (recording appends: the usual case
    touches only the last range)."""
    lo, hi = chunk * RANGE_CHUNK_MS, (chunk + 1) * RANGE_CHUNK_MS
    a, b = max(span[0], lo), min(span[1], hi)
    if b <= a:
        return have
    if not have or a > have[-1][1]:
        if not have or a > have[-1][0]:
            return [*have, (a, b)]
    elif a >= have[-1][0]:
        return [*have[:-1], (have[-1][0], max(have[-1][1], b))]
    return chunk_ranges([*have, (a, b)], chunk)


def pack_ranges(ranges: Sequence[tuple[int, int]]) -> bytes:
    """A chunk as stored: zlib over big-endian (start, end) pairs."""
    return zlib.compress(struct.pack(f">{2 * len(ranges)}q",
                                     *[v for r in ranges for v in r]), 1)


def unpack_ranges(blob: bytes) -> list[tuple[int, int]]:
    """Raises ValueError on a damaged chunk."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error as e:
        raise ValueError(f"ranges chunk is damaged: {e}") from None
    if len(raw) % 16:
        raise ValueError("ranges chunk is truncated")
    flat = struct.unpack(f">{len(raw) // 8}q", raw)
    return list(zip(flat[0::2], flat[1::2]))


def join_chunks(chunks: Iterable[bytes]) -> tuple[array.array[int], array.array[int]]:
    """(starts, ends) of the merged ranges from stored chunks in time order: ranges cut at a
    chunk's end are joined again (only chunk boundaries are looked at)."""
    starts, ends = array.array("q"), array.array("q")
    for blob in chunks:
        try:
            raw = zlib.decompress(blob)
        except zlib.error as e:
            raise ValueError(f"ranges chunk is damaged: {e}") from None
        flat = array.array("q", raw)
        if len(flat) % 2:
            raise ValueError("ranges chunk is truncated")
        if sys.byteorder == "little":
            flat.byteswap()
        if not flat:
            continue
        first = 0
        if ends and flat[0] <= ends[-1]:  # cut at the boundary: one range
            ends[-1] = max(ends[-1], flat[1])
            first = 2
        starts.extend(flat[first::2])
        ends.extend(flat[first + 1::2])
    return starts, ends


def subtract(span: tuple[int, int], holes: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``span`` not covered by ``holes``."""
    parts = [span]
    for hs, he in holes:
        nxt = []
        for s, e in parts:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        parts = nxt
    return parts


def covered(span: tuple[int, int], have: Iterable[tuple[int, int]],
            tolerance_ms: int = 1000) -> bool:
    """Whether ``have`` covers ``span`` up to gaps of ``tolerance_ms`` (frame jitter, rounding
    of clip bounds): used so that a range recorded in the cloud is never fetched again."""
    return all(e - s <= tolerance_ms for s, e in subtract(span, have))


# -- episodes ---------------------------------------------------------------------------------
EPISODE_TYPES = frozenset({"generic", "motion", "rule", "manual", "alarm"})
MAX_EPISODE_ID = 2**53 - 1


@dataclass(frozen=True)
class Episode:
    """A marked part of a stream's archive (Flussonic's episode); protects it from deletion.

    Attributes:
        episode_id: positive integer, chosen by the client (PUT) or assigned.
        media: the stream name.
        opened_at: UTC ms where it starts.
        closed_at: UTC ms where it ends; None while open (protects up to "now").
        updated_at: UTC ms of the last change.
        episode_type: free label (``generic`` by default; rules write ``rule``).
        preview: a thumbnail reference (URL or object key) or None.
        meta: extra client fields, returned as given.
    """

    episode_id: int
    media: str
    opened_at: int
    closed_at: int | None
    updated_at: int
    episode_type: str = "generic"
    preview: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def span(self, now_ms: int) -> tuple[int, int]:
        return self.opened_at, self.closed_at if self.closed_at is not None else now_ms

    def as_json(self) -> dict[str, Any]:
        return {**self.meta, "episode_id": self.episode_id, "media": self.media,
                "opened_at": self.opened_at, "closed_at": self.closed_at,
                "updated_at": self.updated_at, "episode_type": self.episode_type,
                "preview": self.preview}


@dataclass(frozen=True)
class EpisodeQuery:
    """A listing: by stream, type and time (UTC ms, overlap with ``[time_from, time_to)``)."""

    media: tuple[str, ...] = ()
    episode_type: tuple[str, ...] = ()
    time_from: int | None = None
    time_to: int | None = None
    limit: int = 100
    cursor: int | None = None
    """Return episodes whose id is greater (pages in id order)."""


def protected_spans(episodes: Iterable[Episode], now_ms: int) -> list[tuple[int, int]]:
    return [(r.start_ms, r.end_ms) for r in merge_ranges(e.span(now_ms) for e in episodes)]


def iter_spans(segments: Iterable[SegmentEntry]) -> Iterator[tuple[int, int]]:
    for s in segments:
        yield s.start_ms, s.end_ms
