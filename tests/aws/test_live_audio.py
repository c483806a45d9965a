"""Live HLS with audio on the AWS runtime: the gateway built by ``build_aws`` on moto's server
writes the stream's segments (H.264 + AAC) and playlist to S3 through the same object-store
port as the local runtime; a simulated MDVR sends G.711 A-law beside its video."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fleetcam.config import Settings
from fleetcam.domain import hls
from tests.aws.conftest import Aws

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning"),
              pytest.mark.timeout(120)]


async def _until(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := await asyncio.to_thread(check):
            return got
        await asyncio.sleep(0.2)
    return None


def test_live_segments_in_s3_carry_the_channels_audio(aws: Aws, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.aws import build_aws
    from fleetcam.simulator.device import DeviceConfig
    from fleetcam.simulator.run import Simulation

    for k, v in {"FLEETCAM_GATEWAY_HOST": "127.0.0.1", "FLEETCAM_JT808_PORT": "0",
                 "FLEETCAM_JT1078_PORT": "0", "FLEETCAM_ATTACHMENT_PORT": "0",
                 "FLEETCAM_TELTONIKA_PORT": "0", "FLEETCAM_TELTONIKA_CAMERA_PORT": "0",
                 "FLEETCAM_MEDIA_HOST": "127.0.0.1"}.items():
        monkeypatch.setenv(k, v)

    async def scenario() -> None:
        c = build_aws(Settings.from_env())
        gw = Gateway(c)
        await gw.start()
        sim = Simulation(1, DeviceConfig(phone="", host="127.0.0.1", port=gw.port_808,
                                         media_host="127.0.0.1", report_interval=30.0,
                                         width=320, height=240, audio=True))
        try:
            (dev,) = await asyncio.to_thread(c.devices.create, [{"ident": sim.idents[0]}])
            await sim.start()
            await sim.wait_authenticated(20)
            assert await _until(lambda: c.connections.online(dev.id) is not None, 10)
            (cmd,) = await asyncio.to_thread(c.commands.enqueue, [dev.id], [
                {"name": "start_videostream", "properties": {"channel": 1}, "ttl": 60}])

            def answered() -> Any:
                got = c.commands.store.get(cmd.id)
                return got if got is not None and got.executed else None

            done = await _until(answered, 40)
            assert done is not None and done.executed, c.commands.store.get(cmd.id)
            uuid = done.response["uuid"]

            def listed() -> list[str]:
                try:
                    text = b"".join(c.store.read(hls.stream_key(uuid, "index.m3u8"))).decode()
                except Exception:  # noqa: BLE001 - not written yet
                    return []
                names = [n for n in text.splitlines() if n and not n.startswith("#")]
                return names if len(names) >= 2 else []

            names = await _until(listed, 30)
            assert names, "no segments in S3"
            for name in names[:2]:
                key = hls.stream_key(uuid, name)
                assert c.store.head(key).content_type == "video/mp2t"
                path = tmp_path / name
                path.write_bytes(b"".join(c.store.read(key)))
                r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                    "stream=codec_type,codec_name,start_time", "-of", "json",
                                    str(path)], capture_output=True, text=True, check=True)
                streams = {s["codec_type"]: s for s in json.loads(r.stdout)["streams"]}
                assert {k: s["codec_name"] for k, s in streams.items()} == \
                    {"video": "h264", "audio": "aac"}
                assert abs(float(streams["video"]["start_time"])
                           - float(streams["audio"]["start_time"])) < 0.1
        finally:
            await sim.stop_all()
            await gw.stop()

    asyncio.run(scenario())
