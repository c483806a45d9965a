"""/gw/devices/{sel}/logs and the MQTT events: every media operation, at the clock's time."""
from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.adapters.local.clock import ManualClock
from tests.api import error, uploaded
from tests.conftest import RecordingBus

T0 = 1_700_000_000
CODES = {"media_file_uploaded": 24, "media_file_updated": 25, "media_file_deleted": 26,
         "media_file_rejected": 28}


def logs(client: TestClient, sel: int | str, **data: Any) -> list[dict[str, Any]]:
    params = {"data": json.dumps(data)} if data else None
    r = client.get(f"/gw/devices/{sel}/logs", params=params)
    assert r.status_code == 200, r.text
    return r.json()["result"]  # type: ignore[no-any-return]


@pytest.fixture
def history(client: TestClient, device: dict[str, Any],
            clock: ManualClock) -> dict[str, dict[str, Any]]:
    """Upload at T0, update at T0+10, delete at T0+20."""
    url = f"/gw/devices/{device['id']}/media"
    clock.set(T0)
    up = uploaded(client, device["id"], data={"meta": {"channel": 1}})
    clock.set(T0 + 10)
    r = client.put(url, json={"uuid": up["uuid"], "protected": True, "event": "alarm"})
    assert r.status_code == 200
    upd = r.json()["result"][0]
    clock.set(T0 + 20)
    r = client.request("DELETE", url, json={"uuid": up["uuid"]})
    assert r.status_code == 200
    return {"media_file_uploaded": up, "media_file_updated": upd, "media_file_deleted": upd}


def test_log_entries(client: TestClient, device: dict[str, Any],
                     history: dict[str, dict[str, Any]]) -> None:
    got = logs(client, device["id"])
    assert [e["event_text"] for e in got] == list(history)
    assert [e["event_code"] for e in got] == [CODES[e] for e in history]
    assert [e["timestamp"] for e in got] == [T0, T0 + 10, T0 + 20]
    for e in got:
        f = history[e["event_text"]]
        assert e["device_id"] == e["origin_id"] == device["id"]
        assert e["event_origin"] == f"gw/devices/{device['id']}"
        assert e["uuid"] == f["uuid"] and e["name"] == f["name"] and e["size"] == f["size"]
        # the log keeps the file's JSON; its preview is a link, never the image
        assert e["preview"] == f["preview"] == {"url": f["url"] + "?preview=jpeg",
                                                "meta": f["preview"]["meta"]}
        assert {k: v for k, v in e.items() if k in f} == f
    assert got[0]["protected"] is False
    assert got[1]["protected"] is True and got[1]["event"] == "alarm"
    assert len({e["id"] for e in got}) == 3


def test_bus_got_the_same_events(device: dict[str, Any], bus: RecordingBus,
                                 history: dict[str, dict[str, Any]]) -> None:
    prefix = f"fleetcam/log/gw/devices/{device['id']}/"
    logged = [m for m in bus.messages if m[0].startswith("fleetcam/log/")]
    assert [t for t, _, _ in logged] == [prefix + e for e in history]
    for (topic, payload, retain), f in zip(logged, history.values()):
        assert payload == f, topic  # the file's JSON, preview link included
        assert "jpeg" not in payload["preview"], topic
        assert retain is False


def test_data_options(client: TestClient, device: dict[str, Any],
                      history: dict[str, dict[str, Any]]) -> None:
    sel = device["id"]
    events = list(history)

    def texts(**data: Any) -> list[str]:
        return [e["event_text"] for e in logs(client, sel, **data)]

    assert texts(**{"from": T0 + 5}) == events[1:]
    assert texts(to=T0 + 10) == events[:2]
    assert texts(**{"from": T0 + 10, "to": T0 + 10}) == events[1:2]
    assert texts(**{"from": T0 + 21}) == []
    assert texts(count=2) == events[:2]
    assert texts(reverse=True) == events[::-1]
    assert texts(reverse=True, count=1) == events[-1:]
    assert texts(event="media_file_updated") == events[1:2]
    assert texts(event=["media_file_uploaded", "media_file_deleted"]) == events[::2]
    assert texts(filter="event_code>=25") == events[1:]
    got = logs(client, sel, fields="event_text,timestamp", count=1)
    assert got == [{"event_text": "media_file_uploaded", "timestamp": T0}]


@pytest.mark.parametrize("data", ['{"count": 0}', '{"from": "x"}', "[", '{"reverse": 1}'])
def test_bad_data_is_400(client: TestClient, device: dict[str, Any], data: str) -> None:
    error(client.get(f"/gw/devices/{device['id']}/logs", params={"data": data}), 400)


def test_logs_by_selector(client: TestClient, device: dict[str, Any], clock: ManualClock,
                          bus: RecordingBus) -> None:
    other = client.post("/gw/devices", json={"ident": "2"}).json()["result"][0]
    a = uploaded(client, device["id"])
    clock.advance(1)
    b = uploaded(client, other["id"])
    assert [e["uuid"] for e in logs(client, "all")] == [a["uuid"], b["uuid"]]
    assert [e["uuid"] for e in logs(client, other["id"])] == [b["uuid"]]
    r = client.get("/gw/devices/999/logs")
    assert r.status_code == 404 and r.json()["errors"][0]["ids"] == [999]
    assert [t for t in bus.topics() if t.startswith("fleetcam/log/")] == [
        f"fleetcam/log/gw/devices/{device['id']}/media_file_uploaded",
        f"fleetcam/log/gw/devices/{other['id']}/media_file_uploaded"]
    # each file also became a device message (flespi's media=true message)
    assert [t for t in bus.topics() if t.endswith("/messages")] == [
        f"fleetcam/gw/devices/{device['id']}/messages",
        f"fleetcam/gw/devices/{other['id']}/messages"]


def test_delete_all_logs_each_file(client: TestClient, device: dict[str, Any],
                                   bus: RecordingBus) -> None:
    files = {uploaded(client, device["id"])["uuid"] for _ in range(3)}
    client.delete(f"/gw/devices/{device['id']}/media")
    deleted = logs(client, device["id"], event="media_file_deleted")
    assert {e["uuid"] for e in deleted} == files
    assert {p["uuid"] for t, p, _ in bus.messages if t.endswith("/media_file_deleted")} == files
