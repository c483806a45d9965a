"""The DVR read side, pure: Flussonic's end-user file names, time windows, HLS playlists.

Names follow Flussonic's streaming API (``/{name}/archive-{from}-{duration}.mp4``,
``index-{from}-{duration}.m3u8``, ``timeshift_abs-{from}.m3u8``, ``{from}.jpg``...); times in
names are UTC seconds. Playlists list the stored fragments where they are (fMP4 byte ranges of
the stored objects), so playback copies no media.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from fleetcam.errors import Invalid

MAX_DURATION = 24 * 3600
"""Longest window one request may name (a day), as bounded memory and time per request."""
MAX_PLAYLIST = 6 * 3600
"""Longest window a VOD playlist lists (Flussonic's player asks for at most an hour)."""
EARLIEST = 946_684_800
"""2000-01-01: an earlier ``from`` is a typo (or milliseconds given as seconds)."""
FUTURE_SLACK = 60
"""A ``from`` later than now plus this is in the future (400)."""
LIVE_WINDOW = 30
"""Seconds a live playlist lists."""
SEGMENT_TARGET_MS = 0
"""Adjacent fragments of one object are grouped into HLS segments of up to this length (byte
ranges of the object). 0: one fragment (one GOP) per segment. Flussonic's player runs hls.js
in progressive mode, which misplaces the second and later ``moof`` of a segment (measured: a
6-fragment grouping played 5 s off and lost 14 s of 35), so the default keeps one."""

_NUM = r"(\d{1,13})"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("mp4", re.compile(rf"archive-{_NUM}-{_NUM}\.mp4")),
    ("ts", re.compile(rf"archive-{_NUM}-{_NUM}\.ts")),
    ("vod", re.compile(rf"(?:index|archive)-{_NUM}-{_NUM}(\.fmp4|\.ts)?\.m3u8")),
    ("event", re.compile(rf"(?:index|archive)-{_NUM}-now(\.fmp4|\.ts)?\.m3u8")),
    ("event", re.compile(rf"timeshift_abs-{_NUM}(\.fmp4|\.ts)?\.m3u8")),
    ("live", re.compile(r"index(\.fmp4|\.ts)?\.m3u8")),
    ("jpg", re.compile(rf"{_NUM}\.jpg")),
    ("preview_jpg", re.compile(rf"{_NUM}-preview\.jpg")),
    ("preview_mp4", re.compile(rf"{_NUM}-preview\.mp4")),
]
_MALFORMED = re.compile(r"(archive|index|timeshift_abs)[-_].*|-?\d+(-preview)?\.(jpg|mp4)")


@dataclass(frozen=True)
class FileRequest:
    """One end-user file name, parsed.

    Attributes:
        kind: ``mp4``, ``ts`` (downloads), ``vod``, ``event``, ``live`` (playlists), ``jpg``,
            ``preview_jpg``, ``preview_mp4`` (thumbnails).
        start: UTC seconds (0 for ``live``).
        duration: seconds; None for open-ended kinds.
        container: ``fmp4`` or ``ts`` (playlists; plain ``.m3u8`` is fMP4).
    """

    kind: str
    start: int = 0
    duration: int | None = None
    container: str = "fmp4"


def parse_file(name: str) -> FileRequest | None:
    """The request a file name makes; None when it is none of Flussonic's DVR names.

    Raises:
        Invalid: a DVR name with malformed numbers (negative, zero or huge duration...).
    """
    for kind, pattern in _PATTERNS:
        m = pattern.fullmatch(name)
        if not m:
            continue
        groups = m.groups()
        container = "ts" if ".ts" in (groups[-1] or "") and kind in ("vod", "event", "live") \
            else "fmp4"
        if kind == "live":
            return FileRequest("live", container=container)
        start = int(groups[0])
        duration = int(groups[1]) if kind in ("mp4", "ts", "vod") else None
        return FileRequest(kind, start, duration, container)
    if _MALFORMED.fullmatch(name):
        raise Invalid(f"malformed archive file name {name[:80]!r}: expected e.g. "
                      "archive-{from}-{duration}.mp4 with UTC seconds", field="name")
    return None


def check_window(start: int, duration: int | None, now: float, *,
                 longest: int = MAX_DURATION) -> None:
    """Raises Invalid unless ``[start, start + duration)`` is a sensible request."""
    if start < EARLIEST:
        raise Invalid(f"from={start} is before 2000 (UTC seconds are expected)", field="from")
    if start > now + FUTURE_SLACK:
        raise Invalid(f"from={start} is in the future", field="from")
    if duration is not None and not 0 < duration <= longest:
        raise Invalid(f"duration must be 1 to {longest} seconds, not {duration}",
                      field="duration")


# -- playlists ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HlsPart:
    """A run of stored fragments that plays as one HLS segment.

    Attributes:
        uri: the stored object's URL (byte ranges of it are the segment).
        init_uri: its init segment's URL (``EXT-X-MAP``).
        offset, length: the bytes of the run in the object.
        start_ms, duration_ms: UTC time.
    """

    uri: str
    init_uri: str
    offset: int
    length: int
    start_ms: int
    duration_ms: int


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def render_playlist(parts: Sequence[HlsPart], *, kind: str, media_sequence: int = 0,
                    token: str | None = None, tracks: str | None = None) -> str:
    """An HLS media playlist over ``parts``: fMP4 (version 7, byte ranges of the stored
    objects) when they have an init, else MPEG-TS segments (version 3, remuxed on request).

    ``kind``: ``vod`` (ended), ``event`` (grows), ``live`` (a sliding window). A gap in time
    or a new init segment starts a discontinuity; every segment carries its
    ``EXT-X-PROGRAM-DATE-TIME``. ``tracks`` (``filter.tracks``) is passed on to every URI.
    """
    query = [f"token={quote(token, safe='')}"] if token else []
    if tracks:
        query.append(f"filter.tracks={quote(tracks, safe='')}")
    q = "?" + "&".join(query) if query else ""
    longest = max((p.duration_ms for p in parts), default=1000)
    fmp4 = any(p.init_uri for p in parts) or not parts
    lines = ["#EXTM3U", "#EXT-X-VERSION:7" if fmp4 else "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest / 1000))}",
             f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if kind == "vod":
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    elif kind == "event":
        lines.append("#EXT-X-PLAYLIST-TYPE:EVENT")
    prev: HlsPart | None = None
    for p in parts:
        if p.init_uri and (prev is None or p.init_uri != prev.init_uri):
            if prev is not None:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="{p.init_uri}{q}"')
        elif prev is not None and p.start_ms - (prev.start_ms + prev.duration_ms) > 1000:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{iso(p.start_ms)}",
                  f"#EXTINF:{p.duration_ms / 1000:.3f},"]
        if p.init_uri:  # fMP4: a byte range of the stored object
            lines.append(f"#EXT-X-BYTERANGE:{p.length}@{p.offset}")
        lines.append(f"{p.uri}{q}")
        prev = p
    if kind == "vod":
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Run:
    """Fragments to group: (object uri, init uri, offset, size, start_ms, duration_ms)."""

    uri: str
    init_uri: str
    offset: int
    size: int
    start_ms: int
    duration_ms: int


def group_parts(fragments: Iterable[Run], target_ms: int = SEGMENT_TARGET_MS) -> list[HlsPart]:
    """Group adjacent fragments of one object into HLS segments of about ``target_ms``."""
    out: list[HlsPart] = []
    cur: HlsPart | None = None
    for f in fragments:
        if (cur is not None and f.uri == cur.uri and f.offset == cur.offset + cur.length
                and f.start_ms == cur.start_ms + cur.duration_ms
                and cur.duration_ms + f.duration_ms <= target_ms):
            cur = HlsPart(cur.uri, cur.init_uri, cur.offset, cur.length + f.size, cur.start_ms,
                          cur.duration_ms + f.duration_ms)
            continue
        if cur is not None:
            out.append(cur)
        cur = HlsPart(f.uri, f.init_uri, f.offset, f.size, f.start_ms, f.duration_ms)
    if cur is not None:
        out.append(cur)
    return out


# -- ranges.json -------------------------------------------------------------------------------
def flussonic_ranges(ranges: Iterable[tuple[int, int]], *, millis: bool) -> list[dict[str, int]]:
    """``[{"opened_at", "closed_at"}]`` as the player reads them: UTC ms when it asked in ms
    (its first query does), else seconds (rounded outwards)."""
    if millis:
        return [{"opened_at": s, "closed_at": e} for s, e in ranges]
    return [{"opened_at": s // 1000, "closed_at": -(-e // 1000)} for s, e in ranges]
