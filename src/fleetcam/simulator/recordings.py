"""What a simulated MDVR has recorded: continuous files on every channel (pure)."""
from __future__ import annotations

from dataclasses import dataclass

FILE_SECONDS = 600
HISTORY = 24 * 3600


@dataclass(frozen=True)
class Recording:
    channel: int
    start: int
    end: int
    size: int


def recordings(channels: int, start: int, end: int, now: int, bitrate: int = 1_000_000,
               channel: int = 0, history: int = HISTORY) -> list[Recording]:
    """The 10-minute files (clipped to [start, end]) covering the last ``history`` seconds.

    Args:
        channel: 0 for all channels, else only that one.
        end: 0 means "no limit" (JT/T 1078 0x9205).
    """
    end = now if end == 0 else min(end, now)
    start = max(start, now - history)
    out = []
    chans = range(1, channels + 1) if channel == 0 else ([channel] if channel <= channels else [])
    for ch in chans:
        t = start - start % FILE_SECONDS
        while t < end:
            a, b = max(t, start), min(t + FILE_SECONDS, end)
            if b > a:
                out.append(Recording(ch, a, b, (b - a) * bitrate // 8))
            t += FILE_SECONDS
    return out
