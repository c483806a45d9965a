"""The raw clip format: a padded header can be completed in place once the clip is known."""
from __future__ import annotations

import io

import pytest

from fleetcam.domain import rawclip


def test_a_padded_header_is_rewritten_without_touching_the_frames() -> None:
    buf = io.BytesIO()
    buf.write(rawclip.encode_header({"codec": "h264", "start": 1}, rawclip.HEADER_ROOM))
    frames = [(0, 1000, b"\x00\x00\x00\x01\x65key"), (3, 1010, b"alaw"), (1, 1040, b"p")]
    for kind, ts, data in frames:
        buf.write(rawclip.encode_frame(kind, ts, data))
    end = buf.tell()
    rawclip.rewrite_header(buf, {"codec": "h264", "start": 1, "audio": 6})
    assert buf.tell() == end
    buf.seek(0)
    assert rawclip.read_header(buf) == {"codec": "h264", "start": 1, "audio": 6}
    assert [(f.kind, f.timestamp, f.data) for f in rawclip.read_frames(buf)] == frames


def test_a_header_that_does_not_fit_its_room_is_refused() -> None:
    with pytest.raises(rawclip.RawClipError):
        rawclip.encode_header({"x": "y" * 100}, room=50)


def test_truncated_and_oversized_records_are_errors() -> None:
    clip = rawclip.encode_header({"codec": "h264"}) + rawclip.encode_frame(0, 1, b"abc")
    with pytest.raises(rawclip.RawClipError):
        list(rawclip.read_frames(io.BytesIO(clip[len(rawclip.encode_header({"codec": "h264"})):-1])))
    with pytest.raises(rawclip.RawClipError):
        rawclip.read_header(io.BytesIO(b"NOTRAW\n" + bytes(8)))
