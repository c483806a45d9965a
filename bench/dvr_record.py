"""What recording one channel for the cloud DVR costs: CPU against the live segmenter, and the
object-store requests per recorded hour (hence per channel-month).

Usage: ``.venv/bin/python bench/dvr_record.py [--seconds 60] [--runs 3] [--no-hevc]
[--no-audio] [--request-minutes 30] [--object-seconds 600]``

CPU: a pre-encoded 1 Mbit/s 640x360 25 fps test-pattern stream goes through the gateway's own
recording code (``DvrRecorder._run``: fragmenter, segment assembly, object writes to a local
folder, SQLite index rows; store calls run inline) as fast as it goes; process CPU time (all
threads, median of ``--runs``) divided by the stream's length is "% of a core per recorded
channel". The reference, measured on the same frames in the same run, is the live path's
``HlsSegmenter``. Thumbnails are not the gateway's work (the object-created handler makes
them: a Lambda on AWS, the ingest worker locally); their CPU is printed on its own row.

Audio: the same H.264 frames with a G.711 A-law frame of 40 ms after each video frame (as MDVRs
interleave them; the simulator's tone), recorded with its AAC-LC track; and the audio
transcode alone (``AudioTranscoder``: G.711 decode + AAC-LC encode, 8 kHz mono), both against
the same live reference.

Requests: the same code against S3 and DynamoDB on a moto server, ``--request-minutes`` of
stream (the clip looped with its times moved on), every AWS call counted by operation with a
botocore hook (the recording, then the thumbnail handler run on each stored segment's
object-created event as the DVR thumbnail function does), then scaled to a 30-day month and priced at S3's $0.005 per 1,000 PUTs and
$0.0004 per 1,000 GETs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetcam.adapters.local.clock import ManualClock  # noqa: E402
from fleetcam.config import Settings  # noqa: E402
from fleetcam.domain.dvr import DvrConfig, DvrStream  # noqa: E402
from fleetcam.gateway.dvr import DvrRecorder, Recording  # noqa: E402
from fleetcam.media.hls import HlsSegmenter  # noqa: E402
from fleetcam.media.testpattern import EncodedFrame, encode_pattern  # noqa: E402
from fleetcam.protocol.jt1078.packet import DataType, PayloadType  # noqa: E402
from fleetcam.protocol.jt1078.reassembly import MediaFrame  # noqa: E402

START_MS = 1_778_300_000_000
FPS = 25
MONTH_S = 30 * 86400
PUT_PRICE = 0.005 / 1000
GET_PRICE = 0.0004 / 1000


class _Gateway:
    """The parts of ``Gateway`` the recording write path uses; store calls run inline."""

    def __init__(self, container: Any, settings: Settings) -> None:
        self.c = container
        self.settings = settings
        self.clock = container.clock

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def loop_time(self) -> float:
        return time.monotonic()


def _frames(encoded: list[EncodedFrame], codec: str, loops: int = 1,
            audio: bool = False) -> list[MediaFrame]:
    from fleetcam.simulator.streamer import alaw_tone

    pt = PayloadType.H264 if codec == "h264" else PayloadType.H265
    length = encoded[-1].pts_ms + 1000 // FPS
    out = []
    for n in range(loops):
        for f in encoded:
            at = START_MS + n * length + f.pts_ms
            out.append(MediaFrame("013912345678", 1, DataType.I_FRAME if f.keyframe
                                  else DataType.P_FRAME, pt, at, f.data))
            if audio:
                out.append(MediaFrame("013912345678", 1, DataType.AUDIO, PayloadType.G711A,
                                      at, alaw_tone(1000 // FPS, f.pts_ms)))
    return out


def _record(container: Any, settings: Settings, frames: list[MediaFrame]) -> Any:
    """Run the gateway's recording loop over ``frames``; returns the Recording."""
    rec_mgr = DvrRecorder(_Gateway(container, settings))  # type: ignore[arg-type]
    stream = DvrStream("1-1", 1, 1, DvrConfig("dvr"), 0.0, 0.0)
    rec = Recording(stream=stream, root="dvr", object_ms=settings.dvr_object_seconds * 1000)
    for f in frames:
        rec.queue.put_nowait(f)
    rec.queue.put_nowait(None)
    asyncio.run(rec_mgr._run(rec))
    rec_mgr.transcoder.shutdown(wait=True)
    return rec


def _local(tmp: str, object_seconds: int) -> tuple[Any, Settings]:
    from fleetcam.runtime.local import build_local

    settings = Settings(data_dir=Path(tmp), admin_token="B" * 64,
                        dvr_object_seconds=object_seconds)
    return build_local(settings, clock=ManualClock(START_MS / 1000)), settings


def _cpu(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def _row(name: str, cpu: float, seconds: float, ref: float | None = None) -> None:
    per = cpu / seconds
    ratio = f"{cpu / ref:6.2f}x" if ref else ""
    print(f"  {name:<52} {cpu:7.3f} s  {per * 100:7.3f} %  {1 / per:8.0f}  {ratio}")


def cpu_bench(args: argparse.Namespace) -> bool:
    ok = True
    for codec in ("h264",) if args.no_hevc else ("h264", "hevc"):
        encoded = list(encode_pattern(codec, 640, 360, FPS, start_time=START_MS / 1000,
                                      seconds=args.seconds, bitrate=1_000_000, gop=FPS))
        mbit = sum(len(f.data) for f in encoded) * 8 / args.seconds / 1e6
        print(f"\n{codec}: {len(encoded)} frames, {args.seconds:.0f} s 640x360 {FPS} fps, "
              f"{mbit:.2f} Mbit/s; median of {args.runs} runs")
        print(f"  {'':<52} {'CPU':>9}  {'% core':>9}  {'streams':>8}")

        def live() -> None:
            seg = HlsSegmenter(codec)
            for f in encoded:
                seg.push(f.data, START_MS + f.pts_ms, f.keyframe)
            seg.flush()

        ref = _cpu(live, args.runs)
        _row("reference: live HlsSegmenter (same frames)", ref, args.seconds)
        for audio in (False, True) if codec == "h264" and not args.no_audio else (False,):
            frames = _frames(encoded, codec, audio=audio)
            video = sum(1 for f in frames if f.data_type != DataType.AUDIO)
            stored, tracks, cpu, thumbs, thumbs_ok = _recorded(frames, args)
            what = " + G.711A audio to AAC" if audio else ""
            _row(f"DVR recording{what} ({args.object_seconds_cpu} s objects, local)", cpu,
                 args.seconds, ref)
            if not audio:
                _row("  thumbnails, object-created handler (not the gateway)", thumbs,
                     args.seconds)
            transcoded = codec == "hevc"
            expect = video if not transcoded else video - 2  # x264 flush keeps all
            if stored < expect or (audio and tracks != (1, 2)) or not thumbs_ok:
                print(f"  FAIL: {stored} of {video} frames stored, tracks {tracks}, "
                      f"thumbnails {'ok' if thumbs_ok else 'missing'}")
                ok = False
            else:
                print(f"  frames stored: {stored} of {video}, tracks {tracks}")
        if codec == "h264" and not args.no_audio:
            alone = _cpu(lambda: _transcode_audio(args.seconds), args.runs)
            _row("audio alone: G.711A 8 kHz -> AAC-LC (AudioTranscoder)", alone, args.seconds,
                 ref)
            adts = _adts(args.seconds)
            copied = _cpu(lambda: _copy_aac(adts), args.runs)
            _row("audio alone: device AAC-LC 8 kHz (ADTS) checked and copied", copied,
                 args.seconds, ref)
    return ok


def _recorded(frames: list[MediaFrame],
              args: argparse.Namespace) -> tuple[int, Any, float, float, bool]:
    """(video frames stored, tracks of the last segment, median CPU s of recording, median CPU
    s of the thumbnail handler, every segment has its thumbnails)."""
    from fleetcam.runtime.worker import drain

    times, thumbs, stored, tracks, ok = [], [], 0, None, True
    for run in range(args.runs + 1):  # the first run warms up (imports, caches)
        with tempfile.TemporaryDirectory() as tmp:
            container, settings = _local(tmp, args.object_seconds_cpu)  # not timed
            t = time.process_time()
            _record(container, settings, frames)
            if run:
                times.append(time.process_time() - t)
            t = time.process_time()  # the object-created handler (not the gateway)
            done = drain(container.extras["queue"], container.ingest)
            if run:
                thumbs.append(time.process_time() - t)
            segs = container.dvr_index.segments("1-1")
            stored = sum(sum(f.frames for f in s.fragments) for s in segs)
            tracks = segs[-1].tracks if segs else None
            if done.get("done", 0) != len(segs) or any(s.thumbs is None for s in segs):
                print(f"  thumbnails of {len(segs)} segments: {done}")
                ok = False
            container.extras["db"].close()
    return stored, tracks, statistics.median(times), statistics.median(thumbs), ok


def _adts(seconds: float) -> list[bytes]:
    """AAC-LC 8 kHz mono in ADTS frames (a 440 Hz tone), as AAC devices send it."""
    import io
    import math
    import struct
    from fractions import Fraction

    import av

    n = int(seconds * 8000)
    frame = av.AudioFrame(format="s16", layout="mono", samples=n)
    frame.planes[0].update(struct.pack(f"<{n}h", *(int(8000 * math.sin(i * 0.3455))
                                                   for i in range(n))))
    frame.sample_rate, frame.pts, frame.time_base = 8000, 0, Fraction(1, 8000)
    out = io.BytesIO()
    with av.open(out, "w", format="adts") as c:
        st = c.add_stream("aac", rate=8000, layout="mono")
        st.codec_context.bit_rate = 24_000
        for p in [*st.encode(frame), *st.encode(None)]:
            c.mux(p)
    data, frames = out.getvalue(), []
    while data:
        size = ((data[3] & 3) << 11) | (data[4] << 3) | (data[5] >> 5)
        frames.append(data[:size])
        data = data[size:]
    return frames


def _copy_aac(frames: list[bytes]) -> None:
    from fleetcam.media.dvraudio import AudioTranscoder

    t = AudioTranscoder()
    for i, data in enumerate(frames):
        t.push(PayloadType.AAC, data, START_MS + i * 128)
    t.flush()


def _transcode_audio(seconds: float) -> None:
    from fleetcam.media.dvraudio import AudioTranscoder
    from fleetcam.simulator.streamer import alaw_tone

    t = AudioTranscoder()
    step = 1000 // FPS
    for i in range(int(seconds * 1000) // step):
        t.push(PayloadType.G711A, alaw_tone(step, i * step), START_MS + i * step)
    t.flush()


def request_bench(args: argparse.Namespace) -> bool:
    from tests.aws.motoserver import DUMMY_ENV, MotoServer, provision

    os.environ.update(DUMMY_ENV)
    server = MotoServer().start()
    try:
        from fleetcam.runtime.aws import build_aws

        env = provision(server.url)
        settings = Settings.from_env({**DUMMY_ENV, **env, "FLEETCAM_ADMIN_TOKEN": "B" * 64,
                                      "FLEETCAM_DVR_OBJECT_SECONDS": str(args.object_seconds),
                                      "FLEETCAM_DATA_DIR": tempfile.gettempdir()})
        c = build_aws(settings, clock=ManualClock(START_MS / 1000))
        counts: Counter[str] = Counter()
        c.dvr_storage.s3.meta.events.register(
            "before-call.s3.*", lambda model, **_: counts.update([f"s3:{model.name}"]))
        from fleetcam.adapters.aws.models import DvrSegmentsModel

        ddb = DvrSegmentsModel._get_connection().connection.client
        ddb.meta.events.register("before-call.dynamodb.*",
                                 lambda model, **_: counts.update([f"dynamodb:{model.name}"]))
        encoded = list(encode_pattern("h264", 640, 360, FPS, start_time=START_MS / 1000,
                                      seconds=60, bitrate=1_000_000, gop=FPS))
        frames = _frames(encoded, "h264", loops=args.request_minutes)
        t = time.perf_counter()
        rec = _record(c, settings, frames)
        took = time.perf_counter() - t
        recorded = args.request_minutes * 60
        rec_counts = Counter(counts)
        counts.clear()
        t = time.perf_counter()
        made = 0
        for seg in c.dvr_index.segments("1-1"):  # each new row's stream record (its keys),
            made += c.dvr_thumbs.indexed("1-1", seg.segment_id) or 0  # as the function
        thumb_took = time.perf_counter() - t
        thumb_counts = Counter(counts)
        print(f"\nrequests: {args.request_minutes} min of 1 Mbit/s recorded to S3 + DynamoDB "
              f"(moto), objects of {args.object_seconds} s, in {took:.1f} s; "
              f"{rec.stored} segments stored; {made} thumbnails in {thumb_took:.1f} s")
        print(f"  {'':<34} {'recording':>9} {'thumbnails':>10}")
        for op in sorted(set(rec_counts) | set(thumb_counts)):
            print(f"  {op:<34} {rec_counts[op]:9d} {thumb_counts[op]:10d}")
        inits = len(rec.inits)  # init segments: once per codec configuration
        steady = rec.stored - 1  # the last one is the end-of-run flush, a shorter object
        full = recorded - recorded % args.object_seconds or recorded
        seg_month = steady * MONTH_S / full
        # the thumbnail handler: per segment (one event each); the flush is one more segment
        per_seg_puts = thumb_counts["s3:PutObject"] / rec.stored
        per_seg_gets = (thumb_counts["s3:GetObject"] + thumb_counts["s3:HeadObject"]
                        - inits) / rec.stored  # the init is read once per function instance
        rec_gets = rec_counts["s3:GetObject"] + rec_counts["s3:HeadObject"]
        thumb_put_month = per_seg_puts * seg_month
        get_month = per_seg_gets * seg_month + rec_gets * MONTH_S / recorded
        rec_cost = seg_month * PUT_PRICE
        total = (seg_month + thumb_put_month) * PUT_PRICE + get_month * GET_PRICE
        print(f"  PutObject: {rec.stored} segments ({steady} full + the end-of-run flush), "
              f"{inits} init; thumbnail handler: {per_seg_puts:.2f} PUT and "
              f"{per_seg_gets:.2f} GET per segment (+{inits} init GET per function instance)")
        print(f"  per channel-month: {seg_month:.0f} segment PUTs, {thumb_put_month:.0f} "
              f"thumbnail PUTs, {get_month:.0f} GETs")
        print(f"  S3 request cost per recorded channel-month: recording ${rec_cost:.4f}, "
              f"with thumbnails ${total:.4f}; target < $0.05: recording "
              f"{'met' if rec_cost < 0.05 else 'NOT met'}, with thumbnails "
              f"{'met' if total < 0.05 else 'NOT met'}")
        return rec.stored > 0
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-hevc", action="store_true")
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--object-seconds-cpu", type=int, default=10,
                    help="object length in the CPU run (short: more object writes)")
    ap.add_argument("--request-minutes", type=int, default=30)
    ap.add_argument("--object-seconds", type=int, default=600)
    args = ap.parse_args()
    ok = cpu_bench(args)
    if args.request_minutes > 0:
        ok = request_bench(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
