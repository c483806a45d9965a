"""The raw clip format: frames as a device sent them, written by the gateway, read by the packager.

A raw clip is what the gateway stores while a recording arrives (``raw/{device}/{uuid}.fcraw``).
It keeps each frame's own time stamp, which an elementary stream would lose, and needs no
media library to write, so the gateway stays light::

    b"FCRAW1\\n"  u32 header length  header (UTF-8 JSON: codec, channel, start, end, ...)
    then records:  u8 kind  u64 timestamp (ms)  u32 length  data

``kind`` is the JT/T 1078 data type (0 I, 1 P, 2 B, 3 audio). Pure code: no I/O of its own.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

MAGIC = b"FCRAW1\n"
_LEN = struct.Struct(">I")
_REC = struct.Struct(">BQI")
MAX_HEADER = 64 * 1024
MAX_FRAME = 8 * 1024 * 1024
KIND_AUDIO = 3


class RawClipError(ValueError):
    """The bytes are not a well-formed raw clip (truncated, oversized, wrong magic)."""


@dataclass(frozen=True)
class RawFrame:
    kind: int
    timestamp: int
    data: bytes

    @property
    def video(self) -> bool:
        return self.kind < KIND_AUDIO

    @property
    def keyframe(self) -> bool:
        return self.kind == 0


HEADER_ROOM = 1024
"""Bytes a writer may reserve for its header, so it can complete it once the clip is known
(the audio codec shows only when audio arrives)."""


def encode_header(header: dict[str, Any], room: int | None = None) -> bytes:
    """The magic and JSON header; with ``room``, padded with spaces to that many JSON bytes.

    Raises:
        RawClipError: the header does not fit ``room``.
    """
    body = json.dumps(header, separators=(",", ":")).encode()
    if room is not None:
        if len(body) > room:
            raise RawClipError(f"header of {len(body)} bytes does not fit {room}")
        body = body.ljust(room)
    return MAGIC + _LEN.pack(len(body)) + body


def rewrite_header(dst: BinaryIO, header: dict[str, Any], room: int = HEADER_ROOM) -> None:
    """Replace the padded header at the start of ``dst`` (written with the same ``room``),
    leaving the frames after it untouched and the position where it was."""
    pos = dst.tell()
    dst.seek(0)
    dst.write(encode_header(header, room))
    dst.seek(pos)


def encode_frame(kind: int, timestamp: int, data: bytes) -> bytes:
    return _REC.pack(kind, timestamp, len(data)) + data


def _exactly(src: BinaryIO, n: int) -> bytes:
    buf = src.read(n)
    while len(buf) < n:
        more = src.read(n - len(buf))
        if not more:
            break
        buf += more
    return buf


def read_header(src: BinaryIO) -> dict[str, Any]:
    """Read the magic and JSON header.

    Raises:
        RawClipError: not a raw clip.
    """
    if _exactly(src, len(MAGIC)) != MAGIC:
        raise RawClipError("not a fleetcam raw clip (bad magic)")
    raw_len = _exactly(src, _LEN.size)
    if len(raw_len) < _LEN.size:
        raise RawClipError("truncated header")
    (n,) = _LEN.unpack(raw_len)
    if n > MAX_HEADER:
        raise RawClipError(f"header of {n} bytes is over {MAX_HEADER}")
    try:
        header = json.loads(_exactly(src, n))
    except ValueError as e:
        raise RawClipError(f"bad header: {e}") from e
    if not isinstance(header, dict):
        raise RawClipError("header is not an object")
    return header


def read_frames(src: BinaryIO) -> Iterator[RawFrame]:
    """Frames one at a time (streaming: a clip of any length needs one frame of memory).

    Raises:
        RawClipError: a record is truncated or larger than MAX_FRAME.
    """
    while True:
        head = _exactly(src, _REC.size)
        if not head:
            return
        if len(head) < _REC.size:
            raise RawClipError("truncated frame record")
        kind, ts, n = _REC.unpack(head)
        if n > MAX_FRAME:
            raise RawClipError(f"frame of {n} bytes is over {MAX_FRAME}")
        data = _exactly(src, n)
        if len(data) < n:
            raise RawClipError("truncated frame data")
        yield RawFrame(kind, ts, data)
