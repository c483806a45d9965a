"""The simulator's ADAS/DSM camera: alarm items in 0x0200 and the attachment upload that
0x9208 asks for (T/JSATL12-2017), as a real active-safety terminal does it: the chunks of
each file go out of order, and what 0x9212 reports missing is sent again."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from fleetcam.protocol.bcd import Writer
from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808 import subiao
from fleetcam.protocol.jt808.connection import NEED_DATA, Jt808Connection, Message
from fleetcam.protocol.jt808.ids import MsgId

log = logging.getLogger(__name__)
CHUNK = 16 * 1024
ADAS_FORWARD_COLLISION = 1
DSM_FATIGUE = 1


def alarm_item(kind: str, ident: subiao.AlarmIdentification, when: int, lat: float,
               lon: float, event_id: int) -> tuple[int, bytes]:
    """A 0x64 (ADAS forward collision) or 0x65 (DSM fatigue) item, Jiangsu layout."""
    w = Writer()
    w.u32(event_id).u8(1)  # flag: alarm starts
    if kind == "adas":
        w.u8(ADAS_FORWARD_COLLISION).u8(2).u8(42).u8(8).u8(0).u8(0).u8(0)
        item = subiao.ADAS
    else:
        w.u8(DSM_FATIGUE).u8(2).u8(4).raw(bytes(4))
        item = subiao.DSM
    w.u8(40).u16(5).u32(round(abs(lat) * 1e6)).u32(round(abs(lon) * 1e6)).time(when).u16(3)
    ident.encode(w)
    return item, w.bytes()


@dataclass
class AlarmFiles:
    """What the camera keeps for one alarm: a photo and a short clip."""

    photo: bytes
    video: bytes
    video_ext: str


def make_files(codec: str, width: int, height: int, when: float) -> AlarmFiles:
    from fleetcam.media.testpattern import encode_pattern, snapshot_jpeg

    photo = snapshot_jpeg(width, height, when)
    video = b"".join(f.data for f in encode_pattern(codec, width, height, 25,
                                                    start_time=when - 2, seconds=4))
    return AlarmFiles(photo, video, "h265" if codec == "hevc" else "h264")


async def upload(req: subiao.AttachmentUploadRequest, *, phone: str, host: str,
                 files: AlarmFiles, channel: int, alarm_type: int, lose_first: bool = False,
                 version2019: bool = False, timeout: float = 60.0) -> dict[str, Any]:
    """Connect to the attachment server 0x9208 names and upload ``files``.

    ``lose_first`` leaves one chunk of each file out of the first pass (a lossy link), so the
    server's 0x9212 re-upload request is exercised. Returns what the server answered.
    """
    number = req.alarm_number
    named = [(f"00_{channel:02d}_{alarm_type:02x}01_0_{number}.jpg", 0, files.photo),
             (f"02_{channel:02d}_{alarm_type:02x}01_1_{number}.{files.video_ext}", 2,
              files.video)]
    reader, writer = await asyncio.open_connection(host, req.tcp_port)
    codec = Jt808Connection()
    results: dict[str, Any] = {}

    def send(body: Any) -> None:
        writer.write(codec.send(body, phone=phone, version2019=version2019))

    async def answer(kind: type) -> Any:
        while True:
            while (ev := codec.next_event()) is not NEED_DATA:
                if isinstance(ev, Message) and isinstance(ev.body, kind):
                    return ev.body
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise ConnectionError("attachment server closed the connection")
            codec.receive_data(data, time.time())

    try:
        send(subiao.AlarmAttachmentInfo(
            terminal_id=req.ident.terminal_id, ident=req.ident, alarm_number=number,
            info_type=0, items=tuple(subiao.AttachmentItem(n, len(d)) for n, _, d in named)))
        ack = await answer(m.GeneralResponse)
        if ack.result != 0:
            return {"refused": ack.result}
        for name, ftype, data in named:
            send(subiao.AttachmentFileInfoMsg(name, ftype, len(data)))
            await answer(m.GeneralResponse)
            offsets = list(range(0, len(data), CHUNK))
            random.shuffle(offsets)  # devices send out of order
            skip = {offsets[len(offsets) // 2]} if lose_first and len(offsets) > 1 else set()
            for off in offsets:
                if off not in skip:
                    writer.write(subiao.encode_chunk(subiao.FileChunk(
                        name, off, data[off:off + CHUNK])))
            rounds = 0
            while True:
                send(subiao.AttachmentFileDone(name, ftype, len(data)))
                await writer.drain()
                result = await answer(subiao.AttachmentFileResult)
                if result.result == 0 or rounds > 5:
                    break
                rounds += 1
                for off, length in result.missing:
                    for start in range(off, off + length, CHUNK):
                        end = min(off + length, start + CHUNK)
                        writer.write(subiao.encode_chunk(subiao.FileChunk(
                            name, start, data[start:end])))
            results[name] = {"rounds": rounds, "size": len(data)}
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return results


__all__ = ["AlarmFiles", "alarm_item", "make_files", "upload", "MsgId"]
