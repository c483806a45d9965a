"""A real MQTT client on the embedded broker sees flespi's device log topics and file JSON."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from fleetcam.adapters.local.clock import ManualClock
from mediagen import make_image
from tests.e2e_local import (collect, create_device, drained, http, make_settings, mqtt_client,
                             run, serving, upload)

LOG_TOPICS = "fleetcam/log/gw/devices/+/+"


def _ok(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


def test_upload_update_delete_are_published_with_the_file_json(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")

    async def scenario() -> None:
        async with serving(settings), mqtt_client(settings.mqtt_port) as sub, \
                http(settings) as api:
            await sub.subscribe(LOG_TOPICS, qos=1)
            device = await create_device(api)
            base = f"fleetcam/log/gw/devices/{device['id']}"
            f = await upload(api, device["id"], make_image(64, 48), {"meta": {"channel": 1}})
            [updated] = _ok(await api.put(f"/gw/devices/{device['id']}/media",
                                          json={"uuid": f["uuid"], "protected": True,
                                                "label": "incident"}))
            _ok(await api.request("DELETE", f"/gw/devices/{device['id']}/media",
                                  json={"uuid": f["uuid"]}))

            got = await collect(sub, LOG_TOPICS, 3)
            assert [t for t, _ in got] == [f"{base}/media_file_uploaded",
                                           f"{base}/media_file_updated",
                                           f"{base}/media_file_deleted"]
            assert [p["uuid"] for _, p in got] == [f["uuid"]] * 3
            assert got[0][1] == f  # the upload's answer, field for field
            assert got[1][1] == updated
            assert (updated["protected"], updated["label"]) == (True, "incident")
            assert got[2][1]["device_id"] == device["id"]
            assert set(got[2][1]) >= {"uuid", "url", "name", "size", "mime", "created",
                                      "preview", "meta"}

    run(scenario())


def test_topic_prefix_is_configurable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", topic_prefix="flespi")

    async def scenario() -> None:
        async with serving(settings), mqtt_client(settings.mqtt_port) as sub, \
                http(settings) as api:
            await sub.subscribe("#", qos=1)
            device = await create_device(api)
            f = await upload(api, device["id"], make_image(64, 48))
            got = await collect(sub, "+/log/gw/devices/+/+", 1)
            assert [(t, p["uuid"]) for t, p in got] == [
                (f"flespi/log/gw/devices/{device['id']}/media_file_uploaded", f["uuid"])]

    run(scenario())


def test_retention_expiry_is_published(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    clock = ManualClock(1_700_000_000.0)

    async def scenario() -> None:
        async with serving(settings, clock=clock) as server, \
                mqtt_client(settings.mqtt_port) as sub, http(settings) as api:
            await sub.subscribe(LOG_TOPICS, qos=1)
            device = await create_device(api)
            [changed] = _ok(await api.put(f"/gw/devices/{device['id']}",
                                          json={"media_ttl": 3600}))
            assert changed["media_ttl"] == 3600
            keep = await upload(api, device["id"], make_image(64, 48, seed=1),
                                {"protected": True})
            old = await upload(api, device["id"], make_image(64, 48, seed=2))
            await drained(server)  # or the worker's own retention pass could expire it
            assert await asyncio.to_thread(server.container.retention.sweep) == 0

            clock.advance(3601)
            assert await asyncio.to_thread(server.container.retention.sweep) == 1

            got = await collect(sub, LOG_TOPICS, 3)
            base = f"fleetcam/log/gw/devices/{device['id']}"
            assert [(t, p["uuid"]) for t, p in got] == [
                (f"{base}/media_file_uploaded", keep["uuid"]),
                (f"{base}/media_file_uploaded", old["uuid"]),
                (f"{base}/media_file_expired", old["uuid"])]
            assert got[2][1] == old
            left = _ok(await api.get(f"/gw/devices/{device['id']}/media"))
            assert [x["uuid"] for x in left] == [keep["uuid"]]
            r = await api.get(old["url"])
            assert r.status_code == 404

    run(scenario())


def test_clients_need_a_token_and_lose_the_session_when_it_is_revoked(tmp_path: Path) -> None:
    """The server's broker, as a flespi web client meets it: MQTT 5 over WebSocket at /mqtt on
    the API's origin; a device-scoped token reads its device's media events only; a stranger
    is refused; deleting the token through the REST API ends its session at once."""
    from tests.broker import Paho, sub_ids

    settings = make_settings(tmp_path / "data")

    async def scenario() -> None:
        async with serving(settings), http(settings) as api:
            mine = await create_device(api, "013900000001")
            other = await create_device(api, "013900000002")
            r = await api.post("/platform/customer/tokens", json=[{
                "info": "viewer", "ttl": 3600, "access": {"type": 2, "acl": [{
                    "uri": "gw/devices", "ids": [mine["id"]], "methods": ["GET"],
                    "submodules": [{"name": "media", "methods": ["GET"]}]}]}}])
            [token] = _ok(r)
            base = "fleetcam/log/gw/devices"

            def connect_and_subscribe() -> tuple[Paho, list[int]]:
                assert Paho(settings.http_port, None).connect()[0] == 135
                assert Paho(settings.mqtt_port, None, ws=False, v5=False).connect()[0] == 135
                ui = Paho(settings.http_port, token["key"])
                rc, props = ui.connect()
                assert rc == 0
                assert json.loads(dict(props.UserProperty)["token"])["id"] == token["id"]
                codes = ui.subscribe([
                    (f"{base}/{mine['id']}/media_file_uploaded,media_file_deleted", 1),
                    (f"{base}/{other['id']}/media_file_uploaded", 1)], sub_id=9)
                return ui, codes

            ui, codes = await asyncio.to_thread(connect_and_subscribe)
            assert codes == [1, 135]
            f = await upload(api, mine["id"], make_image(64, 48))
            await upload(api, other["id"], make_image(64, 48, seed=2))
            got = await asyncio.to_thread(ui.collect, 1)
            assert [(m.topic, sub_ids(m)) for m in got] == [
                (f"{base}/{mine['id']}/media_file_uploaded", [9])]
            assert json.loads(got[0].payload)["uuid"] == f["uuid"]
            assert await asyncio.to_thread(ui.quiet) == []  # the other device's upload

            _ok(await api.delete(f"/platform/customer/tokens/{token['id']}"))
            assert await asyncio.to_thread(ui.disconnected.wait, 3)
            ui.client.loop_stop()

    run(scenario())


def test_a_separate_gateway_process_publishes_as_the_server(tmp_path: Path) -> None:
    """``fleetcam gateway`` on the same data directory logs into the embedded broker with the
    publisher secret kept in the database; a token may not publish there."""
    from fleetcam.adapters.local.mqtt import MqttEventBus
    from fleetcam.runtime.local import local_mqtt

    settings = make_settings(tmp_path / "data")

    async def scenario() -> None:
        async with serving(settings), mqtt_client(settings.mqtt_port) as sub:
            await sub.subscribe("fleetcam/log/gw/devices/+/+", qos=1)
            url, secret = local_mqtt(settings)
            assert secret and url == (f"mqtt://fleetcam-server:{secret}@127.0.0.1:"
                                      f"{settings.mqtt_port}")
            bus = MqttEventBus(url, client_id="fleetcam-gateway")
            await bus.start()
            try:
                await asyncio.wait_for(bus.connected.wait(), 5)
                bus.publish("fleetcam/log/gw/devices/5/media_file_uploaded", {"id": 1})
                await sub.publish("fleetcam/log/gw/devices/5/media_file_deleted", b"{}", qos=1)
                got = await collect(sub, "fleetcam/log/gw/devices/+/+", 2, timeout=2)
                assert got == [("fleetcam/log/gw/devices/5/media_file_uploaded", {"id": 1})]
            finally:
                await bus.stop()

    run(scenario())
