"""Wire primitives shared by the codecs: BCD digits and times, GBK strings, bounded reader."""
from __future__ import annotations

import calendar
import struct
import time

from fleetcam.protocol.errors import ProtocolError

BEIJING_OFFSET = 8 * 3600  # JT/T 808-2019 §4.5.2: BCD times are GMT+8
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def bcd_to_digits(data: bytes) -> str:
    """Packed BCD to its digit string, leading zeros kept.

    Nibbles above 9 (some devices pad with ``F``) come out as lowercase hex, so the result
    always re-encodes to the same bytes.
    """
    return data.hex()


def digits_to_bcd(digits: str, width: int) -> bytes:
    """A digit string to ``width`` bytes of packed BCD, left-padded with zeros.

    Raises:
        ProtocolError: the string has non-hex characters or more significant digits than fit.
    """
    digits = digits.rjust(2 * width, "0")
    if len(digits) > 2 * width:
        extra = len(digits) - 2 * width
        if digits[:extra].strip("0"):
            raise ProtocolError(f"{digits!r} does not fit in BCD[{width}]")
        digits = digits[extra:]
    try:
        return bytes.fromhex(digits)
    except ValueError as exc:
        raise ProtocolError(f"not BCD digits: {digits!r}") from exc


def bcd_time_to_unix(data: bytes) -> int:
    """BCD[6] ``YYMMDDhhmmss`` in GMT+8 to a unix timestamp; all zeros means 0 (unset).

    Raises:
        ProtocolError: a nibble is not a decimal digit or the date does not exist.
    """
    if not any(data):
        return 0
    text = data.hex()
    if len(text) != 12 or not text.isdigit():
        raise ProtocolError(f"bad BCD time {text!r}")
    year, month, day, hour, minute, second = (int(text[i:i + 2]) for i in range(0, 12, 2))
    year += 2000
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour < 24 and minute < 60 and second < 60):
        raise ProtocolError(f"bad BCD time {text!r}")
    return calendar.timegm((year, month, day, hour, minute, second)) - BEIJING_OFFSET


def unix_to_bcd_time(stamp: int) -> bytes:
    """A unix timestamp to BCD[6] in GMT+8; 0 encodes as all zeros.

    Raises:
        ProtocolError: the time falls outside 2000-2099, which BCD[6] cannot carry.
    """
    if stamp == 0:
        return bytes(6)
    try:
        t = time.gmtime(stamp + BEIJING_OFFSET)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtocolError(f"time {stamp} out of range") from exc
    if not 2000 <= t.tm_year <= 2099:
        raise ProtocolError(f"time {stamp} outside 2000-2099")
    parts = (t.tm_year - 2000, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    text = "".join(f"{part:02d}" for part in parts)
    return bytes.fromhex(text)


def gbk_decode(data: bytes) -> str:
    """GBK text with NUL padding on either side and trailing spaces removed.

    Undecodable bytes become U+FFFD rather than raising: a plate must not cost a registration.
    """
    return data.strip(b"\x00").decode("gbk", errors="replace").rstrip(" ")


def gbk_encode(text: str, width: int | None = None) -> bytes:
    """GBK bytes, NUL-padded to ``width`` when given.

    Raises:
        ProtocolError: a character has no GBK form, or the text is longer than ``width``.
    """
    try:
        data = text.encode("gbk")
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"{text!r} is not encodable as GBK") from exc
    if width is None:
        return data
    if len(data) > width:
        raise ProtocolError(f"{text!r} is longer than {width} bytes")
    return data.ljust(width, b"\x00")


class Reader:
    """Big-endian cursor over a body; every read past the end raises ``ProtocolError``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"truncated body: need {n} bytes at {self.pos}, "
                                f"have {self.remaining}", reply_result=2)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def time(self) -> int:
        return bcd_time_to_unix(self.take(6))

    def text(self, n: int) -> str:
        return gbk_decode(self.take(n))

    def text8(self) -> str:
        """A string prefixed by its BYTE length (JT/T 1078 IP addresses, FTP fields)."""
        return gbk_decode(self.take(self.u8()))


class Writer:
    """Big-endian builder; out-of-range values raise ``ProtocolError``."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def _int(self, value: int, size: int) -> Writer:
        try:
            self.out += int(value).to_bytes(size, "big")
        except (OverflowError, ValueError, TypeError) as exc:
            raise ProtocolError(f"{value!r} does not fit in {size} bytes") from exc
        return self

    def u8(self, value: int) -> Writer:
        return self._int(value, 1)

    def u16(self, value: int) -> Writer:
        return self._int(value, 2)

    def u32(self, value: int) -> Writer:
        return self._int(value, 4)

    def u64(self, value: int) -> Writer:
        return self._int(value, 8)

    def raw(self, data: bytes) -> Writer:
        self.out += data
        return self

    def time(self, stamp: int) -> Writer:
        return self.raw(unix_to_bcd_time(stamp))

    def text(self, value: str, width: int | None = None) -> Writer:
        return self.raw(gbk_encode(value, width))

    def text8(self, value: str) -> Writer:
        data = gbk_encode(value)
        return self.u8(len(data)).raw(data)

    def bytes(self) -> bytes:
        return bytes(self.out)
