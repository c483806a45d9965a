"""The cloud DVR's read side over its ports: ranges, downloads, playlists, range deletion.

Works from the index (``DvrIndex``) and the objects (``DvrStorage``), plus the gateway's tail
(``DvrTail``: fragments not stored yet). Nothing here copies media: downloads are written in
one pass from the stored fragments (``media.archive``), playlists point into the objects.
"""
from __future__ import annotations

import array
import bisect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fleetcam.domain import dvr, dvrplay
from fleetcam.errors import Invalid, NotFound
from fleetcam.media import archive
from fleetcam.ports import Clock, DvrIndex, DvrStorage, DvrStreamStore, DvrTail, EpisodeStore

log = logging.getLogger(__name__)
PAGE = 200
LAYOUT_TTL = 30.0
"""Seconds a download's layout is reused (Range requests of one player on one file)."""
LAYOUT_CACHE = 32
"""Index rows read per query while walking a range."""
_warned: dict[str, float] = {}


def _warn(key: str, msg: str, *args: object, exc_info: bool = False) -> None:
    """Log at most once a minute per ``key`` (damaged archives repeat on every request)."""
    now = time.monotonic()
    if now - _warned.get(key, -1e9) >= 60:
        _warned[key] = now
        log.warning(msg, *args, exc_info=exc_info)


@dataclass(frozen=True)
class Source:
    """Where a fragment's bytes are: a stored object, or the gateway's open segment."""

    root: str
    key: str
    segment_id: str


@dataclass
class _StoredRanges:
    """A stream's stored ranges at one version of the index (as two arrays: a year of 1 s
    gaps is 52,560 of them), and their encodings."""

    version: int
    last_start: int
    """Start of the newest segment read."""
    starts: array.array[int]
    ends: array.array[int]
    encoded: dict[str, bytes]
    """Form -> all ranges but the newest, encoded, comma-separated (the newest may grow)."""
    _merged: list[dvr.Range] | None = None

    @property
    def merged(self) -> list[dvr.Range]:
        if self._merged is None:
            self._merged = [dvr.Range(a, b) for a, b in zip(self.starts, self.ends)]
        return self._merged

    def last(self) -> list[dvr.Range]:
        return [dvr.Range(self.starts[-1], self.ends[-1])] if self.starts else []


@dataclass
class Download:
    layout: archive.Layout
    read: archive.Reader
    stream: str

    def on_bad(self, piece: archive.Piece, reason: str) -> None:
        _warn(f"{self.stream}:{reason[:20]}", "dvr %s: fragment at %d skipped in a download (%s)",
              self.stream, piece.start_ms, reason)


class DvrPlayback:
    """Use cases of the end-user paths and of the admin ranges/export calls."""

    def __init__(self, streams: DvrStreamStore, index: DvrIndex, storage: DvrStorage,
                 episodes: EpisodeStore | None, clock: Clock,
                 tail: Callable[[], DvrTail | None] = lambda: None) -> None:
        self.streams, self.index, self.storage = streams, index, storage
        self.episodes, self.clock, self.tail = episodes, clock, tail
        self._layouts: dict[tuple[object, ...], tuple[float, Download]] = {}
        self._ranges: dict[str, _StoredRanges] = {}
        self._audio: dict[tuple[str, str], tuple[int, int] | None] = {}

    # -- lookups ------------------------------------------------------------------------------
    def stream(self, name: str) -> dvr.DvrStream:
        """Raises NotFound (unknown or deleted stream)."""
        s = self.streams.get(name) if dvr.STREAM_NAME.match(name) else None
        if s is None:
            raise NotFound(f"stream {name[:80]!r} not found")
        return s

    def _open(self, name: str) -> dvr.SegmentEntry | None:
        tail = self.tail()
        if tail is None:
            return None
        try:
            return tail.open_segment(name)
        except Exception:  # noqa: BLE001 - the archive stays readable without the tail
            _warn(f"tail:{name}", "dvr %s: the gateway's open segment is unreadable", name,
                  exc_info=True)
            return None

    def segments(self, name: str, start_ms: int, end_ms: int) -> Iterator[dvr.SegmentEntry]:
        """Stored segments overlapping ``[start_ms, end_ms)`` by time, then the open one."""
        after = None
        last_end = None
        while True:
            page = self.index.segments(name, start_ms, end_ms, limit=PAGE, after=after)
            for s in page:
                last_end = s.end_ms
                yield s
            if len(page) < PAGE:
                break
            after = page[-1].segment_id
        tail = self._open(name)
        if tail is not None and tail.start_ms < end_ms and tail.end_ms > start_ms and (
                last_end is None or tail.start_ms >= last_end - 500):
            yield tail

    def ranges(self, name: str, start_ms: int | None = None,
               end_ms: int | None = None) -> list[dvr.Range]:
        """Recorded intervals, merged (stored segments and the open one)."""
        stored = self._stored(name)
        if start_ms is None and end_ms is None:
            return self._with_tail(name, stored.merged)
        lo = start_ms if start_ms is not None else -(2**62)
        hi = end_ms if end_ms is not None else 2**62
        i = bisect.bisect_right(stored.ends, lo)
        j = bisect.bisect_left(stored.starts, hi, i)
        found = [dvr.Range(a, b) for a, b in zip(stored.starts[i:j], stored.ends[i:j])]
        if j == len(stored.starts):  # the newest stored range: the open segment joins it
            found = [*found[:-1], *self._with_tail(name, found[-1:])]
        return [r for r in found if r.end_ms > lo and r.start_ms < hi]

    def extent(self, name: str) -> tuple[int, int] | None:
        """(first start, last end) of the recorded archive, open segment included."""
        stored = self._stored(name)
        newest = self._with_tail(name, stored.last())
        if not newest:
            return None
        first = stored.starts[0] if stored.starts else newest[0].start_ms
        return min(first, newest[0].start_ms), newest[-1].end_ms

    def _with_tail(self, name: str, merged: list[dvr.Range]) -> list[dvr.Range]:
        tail = self._open(name)
        if tail is not None and tail.end_ms > tail.start_ms:  # the newest: after the stored
            return [*merged[:-1], *dvr.merge_ranges(
                [*((r.start_ms, r.end_ms) for r in merged[-1:]), (tail.start_ms, tail.end_ms)])]
        return merged

    def ranges_json(self, name: str, form: str, key: str | None = None) -> bytes:
        """All of a stream's ranges as a JSON array (or ``{key: array}``), in one of three
        forms: ``flussonic`` (``{"from", "duration"}``, seconds), ``ms`` or ``s``
        (``{"opened_at", "closed_at"}``). All but the newest stored range are encoded once
        per version of the index (``DvrIndex.version``) and kept as bytes; a request
        encodes only the newest range, merged with the gateway's open segment."""
        stored = self._stored(name)
        prefix = stored.encoded.get(form)
        if prefix is None:
            prefix = stored.encoded[form] = encode_ranges(stored.starts[:-1],
                                                          stored.ends[:-1], form)
        rest = ",".join(map(_FORMS[form], self._with_tail(name, stored.last()))).encode()
        head = b'{"%s":[' % key.encode() if key else b"["
        return b"".join((head, prefix, b"," if prefix and rest else b"", rest,
                         b"]}" if key else b"]"))

    def _stored(self, name: str) -> _StoredRanges:
        """The stored segments' ranges (``DvrIndex.ranges``: kept merged by the index),
        kept per stream and proved by the index's version (one small read per request).
        When the version moved by exactly as many segments as started after the newest one
        seen, those are merged in (recording goes on: a year of 10-minute segments is not
        re-read every 10 minutes); otherwise (a deletion, an old segment added) the ranges
        are read again."""
        version = self.index.version(name)
        hit = self._ranges.get(name)
        if hit is not None and hit.version == version:
            return hit
        if hit is not None and hit.starts and version > hit.version:
            fresh = [sp for sp in self.index.spans(name, hit.last_start, None)
                     if sp[0] > hit.last_start]
            if version == hit.version + len(fresh):
                starts, ends = _merge([(hit.starts[-1], hit.ends[-1]), *fresh])
                encoded = {}
                for form, prefix in hit.encoded.items():  # the newly completed ranges
                    add = encode_ranges(starts[:-1], ends[:-1], form)
                    encoded[form] = b",".join(x for x in (prefix, add) if x)
                fresh_hit = _StoredRanges(version, max(sp[0] for sp in fresh),
                                          hit.starts[:-1] + starts, hit.ends[:-1] + ends,
                                          encoded)
                self._ranges[name] = fresh_hit
                return fresh_hit
        got = self.index.ranges(name)  # kept merged by the index: one read for a year
        starts, ends = array.array("q", got[0]), array.array("q", got[1])
        newest = max((sp[0] for sp in self.index.spans(name, ends[-1] - 1, None)),
                     default=0) if ends else 0
        fresh_hit = _StoredRanges(version, newest, starts, ends, {})
        if len(self._ranges) >= 1024:
            self._ranges.pop(next(iter(self._ranges)))
        self._ranges[name] = fresh_hit
        return fresh_hit

    # -- bytes --------------------------------------------------------------------------------
    def read(self, source: object, start: int, end: int) -> Iterator[bytes]:
        """A stored object's bytes, or the open segment's (``archive.Reader``)."""
        assert isinstance(source, Source)
        if source.key:
            return self.storage.read(source.root, source.key, start, end)
        tail = self.tail()
        if tail is None:
            raise NotFound("the open segment is gone")
        return iter([tail.read_open(self._stream_of(source), source.segment_id, start, end)])

    def _stream_of(self, source: Source) -> str:
        return source.root  # open segments carry their stream name as root (see _source)

    @staticmethod
    def _source(seg: dvr.SegmentEntry) -> Source:
        return Source(seg.root if seg.key else seg.stream, seg.key, seg.segment_id)

    def _exists(self, seg: dvr.SegmentEntry) -> bool:
        """Whether a segment's object is there (checked before a download is laid out, so a
        lost object is a gap the response header and the file's metadata name)."""
        try:
            return self.storage.exists(seg.root, seg.key)
        except Exception:  # noqa: BLE001 - unknown: let the read decide (a free box if gone)
            return True

    def init_bytes(self, seg: dvr.SegmentEntry) -> bytes:
        try:
            return b"".join(self.storage.read(seg.root, seg.init_key))
        except NotFound:
            raise NotFound(f"init segment of {seg.segment_id} is missing") from None

    def audio_track(self, seg: dvr.SegmentEntry) -> dict[str, object] | None:
        """The audio track of a segment as Flussonic's ``media_info`` lists it (``content``
        audio, ``track_id`` a1, ``codec`` aac, ``sample_rate``, ``channels``), or None. Init
        segments are content-addressed (never change): each is read once."""
        if dvr.AUDIO_TRACK not in seg.tracks:
            return None
        key = (seg.root, seg.init_key)
        if key not in self._audio:
            from fleetcam.media.fmp4 import audio_of

            try:
                found = audio_of(self.init_bytes(seg))
            except Exception:  # noqa: BLE001 - info.json answers without it
                _warn(f"init:{seg.stream}", "dvr %s: init %s unreadable", seg.stream,
                      seg.init_key, exc_info=True)
                return None
            if len(self._audio) >= 256:
                self._audio.clear()
            self._audio[key] = found
        found = self._audio[key]
        if found is None:
            return None
        rate, channels = found
        return {"content": "audio", "track_id": "a1", "codec": "aac", "sample_rate": rate,
                "channels": channels, "lang": "und"}

    def ts_fragment(self, name: str, segment_id: str, offset: int, size: int,
                    tracks: str | None = None) -> Iterator[bytes]:
        """One stored fragment as an MPEG-TS segment (``.ts.m3u8`` playlists). Raises
        NotFound unless ``offset``/``size`` are exactly one of the segment's fragments,
        Invalid for a bad ``tracks`` filter."""
        from fleetcam.media.dvrts import to_mpegts

        seg = self.segment(name, segment_id)
        if not any(f.offset == offset and f.size == size for f in seg.fragments):
            raise NotFound("no such fragment")
        init = self.init_bytes(seg)
        data = b"".join(self.read(self._source(seg), offset, offset + size - 1))
        if tracks:
            init, data = self._filtered(init, bytearray(data), tracks)
        return to_mpegts(iter([init, data]))

    @staticmethod
    def _filtered(init: bytes, data: bytearray, tracks: str) -> tuple[bytes, bytes]:
        """An init and whole stored fragments with only the tracks ``tracks`` selects."""
        try:
            archive.check_tracks(tracks)
            parsed = archive.parse_init(init)
            keep = {t.track_id for t in archive.select_tracks(parsed, tracks)}
            out = archive.filtered_init(init, tracks)
            archive.drop_tracks(data, keep)
        except (archive.ArchiveError, archive.CorruptFragment) as e:
            raise Invalid(str(e), field="filter.tracks") from e
        return out, bytes(data)

    def init_for(self, seg: dvr.SegmentEntry, tracks: str | None) -> bytes:
        """A segment's init segment, with only the tracks ``tracks`` selects."""
        init = self.init_bytes(seg)
        return self._filtered(init, bytearray(), tracks)[0] if tracks else init

    def read_filtered(self, seg: dvr.SegmentEntry, start: int, end: int,
                      tracks: str | None) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) of a segment's object, the ``traf``s of tracks
        ``tracks`` leaves out turned into ``free`` boxes (same sizes: byte ranges hold)."""
        if not tracks:
            yield from self.read(self._source(seg), start, end)
            return
        init = self.init_bytes(seg)
        frags = [f for f in seg.fragments if f.offset <= end and f.offset + f.size > start]
        if not frags:
            yield from self.read(self._source(seg), start, end)
            return
        lo, hi = frags[0].offset, frags[-1].offset + frags[-1].size - 1
        data = bytearray(b"".join(self.read(self._source(seg), lo, hi)))
        _, body = self._filtered(init, data, tracks)
        yield body[max(0, start - lo):end - lo + 1]

    def segment(self, name: str, segment_id: str) -> dvr.SegmentEntry:
        """One segment by id (stored or open). Raises NotFound."""
        try:
            start = int(segment_id.split("-", 1)[0])
        except ValueError:
            raise NotFound(f"no segment {segment_id[:40]!r}") from None
        for s in self.index.segments(name, start, start + 1, limit=20):
            if s.segment_id == segment_id:
                return s
        tail = self._open(name)
        if tail is not None and tail.segment_id == segment_id:
            return tail
        raise NotFound(f"no segment {segment_id[:40]!r}")

    # -- downloads ----------------------------------------------------------------------------
    def download(self, name: str, start: int, duration: int, *, tracks: str | None = None,
                 meta: dict[str, object] | None = None) -> Download:
        """The layout of ``archive-{start}-{duration}.mp4``. Layouts of stored (not open)
        archive are kept ``LAYOUT_TTL`` seconds: a player's Range requests on one download
        then cost no index work.

        Raises:
            Invalid: a bad window or track filter. NotFound: nothing recorded there.
        """
        stream = self.stream(name)
        dvrplay.check_window(start, duration, self.clock.now())
        key = (name, start, duration, tracks, repr(sorted((meta or {}).items())))
        now = time.monotonic()
        hit = self._layouts.get(key)
        if hit is not None and now - hit[0] < LAYOUT_TTL:
            return hit[1]
        dl = self._download(stream, name, start, duration, tracks, meta)
        blocks = dl.layout.blocks
        if blocks[0].source.key and blocks[-1].last_source.key:  # type: ignore[attr-defined]
            if len(self._layouts) >= LAYOUT_CACHE:
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[key] = (now, dl)
        return dl

    def _download(self, stream: dvr.DvrStream, name: str, start: int, duration: int,
                  tracks: str | None, meta: dict[str, object] | None) -> Download:
        start_ms, end_ms = start * 1000, (start + duration) * 1000
        pieces: list[archive.Span | tuple[Source, dvr.FragmentEntry]] = []
        gaps: list[archive.Gap] = []
        init_key = init = None
        for seg in self.segments(name, start_ms, end_ms):
            if init_key is None:
                init_key, init = seg.init_key, self.init_bytes(seg)
            elif seg.init_key != init_key:
                gaps.append(archive.Gap(seg.start_ms, end_ms,
                                        "codec parameters changed: download the rest apart"))
                break
            src = self._source(seg)
            if seg.key and not self._exists(seg):
                gaps.append(archive.Gap(max(seg.start_ms, start_ms), min(seg.end_ms, end_ms),
                                        "stored object missing"))
                continue
            table = seg.fragments
            run = table.slice_in(start_ms, end_ms) if isinstance(table, dvr.FragmentTable) \
                else None
            if run is not None:  # a stored table: laid out whole, no entry built
                pieces.append(archive.Span(src, table, *run))
            else:  # the open segment (a tuple), or an irregular table
                pieces += [(src, f) for f in seg.fragments_in(start_ms, end_ms)]
        if not pieces or init is None:
            raise NotFound(f"nothing recorded on {name} from {start} for {duration} s")
        try:
            parsed = archive.parse_init(init)
            layout = archive.plan(parsed, pieces, tracks=archive.select_tracks(parsed, tracks),
                                  gaps=gaps, meta={"stream": name, **(meta or {}),
                                                   "device_id": stream.device_id,
                                                   "channel": stream.channel})
        except archive.ArchiveError as e:
            raise Invalid(str(e), field="filter.tracks" if tracks else None) from e
        return Download(layout, self.read, name)

    # -- playlists ----------------------------------------------------------------------------
    def playlist(self, name: str, req: dvrplay.FileRequest, *, token: str | None,
                 tracks: str | None = None) -> str:
        """A VOD, event or live playlist over the stored fragments (byte ranges of objects).
        ``tracks`` (``filter.tracks``) goes on to the objects' URIs; ``a1`` alone lists only
        segments that have audio.

        Raises:
            Invalid: a bad window or filter; NotFound: nothing recorded there.
        """
        self.stream(name)
        try:
            tracks = archive.check_tracks(tracks)
        except archive.ArchiveError as e:
            raise Invalid(str(e), field="filter.tracks") from e
        audio_only = bool(tracks) and "v" not in (tracks or "")
        now_ms = int(self.clock.now() * 1000)
        kind = req.kind
        if kind == "live":
            start_ms, end_ms = now_ms - dvrplay.LIVE_WINDOW * 1000, now_ms + 60_000
        else:
            dvrplay.check_window(req.start, req.duration, now_ms / 1000,
                                 longest=dvrplay.MAX_PLAYLIST)
            start_ms = req.start * 1000
            end_ms = (start_ms + req.duration * 1000 if req.duration is not None
                      else min(now_ms + 60_000, start_ms + dvrplay.MAX_PLAYLIST * 1000))
        runs = []
        inits: dict[str, str] = {}  # init key -> the URI of the first segment that has it
        for seg in self.segments(name, start_ms, end_ms):
            if audio_only and dvr.AUDIO_TRACK not in seg.tracks:
                continue
            uri = f"dvr/{seg.segment_id}.m4s"  # relative to /{name}/
            init_uri = inits.setdefault(seg.init_key, f"dvr/{seg.segment_id}.mp4")
            for f in seg.fragments_in(start_ms, end_ms):
                if req.container == "ts":  # one fragment remuxed to MPEG-TS when asked
                    runs.append(dvrplay.Run(f"dvr/{seg.segment_id}-{f.offset}-{f.size}.ts", "",
                                            f.offset, f.size, f.start_ms, f.duration_ms))
                else:
                    runs.append(dvrplay.Run(uri, init_uri, f.offset, f.size, f.start_ms,
                                            f.duration_ms))
        if not runs and kind == "vod":
            raise NotFound(f"nothing recorded on {name} in that window")
        parts = dvrplay.group_parts(runs, 1 if kind == "live" else dvrplay.SEGMENT_TARGET_MS)
        sequence = 0
        if kind == "live":
            parts = parts[-max(3, dvrplay.LIVE_WINDOW // 2):]
            sequence = self._live_sequence(name, parts)
        return dvrplay.render_playlist(parts, kind=kind, media_sequence=sequence, token=token,
                                       tracks=tracks)

    def _live_sequence(self, name: str, parts: list[dvrplay.HlsPart]) -> int:
        """Fragments since the start of the hour before the window's first one: a media
        sequence number that stays put while the window slides (fragments are segments in a
        live playlist)."""
        if not parts:
            return 0
        first = parts[0].start_ms
        hour = first - first % 3_600_000
        return sum(1 for seg in self.segments(name, hour, first)
                   for f in seg.fragments_in(hour, first) if f.start_ms < first)

    # -- deleting a range ---------------------------------------------------------------------
    def delete_range(self, name: str, start_ms: int, end_ms: int) -> dict[str, object]:
        """Remove the stored segments inside ``[start_ms, end_ms)``, except what episodes
        protect. Objects are deleted whole: a segment reaching outside the range is kept.

        Returns ``{"deleted": [...], "kept": [{"from", "duration", "reason"}]}`` (seconds).

        Raises:
            Unavailable-as-Invalid: the episode store cannot be read (nothing is deleted).
        """
        self.stream(name)
        segs = list(self.segments(name, start_ms, end_ms))
        segs = [s for s in segs if s.key]  # the open segment is the gateway's, never deleted
        try:
            episodes = (self.episodes.overlapping(name, start_ms, end_ms)
                        if self.episodes is not None else [])
        except Exception as e:
            log.warning("dvr %s: episodes unreadable, range not deleted", name, exc_info=True)
            raise EpisodesUnavailable(
                "the episode store cannot be read right now; nothing was deleted") from e
        now_ms = int(self.clock.now() * 1000)
        deletable, kept = [], []
        for s in segs:
            guard = next((ep for ep in episodes if ep.span(now_ms)[0] < s.end_ms
                          and ep.span(now_ms)[1] > s.start_ms), None)
            if guard is not None:
                kept.append(_span(s, f"protected by episode {guard.episode_id}",
                                  episode_id=guard.episode_id))
            elif s.start_ms < start_ms or s.end_ms > end_ms:
                kept.append(_span(s, "reaches outside the range (objects are deleted whole)"))
            else:
                deletable.append(s)
        gone = self.index.remove(name, [s.segment_id for s in deletable])
        self._layouts.clear()
        self._ranges.pop(name, None)
        done = []
        for s in gone:
            try:
                self.storage.delete(s.root, s.key)
                done.append((s.root, s.key))
            except Exception:  # noqa: BLE001 - stays pending; retention's clean-up retries
                log.warning("dvr %s: object %s not deleted yet", name, s.key, exc_info=True)
        if done:
            self.index.deletion_done(done)
        return {"deleted": [_span(s) for s in dvr.merge_ranges(
                    (g.start_ms, g.end_ms) for g in gone)],
                "kept": kept}


_FORMS: dict[str, Callable[[dvr.Range], str]] = {
    "flussonic": lambda r: (f'{{"from":{r.start_ms // 1000},"duration":'
                            f'{max(1, -(-r.end_ms // 1000) - r.start_ms // 1000)}}}'),
    "ms": lambda r: f'{{"opened_at":{r.start_ms},"closed_at":{r.end_ms}}}',
    "s": lambda r: f'{{"opened_at":{r.start_ms // 1000},"closed_at":{-(-r.end_ms // 1000)}}}',
}


def _merge(spans: list[tuple[int, int]]) -> tuple[array.array[int], array.array[int]]:
    """``dvr.merge_ranges`` as (starts, ends) arrays: no object per range."""
    starts, ends = array.array("q"), array.array("q")
    cur_s = cur_e = None
    for s, e in sorted(spans):
        if e <= s:
            continue
        if cur_e is not None and s <= cur_e:
            if e > cur_e:
                cur_e = e
            continue
        if cur_s is not None:
            starts.append(cur_s)
            ends.append(cur_e)  # type: ignore[arg-type]
        cur_s, cur_e = s, e
    if cur_s is not None:
        starts.append(cur_s)
        ends.append(cur_e)  # type: ignore[arg-type]
    return starts, ends


def encode_ranges(starts: array.array[int], ends: array.array[int], form: str) -> bytes:
    """Ranges as comma-separated JSON objects in ``form`` (as ``_FORMS``), straight from
    the arrays (no object per range; measured against a ``json.dumps`` of all the numbers
    and string replaces: that was slower)."""
    pairs = zip(starts, ends)
    if form == "ms":
        parts = [f'{{"opened_at":{a},"closed_at":{b}}}' for a, b in pairs]
    elif form == "s":
        parts = [f'{{"opened_at":{a // 1000},"closed_at":{-(-b // 1000)}}}' for a, b in pairs]
    else:
        parts = [f'{{"from":{a // 1000},"duration":{max(1, -(-b // 1000) - a // 1000)}}}'
                 for a, b in pairs]
    return ",".join(parts).encode()


class EpisodesUnavailable(Invalid):
    """Episodes could not be read: deleting now could remove protected footage (503)."""

    http_status = 503


def _span(s: dvr.SegmentEntry | dvr.Range, reason: str | None = None,
          **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"from": s.start_ms / 1000, "duration": (s.end_ms - s.start_ms) / 1000}
    if reason:
        out["reason"] = reason
    return {**out, **extra}


# -- thumbnails ---------------------------------------------------------------------------------
THUMB_EVERY_MS = dvr.THUMB_EVERY_MS
THUMB_SEARCH_MS = 10 * 60_000
"""How far from the asked time a thumbnail (stored or made) may be."""
thumb_times = dvr.thumb_times


class Thumbnails:
    """Thumbnails of a stream's archive: stored ones (made as segments are indexed) and
    on-demand ones from the nearest keyframe.

    Args:
        jpeg, mp4: ``(init, fragment bytes) -> bytes`` (media.dvrthumb; PyAV).
    """

    def __init__(self, playback: DvrPlayback, jpeg: Callable[[bytes, bytes], bytes],
                 mp4: Callable[[bytes, bytes], bytes]) -> None:
        self.p, self.jpeg, self.mp4 = playback, jpeg, mp4

    def nearest(self, name: str, utc_ms: int) -> tuple[dvr.SegmentEntry, dvr.FragmentEntry]:
        """The keyframe fragment nearest ``utc_ms``. Raises NotFound."""
        best: tuple[int, dvr.SegmentEntry, dvr.FragmentEntry] | None = None
        for seg in self.p.segments(name, utc_ms - THUMB_SEARCH_MS, utc_ms + THUMB_SEARCH_MS):
            for f in seg.fragments:
                if not f.keyframe:
                    continue
                d = abs(f.start_ms - utc_ms)
                if best is None or d < best[0]:
                    best = (d, seg, f)
        if best is None:
            raise NotFound(f"nothing recorded on {name} within "
                           f"{THUMB_SEARCH_MS // 60000} minutes of {utc_ms / 1000:.0f}")
        return best[1], best[2]

    def _bytes(self, seg: dvr.SegmentEntry, f: dvr.FragmentEntry) -> tuple[bytes, bytes]:
        init = self.p.init_bytes(seg)
        data = b"".join(self.p.read(self.p._source(seg), f.offset, f.offset + f.size - 1))
        return init, data

    def preview_jpeg(self, name: str, utc_ms: int) -> tuple[int, bytes]:
        """(UTC ms of the keyframe, JPEG) nearest ``utc_ms``, made now."""
        seg, f = self.nearest(name, utc_ms)
        return f.start_ms, self.jpeg(*self._bytes(seg, f))

    def preview_mp4(self, name: str, utc_ms: int) -> tuple[int, bytes]:
        seg, f = self.nearest(name, utc_ms)
        return f.start_ms, self.mp4(*self._bytes(seg, f))

    def stored_near(self, name: str, utc_ms: int
                    ) -> tuple[int, dvr.SegmentEntry, dvr.Thumb] | None:
        """The stored thumbnail nearest ``utc_ms`` (from the index rows alone: no request
        to the object store): (its UTC ms, its segment, where it is), or None."""
        best: tuple[int, dvr.SegmentEntry, dvr.Thumb] | None = None
        for seg in self.p.segments(name, utc_ms - THUMB_SEARCH_MS, utc_ms + THUMB_SEARCH_MS):
            if not seg.key or seg.thumbs is None:
                continue
            for t in seg.thumbs.items:
                d = abs(t.utc_ms - utc_ms)
                if best is None or d < best[0]:
                    best = (d, seg, t)
        return None if best is None else (best[2].utc_ms, best[1], best[2])

    def stored_bytes(self, seg: dvr.SegmentEntry, thumb: dvr.Thumb) -> bytes:
        """One stored JPEG: one ranged read of the segment's thumbnails object."""
        assert seg.thumbs is not None
        return b"".join(self.p.storage.read(seg.root, seg.thumbs.key, thumb.offset,
                                            thumb.offset + thumb.size - 1))
