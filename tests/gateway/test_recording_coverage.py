"""A recording completes only when the bound connection's frames cover the asked range."""
from __future__ import annotations

import asyncio
from pathlib import Path

from fleetcam.protocol.jt1078.packet import DataType, PayloadType
from fleetcam.protocol.jt1078.reassembly import MediaFrame
from tests.e2e_local import run
from tests.gateway import gateway_server, poll

T = 1_700_000_000


def frame(ts_ms: int, key: bool = False) -> MediaFrame:
    return MediaFrame(sim="013900000001", channel=1,
                      data_type=DataType.I_FRAME if key else DataType.P_FRAME,
                      payload_type=PayloadType.H264, timestamp=ts_ms,
                      data=b"\x00\x00\x00\x01" + (b"\x65" if key else b"\x41") + bytes(50))


def test_a_stray_far_future_frame_does_not_end_a_recording(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server:
            gw = server.gateway
            assert gw is not None
            c = server.container
            [dev] = await asyncio.to_thread(c.devices.create, [{"ident": "013900000001"}])
            [cmd] = await asyncio.to_thread(c.commands.enqueue, [dev.id], [{
                "name": "request_video", "ttl": 60,
                "properties": {"channel": 1, "from": T, "duration": 10}}])
            sent = await asyncio.to_thread(c.commands.mark_sent, cmd, 1)
            await gw.recorder.expect(sent, (), "127.0.0.1:5000")
            req = await asyncio.to_thread(c.media_requests.get, dev.id, 1)
            assert req is not None and req.ref == f"cmd:{cmd.id}"
            assert gw.recorder.attach(req, dev, 42)
            job = gw.recorder.jobs[(dev.id, 1)]
            other = 43  # a connection the request is not bound to
            gw.recorder.on_frame(dev, other, frame(T * 1000, key=True))
            assert job.frames == 0
            for i in range(50):  # 2 s of the bound connection
                gw.recorder.on_frame(dev, 42, frame(T * 1000 + 40 * i, key=i % 25 == 0))
            gw.recorder.on_frame(dev, 42, frame((T + 10 * 365 * 86400) * 1000))  # stray
            gw.recorder.on_frame(dev, 42, frame((T + 9) * 1000))  # past a 7 s gap
            assert not job.done and job.frames == 50
            gw.recorder.on_frame(dev, 42, frame(T * 1000 + 40 * 50))
            assert not job.done and job.strays == 2 and job.frames == 51
            for i in range(51, 249):  # the rest of the range, but its last frame
                gw.recorder.on_frame(dev, 42, frame(T * 1000 + 40 * i, key=i % 25 == 0))
            assert not job.done
            gw.recorder.on_frame(dev, 42, frame(T * 1000 + 40 * 249))
            assert job.done and job.frames == 250 and job.gaps == []
            assert await poll(lambda: c.media_requests.get(dev.id, 1) is None, 3)

    run(scenario())
