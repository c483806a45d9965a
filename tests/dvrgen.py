"""Archive fixtures: stored DVR segments (docs/dvr.md layout) made from the test pattern.

A few GOPs of the burnt-in-time pattern are encoded once with libx264 and cycled to any
length, each fragment re-timed, so hours of archive cost no encoding.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache

from fleetcam.domain import dvr
from fleetcam.media import fmp4
from fleetcam.media.testpattern import encode_pattern
from fleetcam.protocol.jt1078.nal import nal_type, split_annexb


@dataclass(frozen=True)
class Gop:
    samples: tuple[bytes, ...]
    """Length-prefixed access units (parameter sets left out: they are in the init)."""


@lru_cache(maxsize=8)
def encoded(gops: int = 4, fps: int = 25, width: int = 320, height: int = 240,
            bitrate: int = 300_000, gop_frames: int | None = None,
            start_time: float = 1_700_000_000) -> tuple[bytes, tuple[Gop, ...]]:
    """(init segment, GOPs) of the pattern: ``gops`` groups of ``gop_frames`` (1 s) frames,
    the first showing ``start_time``."""
    gop_frames = gop_frames or fps
    sps = pps = b""
    out: list[list[bytes]] = []
    for frame in encode_pattern("h264", width, height, fps, start_time=start_time,
                                seconds=gops * gop_frames / fps, bitrate=bitrate,
                                gop=gop_frames):
        nals = split_annexb(frame.data)
        body = []
        for nal in nals:
            kind = nal_type("h264", nal)
            if kind == 7:
                sps = sps or nal
            elif kind == 8:
                pps = pps or nal
            elif kind not in (9,):
                body.append(nal)
        if frame.keyframe or not out:
            out.append([])
        out[-1].append(fmp4.to_length_prefixed(body))
    return fmp4.init_segment(sps, pps), tuple(Gop(tuple(g)) for g in out)


def segment(stream: str, start_ms: int, seconds: float, *, fps: int = 25,
            root: str = "dvr", init_key: str = "", gops: tuple[Gop, ...] | None = None,
            first_gop: int = 0) -> tuple[dvr.SegmentEntry, bytes]:
    """One stored segment of ``seconds`` (whole GOPs) starting at ``start_ms``."""
    if gops is None:
        _, gops = encoded(fps=fps)
    frame_ms = 1000 // fps
    data = bytearray()
    frags = []
    t = start_ms
    i = first_gop
    while t < start_ms + seconds * 1000:
        gop = gops[i % len(gops)]
        samples = [fmp4.Sample(s, frame_ms, n == 0) for n, s in enumerate(gop.samples)]
        blob = fmp4.fragment(len(frags) + 1, t, samples)
        dur = frame_ms * len(samples)
        frags.append(dvr.FragmentEntry(t, dur, len(data), len(blob), fmp4.moof_size(len(samples)),
                                       len(samples), True))
        data += blob
        t += dur
        i += 1
    token = secrets.token_hex(4)
    entry = dvr.SegmentEntry(
        stream=stream, segment_id=dvr.segment_id(start_ms, token), root=root,
        key=dvr.segment_key(stream, start_ms, token), init_key=init_key, start_ms=start_ms,
        end_ms=t, size=len(data), codec="avc1.42c01e", width=320, height=240,
        fragments=tuple(frags))
    return entry, bytes(data)
