"""Several gateway copies on one metadata store: commands and drops reach the holding copy."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fleetcam.domain.gateway import Connection
from fleetcam.gateway.server import Gateway
from fleetcam.runtime.local import build_local
from tests.e2e_local import http, run
from tests.gateway import api_ok, device_of, gateway_server, poll, simulate, wait_for


class _Bus:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Any, bool]] = []

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        self.messages.append((topic, payload, retain))


def test_commands_and_drops_reach_the_copy_holding_the_device(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with gateway_server(tmp_path / "data") as server, http(server.settings) as api:
            gw_a = server.gateway
            assert gw_a is not None
            bus_b = _Bus()
            container_b = build_local(server.settings, bus=bus_b)  # same database
            gw_b = Gateway(container_b)
            await gw_b.start()
            sim = await simulate(server, 1, port=gw_b.port_808)
            try:
                assert gw_a.gateway_id != gw_b.gateway_id
                assert gw_a.port_808 != gw_b.port_808
                await sim.wait_authenticated(10)
                dev = device_of(server, sim.devices[0].cfg.phone)
                registry = server.container.connections.registry
                [conn] = api_ok(await api.get(f"/gw/devices/{dev.id}/connections/all"))
                assert registry.get(conn["id"]).gateway_id == gw_b.gateway_id
                assert dev.id in gw_b.sessions_by_device and dev.id not in gw_a.sessions_by_device

                # a command queued through the API process is routed to B, which delivers it
                [cmd] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands-queue", json=[
                    {"name": "take_photo", "properties": {"channel": 1}, "ttl": 60}]))
                store = server.container.commands.store
                assert store.get(cmd["id"]).gateway_id == gw_b.gateway_id
                assert await poll(lambda: store.get(cmd["id"]).status == "processed", 5)
                [res] = api_ok(await api.get(f"/gw/devices/{dev.id}/commands-result"))
                assert (res["id"], res["executed"]) == (cmd["id"], True)
                assert await wait_for(lambda: sim.devices[0].cfg.stats["photos"] == 1, 3)
                assert any(t.endswith(f"commands-queue/{cmd['id']}") for t, _, _ in
                           bus_b.messages), "B did not publish the command's progress"

                # so does a real-time one
                now = int(time.time())
                [rt] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands", json=[
                    {"name": "video_timeline", "timeout": 10,
                     "properties": {"channel": 1, "from": now - 900, "to": now - 60}}],
                    timeout=20))
                assert rt["executed"] is True and rt["response"]

                # a DELETE through the API process closes B's socket (reconciliation)
                sim.devices[0].authenticated.clear()
                api_ok(await api.delete(f"/gw/devices/{dev.id}/connections/{conn['id']}"))
                assert await wait_for(lambda: all(s.conn_id != conn["id"]
                                                  for s in gw_b.sessions_808), 4)
                assert registry.get(conn["id"]) is None
                disconnects = [e for e in server.container.logs.query((dev.id,))
                               if e.event == "device_disconnected" and e.data["id"] == conn["id"]]
                assert len(disconnects) == 1  # announced once, by the API's drop
                await sim.wait_authenticated(10)  # the device comes back (to B again)
            finally:
                await sim.stop_all()

            # a copy crashed holding the device: its queued command waits for the device...
            await poll(lambda: not registry.list((dev.id,)), 3)
            registry.open(Connection(id=12345, device_id=dev.id, ident=dev.ident,
                                     established=time.time(), source="10.0.0.9:5000",
                                     gateway_id="gw-crashed"))
            [cmd2] = api_ok(await api.post(f"/gw/devices/{dev.id}/commands-queue", json=[
                {"name": "take_photo", "properties": {"channel": 2}, "ttl": 60}]))
            assert store.get(cmd2["id"]).gateway_id == "gw-crashed"
            # ...and moves to A (claimed) when the device reconnects there
            sim2 = await simulate(server, 1, create=False, start=False)
            sim2.devices[0].auth_code = sim.devices[0].auth_code  # the terminal kept its code
            await sim2.start()
            try:
                await sim2.wait_authenticated(10)
                assert await poll(lambda: store.get(cmd2["id"]).status == "processed", 5)
                assert store.get(cmd2["id"]).gateway_id == gw_a.gateway_id
                assert dev.id in gw_a.sessions_by_device
            finally:
                await sim2.stop_all()
                await gw_b.stop()

    run(scenario())
