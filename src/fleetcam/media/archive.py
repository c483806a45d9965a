"""One-pass fragmented-MP4 downloads of archive ranges (pure: bytes in, bytes out).

A download is ``ftyp`` + a rebuilt ``moov`` + a ``sidx`` + the stored fragments, copied byte
for byte except for their ``moof`` headers (sequence numbers and decode times are rewritten;
a track left out by ``filter.tracks`` has its ``traf`` turned into a ``free`` box of the same
size). Every size is known from the init segment and the index's fragment table, so the
whole layout (Content-Length, the offset of every fragment, the ``sidx``) is computed before
a single fragment is read, and any byte range of the file can be produced on its own: a
player seeks in a 3-hour download that is never built. docs/dvr.md describes the stored
fragments; ISO/IEC 14496-12 the boxes.

Gaps in the recording are closed up in the file (its timeline is continuous) and listed in
``moov/udta`` and by the caller in a response header. A fragment that turns out missing or
unreadable while streaming is replaced by a ``free`` box of the same size: the file stays
valid and keeps its announced length, and the player skips it.
"""
from __future__ import annotations

import bisect
import re
import itertools
import json
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

MP4_EPOCH_OFFSET = 2_082_844_800
"""Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01."""
GAP_MS = 1000
"""A hole longer than this between fragments is a gap: closed up and reported."""
MAX_FRAGMENT = 64 * 1024 * 1024
"""No stored fragment is larger (the gateway closes objects at 64 MB)."""


class ArchiveError(ValueError):
    """The init segment or the request cannot make a download (a 4xx for the caller)."""


# -- boxes ------------------------------------------------------------------------------------
def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def iter_boxes(data: bytes | memoryview, start: int = 0,
               end: int | None = None) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, size, header size) of each box in ``data[start:end]``.

    Raises:
        ArchiveError: a box runs past ``end`` or is smaller than its header.
    """
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise ArchiveError("truncated box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise ArchiveError("truncated large box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ArchiveError(f"box {kind!r} at {pos} overruns its container")
        yield kind, pos, size, header
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int, int] | None:
    for k, pos, size, header in iter_boxes(data, start, end):
        if k == kind:
            return pos, size, header
    return None


# -- the init segment --------------------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str
    """``vide`` or ``soun``."""
    timescale: int
    trak: bytes
    trex: bytes | None


@dataclass(frozen=True)
class Init:
    """What a download needs from a stored init segment (``ftyp`` + ``moov``)."""

    ftyp: bytes
    mvhd: bytes
    tracks: tuple[Track, ...]
    others: tuple[bytes, ...]
    """``moov`` children kept as they are (not mvhd, trak, mvex, udta)."""

    @property
    def movie_timescale(self) -> int:
        version = self.mvhd[8]
        return struct.unpack_from(">I", self.mvhd, 20 if version == 0 else 28)[0]  # type: ignore[no-any-return]


def parse_init(data: bytes) -> Init:
    """Read an init segment.

    Raises:
        ArchiveError: no ``ftyp``/``moov``, or a track without its timescale.
    """
    ftyp = moov = None
    for kind, pos, size, _ in iter_boxes(data):
        if kind == b"ftyp":
            ftyp = data[pos:pos + size]
        elif kind == b"moov":
            moov = (pos, size)
    if ftyp is None or moov is None:
        raise ArchiveError("init segment has no ftyp or moov")
    mvhd = None
    traks: list[bytes] = []
    trexes: dict[int, bytes] = {}
    others: list[bytes] = []
    mpos, msize = moov
    for kind, pos, size, header in iter_boxes(data, mpos + 8, mpos + msize):
        raw = data[pos:pos + size]
        if kind == b"mvhd":
            mvhd = raw
        elif kind == b"trak":
            traks.append(raw)
        elif kind == b"mvex":
            for k, p, s, _ in iter_boxes(data, pos + header, pos + size):
                if k == b"trex":
                    trexes[struct.unpack_from(">I", data, p + 12)[0]] = data[p:p + s]
        elif kind != b"udta":
            others.append(raw)
    if mvhd is None or not traks:
        raise ArchiveError("init segment has no mvhd or no track")
    return Init(ftyp, mvhd, tuple(_track(t, trexes) for t in traks), tuple(others))


def _track(trak: bytes, trexes: dict[int, bytes]) -> Track:
    tkhd = _child(trak, 8, len(trak), b"tkhd")
    mdia = _child(trak, 8, len(trak), b"mdia")
    if tkhd is None or mdia is None:
        raise ArchiveError("trak without tkhd or mdia")
    tpos = tkhd[0]
    track_id = struct.unpack_from(">I", trak, tpos + (20 if trak[tpos + 8] == 0 else 28))[0]
    mpos, msize, mhead = mdia
    mdhd = _child(trak, mpos + mhead, mpos + msize, b"mdhd")
    hdlr = _child(trak, mpos + mhead, mpos + msize, b"hdlr")
    if mdhd is None or hdlr is None:
        raise ArchiveError("mdia without mdhd or hdlr")
    dpos = mdhd[0]
    timescale = struct.unpack_from(">I", trak, dpos + (20 if trak[dpos + 8] == 0 else 28))[0]
    handler = trak[hdlr[0] + 16:hdlr[0] + 20].decode("latin-1")
    if timescale <= 0:
        raise ArchiveError("track timescale is 0")
    return Track(track_id, handler, timescale, trak, trexes.get(track_id))


def select_tracks(init: Init, spec: str | None) -> tuple[Track, ...]:
    """The tracks ``filter.tracks`` keeps: ``v1a1`` = the first video and the first audio
    track; ``v1`` = video only; None or ``""`` = all.

    Raises:
        ArchiveError: malformed, or it selects no track that exists.
    """
    if not spec:
        return init.tracks
    wanted: set[tuple[str, int]] = set()
    rest = spec
    while rest:
        if rest[0] not in "va" or len(rest) < 2 or not rest[1].isdigit():
            raise ArchiveError(f"filter.tracks must look like v1a1, not {spec[:20]!r}")
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        wanted.add(("vide" if rest[0] == "v" else "soun", int(rest[1:i])))
        rest = rest[i:]
    counts: dict[str, int] = {}
    keep = []
    for t in init.tracks:
        counts[t.handler] = counts.get(t.handler, 0) + 1
        if (t.handler, counts[t.handler]) in wanted:
            keep.append(t)
    if not keep:
        raise ArchiveError(f"filter.tracks={spec} selects no recorded track")
    return tuple(keep)


# -- the plan ----------------------------------------------------------------------------------
class Piece(NamedTuple):
    """One stored fragment as it goes into the download.

    Attributes:
        source: where its bytes are (opaque to this module: the caller's object reference).
        offset, size: its bytes in ``source``.
        moof_size: bytes of its ``moof`` (0: unknown, found when read).
        start_ms, duration_ms: its recorded UTC time.
        keyframe: starts with a keyframe.
        out_ms: its decode time in the download (ms from the download's start).
    """

    source: object
    offset: int
    size: int
    moof_size: int
    start_ms: int
    duration_ms: int
    keyframe: bool
    out_ms: int = 0


@dataclass(frozen=True)
class Gap:
    start_ms: int
    end_ms: int
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"from": self.start_ms / 1000, "duration": (self.end_ms - self.start_ms) / 1000,
                "reason": self.reason}


class Fragment(Protocol):
    """A stored fragment as the index describes it (``domain.dvr.FragmentEntry``)."""

    offset: int
    size: int
    moof_size: int
    start_ms: int
    duration_ms: int
    keyframe: bool


class Table(Protocol):
    """A stored segment's fragment table as the index keeps it (``domain.dvr.FragmentTable``):
    what a download's layout needs of a whole run of fragments, without one object each.

    ``regular``: contiguous in time and bytes, every size 8 bytes to ``MAX_FRAGMENT``.
    """

    regular: bool

    def __len__(self) -> int: ...

    def __getitem__(self, i: slice) -> Sequence[Fragment]: ...

    def sidx_rows(self, first: int = 0, stop: int | None = None) -> bytes:
        """``sidx`` references (size, duration, SAP flags; 12 bytes each) of ``[first, stop)``."""
        ...

    def bounds(self, first: int, stop: int) -> tuple[int, int, int, int]:
        """(start_ms, end_ms, offset, size) of fragments ``[first, stop)`` (non-empty)."""
        ...


class Span(NamedTuple):
    """Fragments ``[first, stop)`` of one stored segment's table, in a download together."""

    source: object
    table: Table
    first: int
    stop: int


@dataclass
class Block:
    """A run of a download's pieces, from ``offset`` (in the download) for ``size`` bytes:
    a slice of a regular table (``span``: its pieces are built only when its bytes are), or
    ``pieces`` given one by one."""

    offset: int
    size: int
    sequence: int
    """``mfhd`` sequence number of its first piece (pieces count from 1)."""
    out_ms: int
    """Decode time of its first piece."""
    span: Span | None = None
    pieces: list[Piece] | None = None

    @property
    def source(self) -> object:
        pieces = self.pieces or []
        return self.span.source if self.span is not None else pieces[0].source

    @property
    def last_source(self) -> object:
        pieces = self.pieces or []
        return self.span.source if self.span is not None else pieces[-1].source

    def materialize(self) -> tuple[Sequence[Piece], list[int]]:
        """Its pieces and the download offset of each. A span's pieces are built one at a
        time when asked for (from the table's columns: a Range request into a 10-minute
        segment builds the few it sends, not 600)."""
        if self.span is None:
            pieces = self.pieces or []
            offsets = list(itertools.accumulate((p.size for p in pieces), initial=self.offset))
            offsets.pop()
            return pieces, offsets
        lazy = _SpanPieces(self)
        return lazy, lazy.offsets


class _SpanPieces(Sequence[Piece]):
    """The pieces of a span block, built on demand from its table's columns."""

    def __init__(self, block: Block) -> None:
        source, table, first, stop = block.span  # type: ignore[misc]
        if hasattr(table, "columns"):
            sizes, durations, saps, moofs = table.columns()
            self.sizes, self.durations = sizes[first:stop], durations[first:stop]
            self.saps, self.moofs = saps[first:stop], moofs[first:stop]
        else:  # any other table: its entries
            frags = table[first:stop]
            self.sizes = [f.size for f in frags]
            self.durations = [f.duration_ms for f in frags]
            self.saps = [SAP if f.keyframe else 0 for f in frags]
            self.moofs = [f.moof_size for f in frags]
        start, _, offset, _ = table.bounds(first, stop)
        self.source, self.block = source, block
        self.offsets = list(itertools.accumulate(self.sizes, initial=block.offset))
        self.offsets.pop()
        self.outs = list(itertools.accumulate(self.durations, initial=block.out_ms))
        self.start_ms, self.object_offset = start, offset
        self._last: tuple[int, Piece] | None = None

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if self._last is not None and self._last[0] == k:
            return self._last[1]
        out = self.outs[k]
        piece = Piece(self.source, self.object_offset + self.offsets[k] - self.block.offset,
                      self.sizes[k], self.moofs[k], self.start_ms + out - self.block.out_ms,
                      self.durations[k], bool(self.saps[k]), out)
        self._last = (k, piece)
        return piece


@dataclass
class Layout:
    """A download's bytes, described: ``header``, then the blocks of pieces."""

    header: bytes
    blocks: list[Block]
    tracks: tuple[Track, ...]
    gaps: list[Gap]
    start_ms: int
    duration_ms: int
    total: int
    fragments: int
    """Pieces in the download."""

    def __post_init__(self) -> None:
        self._starts = [b.offset for b in self.blocks]

    def block_at(self, byte: int) -> int:
        """Index of the block holding download byte ``byte`` (header bytes: -1)."""
        return bisect.bisect_right(self._starts, byte) - 1

    def time_at(self, byte: int) -> int:
        """Decode time (ms) of the piece holding download byte ``byte`` (header: 0)."""
        k = self.block_at(byte)
        if k < 0:
            return 0
        pieces, offsets = self.blocks[k].materialize()
        return pieces[max(0, bisect.bisect_right(offsets, byte) - 1)].out_ms

    def all_pieces(self) -> list[Piece]:
        """Every piece, in order (builds them all: for tests and small downloads)."""
        return [p for b in self.blocks for p in b.materialize()[0]]


def plan(init: Init, items: Iterable[Span | tuple[object, Fragment]], *,
         tracks: Sequence[Track] | None = None,
         gaps: Iterable[Gap] = (), meta: dict[str, object] | None = None) -> Layout:
    """Lay a download out: the pieces in time order, gaps closed up, every offset known.

    Args:
        init: the stored init segment, parsed.
        items: in time order, either ``Span``s (a run of a stored segment's table) or
            ``(source, fragment)`` pairs: where its bytes are (opaque here, handed back to
            the reader) and the index's entry. A fragment starting before the previous one
            ended (an overlap) is left out. A span of a regular table is laid out as a whole
            (its ``sidx`` rows copied), so the work is per segment, not per fragment.
        tracks: the tracks to keep (``select_tracks``); default all.
        gaps: holes already known to the caller (missing objects, a codec change), added to
            the ones found between fragments.
        meta: extra metadata for ``udta`` (stream name, device...).

    Raises:
        ArchiveError: no fragment.
    """
    tracks = tuple(tracks or init.tracks)
    p = _Planner(sorted(gaps, key=lambda g: g.start_ms))
    for item in items:
        if isinstance(item, Span):
            p.add_span(item)
        else:
            p.add(item[0], item[1])
    if not p.count:
        raise ArchiveError("no recorded fragment in the range")
    duration = p.last_out + p.prev_dur
    p.close_row(duration)
    start = p.start_ms
    found = _merge_gaps(p.gaps)
    info = {**(meta or {}), "from": start / 1000, "duration": duration / 1000,
            "gaps": [g.as_json() for g in found]}
    moov = _moov(init, tracks, start, duration, info)
    header = init.ftyp + moov + _sidx(tracks, b"".join(p.rows), p.count)
    for b in p.blocks:
        b.offset += len(header)
    return Layout(header, p.blocks, tracks, found, start, duration, len(header) + p.pos,
                  p.count)


class _Planner:
    """The running state of ``plan``: where the next piece goes, in bytes and in time."""

    def __init__(self, gaps: list[Gap]) -> None:
        self.gaps = gaps
        self.blocks: list[Block] = []
        self.rows: list[bytes] = []
        self.count = self.pos = 0
        self.start_ms = self.last_out = self.prev_dur = 0
        self.prev_end: int | None = None
        self.pending: tuple[int, int] | None = None  # size, SAP flags of the last piece

    def _next_out(self, start_ms: int) -> int | None:
        """Decode time of a piece recorded at ``start_ms`` (None: it overlaps, leave it out);
        a hole over GAP_MS is closed up and listed, a shorter one is kept in the timeline."""
        if self.prev_end is None:
            self.start_ms = start_ms
            return 0
        hole = start_ms - self.prev_end
        if hole < -GAP_MS // 2:
            return None  # overlaps what is already in: recorded twice
        if hole > GAP_MS:
            self.gaps.append(Gap(self.prev_end, start_ms, "not recorded"))
            hole = 0
        return self.last_out + self.prev_dur + (hole if hole > 0 else 0)

    def close_row(self, next_out: int) -> None:
        """The last piece's ``sidx`` row, now that its duration (to ``next_out``) is known."""
        if self.pending is not None:
            size, sap = self.pending
            self.rows.append(struct.pack(">III", size, next_out - self.last_out, sap))
            self.pending = None

    def add(self, source: object, f: Fragment) -> None:
        size = f.size
        if size < 8 or size > MAX_FRAGMENT:
            self.gaps.append(Gap(f.start_ms, f.start_ms + f.duration_ms, "bad fragment size"))
            return
        out = self._next_out(f.start_ms)
        if out is None:
            return
        self.close_row(out)
        piece = Piece(source, f.offset, size, f.moof_size, f.start_ms, f.duration_ms,
                      f.keyframe, out)
        last = self.blocks[-1] if self.blocks else None
        if last is None or last.pieces is None:
            last = Block(self.pos, 0, self.count + 1, out, pieces=[])
            self.blocks.append(last)
        last.pieces.append(piece)  # type: ignore[union-attr]
        last.size += size
        self.pending = (size, SAP if f.keyframe else 0)
        self.last_out, self.prev_end, self.prev_dur = out, f.start_ms + f.duration_ms, \
            f.duration_ms
        self.count += 1
        self.pos += size

    def add_span(self, span: Span) -> None:
        source, table, first, stop = span
        if stop <= first:
            return
        if not getattr(table, "regular", False):
            for f in table[first:stop]:
                self.add(source, f)
            return
        start, end, _, size = table.bounds(first, stop)
        out = self._next_out(start)
        if out is None:  # overlaps the previous piece: fragment by fragment
            for f in table[first:stop]:
                self.add(source, f)
            return
        self.close_row(out)
        rows = table.sidx_rows(first, stop)
        n = stop - first
        last_size, last_dur, last_sap = struct.unpack_from(">III", rows, 12 * (n - 1))
        self.rows.append(rows[:-12])
        self.blocks.append(Block(self.pos, size, self.count + 1, out, span=span))
        self.pending = (last_size, last_sap)
        self.last_out = out + (end - last_dur - start)
        self.prev_end, self.prev_dur = end, last_dur
        self.count += n
        self.pos += size


def _merge_gaps(gaps: list[Gap]) -> list[Gap]:
    out: list[Gap] = []
    for g in sorted(gaps, key=lambda g: (g.start_ms, g.end_ms)):
        if out and g.start_ms <= out[-1].end_ms and g.reason == out[-1].reason:
            out[-1] = Gap(out[-1].start_ms, max(out[-1].end_ms, g.end_ms), g.reason)
        else:
            out.append(g)
    return out


def _moov(init: Init, tracks: Sequence[Track], start_ms: int, duration_ms: int,
          info: dict[str, object]) -> bytes:
    mvhd = bytearray(init.mvhd)
    created = start_ms // 1000 + MP4_EPOCH_OFFSET
    if mvhd[8] == 0:
        struct.pack_into(">II", mvhd, 12, created, created)
    else:
        struct.pack_into(">QQ", mvhd, 12, created, created)
    fragment_duration = duration_ms * init.movie_timescale // 1000
    mvex = box(b"mvex", full_box(b"mehd", 1, 0, struct.pack(">Q", fragment_duration)),
               *[t.trex or full_box(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0))
                 for t in tracks])
    return box(b"moov", bytes(mvhd), *[t.trak for t in tracks], *init.others, mvex,
               udta(info))


def udta(info: dict[str, object]) -> bytes:
    """``udta/meta/ilst`` with a title, a date and the JSON ``info`` as the comment (what
    ffprobe shows as ``title``, ``date`` and ``comment``)."""
    import time

    def item(kind: bytes, text: str) -> bytes:
        return box(kind, box(b"data", struct.pack(">II", 1, 0), text.encode()))

    title = str(info.get("stream") or "archive")
    start = float(info.get("from") or 0)  # type: ignore[arg-type]
    day = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    ilst = box(b"ilst", item(b"\xa9nam", title), item(b"\xa9day", day),
               item(b"\xa9too", "fleetcam"),
               item(b"\xa9cmt", json.dumps(info, separators=(",", ":"), sort_keys=True)))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"mdirappl", bytes(9))
    return box(b"udta", full_box(b"meta", 0, 0, hdlr, ilst))


SAP = 0x90000000
"""``sidx`` reference flags of a fragment starting with a keyframe (starts_with_SAP, type 1)."""
MAX_REFERENCES = 0xFFFF
"""A ``sidx`` lists at most this many references (a 16-bit count)."""


def _sidx(tracks: Sequence[Track], rows: bytes, count: int) -> bytes:
    """One ``sidx`` (version 1, ms) with a reference per fragment: seeking without reading.
    Past 65,535 fragments (over 18 hours of 1 s GOPs) consecutive fragments share a
    reference (a subsegment may hold several fragments)."""
    ref = next((t for t in tracks if t.handler == "vide"), tracks[0]).track_id
    if count > MAX_REFERENCES:
        rows, count = _coarser(rows, count)
    return full_box(b"sidx", 1, 0, struct.pack(">IIQQHH", ref, 1000, 0, 0, 0, count), rows)


def _coarser(rows: bytes, count: int) -> tuple[bytes, int]:
    per = -(-count // MAX_REFERENCES)
    values = struct.unpack(f">{3 * count}I", rows)
    out: list[int] = []
    for i in range(0, count, per):
        group = values[3 * i:3 * min(count, i + per)]
        out += (sum(group[0::3]), sum(group[1::3]), group[2])
    return struct.pack(f">{len(out)}I", *out), len(out) // 3


# -- rendering ---------------------------------------------------------------------------------
class CorruptFragment(ValueError):
    """A stored fragment is not a moof + mdat of its announced size."""


def rewrite(data: bytearray, piece: Piece, sequence: int, layout: Layout) -> None:
    """Re-time one stored fragment in place: ``mfhd`` sequence, every ``tfdt`` (in each
    track's timescale, from ``piece.out_ms``), ``traf``s of dropped tracks become ``free``.

    Raises:
        CorruptFragment: not ``moof`` + ``mdat`` filling ``piece.size`` exactly.
    """
    try:
        boxes = list(iter_boxes(data))
    except ArchiveError as e:
        raise CorruptFragment(str(e)) from e
    kinds = [b[0] for b in boxes]
    if b"moof" not in kinds or kinds[-1] != b"mdat":
        raise CorruptFragment(f"fragment boxes are {kinds[:4]}")
    keep = {t.track_id: t.timescale for t in layout.tracks}
    sound = {t.track_id for t in layout.tracks if t.handler == "soun"}
    for kind, pos, size, header in boxes:
        if kind in (b"styp", b"sidx", b"prft"):
            data[pos + 4:pos + 8] = b"free"
        if kind != b"moof":
            continue
        for k, p, s, h in iter_boxes(data, pos + header, pos + size):
            if k == b"mfhd":
                struct.pack_into(">I", data, p + 12, sequence & 0xFFFFFFFF)
            elif k == b"traf":
                _retime_traf(data, p, s, h, keep, piece.out_ms,
                             piece.start_ms if sound else None, sound)


def _retime_traf(data: bytearray, pos: int, size: int, header: int, keep: dict[int, int],
                 out_ms: int, start_ms: int | None = None,
                 sound: frozenset[int] | set[int] = frozenset()) -> None:
    """Set a ``traf``'s decode time to the download's ``out_ms`` (in its track's timescale).
    An audio track's ``traf`` starts a few samples after the fragment's (recorded UTC)
    ``start_ms``: it is moved by ``out_ms - start_ms`` instead, keeping its offset from the
    video."""
    tfhd = _child(data, pos + header, pos + size, b"tfhd")  # type: ignore[arg-type]
    if tfhd is None:
        raise CorruptFragment("traf without tfhd")
    track_id = struct.unpack_from(">I", data, tfhd[0] + 12)[0]
    if track_id not in keep:
        data[pos + 4:pos + 8] = b"free"
        return
    tfdt = _child(data, pos + header, pos + size, b"tfdt")  # type: ignore[arg-type]
    if tfdt is None:
        raise CorruptFragment("traf without tfdt")
    scale = keep[track_id]
    wide = data[tfdt[0] + 8] == 1
    old = struct.unpack_from(">Q" if wide else ">I", data, tfdt[0] + 12)[0]
    value = out_ms * scale // 1000
    if track_id in sound and start_ms is not None:
        value = max(0, value + old - start_ms * scale // 1000)
    if wide:
        struct.pack_into(">Q", data, tfdt[0] + 12, value)
    elif value < 2**32:
        struct.pack_into(">I", data, tfdt[0] + 12, value)
    else:
        raise CorruptFragment("32-bit tfdt overflows")


Reader = Callable[[object, int, int], Iterator[bytes]]
"""``read(source, start, end_inclusive)`` streams a stored object's bytes (raises on a
missing object)."""


def _sidx_at(header: bytes) -> int:
    """Where the header's ``sidx`` starts (after ``ftyp`` and ``moov``)."""
    pos = 0
    while pos + 8 <= len(header):
        size, kind = struct.unpack_from(">I4s", header, pos)
        if kind == b"sidx" or size < 8:
            return pos
        pos += size
    return len(header)


def render(layout: Layout, read: Reader, first: int = 0, last: int | None = None,
           on_bad: Callable[[Piece, str], None] | None = None) -> Iterator[bytes]:
    """The download's bytes ``first`` to ``last`` (inclusive), fragments read in runs (one
    ranged read per run of adjacent fragments of one object) and rewritten one at a time.
    Only the blocks the range touches are built into pieces.

    ``on_bad(piece, reason)`` hears of each fragment replaced by a ``free`` box.
    """
    last = layout.total - 1 if last is None else min(last, layout.total - 1)
    if first > last:
        return
    hlen = len(layout.header)
    if first < hlen:  # ftyp + moov leave at once, before the sidx (130 KB for 3 hours)
        cut = min(hlen, last + 1)
        at = max(first, min(_sidx_at(layout.header), cut))
        if first < at:
            yield layout.header[first:at]
        if at < cut:
            yield layout.header[at:cut]
    if last < hlen:
        return
    k = max(0, layout.block_at(max(first, hlen)))
    blocks = layout.blocks
    while k < len(blocks) and blocks[k].offset <= last:
        block = blocks[k]
        pieces, offsets = block.materialize()
        i = max(0, bisect.bisect_right(offsets, first) - 1)
        j = bisect.bisect_right(offsets, last) - 1
        while i <= j:
            run_end = j if block.span is not None else i  # a span is one run
            while (run_end < j and pieces[run_end + 1].source == pieces[i].source
                   and pieces[run_end + 1].offset == pieces[run_end].offset
                   + pieces[run_end].size):
                run_end += 1
            for n, data in _read_run(pieces, i, run_end, read, layout, block.sequence,
                                     on_bad):
                p = pieces[n]
                at = offsets[n]
                lo = max(first - at, 0)
                hi = min(last - at + 1, p.size)
                yield bytes(data[lo:hi]) if (lo or hi < p.size) else bytes(data)
            i = run_end + 1
        k += 1


def _read_run(pieces: Sequence[Piece], i: int, j: int, read: Reader, layout: Layout,
              sequence: int, on_bad: Callable[[Piece, str], None] | None
              ) -> Iterator[tuple[int, bytearray]]:
    start = pieces[i].offset
    end = pieces[j].offset + pieces[j].size - 1
    buf = bytearray()
    k = i
    try:
        for chunk in read(pieces[i].source, start, end):
            buf += chunk
            while k <= j and len(buf) >= pieces[k].size:
                yield k, _finish(buf, pieces[k], sequence + k, layout, on_bad)
                k += 1
    except Exception as e:  # noqa: BLE001 - a missing or unreadable object: fill, go on
        reason = f"unreadable: {type(e).__name__}"
    else:
        reason = "object shorter than the index says"
    while k <= j:
        if on_bad:
            on_bad(pieces[k], reason)
        yield k, bytearray(_filler(pieces[k].size))
        k += 1


def _finish(buf: bytearray, piece: Piece, sequence: int, layout: Layout,
            on_bad: Callable[[Piece, str], None] | None) -> bytearray:
    data = buf[:piece.size]
    del buf[:piece.size]
    try:
        rewrite(data, piece, sequence, layout)
    except CorruptFragment as e:
        if on_bad:
            on_bad(piece, f"corrupt: {e}")
        return bytearray(_filler(piece.size))
    return data


def _filler(size: int) -> bytes:
    """A ``free`` box of exactly ``size`` bytes (>= 8): keeps every later offset valid."""
    return struct.pack(">I4s", size, b"free") + bytes(size - 8)


# -- track filters on stored objects (playlists' byte ranges) ---------------------------------
TRACKS_SPEC = re.compile(r"(?:[va][1-9]\d?){1,4}")
"""What ``filter.tracks`` may say (``v1a1``, ``v1``, ``a1``)."""


def check_tracks(spec: str | None) -> str | None:
    """``spec`` if well formed (None/empty: no filter).

    Raises:
        ArchiveError: malformed.
    """
    if not spec:
        return None
    if not TRACKS_SPEC.fullmatch(spec):
        raise ArchiveError(f"filter.tracks must look like v1a1, v1 or a1, not {spec[:20]!r}")
    return spec


def filtered_init(data: bytes, spec: str | None) -> bytes:
    """A stored init segment with only the tracks ``spec`` selects (``ftyp`` + ``moov``).

    Raises:
        ArchiveError: unreadable, or ``spec`` selects none of its tracks.
    """
    init = parse_init(data)
    tracks = select_tracks(init, spec)
    if len(tracks) == len(init.tracks):
        return data
    mvex = box(b"mvex", *[t.trex or full_box(b"trex", 0, 0, struct.pack(
        ">IIIII", t.track_id, 1, 0, 0, 0)) for t in tracks])
    return init.ftyp + box(b"moov", init.mvhd, *[t.trak for t in tracks], *init.others, mvex)


def drop_tracks(data: bytearray, keep: set[int]) -> None:
    """Turn the ``traf`` of every track not in ``keep`` into a ``free`` box of the same size,
    in each whole fragment of ``data`` (stored ``moof`` + ``mdat`` runs): sizes and offsets
    stay as the index says, and players skip what is left out.

    Raises:
        CorruptFragment: not a run of whole fragments.
    """
    try:
        for kind, pos, size, header in iter_boxes(data):
            if kind != b"moof":
                continue
            for k, p, s, h in iter_boxes(data, pos + header, pos + size):
                if k != b"traf":
                    continue
                tfhd = _child(data, p + h, p + s, b"tfhd")  # type: ignore[arg-type]
                if tfhd is None or struct.unpack_from(">I", data, tfhd[0] + 12)[0] not in keep:
                    data[p + 4:p + 8] = b"free"
    except ArchiveError as e:
        raise CorruptFragment(str(e)) from e
