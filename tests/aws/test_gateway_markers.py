"""The gateway on AWS reads its connection list and assigned commands when its change marker
moves, not every second (issue 14, "the gateway's shared-store reads batched or
event-driven"; bench/gateway_store_reads.py counts them): a drop through the API, a queued
command and a removed lease still reach it within a few ticks, the DVR streams' changes too."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fleetcam.adapters.aws.gateway_dynamodb import (DynamoCommandStore,
                                                    DynamoConnectionRegistry, bump_fleet_marker)
from fleetcam.config import Settings
from fleetcam.domain.gateway import Command, Connection
from tests.aws.conftest import Aws
from tests.aws.metering import dynamodb_calls

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics:UserWarning"),
              pytest.mark.timeout(120)]


def _conn(i: int, gateway_id: str) -> Connection:
    return Connection(id=i, device_id=i, ident=f"{i:012d}", established=time.time(),
                      source="10.0.0.1:4000", gateway_id=gateway_id)


def test_markers_move_with_what_a_copy_must_read(aws: Aws) -> None:
    reg, cmds = DynamoConnectionRegistry(), DynamoCommandStore()
    reg.heartbeat("gw-a", time.time() + 45)
    reg.heartbeat("gw-b", time.time() + 45)
    for i, gw in ((1, "gw-a"), (2, "gw-b")):
        reg.open(_conn(i, gw))
    a0 = reg.inbox("gw-a")
    assert a0 is not None and reg.inbox("gw-a") == a0  # reading changes nothing
    assert reg.inbox("gw-a", fleet=False) == (a0[0], None)  # the copy's own alone
    reg.heartbeat("gw-a", time.time() + 45)  # renewing the lease is no change either
    assert reg.inbox("gw-a") == a0

    reg.close(2)  # a connection of another copy
    assert reg.inbox("gw-a") == a0
    reg.open(_conn(3, "gw-a"))
    reg.close(3, by_gateway="gw-a")  # closed by the copy that holds it: it knows already
    assert reg.inbox("gw-a") == a0
    reg.close(1)
    a1 = reg.inbox("gw-a")
    assert a1 is not None and a1[0] != a0[0] and a1[1] == a0[1]

    cmds.add(Command(id=0, device_id=1, name="take_photo", properties={"channel": 1},
                     queued=time.time(), expires=time.time() + 60, gateway_id="gw-a"))
    a2 = reg.inbox("gw-a")
    assert a2 is not None and a2[0] != a1[0]

    reg.drop_gateway("gw-a")  # its lease passed and another copy dropped it
    gone1, gone2 = reg.inbox("gw-a"), reg.inbox("gw-a")
    assert gone1 is not None and gone2 is not None
    assert gone1[0] != a2[0] and gone1[0] != gone2[0]  # changed at every read while missing
    reg.heartbeat("gw-a", time.time() + 45)  # written again: a new epoch, not the old marker
    back = reg.inbox("gw-a")
    assert back is not None and back[0] != a2[0]

    bump_fleet_marker()
    after = reg.inbox("gw-a")
    assert after is not None and after[1] != back[1] and after[0] == back[0]
    # the DVR streams' changes and watch marks move the fleet marker (gateways re-read them)
    from fleetcam.adapters.aws.dvr import DynamoDvrIndex, DynamoDvrStreamStore
    from fleetcam.domain import dvr

    DynamoDvrStreamStore().put(dvr.DvrStream("7-1", 7, 1, dvr.DvrConfig("dvr", 3600), 1.0, 1.0,
                                             read_salt="ab" * 16))
    put = reg.inbox("gw-a")
    assert put is not None and put[1] != after[1]
    DynamoDvrIndex().watch("7-1", time.time() + 60)
    watched = reg.inbox("gw-a")
    assert watched is not None and watched[1] != put[1]
    assert DynamoDvrIndex().watched(time.time()) == ["7-1"]
    # the fleet marker is no connection
    assert [c.id for c in reg.list()] == []


async def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.1)
    return False


def test_an_idle_copy_reads_little_and_still_learns_of_drops_and_commands(aws: Aws) -> None:
    """Two containers on one moto server: the gateway's, and the API's (another process on
    AWS). The gateway reads in full only on its marker: its lists are never re-read while
    idle here (the safety net is set past the test), yet a drop and a queued command made
    through the API's container reach the device within seconds."""
    from fleetcam.gateway.server import Gateway
    from fleetcam.runtime.aws import build_aws
    from fleetcam.simulator.device import DeviceConfig
    from fleetcam.simulator.run import Simulation

    env = {"FLEETCAM_GATEWAY_HOST": "127.0.0.1", "FLEETCAM_JT808_PORT": "0",
           "FLEETCAM_JT1078_PORT": "0", "FLEETCAM_ATTACHMENT_PORT": "0",
           "FLEETCAM_TELTONIKA_PORT": "0", "FLEETCAM_TELTONIKA_CAMERA_PORT": "0",
           "FLEETCAM_MEDIA_HOST": "127.0.0.1"}

    async def scenario() -> None:
        import os

        os.environ.update(env)
        c = build_aws(Settings.from_env())
        api = build_aws(Settings.from_env())
        gw = Gateway(c)
        gw.full_sync_every = 3600.0
        await gw.start()
        sim = Simulation(1, DeviceConfig(phone="", host="127.0.0.1", port=gw.port_808,
                                         media_host="127.0.0.1", report_interval=30.0))
        try:
            (dev,) = await asyncio.to_thread(api.devices.create, [{"ident": sim.idents[0]}])
            await sim.start()
            await sim.wait_authenticated(20)
            assert await _until(lambda: api.connections.online(dev.id) is not None, 10)
            await asyncio.sleep(4)  # past the settling ticks of its own registration

            with dynamodb_calls() as calls:
                await asyncio.sleep(5)
            # idle: the markers (a GetItem a tick, a BatchGetItem with the fleet's every 5),
            # expiring commands (a Query every 5 ticks), the lease (a Query of the leases
            # with its renewal); not the lists
            assert calls["GetItem"] + calls["BatchGetItem"] >= 3, calls
            assert calls["Query"] <= 4, calls

            # a command queued through the API reaches the device (answered) within seconds
            (cmd,) = await asyncio.to_thread(api.commands.enqueue, [dev.id], [
                {"name": "take_photo", "properties": {"channel": 1}, "ttl": 60}])
            assert await _until(lambda: (api.commands.store.get(cmd.id) or cmd).status
                                != "queued", 10), "the queued command was never sent"

            # a drop through the API closes the device's session on the gateway
            conn = await asyncio.to_thread(api.connections.online, dev.id)
            assert conn is not None
            await asyncio.to_thread(api.connections.drop, [dev.id], conn.id)
            assert await _until(lambda: not any(s.conn_id == conn.id for s in gw.sessions_808),
                                10), "the dropped connection stayed open"
        finally:
            await sim.stop_all()
            await gw.stop()

    asyncio.run(scenario())
