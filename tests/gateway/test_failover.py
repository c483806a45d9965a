"""Failover without loss: two gateway copies on one store behind a load balancer; one is
killed (SIGKILL) or stopped (SIGTERM) mid-recording and mid-command, its devices reconnect to
the other, and every command completes, with its clip complete and stored once."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_local import TOKEN, run
from tests.gateway.copies import CopyProcess, balancer
from tests.gateway import simulate
from tests.pipeline import api_ok, http, media_files, pipeline_server, wait_results

pytestmark = pytest.mark.timeout(180)


def rv(start: int, duration: int, ttl: int = 120) -> dict[str, Any]:
    return {"name": "request_video", "ttl": ttl,
            "properties": {"channel": 1, "from": start, "duration": duration}}


async def _failover(tmp_path: Path, how: str) -> None:
    data_dir = tmp_path / "data"
    ports: dict[str, list[int]] = {"808": [], "1078": []}
    async with balancer(lambda: ports["808"]) as lb808, \
            balancer(lambda: ports["1078"]) as lb1078, \
            pipeline_server(data_dir, media_host="127.0.0.1", media_port=lb1078.port,
                            gateway_lease=6.0) as server:
        b = server.gateway
        assert b is not None
        a = await CopyProcess(data_dir, TOKEN, media_host="127.0.0.1",
                              media_port=lb1078.port, gateway_lease=6).start()
        try:
            ports["808"][:] = [a.port_808, b.port_808]  # A first while it lives
            ports["1078"][:] = [a.port_1078, b.port_1078]
            sim = await simulate(server, 1, port=lb808.port, report_interval=2.0,
                                 playback_speed=1.0, width=176, height=144, bitrate=100_000)
            try:
                await sim.wait_authenticated(10)
                api = http(server)
                registry = server.container.connections.registry
                [conn] = [c for c in registry.list((1,)) if not c.secondary]
                assert conn.gateway_id == a.gateway_id
                t = int(time.time()) - 600
                r = await api.post("/gw/devices/1/commands-queue", json=[rv(t, 8)])
                [clip_id] = [c["id"] for c in api_ok(r)]
                media_requests = server.container.media_requests

                async def recording_on_a() -> bool:
                    req = await asyncio.to_thread(media_requests.get, 1, 1)
                    return req is not None and req.bound_conn is not None

                deadline = time.monotonic() + 20
                while not await recording_on_a():
                    assert time.monotonic() < deadline, "the recording never started on A"
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)  # mid-recording
                cmd = await asyncio.to_thread(server.container.commands.store.get, clip_id)
                assert cmd is not None and cmd.status == "sent"
                ports["808"][:] = [b.port_808]  # the balancer takes A out
                ports["1078"][:] = [b.port_1078]
                if how == "kill":
                    await a.kill()
                else:
                    await a.terminate()
                    # A removed its leases at once, and published the device's disconnect
                    assert [c for c in registry.list((1,)) if c.gateway_id == a.gateway_id] \
                        == []
                # a command queued while the device is between copies
                r = await api.post("/gw/devices/1/commands-queue", json=[{
                    "name": "video_timeline", "ttl": 120,
                    "properties": {"channel": 1, "from": t, "to": t + 60}}])
                [timeline_id] = [c["id"] for c in api_ok(r)]
                results = await wait_results(api, 1, [clip_id, timeline_id], 90)
                assert results[clip_id]["executed"] is True, results[clip_id]
                assert results[timeline_id]["executed"] is True, results[timeline_id]
                files = await media_files(api, 1)
                assert len(files) == 1, files  # stored once
                assert files[0]["meta"]["duration"] == pytest.approx(8, abs=0.1)
                assert files[0]["created"] == t
                [now_conn] = [c for c in registry.list((1,)) if not c.secondary]
                assert now_conn.gateway_id == b.gateway_id
                # A's lease is gone (SIGTERM) or expired (SIGKILL): nothing of A looks alive
                assert await asyncio.to_thread(registry.of_gateway, a.gateway_id) == []
                await api.aclose()
            finally:
                await sim.stop_all()
        finally:
            await a.close()


def test_a_killed_gateway_loses_no_command_and_no_clip(tmp_path: Path) -> None:
    run(_failover(tmp_path, "kill"), 150)


def test_a_stopped_gateway_hands_its_devices_and_commands_over(tmp_path: Path) -> None:
    run(_failover(tmp_path, "term"), 150)


def test_media_sent_to_the_copy_that_does_not_hold_the_device(tmp_path: Path) -> None:
    """Devices are told the load balancer's media address, so the media may reach any copy:
    the one that receives it finds the outstanding request in the shared store and records
    the clip; the copy holding the device learns through the store that it is done."""
    async def scenario() -> None:
        data_dir = tmp_path / "data"
        ports: dict[str, list[int]] = {"808": [], "1078": []}
        async with balancer(lambda: ports["808"]) as lb808, \
                balancer(lambda: ports["1078"]) as lb1078, \
                pipeline_server(data_dir, media_host="127.0.0.1", media_port=lb1078.port) \
                as server:
            b = server.gateway
            assert b is not None
            a = await CopyProcess(data_dir, TOKEN, media_host="127.0.0.1",
                                  media_port=lb1078.port).start()
            try:
                ports["808"][:] = [a.port_808]  # the device's signalling lands on A...
                ports["1078"][:] = [b.port_1078]  # ...its media on B
                sim = await simulate(server, 1, port=lb808.port, report_interval=2.0,
                                     playback_speed=4.0, width=176, height=144,
                                     bitrate=100_000)
                try:
                    await sim.wait_authenticated(10)
                    api = http(server)
                    registry = server.container.connections.registry
                    [conn] = [c for c in registry.list((1,)) if not c.secondary]
                    assert conn.gateway_id == a.gateway_id
                    t = int(time.time()) - 600
                    r = await api.post("/gw/devices/1/commands-queue", json=[rv(t, 6)])
                    [clip_id] = [c["id"] for c in api_ok(r)]
                    results = await wait_results(api, 1, [clip_id], 60)
                    assert results[clip_id]["executed"] is True, results[clip_id]
                    [f] = await media_files(api, 1)
                    assert f["meta"]["duration"] == pytest.approx(6, abs=0.1)
                    assert f["created"] == t
                    assert lb1078.routed and set(lb1078.routed) == {b.port_1078}
                    # the request is closed; nothing is left bound
                    assert await asyncio.to_thread(
                        server.container.media_requests.get, 1, 1) is None
                    await api.aclose()
                finally:
                    await sim.stop_all()
            finally:
                await a.close()

    run(scenario(), 120)


def test_a_live_stream_whose_media_reaches_the_other_copy(tmp_path: Path) -> None:
    """The operator's start_videostream goes to the copy holding the device; the media goes to
    the other, which segments it under the stream's uuid; the holder answers once the first
    segment exists; a user's DELETE on the holder's entry stops it on both."""
    async def scenario() -> None:
        import av

        from fleetcam.media.testpattern import read_burnt_time

        data_dir = tmp_path / "data"
        ports: dict[str, list[int]] = {"808": [], "1078": []}
        async with balancer(lambda: ports["808"]) as lb808, \
                balancer(lambda: ports["1078"]) as lb1078, \
                pipeline_server(data_dir, media_host="127.0.0.1", media_port=lb1078.port) \
                as server:
            b = server.gateway
            assert b is not None
            a = await CopyProcess(data_dir, TOKEN, media_host="127.0.0.1",
                                  media_port=lb1078.port,
                                  public_url=server.settings.base_url).start()
            try:
                ports["808"][:] = [a.port_808]
                ports["1078"][:] = [b.port_1078]
                sim = await simulate(server, 1, port=lb808.port, report_interval=2.0,
                                     width=176, height=144, fps=10, bitrate=100_000)
                try:
                    await sim.wait_authenticated(10)
                    api = http(server)
                    r = await api.post("/gw/devices/1/commands", json=[{
                        "name": "start_videostream", "properties": {"channel": 1},
                        "timeout": 30}])
                    [result] = api_ok(r)
                    assert result["executed"] is True, result
                    url = result["response"]["hls"]
                    playlist = (await api.get(url)).text
                    name = [ln for ln in playlist.splitlines()
                            if ln and not ln.startswith("#")][0]
                    seg = (await api.get(url.replace("index.m3u8", name))).content

                    def first_time() -> float | None:
                        import io
                        with av.open(io.BytesIO(seg)) as c:
                            for frame in c.decode(video=0):
                                return read_burnt_time(frame)
                        return None

                    burnt = await asyncio.to_thread(first_time)
                    assert burnt is not None and abs(burnt - time.time()) < 30
                    assert set(lb1078.routed) == {b.port_1078}
                    conn_id = result["response"]["connection_id"]
                    api_ok(await api.delete(f"/gw/devices/1/connections/{conn_id}"))

                    async def ended() -> bool:
                        return "#EXT-X-ENDLIST" in (await api.get(url)).text

                    deadline = time.monotonic() + 15
                    while not await ended():
                        assert time.monotonic() < deadline, "the stream did not end"
                        await asyncio.sleep(0.3)
                    await api.aclose()
                finally:
                    await sim.stop_all()
            finally:
                await a.close()

    run(scenario(), 120)
