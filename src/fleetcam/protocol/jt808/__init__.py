"""JT/T 808 (2011/2013/2019) and JT/T 1078 signalling codec, sans-IO."""
from __future__ import annotations

from fleetcam.protocol.jt808.connection import (
    NEED_DATA,
    FrameError,
    Jt808Connection,
    Message,
    ResendNeeded,
)
from fleetcam.protocol.jt808.framing import checksum, escape, unescape, wrap
from fleetcam.protocol.jt808.header import Header, encode_header, parse_header
from fleetcam.protocol.jt808.ids import MsgId, Result
from fleetcam.protocol.jt808.messages import decode_body, encode_body

__all__ = [
    "NEED_DATA", "FrameError", "Header", "Jt808Connection", "Message", "MsgId", "ResendNeeded",
    "Result", "checksum", "decode_body", "encode_body", "encode_header", "escape",
    "parse_header", "unescape", "wrap",
]
