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


@lru_cache(maxsize=8)
def tone(start_ms: int, seconds: float) -> tuple[fmp4.AudioConfig, tuple[tuple[int, bytes], ...]]:
    """A 440 Hz tone from ``start_ms`` as the gateway records it: G.711 A-law frames of 40 ms
    through the recorder's AAC transcoder; (config, ``(pts in samples, AAC frame)``...)."""
    from fleetcam.media.dvraudio import AudioTranscoder
    from fleetcam.simulator.streamer import alaw_tone

    t = AudioTranscoder()
    packets = []
    for i in range(int(seconds * 25) + 10):
        packets += t.push(6, alaw_tone(40, i * 40), start_ms + i * 40, start_ms)
    packets += t.flush()
    assert t.config is not None
    return t.config, tuple((p.pts, p.data) for p in packets)


def with_audio(init: bytes, config: fmp4.AudioConfig) -> bytes:
    """The video init segment ``init`` with an AAC track of ``config`` added."""
    at = init.index(b"avcC") + 4
    sps_len = int.from_bytes(init[at + 6:at + 8], "big")
    sps = init[at + 8:at + 8 + sps_len]
    pps_at = at + 8 + sps_len + 1
    pps = init[pps_at + 2:pps_at + 2 + int.from_bytes(init[pps_at:pps_at + 2], "big")]
    return fmp4.init_segment(sps, pps, config)


def segment(stream: str, start_ms: int, seconds: float, *, fps: int = 25,
            root: str = "dvr", init_key: str = "", gops: tuple[Gop, ...] | None = None,
            first_gop: int = 0, audio: bool = False) -> tuple[dvr.SegmentEntry, bytes]:
    """One stored segment of ``seconds`` (whole GOPs) starting at ``start_ms`` (with the
    ``tone`` as its audio track when ``audio``: its init must be ``with_audio``)."""
    if gops is None:
        _, gops = encoded(fps=fps)
    frame_ms = 1000 // fps
    data = bytearray()
    frags = []
    t = start_ms
    i = first_gop
    sound = list(tone(start_ms, seconds)[1]) if audio else []
    while t < start_ms + seconds * 1000:
        gop = gops[i % len(gops)]
        samples = [fmp4.Sample(s, frame_ms, n == 0) for n, s in enumerate(gop.samples)]
        dur = frame_ms * len(samples)
        run = [(d, 1024) for pts, d in sound if t * 8 <= pts < (t + dur) * 8]
        first = next((pts for pts, _ in sound if t * 8 <= pts), 0)
        blob = fmp4.fragment(len(frags) + 1, t, samples,
                             fmp4.AudioRun(first, run) if run else None)
        frags.append(dvr.FragmentEntry(t, dur, len(data), len(blob),
                                       fmp4.moof_size(len(samples), len(run)),
                                       len(samples), True))
        data += blob
        t += dur
        i += 1
    token = secrets.token_hex(4)
    entry = dvr.SegmentEntry(
        stream=stream, segment_id=dvr.segment_id(start_ms, token), root=root,
        key=dvr.segment_key(stream, start_ms, token), init_key=init_key, start_ms=start_ms,
        end_ms=t, size=len(data), codec="avc1.42c01e", width=320, height=240,
        fragments=tuple(frags), tracks=(1, 2) if audio else (1,))
    return entry, bytes(data)
