"""HLS playlists and the live-stream key layout (pure)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LIVE_PREFIX = "live/"
LIVE_WINDOW = 6
"""Segments a live playlist lists (about 6 s at 1 s segments)."""


@dataclass(frozen=True)
class SegmentRef:
    sequence: int
    duration: float


def stream_key(uuid: str, name: str) -> str:
    """``live/{uuid}/{name}``: the stream's playlist (index.m3u8) and segments ({n}.ts)."""
    return f"{LIVE_PREFIX}{uuid}/{name}"


def segment_name(sequence: int) -> str:
    return f"{sequence}.ts"


def connection_id(uuid: str) -> int:
    """A stream's connection id, derived from its uuid (52 bits: safe in JSON clients), so a
    playlist request finds its connection without a lookup table."""
    return int(uuid[:13], 16)


def render_playlist(segments: Iterable[SegmentRef], *, ended: bool, event: bool = False,
                    target: float = 1.0) -> str:
    """An HLS media playlist over ``segments`` (already cut to the window)."""
    segs = list(segments)
    longest = max((s.duration for s in segs), default=target)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest))}",
             f"#EXT-X-MEDIA-SEQUENCE:{segs[0].sequence if segs else 0}"]
    if event:
        lines.append("#EXT-X-PLAYLIST-TYPE:EVENT")
    for s in segs:
        lines += [f"#EXTINF:{s.duration:.3f},", segment_name(s.sequence)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
