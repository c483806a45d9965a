"""Recording: a camera's frames (UTC-stamped) into fMP4 fragments, one per GOP (docs/dvr.md).

H.264 is copied (Annex-B to length-prefixed NAL units; parameter sets go to the init segment);
H.265 is decoded and re-encoded to H.264 first, as the live path does, because the players
that read the archive (browsers) do not play H.265. The channel's audio arrives as AAC-LC
frames (media.dvraudio) and goes into the same fragments, in a second ``traf``.
"""
from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fleetcam.errors import CorruptMedia
from fleetcam.media import fmp4
from fleetcam.protocol.jt1078.nal import split_annexb

MAX_GAP_MS = 2000
"""A longer pause between two frames ends the fragment and starts a new timeline (segment)."""
MAX_FRAGMENT_FRAMES = 600
"""A GOP longer than this is cut anyway (the next fragment then starts without a keyframe)."""
MAX_FRAGMENT_BYTES = 16 << 20
DEFAULT_INTERVAL_MS = 40
_DROP_NALS = {7, 8, 9}  # SPS and PPS (in the init segment), access unit delimiters
_H264_OK = set(range(1, 13)) | {14, 15, 19, 20}
MS = Fraction(1, 1000)
AAC_FRAME = 1024
"""Samples per AAC frame (media.dvraudio.AAC_FRAME; kept here so this module needs no PyAV)."""


AUDIO_WAIT_MS = 2000
"""A fragment whose audio has not come this long after its end goes out with what there is
(the audio transcoder fills silence well before: this only bounds the wait)."""
MAX_PENDING_AUDIO_MS = 60_000
"""AAC packets kept waiting for video (audio with no video is not recorded)."""


@dataclass(frozen=True)
class Fragment:
    """One finished fragment and what its segment needs to know.

    Attributes:
        data: ``moof`` + ``mdat`` (sequence number 1: the segment writer renumbers).
        start_ms, duration_ms: UTC ms.
        frames, moof_size, keyframe: as in FragmentEntry.
        init: the init segment these samples need (same object for the same parameters).
        codec, width, height: of that init.
        discontinuity: True when it does not follow the previous fragment (a gap, a new
            init, or the first fragment): a new segment must begin with it.
        audio_frames: AAC frames in it (0: video only).
        tracks: track ids of its init (``(1,)`` or ``(1, 2)``).
    """

    data: bytes
    start_ms: int
    duration_ms: int
    frames: int
    moof_size: int
    keyframe: bool
    init: bytes
    codec: str
    width: int
    height: int
    discontinuity: bool
    audio_frames: int = 0
    tracks: tuple[int, ...] = (1,)


@dataclass
class _Held:
    """A fragment closed on the video side, waiting for its audio."""

    samples: list[fmp4.Sample]
    start_ms: int
    duration_ms: int
    keyframe: bool
    video: tuple[bytes, bytes, str, int, int]  # sps, pps, codec, width, height
    gap: bool

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


class DvrFragmenter:
    """H.264 access units (Annex-B, UTC ms, keyframe flag) and AAC packets in; fragments out.

    Without audio a fragment leaves as soon as the next keyframe closes it. Once audio has
    come (``push_audio``), a closed fragment waits until the audio covers its time (or
    ``AUDIO_WAIT_MS`` of video went by), then carries the AAC frames that start inside it
    (docs/dvr.md "Audio"): each fragment stays one GOP with both tracks' ``traf``s, and the
    audio track runs on from fragment to fragment without holes.
    """

    def __init__(self, audio: fmp4.AudioConfig | None = None) -> None:
        """``audio``: an audio configuration to start with (a device clip folded beside
        recorded audio): fragments carry that track, silent where no packets come, as a
        recording's audio holes are."""
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._codec = ""
        self._size = (0, 0)
        self._new_init = True
        self._gap = True
        self._samples: list[tuple[bytes, int, bool]] = []  # (avcc data, utc ms, key)
        self._bytes = 0
        self._last: int | None = None
        self._deltas: deque[int] = deque([DEFAULT_INTERVAL_MS], maxlen=25)
        self.dropped = 0
        # audio
        self._audio: deque[Any] = deque()  # AacPacket, pts ascending
        self._audio_config: fmp4.AudioConfig | None = audio
        self._audio_cursor: int | None = None  # where the next fragment's audio starts
        self._held: deque[_Held] = deque()
        self._inits: dict[tuple[bytes, bytes, Any], bytes] = {}
        self._last_init: bytes | None = None
        self.audio_dropped = 0

    @property
    def frame_interval(self) -> int:
        return max(1, round(statistics.median(self._deltas)))

    @property
    def open_start_ms(self) -> int | None:
        """UTC ms where the fragment being filled starts (None: none open)."""
        if self._held:
            return self._held[0].start_ms
        return self._samples[0][1] if self._samples else None

    def push(self, data: bytes, utc_ms: int, keyframe: bool) -> list[Fragment]:
        """Add one access unit; returns the fragments it completed (none or one, usually).

        Raises:
            CorruptMedia: not H.264.
        """
        nals = split_annexb(data)
        if not nals:
            raise CorruptMedia("not an Annex-B H.264 access unit (no start code)")
        sps = pps = None
        for nal in nals:
            kind = nal[0] & 0x1F
            if nal[0] & 0x80 or kind not in _H264_OK:
                raise CorruptMedia(f"not an H.264 NAL unit (type byte {nal[0]:#04x})")
            if kind == 7 and sps is None:
                sps = nal
            elif kind == 8 and pps is None:
                pps = nal
        if self._last is not None:
            step = utc_ms - self._last
            if step > MAX_GAP_MS or step < -MAX_GAP_MS:
                self._close(self.frame_interval)
                self._gap = True
            elif step <= 0:
                utc_ms = self._last + 1
            else:
                self._deltas.append(step)
        if keyframe and (sps is not None or pps is not None):
            self._parameters(sps, pps, utc_ms)
        if not self._samples and (self._gap or self._new_init) and not keyframe:
            self.dropped += 1  # a segment must open on a keyframe
            return self._release(utc_ms)
        if self._sps is None or self._pps is None:
            self.dropped += 1
            return self._release(utc_ms)
        cut = keyframe or len(self._samples) >= MAX_FRAGMENT_FRAMES or (
            self._bytes >= MAX_FRAGMENT_BYTES)
        if self._samples and cut:
            self._close(utc_ms - self._samples[-1][1])
        body = fmp4.to_length_prefixed([n for n in nals if n[0] & 0x1F not in _DROP_NALS])
        self._samples.append((body, utc_ms, keyframe))
        self._bytes += len(body)
        self._last = utc_ms
        return self._release(utc_ms)

    def push_audio(self, packets: list[Any]) -> list[Fragment]:
        """Add AAC packets (``media.dvraudio.AacPacket``, in order); returns the fragments
        whose audio they completed."""
        if not packets:
            return []
        queue = self._audio
        for p in packets:
            if p.config is not self._audio_config and p.config != self._audio_config:
                if queue:
                    self.audio_dropped += len(queue)
                    queue.clear()
                self._audio_config, self._audio_cursor = p.config, None
            if queue and p.pts < queue[-1].pts + AAC_FRAME:
                self.audio_dropped += 1  # overlaps the previous packet
                continue
            queue.append(p)
        cfg = self._audio_config
        if cfg is not None and queue:  # bounded: audio without video is not kept
            oldest = queue[-1].pts - MAX_PENDING_AUDIO_MS * cfg.rate // 1000
            while queue[0].pts < oldest:
                queue.popleft()
                self.audio_dropped += 1
        return self._release(self._last) if self._held else []

    def flush(self) -> list[Fragment]:
        """End of stream: the last fragment, if any (with the audio there is)."""
        self._close(self.frame_interval)
        return self._release(None, force=True)

    def _parameters(self, sps: bytes | None, pps: bytes | None, utc_ms: int) -> None:
        sps, pps = sps or self._sps, pps or self._pps
        if sps is None or pps is None or (sps, pps) == (self._sps, self._pps):
            return
        try:
            fmp4.init_segment(sps, pps)
            size = fmp4.h264_dimensions(sps)
        except ValueError as e:
            raise CorruptMedia(f"unusable H.264 SPS: {e}") from e
        if self._samples:
            self._close(utc_ms - self._samples[-1][1])
        self._sps, self._pps = sps, pps
        self._codec, self._size = fmp4.codec_string(sps), size
        self._new_init = True

    def _close(self, last_duration: int) -> None:
        if not self._samples or self._sps is None or self._pps is None:
            self._samples = []
            return
        samples = self._samples
        durations = [b[1] - a[1] for a, b in zip(samples, samples[1:])]
        durations.append(max(1, last_duration))
        self._held.append(_Held(
            [fmp4.Sample(s[0], d, s[2]) for s, d in zip(samples, durations)],
            samples[0][1], sum(durations), samples[0][2],
            (self._sps, self._pps, self._codec, self._size[0], self._size[1]),
            self._gap or self._new_init))
        self._gap = self._new_init = False
        self._samples = []
        self._bytes = 0

    # -- audio into held fragments -----------------------------------------------------------
    def _release(self, now_ms: int | None, force: bool = False) -> list[Fragment]:
        out: list[Fragment] = []
        while self._held:
            held = self._held[0]
            cfg = self._audio_config
            waited = force or now_ms is not None and now_ms - held.end_ms >= AUDIO_WAIT_MS
            if cfg is not None and not waited:
                end = held.end_ms * cfg.rate // 1000
                if not (self._audio and self._audio[-1].pts + AAC_FRAME >= end):
                    break
            elif cfg is None and self._last_init is None and not waited:
                break  # the first fragment: audio that starts a little after the video
                # still makes the first init an audio one (no one-GOP video-only segment)
            out.append(self._build(self._held.popleft()))
        return out

    def _take_audio(self, held: _Held, cfg: fmp4.AudioConfig) -> fmp4.AudioRun | None:
        """The AAC frames of a fragment: from where the previous fragment's audio ended (the
        fragment's start on a new timeline) to its end, real frames where they are and
        frames of silence in any hole, so the track never has one (a browser would stall)."""
        start = held.start_ms * cfg.rate // 1000
        end = held.end_ms * cfg.rate // 1000
        cursor = self._audio_cursor
        if held.gap or cursor is None or not start - AAC_FRAME <= cursor <= end + AAC_FRAME:
            cursor = start  # a new timeline (or the audio lost its way): start with the video
        queue, silent = self._audio, cfg.silence
        while queue and queue[0].pts < cursor:
            queue.popleft()  # before this timeline, time already filled, or audio alone
        out: list[list[Any]] = []  # [pts, data]
        pos = cursor
        while pos < end:
            if queue and queue[0].pts < end and queue[0].pts - pos < AAC_FRAME:
                p = queue.popleft()  # a real frame starting in this slot
                out.append([p.pts, p.data])
                pos = p.pts + AAC_FRAME
            elif silent:
                out.append([pos, silent])
                pos += AAC_FRAME
            else:
                break
        if not out:
            self._audio_cursor = cursor
            return None
        samples = [(a[1], b[0] - a[0]) for a, b in zip(out, out[1:])]
        samples.append((out[-1][1], AAC_FRAME))
        self._audio_cursor = pos
        return fmp4.AudioRun(out[0][0], samples)

    def _build(self, held: _Held) -> Fragment:
        sps, pps, codec, width, height = held.video
        cfg = self._audio_config
        key = (sps, pps, cfg)
        init = self._inits.get(key)
        if init is None:
            init = fmp4.init_segment(sps, pps, cfg)
            self._inits = {key: init}  # the current configuration only
        audio = self._take_audio(held, cfg) if cfg is not None else None
        new_init = init != self._last_init
        self._last_init = init
        m = len(audio.samples) if audio is not None else 0
        data = fmp4.fragment(1, held.start_ms, held.samples, audio)
        return Fragment(data=data, start_ms=held.start_ms, duration_ms=held.duration_ms,
                        frames=len(held.samples), moof_size=fmp4.moof_size(len(held.samples), m),
                        keyframe=held.keyframe, init=init, codec=codec, width=width,
                        height=height, discontinuity=held.gap or new_init, audio_frames=m,
                        tracks=(1, 2) if cfg is not None else (1,))


class HevcToH264:
    """H.265 access units to H.264 ones (libx264, an IDR every ``gop_ms``), times kept."""

    def __init__(self, *, gop_ms: int = 2000, preset: str = "veryfast") -> None:
        self.gop_ms = gop_ms
        self.preset = preset
        self._decoder: Any = None
        self._encoder: Any = None
        self._size = (0, 0)
        self._last_idr: int | None = None

    def push(self, data: bytes, utc_ms: int, keyframe: bool) -> list[tuple[bytes, int, bool]]:
        import av
        import av.error

        try:
            if self._decoder is None:
                self._decoder = av.CodecContext.create("hevc", "r")
                self._decoder.thread_count = 1
            packet = av.Packet(data)
            packet.pts = packet.dts = utc_ms
            packet.time_base = MS
            return list(self._encode_all(self._decoder.decode(packet)))
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"unusable H.265 frame at {utc_ms}: {e}") from e

    def flush(self) -> list[tuple[bytes, int, bool]]:
        import av.error

        out: list[tuple[bytes, int, bool]] = []
        try:
            if self._decoder is not None:
                out += self._encode_all(self._decoder.decode(None))
            if self._encoder is not None:
                out += [(bytes(p), int(p.pts), bool(p.is_keyframe))
                        for p in self._encoder.encode(None)]
        except av.error.FFmpegError as e:
            raise CorruptMedia(f"unusable H.265 stream at its end: {e}") from e
        return out

    def _encode_all(self, pictures: Any) -> Iterator[tuple[bytes, int, bool]]:
        import av

        for pic in pictures:
            if self._encoder is None:
                self._size = (pic.width, pic.height)
                ctx = av.CodecContext.create("libx264", "w")
                ctx.width, ctx.height, ctx.pix_fmt = pic.width, pic.height, "yuv420p"
                ctx.time_base = MS
                ctx.thread_count = 1
                ctx.options = {"preset": self.preset, "tune": "zerolatency", "crf": "23",
                               "forced-idr": "1",
                               "x264-params": "keyint=infinite:scenecut=0:repeat-headers=1"}
                self._encoder = ctx
            pts = pic.pts
            if pic.format.name != "yuv420p" or (pic.width, pic.height) != self._size:
                pic = pic.reformat(self._size[0], self._size[1], "yuv420p")
                pic.pts = pts
            if self._last_idr is None or pts - self._last_idr >= self.gop_ms:
                pic.pict_type = av.video.frame.PictureType.I
                self._last_idr = pts
            else:
                pic.pict_type = av.video.frame.PictureType.NONE
            pic.time_base = MS
            for p in self._encoder.encode(pic):
                yield bytes(p), int(p.pts), bool(p.is_keyframe)


class OpenSegment:
    """The segment being written: fragments appended in order, renumbered 1, 2, 3...

    Appended on the recording's task; read from API threads (the tail), hence the lock."""

    def __init__(self, stream: str, root: str, token: str, first: Fragment,
                 init_key: str) -> None:
        import threading

        from fleetcam.domain.dvr import segment_id, segment_key

        self.stream, self.root, self.token = stream, root, token
        self.segment_id = segment_id(first.start_ms, token)
        self.key = segment_key(stream, first.start_ms, token)
        self.init_key = init_key
        self.codec, self.width, self.height = first.codec, first.width, first.height
        self.tracks = first.tracks
        self.start_ms = first.start_ms
        self.end_ms = first.start_ms
        self.buf = bytearray()
        self.fragments: list[Any] = []
        self.lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.buf)

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def append(self, frag: Fragment) -> None:
        from fleetcam.domain.dvr import FragmentEntry

        data = bytearray(frag.data)
        fmp4.rewrite_fragment_header(data, len(self.fragments) + 1, frag.start_ms)
        entry = FragmentEntry(frag.start_ms, frag.duration_ms, len(self.buf), len(data),
                              frag.moof_size, frag.frames, frag.keyframe)
        with self.lock:
            self.buf += data
            self.fragments.append(entry)
            self.end_ms = frag.start_ms + frag.duration_ms

    def entry(self, *, key: str | None = None, created_at: float = 0.0) -> Any:
        """The index row (``key`` "" for the tail's view of an unstored segment)."""
        from fleetcam.domain.dvr import SegmentEntry

        with self.lock:
            return SegmentEntry(
                stream=self.stream, segment_id=self.segment_id, root=self.root,
                key=self.key if key is None else key, init_key=self.init_key,
                start_ms=self.start_ms, end_ms=self.end_ms, size=len(self.buf),
                codec=self.codec, width=self.width, height=self.height,
                fragments=tuple(self.fragments), created_at=created_at, tracks=self.tracks)

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        with self.lock:
            stop = len(self.buf) if end is None else min(len(self.buf), end + 1)
            return bytes(self.buf[start:stop])


AUDIO_LAG_MS = 1000
"""Audio may trail the video by this much before silence stands in for it (docs/dvr.md)."""


@dataclass
class ClipAudio:
    """What became of a clip's audio frames (``clip_fragments``)."""

    frames: int = 0
    """Device audio frames used."""
    dropped: int = 0
    """Device audio frames dropped (unsupported, damaged, out of time)."""
    reason: str = ""
    """Why the first one was dropped."""


def clip_fragments(records: Iterable[tuple[int, int, bytes, bool]], codec: str,
                   audio_type: int | None = None, *, fill: fmp4.AudioConfig | None = None,
                   stats: ClipAudio | None = None) -> Iterator[Fragment]:
    """A device clip's frames ``(kind, utc_ms, data, keyframe)`` (kind 3: audio, the others
    video) as fragments, the way the recorder (gateway/dvr.py) cuts a live channel: H.265
    transcoded, audio of JT/T 1078 payload type ``audio_type`` to AAC-LC beside the video
    (media.dvraudio), silence where it pauses. ``fill``: the audio configuration to start
    with (silent AAC where the clip has no audio of its own). An audio frame that cannot be
    used is dropped and counted in ``stats``; the video never depends on it. A generator:
    a clip of any length needs a few fragments of memory.

    Raises:
        CorruptMedia: the video is unusable.
    """
    fragmenter = DvrFragmenter(fill)
    transcoder = HevcToH264() if codec == "hevc" else None
    stats = stats if stats is not None else ClipAudio()
    audio: Any = None

    def dropped(reason: str) -> None:
        stats.dropped += 1
        stats.reason = stats.reason or reason[:200]

    for kind, ms, data, key in records:
        if kind >= 3:
            if audio_type is None:
                dropped("the clip's header names no audio codec")
                continue
            try:
                if audio is None:
                    from fleetcam.media.dvraudio import AudioTranscoder

                    audio = AudioTranscoder()
                yield from fragmenter.push_audio(audio.push(audio_type, data, ms,
                                                        fragmenter.open_start_ms))
                stats.frames += 1
            except Exception as e:  # noqa: BLE001 - BadAudio, or anything: video goes on
                dropped(f"{type(e).__name__}: {e}")
            continue
        units = [(data, ms, key)] if transcoder is None else transcoder.push(data, ms, key)
        for d, t, k in units:
            yield from fragmenter.push(d, t, k)
        if audio is not None:  # video goes on: silence where audio is missing
            try:
                yield from fragmenter.push_audio(audio.fill_until(ms - AUDIO_LAG_MS))
            except Exception as e:  # noqa: BLE001
                dropped(f"{type(e).__name__}: {e}")
    if transcoder is not None:
        for d, t, k in transcoder.flush():
            yield from fragmenter.push(d, t, k)
    if audio is not None:
        try:
            yield from fragmenter.push_audio(audio.flush())
        except Exception as e:  # noqa: BLE001
            dropped(f"{type(e).__name__}: {e}")
    yield from fragmenter.flush()
    stats.dropped += fragmenter.audio_dropped


def mp4_of(init: bytes, parts: list[tuple[bytes, int]], dst_path: str) -> None:
    """A faststart MP4 (timestamps from 0) of an init segment and stored fragments
    ``(fragment bytes, start_ms)``: packets copied, never decoded.

    Raises:
        CorruptMedia: the fragments do not demux.
    """
    import io

    import av
    import av.error

    from fleetcam.media.archive import ArchiveError, parse_init

    try:
        rates = {t.track_id: t.timescale for t in parse_init(init).tracks}
    except ArchiveError as e:
        raise CorruptMedia(f"archive init segment unreadable: {e}") from e
    base = parts[0][1]
    buf = bytearray(init)
    for i, (data, start) in enumerate(parts, start=1):
        frag = bytearray(data)
        fmp4.shift_fragment(frag, i, -base, rates)
        buf += frag
    try:
        with av.open(io.BytesIO(bytes(buf)), format="mp4") as src, \
                av.open(dst_path, "w", format="mp4",
                        options={"movflags": "+faststart"}) as dst:
            ins = [src.streams.video[0], *src.streams.audio[:1]]
            outs = {s.index: dst.add_stream_from_template(s) for s in ins}
            for packet in src.demux(ins):
                if packet.dts is None or packet.dts < 0:
                    continue
                packet.stream = outs[packet.stream.index]
                dst.mux(packet)
    except av.error.FFmpegError as e:
        raise CorruptMedia(f"archive fragments do not demux: {e}") from e
