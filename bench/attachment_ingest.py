"""Alarm-attachment intake on one core, against the JT/T 1078 media parser in the same run.

Both paths are fed the same amount of payload as a socket would hand it over (64 KiB reads):
the attachment path splits T/JSATL12 file-data packets (16 KiB chunks, shuffled as devices
send them) and reassembles the file by offset; the reference decodes JT/T 1078 packets of a
1 Mbit/s H.264 stream into whole frames. Parsing is what a gateway core spends per byte; the
object-store write is the same for both and left out.

Usage: ``.venv/bin/python bench/attachment_ingest.py [--mb 64] [--runs 3]``
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from fleetcam.protocol.jt808.subiao import AttachmentStream, FileAssembly, FileChunk, encode_chunk
from fleetcam.protocol.jt1078.reassembly import FrameAssembler, MediaFrame
from fleetcam.protocol.jt1078.stream import Jt1078Decoder

READ = 64 * 1024
CHUNK = 16 * 1024


def attachment_wire(size: int) -> tuple[bytes, int]:
    data = random.Random(1).randbytes(size)
    offsets = list(range(0, size, CHUNK))
    random.Random(2).shuffle(offsets)
    wire = b"".join(encode_chunk(FileChunk("00_01_6401_0_x.mp4", o, data[o:o + CHUNK]))
                    for o in offsets)
    return wire, size


def media_wire(size: int) -> tuple[bytes, int]:
    from fleetcam.media.testpattern import encode_pattern
    from fleetcam.protocol.jt1078.nal import packetize
    from fleetcam.protocol.jt1078.packet import DataType, PayloadType, encode_packet

    frames = list(encode_pattern("h264", 640, 360, 25, start_time=1_700_000_000, seconds=20))
    parts, seq = [], 0
    for f in frames:
        packets = packetize(f.data, sim="013912345678", channel=1,
                            data_type=DataType.I_FRAME if f.keyframe else DataType.P_FRAME,
                            payload_type=PayloadType.H264, timestamp=int(f.time * 1000),
                            sequence_start=seq, last_i_interval=0, last_frame_interval=40)
        seq = (seq + len(packets)) & 0xFFFF
        parts.append(b"".join(encode_packet(p) for p in packets))
    one = b"".join(parts)
    payload = sum(len(f.data) for f in frames)
    reps = max(1, size // payload)
    return one * reps, payload * reps


def run_attachment(wire: bytes, size: int) -> float:
    t = time.process_time()
    stream = AttachmentStream(max_chunk=65536)
    asm = FileAssembly("00_01_6401_0_x.mp4", 2, size, size)
    for i in range(0, len(wire), READ):
        for kind, item in stream.feed(wire[i:i + READ]):
            if kind == "chunk":
                asm.add(item.offset, item.data)
    assert asm.complete
    return time.process_time() - t


def run_media(wire: bytes) -> float:
    t = time.process_time()
    dec, asm = Jt1078Decoder(), FrameAssembler()
    frames = 0
    for i in range(0, len(wire), READ):
        for out in dec.frames(wire[i:i + READ], asm):
            if isinstance(out, MediaFrame):
                frames += 1
    assert frames
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = args.mb * 1024 * 1024
    att_wire, att_payload = attachment_wire(size)
    med_wire, med_payload = media_wire(size)
    att = statistics.median(run_attachment(att_wire, att_payload) for _ in range(args.runs))
    med = statistics.median(run_media(med_wire) for _ in range(args.runs))
    att_rate = att_payload / att / 1e6
    med_rate = med_payload / med / 1e6
    print(f"attachment intake : {att_rate:8.1f} MB/s of file data per core "
          f"({att_payload / 1e6:.0f} MB, {att:.3f} s CPU)")
    print(f"JT/T 1078 ingest  : {med_rate:8.1f} MB/s of frame data per core "
          f"({med_payload / 1e6:.0f} MB, {med:.3f} s CPU)  [reference, same run]")
    print(f"ratio attachment/1078: {att_rate / med_rate:.2f}x")


if __name__ == "__main__":
    main()
