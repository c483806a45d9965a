"""A moving test pattern with its own UTC time burnt in as 7-segment digits, encoded by PyAV."""
from __future__ import annotations

import itertools

import datetime as dt
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import av

from fleetcam.protocol.jt1078.nal import nal_type, split_annexb

_ON, _OFF = 235, 16  # video-range white and black luma
_THRESHOLD = 126
_MS_PER_DAY = 86_400_000
# Segments a..g: top, upper right, lower right, bottom, lower left, upper left, middle.
_SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
    "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg", "-": "g",
}  # fmt: skip
_DIGIT_OF_MASK = {frozenset(s): d for d, s in _SEGMENTS.items() if d.isdigit()}
# Bars: white, yellow, cyan, green, magenta, red, blue, black as (Y, U, V), BT.601.
_BARS = [
    (235, 128, 128), (210, 16, 146), (170, 166, 16), (145, 54, 34),
    (106, 202, 222), (81, 90, 240), (41, 240, 110), (16, 128, 128),
]  # fmt: skip
_PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded picture.

    Attributes:
        time: Unix seconds the frame represents (and shows, to the millisecond).
        pts_ms: presentation time in ms from the start of the clip.
        keyframe: an IDR picture, preceded by its parameter sets.
        data: Annex-B bytes with start codes; SPS/PPS (and VPS) repeated on keyframes.
    """

    time: float
    pts_ms: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class _Layout:
    cw: int  # time-row cell width (date-row cells are cw2)
    h: int
    cw2: int
    h2: int
    box_x: int  # box left/right (even), top/bottom (even)
    box_x1: int
    box_y: int
    box_y1: int
    date_x: int
    date_y: int
    time_x: int
    time_y: int


@lru_cache(maxsize=16)
def _layout(width: int, height: int) -> _Layout:
    if width < 176 or height < 120 or width % 2 or height % 2:
        raise ValueError("the test pattern needs even dimensions of at least 176x120")
    cw = min(width * 7 // 8 // 12, height * 3 // 8 * 5 // 9) // 2 * 2
    h, cw2 = cw * 9 // 5, cw * 2 // 3 // 2 * 2
    h2, margin = cw2 * 9 // 5, cw // 2 // 2 * 2
    box_w = 12 * cw + 2 * margin
    box_h = margin + h2 + margin + h + margin
    box_x = (width - box_w) // 4 * 2
    box_y = (height - box_h) // 6 * 2
    date_x = box_x + (box_w - 10 * cw2) // 2
    return _Layout(
        cw, h, cw2, h2, box_x, box_x + box_w, box_y, box_y + box_h + box_h % 2,
        date_x, box_y + margin, box_x + margin, box_y + 2 * margin + h2,
    )  # fmt: skip


def _segment_rects(cw: int, h: int) -> dict[str, tuple[int, int, int, int]]:
    """Segment rectangles (x0, y0, x1, y1) inside a cell of cw x h."""
    pad, t = max(1, cw // 8), max(2, cw // 6)
    x0, x1, mid = pad, cw - pad, h // 2
    return {
        "a": (x0, 0, x1, t), "b": (x1 - t, 0, x1, mid), "c": (x1 - t, mid, x1, h),
        "d": (x0, h - t, x1, h), "e": (x0, mid, x0 + t, h), "f": (x0, 0, x0 + t, mid),
        "g": (x0, mid - t // 2, x1, mid - t // 2 + t),
    }  # fmt: skip


@lru_cache(maxsize=64)
def _glyph(char: str, cw: int, h: int) -> tuple[bytes, ...]:
    """The rows of one character cell, as luma bytes."""
    cell = bytearray([_OFF]) * (cw * h)
    rects = _segment_rects(cw, h)
    t = max(2, cw // 6)
    cx = (cw - t) // 2
    if char in _SEGMENTS:
        boxes = [rects[s] for s in _SEGMENTS[char]]
    elif char == ":":
        boxes = [(cx, h // 3 - t // 2, cx + t, h // 3 + t - t // 2),
                 (cx, 2 * h // 3 - t // 2, cx + t, 2 * h // 3 + t - t // 2)]  # fmt: skip
    elif char == ".":
        boxes = [(cx, h - t, cx + t, h)]
    else:
        boxes = []
    for x0, y0, x1, y1 in boxes:
        for y in range(y0, y1):
            cell[y * cw + x0 : y * cw + x1] = bytes([_ON]) * (x1 - x0)
    return tuple(bytes(cell[y * cw : (y + 1) * cw]) for y in range(h))


def _texts(when: float) -> tuple[str, str]:
    ms = round(when * 1000)
    days, ms_of_day = divmod(ms, _MS_PER_DAY)
    day = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    secs, milli = divmod(ms_of_day, 1000)
    return day.isoformat(), f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{milli:03d}"


class _Painter:
    """Builds the planes of successive pattern frames from precomputed row templates."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.lay = _layout(width, height)
        bar_w = -(-width // len(_BARS))
        ys, us, vs = (bytes(c[k] for c in _BARS for _ in range(bar_w))[:width] for k in range(3))
        self.y_tmpl = (ys * 2)[: 2 * width]
        self.u_tmpl = (us[::2] * 2)[:width]
        self.v_tmpl = (vs[::2] * 2)[:width]
        self.side = height // 6 // 2 * 2
        self.white = bytes([_ON]) * self.side
        self.box_blank = bytes([_OFF]) * (self.lay.box_x1 - self.lay.box_x)
        self.box_grey = bytes([128]) * ((self.lay.box_x1 - self.lay.box_x) // 2)

    def _text_rows(self, text: str, cw: int, h: int, x: int) -> list[bytes]:
        lay = self.lay
        left = bytes([_OFF]) * (x - lay.box_x)
        right = bytes([_OFF]) * (lay.box_x1 - x - len(text) * cw)
        glyphs = [_glyph(c, cw, h) for c in text]
        return [b"".join([left, *(g[y] for g in glyphs), right]) for y in range(h)]

    def planes(self, when: float, index: int) -> tuple[bytes, bytes, bytes]:
        """Y, U and V planes (tightly packed) of the frame shown at ``when``."""
        w, h, lay = self.width, self.height, self.lay
        shift = index * 4 % w
        bg = self.y_tmpl[shift : shift + w]
        rows = [bg] * h
        span_x, span_y = w - self.side, h - self.side
        sx = abs(index * 6 % (2 * span_x) - span_x)
        sy = abs(index * 3 % (2 * span_y) - span_y)
        square = bg[:sx] + self.white + bg[sx + self.side :]
        rows[sy : sy + self.side] = [square] * self.side
        date, clock = _texts(when)
        boxed = [self.box_blank] * (lay.box_y1 - lay.box_y)
        boxed[lay.date_y - lay.box_y : lay.date_y - lay.box_y + lay.h2] = self._text_rows(
            date, lay.cw2, lay.h2, lay.date_x
        )
        boxed[lay.time_y - lay.box_y : lay.time_y - lay.box_y + lay.h] = self._text_rows(
            clock, lay.cw, lay.h, lay.time_x
        )
        for y, content in enumerate(boxed, lay.box_y):
            row = rows[y]
            rows[y] = row[: lay.box_x] + content + row[lay.box_x1 :]
        chroma = []
        cshift = shift // 2
        for tmpl in (self.u_tmpl, self.v_tmpl):
            crow = (tmpl * 2)[cshift : cshift + w // 2]
            crows = [crow] * (h // 2)
            cbox = crow[: lay.box_x // 2] + self.box_grey + crow[lay.box_x1 // 2 :]
            crows[lay.box_y // 2 : lay.box_y1 // 2] = [cbox] * ((lay.box_y1 - lay.box_y) // 2)
            chroma.append(b"".join(crows))
        return b"".join(rows), chroma[0], chroma[1]


def _fill(frame: av.VideoFrame, planes: tuple[bytes, bytes, bytes]) -> None:
    for plane, data in zip(frame.planes, planes):
        pad = plane.line_size - plane.width
        if pad:
            w = plane.width
            data = b"".join(data[i : i + w] + bytes(pad) for i in range(0, len(data), w))
        plane.update(data)


def pattern_frame(width: int, height: int, when: float, index: int | None = None) -> av.VideoFrame:
    """One yuv420p frame of the pattern showing ``when`` (motion follows ``index``)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    _fill(frame, _Painter(width, height).planes(when, round(when * 25) if index is None else index))
    return frame


def _encoder(
    codec: str, width: int, height: int, fps: int, bitrate: int, gop: int
) -> av.CodecContext:
    if codec == "h264":
        ctx = av.CodecContext.create("libx264", "w")
        # CBR with filler NAL units: the pattern is easy to code, and the streams should
        # really carry ``bitrate`` (the gateway benchmark counts 1 Mbit/s streams).
        kbit = max(1, bitrate // 1000)
        params = (
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
            f":nal-hrd=cbr:vbv-maxrate={kbit}:vbv-bufsize={kbit}"
        )
        ctx.options = {"preset": "veryfast", "tune": "zerolatency", "x264-params": params}
    elif codec == "hevc":
        ctx = av.CodecContext.create("libx265", "w")
        params = (
            f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0"
            ":repeat-headers=1:frame-threads=1:pools=1"
        )
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": params}
    else:
        raise ValueError(f"codec must be 'h264' or 'hevc', not {codec!r}")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, fps)
    ctx.framerate = Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    ctx.thread_count = 1
    return ctx


def encode_pattern(
    codec: str = "h264",
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    start_time: float | None = None,
    seconds: float = 2.0,
    bitrate: int = 1_000_000,
    gop: int | None = None,
) -> Iterator[EncodedFrame]:
    """Encode ``seconds`` of the pattern, each frame showing its own UTC time.

    Args:
        codec: ``"h264"`` (libx264) or ``"hevc"`` (libx265).
        width: even, at least 176; height: even, at least 120; fps: frames per second.
        start_time: Unix seconds of the first frame (default: now).
        seconds: clip length; bitrate: target bits per second.
        gop: frames between keyframes (default: one second's worth).

    Yields:
        Frames in decoding order (= display order: no B-frames).
    """
    start = _time.time() if start_time is None else start_time
    gop = gop or fps
    ctx = _encoder(codec, width, height, fps, bitrate, gop)
    painter = _Painter(width, height)
    headers: dict[int, bytes] = {}
    for index in itertools.chain(range(round(seconds * fps)), (None,)):  # lazy: live is long
        if index is None:
            packets = ctx.encode(None)
        else:
            frame = av.VideoFrame(width, height, "yuv420p")
            _fill(frame, painter.planes(start + index / fps, index))
            frame.pts = index
            packets = ctx.encode(frame)
        for packet in packets:
            pts = packet.pts or 0
            data = _with_parameter_sets(codec, bytes(packet), packet.is_keyframe, headers)
            yield EncodedFrame(start + pts / fps, round(pts * 1000 / fps), packet.is_keyframe, data)


def _with_parameter_sets(
    codec: str, data: bytes, keyframe: bool, headers: dict[int, bytes]
) -> bytes:
    """Make sure a keyframe carries its parameter sets, so a decoder can join there."""
    if not keyframe:
        return data
    wanted = _PARAMETER_SETS[codec]
    present = set()
    for nal in split_annexb(data):
        kind = nal_type(codec, nal)
        if kind in wanted:
            headers[kind] = nal
            present.add(kind)
    missing = [headers[k] for k in wanted if k not in present and k in headers]
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in missing) + data


def snapshot_jpeg(width: int, height: int, when: float) -> bytes:
    """A JPEG of the pattern as it looks at ``when`` (for 0x8801 snapshot answers)."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"qmin": "2", "qmax": "4"}
    frame = av.VideoFrame(width, height, "yuvj420p")
    _fill(frame, _Painter(width, height).planes(when, round(when * 25)))
    frame.pts = 0
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def read_burnt_time(frame: av.VideoFrame) -> float | None:
    """Read the UTC time burnt into a (decoded) pattern frame, in Unix seconds.

    Each segment is sampled at its centre, so compression noise does not matter.

    Returns:
        The time to the millisecond, or None when the digits are not readable.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p", "gray"):
        frame = frame.reformat(format="yuv420p")
    try:
        lay = _layout(frame.width, frame.height)
    except ValueError:
        return None
    plane = frame.planes[0]
    luma, stride = bytes(plane), plane.line_size

    def digits(text_x: int, text_y: int, cw: int, h: int, cells: tuple[int, ...]) -> str | None:
        t = max(2, cw // 6)
        r = max(1, t // 4)
        out = []
        for cell in cells:
            lit = set()
            for name, (x0, y0, x1, y1) in _segment_rects(cw, h).items():
                cx, cy = text_x + cell * cw + (x0 + x1) // 2, text_y + (y0 + y1) // 2
                patch = [luma[yy * stride + xx] for yy in range(cy - r, cy + r) for xx in
                         range(cx - r, cx + r)]  # fmt: skip
                if sum(patch) > _THRESHOLD * len(patch):
                    lit.add(name)
            digit = _DIGIT_OF_MASK.get(frozenset(lit))
            if digit is None:
                return None
            out.append(digit)
        return "".join(out)

    # Only digit cells are read: YYYY-MM-DD and HH:MM:SS.mmm.
    date = digits(lay.date_x, lay.date_y, lay.cw2, lay.h2, (0, 1, 2, 3, 5, 6, 8, 9))
    clock = digits(lay.time_x, lay.time_y, lay.cw, lay.h, (0, 1, 3, 4, 6, 7, 9, 10, 11))
    if date is None or clock is None:
        return None
    try:
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    except ValueError:
        return None
    hh, mm, ss, milli = int(clock[:2]), int(clock[2:4]), int(clock[4:6]), int(clock[6:])
    if hh > 23 or mm > 59 or ss > 59:
        return None
    days = (day - dt.date(1970, 1, 1)).days
    return (days * _MS_PER_DAY + ((hh * 60 + mm) * 60 + ss) * 1000 + milli) / 1000
