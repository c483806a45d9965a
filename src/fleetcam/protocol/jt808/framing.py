"""JT/T 808 framing: 0x7E delimiters, 0x7D escaping, XOR check code and a bounded splitter.

Escape policy (PROTOCOLS.md §1.1, §5.12): ``7D 01`` -> ``7D`` and ``7D 02`` -> ``7E``; any other
``7D xx`` (and a ``7D`` right before the closing ``7E``) is kept literally.  Traccar's real frame
with ``7D A0`` only has a matching length and check code under that reading, and go-jt808 keeps
a heartbeat whose unescaped check code 0x7D sits right before the delimiter.  The check code
then decides whether the frame is good.  ``unescape(strict=True)`` rejects such frames instead.
"""
from __future__ import annotations

from fleetcam.protocol.errors import FrameTooLarge, ProtocolError

FLAG = 0x7E
ESC = 0x7D
_FLAG = b"\x7e"


def escape(data: bytes) -> bytes:
    """Escape header+body+check code (JT/T 808-2019 §4.4.3): 7D -> 7D 01 first, then 7E -> 7D 02."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes, *, strict: bool = False) -> bytes:
    """Undo ``escape``; see the module docstring for illegal escapes.

    Raises:
        ProtocolError: ``strict`` and ``data`` holds a ``7D`` not followed by 01 or 02.
    """
    if b"\x7d" not in data:
        return data
    if strict and data.count(b"\x7d") != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        raise ProtocolError("illegal 0x7D escape", reply_result=2)
    # A 7D that is the second byte of an escape is impossible (that byte is 01 or 02), so two
    # left-to-right replacements equal a sequential scan.
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def checksum(data: bytes) -> int:
    """XOR of every byte (header and body, unescaped)."""
    if not data:
        return 0
    # Fold the bytes as one big integer: XOR of the halves halves the width each round.
    value = int.from_bytes(data, "little")
    width = len(data)
    while width > 1:
        half = (width + 1) // 2
        value = (value & ((1 << (8 * half)) - 1)) ^ (value >> (8 * half))
        width = half
    return value


def wrap(payload: bytes) -> bytes:
    """Append the check code, escape and delimit: header+body -> wire frame."""
    return _FLAG + escape(payload + bytes((checksum(payload),))) + _FLAG


class FrameSplitter:
    """Cuts a byte stream into escaped frame contents (between two 0x7E), bounded in size.

    Bytes before the first 0x7E are garbage and are skipped (counted in ``garbage``).  A closing
    0x7E may also open the next frame, so both ``7E a 7E 7E b 7E`` and ``7E a 7E b 7E`` split.
    """

    __slots__ = ("buffer", "garbage", "max_frame")

    def __init__(self, max_frame: int = 8192) -> None:
        self.max_frame = max_frame
        self.buffer = bytearray()
        self.garbage = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes, dropping at once anything that cannot start a frame."""
        if not self.buffer:
            start = data.find(_FLAG)
            if start < 0:
                self.garbage += len(data)
                return
            self.garbage += start
            data = data[start:]
        self.buffer += data

    def next_frame(self) -> bytes | None:
        """The next escaped frame content, or None until more data arrives.

        Raises:
            FrameTooLarge: more than ``max_frame`` bytes without a closing 0x7E; they are dropped.
        """
        buf = self.buffer
        while True:
            start = buf.find(_FLAG)
            if start < 0:
                self.garbage += len(buf)
                buf.clear()
                return None
            if start:
                self.garbage += start
                del buf[:start]
            end = buf.find(_FLAG, 1)
            if end < 0:
                if len(buf) > self.max_frame:
                    size = len(buf)
                    buf.clear()
                    raise FrameTooLarge(f"no frame end within {size} bytes")
                return None
            if end == 1:  # "7E 7E": end of one frame and start of the next
                del buf[:1]
                continue
            frame = bytes(buf[1:end])
            del buf[:end]  # keep the 7E: it may open the next frame
            if len(frame) > self.max_frame:
                raise FrameTooLarge(f"frame of {len(frame)} bytes")
            return frame

    def pending(self) -> bytes:
        """Bytes of an unfinished frame (for the EOF report), and forget them."""
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest if rest.strip(_FLAG) else b""
