"""LocalServer over real HTTP: restarts keep data and the token; external broker; the worker."""
from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import pytest
from amqtt.broker import Broker as AmqttBroker

from fleetcam.domain.keys import media_key
from fleetcam.domain.models import new_uuid
from mediagen import make_image
from tests.e2e_local import (collect, create_device, free_port, http, make_settings,
                             mqtt_client, poll, run, serving, upload)


def test_device_file_link_and_log_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    jpeg = make_image(320, 240, "jpeg")

    async def first_life() -> tuple[dict, dict]:
        async with serving(settings), http(settings) as api:
            device = await create_device(api)
            f = await upload(api, device["id"], jpeg, {"meta": {"channel": 2}})
            return device, f

    device, f = run(first_life())
    assert f["size"] == len(jpeg) and f["mime"] == "image/jpeg"
    assert f["url"] == f"{settings.base_url}/media/{f['uuid']}"

    async def second_life() -> None:
        async with serving(settings), http(settings) as api:
            r = await api.get(f"/gw/devices/{device['id']}")
            assert r.status_code == 200, r.text
            assert [(d["id"], d["ident"]) for d in r.json()["result"]] == \
                [(device["id"], device["ident"])]

            r = await api.get(f"/gw/devices/{device['id']}/media")
            assert r.status_code == 200, r.text
            assert r.json()["result"] == [f]

            r = await api.get(f["url"])  # the content link, as the upload answered it
            assert r.status_code == 200
            assert r.content == jpeg
            assert r.headers["content-type"] == "image/jpeg"
            r = await api.get(f["url"], headers={"Range": "bytes=0-9"})
            assert r.status_code == 206 and r.content == jpeg[:10]
            r = await api.get(f["url"], params={"preview": "json"})
            assert r.json() == f

            r = await api.get(f"/gw/devices/{device['id']}/logs")
            assert r.status_code == 200, r.text
            log = r.json()["result"]
            assert [(e["event_text"], e["uuid"]) for e in log] == \
                [("media_file_uploaded", f["uuid"])]

    run(second_life())


TOKEN_LINE = re.compile(r"generated admin token ([A-Za-z0-9]+)")


def test_generated_admin_token_is_printed_once_and_reused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path / "data", admin_token="")

    async def life() -> None:
        async with serving(settings) as server:
            token = server.container.extras["admin_token"]
            async with http(settings, token=None) as anonymous:
                assert (await anonymous.get("/gw/devices/all")).status_code == 401
            async with http(settings, token=token) as api:
                assert (await api.get("/gw/devices/all")).status_code == 200

    run(life())
    printed = TOKEN_LINE.findall(capsys.readouterr().out)
    assert len(printed) == 1
    token = printed[0]
    assert len(token) == 64 and token.isascii() and token.isalnum()

    async def again() -> object:
        async with serving(settings) as server:
            async with http(settings, token=token) as api:
                assert (await api.get("/gw/devices/all")).status_code == 200
            return server.container.extras["admin_token"]

    assert run(again()) is None  # the database keeps only the token's hash
    db = (settings.data_dir / "fleetcam.sqlite3").read_bytes()
    assert token.encode() not in db
    assert TOKEN_LINE.findall(capsys.readouterr().out) == []


def test_external_broker_means_no_embedded_one(tmp_path: Path) -> None:
    external_port = free_port()
    settings = make_settings(tmp_path / "data", mqtt_url=f"mqtt://127.0.0.1:{external_port}")

    async def scenario() -> list[tuple[str, dict]]:
        # any MQTT broker: amqtt here, anonymous (fleetcam's own needs the server's secret)
        broker = AmqttBroker({"listeners": {"default": {"type": "tcp",
                                                        "bind": f"127.0.0.1:{external_port}"}},
                              "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                                          {"allow_anonymous": True}}})
        await broker.start()
        try:
            async with serving(settings) as server:
                assert server.broker is None
                with pytest.raises(OSError):  # nothing answers on the unused default port
                    socket.create_connection(("127.0.0.1", settings.mqtt_port), timeout=1).close()
                assert server.bus.port == external_port
                async with mqtt_client(external_port) as sub, http(settings) as api:
                    await sub.subscribe("fleetcam/log/gw/devices/+/+", qos=1)
                    device = await create_device(api)
                    f = await upload(api, device["id"], make_image(64, 48))
                    got = await collect(sub, "fleetcam/log/gw/devices/+/+", 1)
                    assert [(t, p["uuid"]) for t, p in got] == [
                        (f"fleetcam/log/gw/devices/{device['id']}/media_file_uploaded",
                         f["uuid"])]
                    return got
        finally:
            await broker.shutdown()

    assert run(scenario())


def test_ingest_worker_indexes_an_object_written_without_the_api(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    jpeg = make_image(160, 120, "jpeg", seed=3)
    options = {"name": "dropped.jpg", "channel": 1, "created": 1_700_000_123,
               "protected": False, "shared": True, "attributes": {"source": "ftp"}}

    async def scenario() -> None:
        async with serving(settings) as server, http(settings) as api:
            device = await create_device(api)
            uuid = new_uuid()
            c = server.container
            key = media_key(device["id"], uuid, "jpg")
            await asyncio.to_thread(c.store.put, key, jpeg, content_type="image/jpeg",
                             metadata={"fleetcam-meta": json.dumps(options)})
            f = await poll(lambda: c.index.get(uuid), timeout=10.0)
            assert f is not None, "the ingest worker did not index the object within 10 s"
            assert (f.key, f.size, f.name, f.channel_id, f.created, f.shared) == \
                (key, len(jpeg), "dropped.jpg", 1, 1_700_000_123.0, True)
            r = await api.get(f"/gw/devices/{device['id']}/media")
            assert [x["uuid"] for x in r.json()["result"]] == [uuid]
            assert r.json()["result"][0]["source"] == "ftp"
            async with http(settings, token=None) as anonymous:  # shared: no token needed
                r = await anonymous.get(f"/media/{uuid}")
                assert r.status_code == 200 and r.content == jpeg

    run(scenario())

