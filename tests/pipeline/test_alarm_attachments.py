"""ADAS/DSM alarm attachments end to end (T/JSATL12-2017): an alarm in a 0x0200, 0x9208 to the
device, the upload on the attachment port (out of order, one chunk lost and asked for again
with 0x9212), then the photo and the clip as media files linked to the alarm; video rules
on ``adas.alarm.type``; and the attachment port's trust rules against strangers."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from fleetcam.protocol.jt808 import messages as m
from fleetcam.protocol.jt808 import subiao
from fleetcam.protocol.jt808.connection import NEED_DATA, Jt808Connection, Message
from fleetcam.simulator.attachments import make_files, upload
from tests.pipeline import (api_ok, device_messages, http, log_entries, media_files,
                            pipeline_server, record_platform_messages, simulate, until)

pytestmark = pytest.mark.timeout(180)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _alarm_files(api: Any, device_id: int, n: int = 2) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        files = [f for f in await media_files(api, device_id) if "alarm.id" in f]
        return files if len(files) >= n else None
    return await until(probe, 60, every=0.3, what="the alarm's files")  # type: ignore[no-any-return]


def test_adas_alarm_photo_and_clip_become_media_linked_to_the_alarm(tmp_path: Path) -> None:
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, \
                simulate(server, attachment_loss=True) as sim:
            dev = sim.devices[0]
            seen = record_platform_messages(dev)
            api = http(server)
            async with api:
                rule = api_ok(await api.post("/gw/video-rules", json={
                    "name": "collisions", "condition": "adas.alarm.type==1", "devices": "all",
                    "channels": [1], "before": 2, "after": 2}))
                assert rule
                alarm_id = dev.raise_alarm("adas", when=time.time() - 30)
                files = await _alarm_files(api, 1)
                by_mime = {f["mime"]: f for f in files}
                assert set(by_mime) == {"image/jpeg", "video/mp4"}
                for f in files:
                    assert f["alarm.id"] == alarm_id
                    assert f["alarm.source"] == "adas"
                    assert f["alarm.type"] == 1
                    assert abs(f["created"] - (time.time() - 30)) < 5  # the alarm's time
                    assert f["channel_id"] == 1
                clip = by_mime["video/mp4"]
                assert clip["meta"]["codec"] == "h264" and clip["meta"]["duration"] >= 3
                # the device got 0x9208 and, for the lost chunk, a 0x9212 asking again
                assert any(isinstance(b, subiao.AttachmentUploadRequest) for b in seen)
                assert dev.cfg.stats["attachments"] == 2
                msgs = await device_messages(api, 1)
                alarm_msgs = [x for x in msgs if x.get("adas.alarm.type") == 1]
                assert alarm_msgs and alarm_msgs[0]["alarm.id"] == alarm_id
                media_msgs = [x for x in msgs if x.get("media") and "media.video.1" in x]
                assert media_msgs, "the clip is a media message at the alarm's time"
                status = [x for x in msgs if x.get("alarm.attachments.status")]
                assert status and status[-1]["alarm.attachments.status"] == "complete"
                assert status[-1]["alarm.attachments.stored"] == 2
                events = [e["event_text"] for e in await log_entries(api, 1)]
                assert "rule_hit" in events, "the video rule on adas.alarm.type fired"
                assert "alarm_attachments_requested" in events
                assert "alarm_attachments_complete" in events

    run(main())


def test_dsm_alarm_with_h265_clip_is_converted(tmp_path: Path) -> None:
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, \
                simulate(server, codec="hevc", width=320, height=240) as sim:
            dev = sim.devices[0]
            api = http(server)
            async with api:
                dev.raise_alarm("dsm")
                files = await _alarm_files(api, 1)
                clip = next(f for f in files if f["mime"] == "video/mp4")
                assert clip["meta"]["codec"] == "h264"
                assert clip["alarm.source"] == "dsm"

    run(main())


async def _raw_upload(port: int, phone: str, number: str, files: Any,
                      ident: subiao.AlarmIdentification) -> Any:
    req = subiao.AttachmentUploadRequest("127.0.0.1", port, 0, ident, number)
    return await upload(req, phone=phone, host="127.0.0.1", files=files, channel=1,
                        alarm_type=0x64, timeout=5)


def test_strangers_get_nothing_in(tmp_path: Path) -> None:
    """An alarm number fleetcam never issued, a real one from another address, or files that
    were not announced: refused and closed, nothing stored, nothing published as a file."""
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, simulate(server) as sim:
            dev = sim.devices[0]
            gw = server.gateway
            assert gw is not None
            port = gw.port_attachment
            files = await asyncio.to_thread(make_files, "h264", 176, 120, time.time())
            ident = subiao.AlarmIdentification(dev.cfg.phone[-7:], int(time.time()), 1, 2)
            # 1. a made-up alarm number for a real device
            with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
                await _raw_upload(port, dev.cfg.phone, "0" * 32, files, ident)
            # 2. an unknown terminal
            with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
                await _raw_upload(port, "013999999999", "1" * 32, files, ident)
            # 3. garbage on the port
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await w.drain()
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
            # 4. a real outstanding alarm number, from a stranger's address (same-address rule)
            number = await _issued_number(server, dev)
            await asyncio.to_thread(_move_request_source, server, dev, number, "10.9.9.9")
            with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
                await _raw_upload(port, dev.cfg.phone, number, files, ident)
            api = http(server)
            async with api:
                assert [f for f in await media_files(api, 1) if "alarm.id" in f] == []
            assert gw.attachments.stats["refused"] >= 4
            assert gw.attachments.stats["stored"] == 0

    run(main())


async def _issued_number(server: Any, dev: Any) -> str:
    """Raise an alarm whose upload the simulated device does not make, and return the alarm
    number fleetcam issued for it."""
    seen = record_platform_messages(dev)

    async def ignore(req: Any) -> None:
        return None

    dev.upload_attachments = ignore
    dev.raise_alarm("adas")

    async def probe() -> str | None:
        reqs = [b for b in seen if isinstance(b, subiao.AttachmentUploadRequest)]
        return reqs[-1].alarm_number if reqs else None
    return await until(probe, 10, what="0x9208")  # type: ignore[no-any-return]


def _move_request_source(server: Any, dev: Any, number: str, ip: str) -> None:
    from fleetcam.gateway.attachments import slot_of

    store = server.container.media_requests
    device = server.container.device_repo.find_by_ident(dev.cfg.phone)
    req = store.get(device.id, slot_of(number))
    assert req is not None and req.ref == number
    assert store.swap(req.with_changes(source_ip=ip)) is not None


def test_incomplete_file_is_never_stored_and_the_alarm_says_so(tmp_path: Path) -> None:
    """A device that sends half a file and stops answering: after the re-upload rounds the
    file is given up, nothing is stored, and the alarm's message and the log say what was
    missing."""
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, simulate(server) as sim:
            dev = sim.devices[0]
            gw = server.gateway
            assert gw is not None
            number = await _issued_number(server, dev)
            ident = subiao.AlarmIdentification(dev.cfg.phone[-7:], int(time.time()), 1, 1)
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port_attachment)
            codec = Jt808Connection()

            def send(body: Any) -> None:
                writer.write(codec.send(body, phone=dev.cfg.phone, version2019=False))

            async def answer(kind: type) -> Any:
                while True:
                    while (ev := codec.next_event()) is not NEED_DATA:
                        if isinstance(ev, Message) and isinstance(ev.body, kind):
                            return ev.body
                    data = await asyncio.wait_for(reader.read(65536), 5)
                    assert data, "closed early"
                    codec.receive_data(data, time.time())

            data = b"\xff\xd8" + b"x" * 5000
            name = f"00_01_6401_0_{number}.jpg"
            send(subiao.AlarmAttachmentInfo(ident.terminal_id, ident, number, 0,
                                            (subiao.AttachmentItem(name, len(data)),)))
            assert (await answer(m.GeneralResponse)).result == 0
            send(subiao.AttachmentFileInfoMsg(name, 0, len(data)))
            await answer(m.GeneralResponse)
            writer.write(subiao.encode_chunk(subiao.FileChunk(name, 0, data[:1000])))
            asked = []
            for _ in range(4):
                send(subiao.AttachmentFileDone(name, 0, len(data)))
                res = await answer(subiao.AttachmentFileResult)
                asked.append(res)
                if res.result == 0:
                    break
            assert [r.result for r in asked] == [1, 1, 1, 0]
            assert asked[0].missing == ((1000, len(data) - 1000),)
            writer.close()
            api = http(server)
            async with api:
                async def probe() -> Any:
                    return [x for x in await device_messages(api, 1)
                            if x.get("alarm.attachments.status")]
                status = await until(probe, 10, what="the alarm's attachment status")
                assert status[-1]["alarm.attachments.status"] == "incomplete"
                assert status[-1]["alarm.attachments.stored"] == 0
                assert name in status[-1]["alarm.attachments.missing"]
                assert [f for f in await media_files(api, 1) if "alarm.id" in f] == []

    run(main())


def test_size_that_disagrees_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with pipeline_server(tmp_path / "d") as server, simulate(server) as sim:
            dev = sim.devices[0]
            gw = server.gateway
            assert gw is not None
            number = await _issued_number(server, dev)
            ident = subiao.AlarmIdentification(dev.cfg.phone[-7:], int(time.time()), 1, 1)
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port_attachment)
            codec = Jt808Connection()
            name = f"00_01_6401_0_{number}.jpg"
            writer.write(codec.send(subiao.AlarmAttachmentInfo(
                ident.terminal_id, ident, number, 0, (subiao.AttachmentItem(name, 100),)),
                phone=dev.cfg.phone, version2019=False))
            writer.write(codec.send(subiao.AttachmentFileInfoMsg(name, 0, 100),
                                    phone=dev.cfg.phone, version2019=False))
            writer.write(subiao.encode_chunk(subiao.FileChunk(name, 90, b"y" * 50)))
            await writer.drain()
            rest = b""
            while chunk := await asyncio.wait_for(reader.read(65536), 5):
                rest += chunk
            writer.close()
            assert gw.attachments.stats["refused"] >= 1  # closed, with the reason logged

    run(main())
