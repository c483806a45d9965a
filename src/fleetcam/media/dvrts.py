"""An archive download as MPEG-TS, in one pass: the fragmented MP4 stream (media.archive) is
demuxed as it is produced and its packets are copied into MPEG-TS (H.264 to Annex B, AAC
to ADTS, no re-encoding). Memory stays at one fragment plus the muxer's buffers."""
from __future__ import annotations

import io
from collections.abc import Iterator

import av
import av.error

from fleetcam.errors import CorruptMedia
from fleetcam.media.hls import ByteSink


class _Reader(io.RawIOBase):
    """A non-seekable file over an iterator of byte chunks (what PyAV reads from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buf = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not self.buf:
            try:
                self.buf = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def to_mpegts(mp4_chunks: Iterator[bytes]) -> Iterator[bytes]:
    """MPEG-TS bytes of the fragmented MP4 ``mp4_chunks``, yielded as packets are muxed: its
    video (H.264 to Annex B) and its audio (AAC, which the muxer frames as ADTS), whichever
    of the two the download kept (``filter.tracks``).

    Raises:
        CorruptMedia: the stream cannot be read at all (before the first byte).
    """
    sink = ByteSink()
    try:
        src = av.open(_Reader(mp4_chunks), format="mp4", options={"seekable": "0"})
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"archive does not read: {e}") from e
    with src:
        ins = [*src.streams.video[:1], *src.streams.audio[:1]]
        if not ins:
            raise CorruptMedia("archive has neither video nor audio")
        with av.open(sink, "w", format="mpegts") as dst:  # type: ignore[arg-type]
            outs = {s.index: dst.add_stream_from_template(s) for s in ins}
            last: dict[int, int] = {}
            for packet in src.demux(ins):
                if packet.dts is None or packet.size == 0:
                    continue
                i = packet.stream.index
                if packet.dts <= last.get(i, -(2**62)):
                    continue  # an overlap where a download closed a gap up: keep time moving
                last[i] = packet.dts
                packet.stream = outs[i]
                dst.mux(packet)
                if len(sink.buf) >= 64 * 1024:
                    yield sink.take()
        # the muxer's trailer is written on close
    if sink.buf:
        yield sink.take()
