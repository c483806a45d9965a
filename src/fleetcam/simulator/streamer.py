"""A simulated media connection: test-pattern video as JT/T 1078 packets over TCP."""
from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import itertools
import math
import logging
import time
from collections.abc import Iterator

from fleetcam.protocol.jt1078.nal import packetize
from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet

log = logging.getLogger(__name__)
BATCH_SECONDS = 1.0
LIVE_CHUNK = 600.0


async def stream_video(host: str, port: int, *, sim: str, channel: int, codec: str, width: int,
                       height: int, fps: int, bitrate: int, live: bool, start: int = 0,
                       end: int = 0, speed: float = 4.0, stats: dict[str, int] | None = None,
                       audio: bool = False) -> None:
    """Connect to the platform's media port and send video until told to stop (live) or
    until the recording's end (playback, faster than real time by ``speed``; 0 = flat out);
    then close the connection, which tells the platform the stream ended."""
    from fleetcam.media.testpattern import encode_pattern

    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        log.warning("sim stream %s/%d: cannot connect to %s:%d: %s", sim, channel, host, port, e)
        return
    t0 = time.time() if live else float(start)
    if live:  # endless, in chunks: encode_pattern lists its frame indices up front
        frames: Iterator = itertools.chain.from_iterable(
            encode_pattern(codec, width, height, fps, start_time=t0 + k * LIVE_CHUNK,
                           seconds=LIVE_CHUNK, bitrate=bitrate) for k in itertools.count())
    else:
        frames = encode_pattern(codec, width, height, fps, start_time=t0,
                                seconds=float(end - start), bitrate=bitrate)
    pt = PayloadType.H264 if codec == "h264" else PayloadType.H265
    seq = 0
    last_i = 0
    wall0 = time.monotonic()
    try:
        while True:
            batch = await asyncio.to_thread(_take, frames, max(1, int(fps * BATCH_SECONDS)))
            if not batch:
                break
            for f in batch:
                elapsed = f.time - t0
                pace = 1.0 if live else speed
                if pace > 0:
                    due = wall0 + elapsed / pace
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if f.keyframe:
                    last_i = f.pts_ms
                packets = packetize(f.data, sim=sim, channel=channel,
                                    data_type=DataType.I_FRAME if f.keyframe else DataType.P_FRAME,
                                    payload_type=pt, timestamp=int(f.time * 1000),
                                    sequence_start=seq, last_i_interval=f.pts_ms - last_i,
                                    last_frame_interval=1000 // fps)
                seq = (seq + len(packets)) & 0xFFFF
                if audio:  # one frame of G.711 A-law per video frame, as MDVRs interleave them
                    chunk = alaw_tone(1000 // fps, f.pts_ms)
                    sound = packetize(chunk, sim=sim, channel=channel, data_type=DataType.AUDIO,
                                      payload_type=PayloadType.G711A,
                                      timestamp=int(f.time * 1000), sequence_start=seq)
                    seq = (seq + len(sound)) & 0xFFFF
                    packets += sound
                writer.write(b"".join(encode_packet(p) for p in packets))
                if stats is not None:
                    stats["frames"] += 1
            await writer.drain()
            if reader.at_eof():
                break
    except (ConnectionError, OSError) as e:
        log.info("sim stream %s/%d ended: %s", sim, channel, e)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@functools.lru_cache(maxsize=1)
def _alaw_second() -> bytes:
    """One second of a 440 Hz tone at 8 kHz, G.711 A-law (made with PyAV's pcm_alaw)."""
    import av

    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / 8000))
                                for i in range(8000)))
    frame = av.AudioFrame(format="s16", layout="mono", samples=8000)
    frame.planes[0].update(samples.tobytes())
    frame.sample_rate, frame.pts = 8000, 0
    enc = av.CodecContext.create("pcm_alaw", "w")
    enc.sample_rate, enc.format, enc.layout = 8000, "s16", "mono"
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def alaw_tone(ms: int, at_ms: int) -> bytes:
    """``ms`` of the tone starting ``at_ms`` into it (8 bytes a millisecond)."""
    second = _alaw_second()
    start = (at_ms * 8) % len(second)
    return (second + second)[start:start + ms * 8]


def _take(frames: Iterator, n: int) -> list:
    out = []
    for f in frames:
        out.append(f)
        if len(out) >= n:
            break
    return out
