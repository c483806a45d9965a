"""A real MQTT client on the embedded broker sees flespi's device log topics and file JSON."""
from __future__ import annotations

import asyncio
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
