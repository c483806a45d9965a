"""The codecs' error hierarchy: the only exceptions a decoder may raise."""
from __future__ import annotations


class ProtocolError(Exception):
    """Bytes that cannot be decoded (or a message that cannot be encoded).

    ``reply_result`` hints the JT/T 808 general-response result the session should answer with,
    the way h11's ``error_status_hint`` hints an HTTP status: 1 = failure, 2 = message error,
    3 = not supported.
    """

    def __init__(self, message: str, reply_result: int = 1) -> None:
        super().__init__(message)
        self.reply_result = reply_result


class FrameTooLarge(ProtocolError):
    """A frame or buffer exceeded its configured maximum size."""


class BadChecksum(ProtocolError):
    """A frame's check code does not match its contents."""
