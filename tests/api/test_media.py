"""/gw/devices/{sel}/media: upload, search (filter, fields, cursor), edit, delete, rejections."""
from __future__ import annotations

import io
import json
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.config import Settings
from tests.api import error, list_media, stored_objects, upload, uploaded
from tests.mediagen import make_image

T0 = 1_700_000_000

FILE_FIELDS = {"uuid", "url", "name", "size", "mime", "created", "modified", "uploaded",
               "protected", "shared", "channel_id", "device_id", "meta", "preview"}


def uuids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [f["uuid"] for f in r.json()["result"]]


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data)) as c:
        assert c.format.name in ("jpeg_pipe", "image2")
        return next(c.decode(video=0))


# -- upload -----------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "mime", "name"), [("jpeg", "image/jpeg", "front.jpg"),
                                                   ("png", "image/png", "rear.png")])
def test_upload_shape(client: TestClient, device: dict[str, Any], clock: ManualClock,
                      fmt: str, mime: str, name: str) -> None:
    content = make_image(640, 480, fmt)
    clock.set(T0 + 100)
    f = uploaded(client, device["id"], content, filename=name, content_type=mime, data={
        "type": "image", "meta": {"channel": 2, "created": T0},
        "attributes": {"event": "harsh_braking", "speed": 63}})
    assert FILE_FIELDS <= set(f)
    assert len(f["uuid"]) == 32 and int(f["uuid"], 16) >= 0
    assert f["url"] == f"http://fleetcam.test/media/{f['uuid']}"
    assert f["name"] == name and f["size"] == len(content) and f["mime"] == mime
    assert f["created"] == T0  # from data.meta.created, not the clock
    assert f["uploaded"] == f["modified"] == T0 + 100
    assert f["protected"] is False and f["shared"] is True  # token-free links by default
    assert f["channel_id"] == 2 and f["device_id"] == device["id"]
    assert f["meta"] == {"type": "image", "width": 640, "height": 480, "channel": 2}
    assert f["event"] == "harsh_braking" and f["speed"] == 63
    assert f["preview"]["meta"] == {"type": "image", "width": 640, "height": 480}
    thumb = client.get(f["preview"]["url"]).content
    assert thumb[:2] == b"\xff\xd8"
    frame = decode_jpeg(thumb)
    assert (frame.width, frame.height) == (320, 240)
    # the device now accounts for the bytes
    (d,) = client.get(f"/gw/devices/{device['id']}").json()["result"]
    assert d["media_size"] == len(content)


def test_upload_defaults(client: TestClient, device: dict[str, Any], clock: ManualClock) -> None:
    f = uploaded(client, device["id"], filename="x.jpg")  # no data part at all
    assert f["created"] == f["uploaded"] == clock.now()
    assert f["channel_id"] is None and "channel" not in f["meta"]
    assert f["name"] == "x.jpg"


def test_upload_top_level_options(client: TestClient, device: dict[str, Any]) -> None:
    f = uploaded(client, device["id"], data={"channel": 3, "created": T0 - 5, "protected": True,
                                             "shared": True, "name": "../../etc/passwd"})
    assert f["channel_id"] == 3 and f["created"] == T0 - 5
    assert f["protected"] is True and f["shared"] is True
    assert f["name"] == "passwd"  # no path survives


@pytest.mark.parametrize(("data", "field"), [
    ({"meta": {"channel": "front"}}, "channel"),
    ({"meta": {"channel": 256}}, "channel"),
    ({"meta": {"created": "yesterday"}}, "created"),
    ({"protected": "yes"}, "protected"),
    ({"attributes": {"uuid": "x"}}, "attributes"),
    ({"attributes": []}, "attributes"),
    ({"meta": [1]}, "data.meta"),
])
def test_upload_bad_options(client: TestClient, device: dict[str, Any], settings: Settings,
                            data: dict[str, Any], field: str) -> None:
    err = error(upload(client, device["id"], data=data), 400)
    assert err["field"] == field
    assert uuids(list_media(client, device["id"])) == []
    assert stored_objects(settings.data_dir) == []


def test_upload_bad_data_json_and_missing_file(client: TestClient,
                                               device: dict[str, Any]) -> None:
    r = client.post(f"/gw/devices/{device['id']}/media", data={"data": "{oops"},
                    files={"file": ("a.jpg", make_image(16, 16), "image/jpeg")})
    assert error(r, 400)["field"] == "data"
    r = client.post(f"/gw/devices/{device['id']}/media", data={"data": "{}"},
                    files={"other": ("a.jpg", b"x", "image/jpeg")})
    assert error(r, 400)["field"] == "file"
    r = client.post(f"/gw/devices/{device['id']}/media", json={"file": "x"})
    assert error(r, 400)["field"] == "file"


def test_upload_garbage_is_rejected_and_nothing_kept(client: TestClient, device: dict[str, Any],
                                                     settings: Settings) -> None:
    err = error(upload(client, device["id"], b"\x00garbage" * 100, content_type="image/jpeg"),
                400)
    assert "image" in err["reason"]
    assert uuids(list_media(client, device["id"])) == []
    assert stored_objects(settings.data_dir) == []
    (d,) = client.get(f"/gw/devices/{device['id']}").json()["result"]
    assert d["media_size"] == 0
    logs = client.get(f"/gw/devices/{device['id']}/logs").json()["result"]
    assert [e["event_text"] for e in logs] == ["media_file_rejected"]
    assert logs[0]["size"] == 800 and logs[0]["reason"]


def test_upload_of_an_unsupported_type_is_rejected(client: TestClient, device: dict[str, Any],
                                                   settings: Settings) -> None:
    error(upload(client, device["id"], b"hello", filename="a.txt", content_type="text/plain"),
          400)
    assert stored_objects(settings.data_dir) == []


def test_upload_over_the_cap_is_413(client: TestClient, device: dict[str, Any],
                                    settings: Settings) -> None:
    content = make_image(64, 48)
    keep = uploaded(client, device["id"], content, data={"protected": True})
    r = client.put(f"/gw/devices/{device['id']}",
                   json={"media_rotate": len(content) * 3 // 2})
    assert r.status_code == 200, r.text
    err = error(upload(client, device["id"], content), 413)
    assert "protected" in err["reason"] and "limit" in err["reason"]
    assert uuids(list_media(client, device["id"])) == [keep["uuid"]]
    assert [p.stem for p in stored_objects(settings.data_dir)] == [keep["uuid"]]
    # a file larger than the whole limit is refused too, whatever is protected
    client.put(f"/gw/devices/{device['id']}", json={"media_rotate": 100})
    assert "exceeds" in error(upload(client, device["id"], content), 413)["reason"]


def test_rotation_makes_room_for_unprotected(client: TestClient, device: dict[str, Any]) -> None:
    content = make_image(64, 48)
    client.put(f"/gw/devices/{device['id']}", json={"media_rotate": len(content) * 5 // 2})
    first = uploaded(client, device["id"], content, data={"created": T0})
    second = uploaded(client, device["id"], content, data={"created": T0 + 1})
    third = uploaded(client, device["id"], content, data={"created": T0 + 2})
    assert uuids(list_media(client, device["id"])) == [second["uuid"], third["uuid"]]
    assert client.get(f"/media/{first['uuid']}").status_code == 404


def test_upload_to_two_devices_is_400(client: TestClient, device: dict[str, Any]) -> None:
    other = client.post("/gw/devices", json={"ident": "2"}).json()["result"][0]
    err = error(upload(client, f"{device['id']},{other['id']}"), 400)
    assert err["field"] == "selector"
    assert error(upload(client, "all"), 400)["field"] == "selector"
    assert uuids(list_media(client, "all")) == []


# -- search -----------------------------------------------------------------------------
@pytest.fixture
def library(client: TestClient, device: dict[str, Any]) -> list[dict[str, Any]]:
    """Five files: two channels, a PNG, one protected, custom attributes."""
    specs = [("front-1.jpg", "jpeg", 1, T0 + 10, {"event": "start"}),
             ("front-2.jpg", "jpeg", 1, T0 + 20, {"event": "alarm"}),
             ("rear-1.png", "png", 2, T0 + 30, {}),
             ("rear-2.jpg", "jpeg", 2, T0 + 40, {"event": "alarm"}),
             ("cabin.jpg", "jpeg", 3, T0 + 50, {})]
    out = []
    for i, (name, fmt, ch, created, attrs) in enumerate(specs):
        out.append(uploaded(client, device["id"], make_image(32, 24, fmt, seed=i), filename=name,
                            content_type=f"image/{fmt}",
                            data={"meta": {"channel": ch, "created": created},
                                  "attributes": attrs}))
    r = client.put(f"/gw/devices/{device['id']}/media",
                   json={"uuid": out[3]["uuid"], "protected": True})
    assert r.status_code == 200
    return out


def test_listing_is_oldest_first_and_reverse(client: TestClient, device: dict[str, Any],
                                             library: list[dict[str, Any]]) -> None:
    all_ = [f["uuid"] for f in library]
    assert uuids(list_media(client, device["id"])) == all_
    assert uuids(list_media(client, device["id"], reverse=True)) == all_[::-1]
    assert uuids(list_media(client, "all")) == all_
    r = list_media(client, device["id"], count=2)
    assert uuids(r) == all_[:2] and "next_cursor" in r.json()
    assert "next_cursor" not in list_media(client, device["id"]).json()
    assert uuids(list_media(client, device["id"], count=2, reverse=True)) == all_[:-3:-1]


@pytest.mark.parametrize(("data", "expect"), [
    ({"filter": f"created>{T0 + 10}&&created<{T0 + 50}"}, [1, 2, 3]),
    ({"filter": f"created>={T0 + 10}&&created<={T0 + 20}"}, [0, 1]),
    ({"from": T0 + 20, "to": T0 + 40}, [1, 2, 3]),
    ({"filter": "name=front*"}, [0, 1]),
    ({"filter": "name=rear-*"}, [2, 3]),
    ({"filter": "name=*.png"}, [2]),
    ({"filter": "name!=front*"}, [2, 3, 4]),
    ({"filter": "mime=image/png"}, [2]),
    ({"filter": "mime!=image/png"}, [0, 1, 3, 4]),
    ({"filter": "channel_id=2"}, [2, 3]),
    ({"filter": "channel_id>=2&&channel_id!=3"}, [2, 3]),
    ({"filter": "protected=true"}, [3]),
    ({"filter": "protected"}, [3]),
    ({"filter": "!protected"}, [0, 1, 2, 4]),
    ({"filter": "event=alarm"}, [1, 3]),
    ({"filter": "event='alarm'||channel_id=3"}, [1, 3, 4]),
    ({"filter": "event=null"}, [2, 4]),
    ({"filter": "type=image&&meta.width=32"}, [0, 1, 2, 3, 4]),
    ({"filter": "name=nothing*"}, []),
])
def test_filters(client: TestClient, device: dict[str, Any], library: list[dict[str, Any]],
                 data: dict[str, Any], expect: list[int]) -> None:
    assert uuids(list_media(client, device["id"], **data)) == [library[i]["uuid"]
                                                               for i in expect]


def test_fields(client: TestClient, device: dict[str, Any], library: list[dict[str, Any]]) -> None:
    r = list_media(client, device["id"], fields="uuid,name,meta.width,event", count=2)
    assert r.json()["result"] == [
        {"uuid": library[0]["uuid"], "name": "front-1.jpg", "meta.width": 32, "event": "start"},
        {"uuid": library[1]["uuid"], "name": "front-2.jpg", "meta.width": 32, "event": "alarm"}]
    r = client.get(f"/gw/devices/{device['id']}/media", params={"fields": "size"})
    assert r.json()["result"] == [{"size": f["size"]} for f in library]


def test_uuid_lookup(client: TestClient, device: dict[str, Any],
                     library: list[dict[str, Any]]) -> None:
    one = library[2]
    r = list_media(client, device["id"], uuid=one["uuid"])
    assert r.json()["result"] == [one]
    both = [library[0]["uuid"], library[4]["uuid"]]
    assert uuids(list_media(client, device["id"], uuid=both)) == both
    assert uuids(list_media(client, device["id"], uuid=both, filter="channel_id=3")) == both[1:]
    assert uuids(list_media(client, device["id"], uuid="0" * 32)) == []
    other = client.post("/gw/devices", json={"ident": "other"}).json()["result"][0]
    assert uuids(list_media(client, other["id"], uuid=one["uuid"])) == []


@pytest.mark.parametrize(("data", "field"), [
    ("{not json", "data"),
    ("[1, 2]", "data"),
    (json.dumps({"count": 0}), "count"),
    (json.dumps({"count": "10"}), "count"),
    (json.dumps({"count": 10_001}), "count"),
    (json.dumps({"reverse": "yes"}), "reverse"),
    (json.dumps({"filter": "created>>1"}), "filter"),
    (json.dumps({"filter": "(channel_id=1"}), "filter"),
    (json.dumps({"filter": 5}), "filter"),
    (json.dumps({"from": "today"}), "from"),
    (json.dumps({"uuid": 5}), "uuid"),
    (json.dumps({"cursor": "!!!"}), "cursor"),
])
def test_bad_data_is_400_with_a_reason(client: TestClient, device: dict[str, Any], data: str,
                                       field: str) -> None:
    r = client.get(f"/gw/devices/{device['id']}/media", params={"data": data})
    assert error(r, 400)["field"] == field


def test_cursor_paging_returns_every_file_once_in_order(client: TestClient,
                                                        device: dict[str, Any]) -> None:
    content = make_image(16, 16)
    made = []
    for i in range(30):  # pairs share a created time: the uuid breaks the tie
        made.append(uploaded(client, device["id"], content,
                             data={"created": T0 + i // 2})["uuid"])
    expected = [f["uuid"] for f in list_media(client, device["id"]).json()["result"]]
    assert sorted(expected) == sorted(made)
    for reverse in (False, True):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            opts: dict[str, Any] = {"count": 7, "reverse": reverse}
            if cursor:
                opts["cursor"] = cursor
            body = list_media(client, device["id"], **opts).json()
            seen += [f["uuid"] for f in body["result"]]
            pages += 1
            cursor = body.get("next_cursor")
            if cursor is None:
                assert len(body["result"]) < 7
                break
        assert pages == 5
        assert seen == (expected[::-1] if reverse else expected)


# -- edit -------------------------------------------------------------------------------
def test_put_sets_flags_and_attributes(client: TestClient, device: dict[str, Any],
                                       clock: ManualClock) -> None:
    f = uploaded(client, device["id"], data={"attributes": {"event": "start", "driver": "ann"}})
    clock.advance(60)
    r = client.put(f"/gw/devices/{device['id']}/media",
                   json={"uuid": f["uuid"], "protected": True, "shared": True,
                         "event": "alarm", "driver": None, "note": {"by": "ops"}})
    assert r.status_code == 200, r.text
    (g,) = r.json()["result"]
    assert g["protected"] is True and g["shared"] is True
    assert g["event"] == "alarm" and "driver" not in g and g["note"] == {"by": "ops"}
    assert g["modified"] == f["modified"] + 60 and g["uploaded"] == f["uploaded"]
    assert list_media(client, device["id"], uuid=f["uuid"]).json()["result"] == [g]


def test_put_json_sent_as_a_form_and_a_list(client: TestClient, device: dict[str, Any]) -> None:
    a = uploaded(client, device["id"], data={"shared": False})
    b = uploaded(client, device["id"], data={"shared": False})
    body = json.dumps([{"uuid": a["uuid"], "shared": True},
                       {"uuid": b["uuid"], "label": "b"}])
    r = client.put(f"/gw/devices/{device['id']}/media", content=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    got = {g["uuid"]: g for g in r.json()["result"]}
    assert got[a["uuid"]]["shared"] is True and got[b["uuid"]]["label"] == "b"
    assert got[b["uuid"]]["shared"] is False
    r = client.put("/gw/devices/all/media", data={"data": json.dumps({"uuid": b["uuid"],
                                                                      "label": "c"})})
    assert r.status_code == 200 and r.json()["result"][0]["label"] == "c"


def test_put_unknown_uuid_is_404(client: TestClient, device: dict[str, Any]) -> None:
    f = uploaded(client, device["id"])
    err = error(client.put(f"/gw/devices/{device['id']}/media",
                           json=[{"uuid": f["uuid"], "protected": True},
                                 {"uuid": "f" * 32, "protected": True}]), 404)
    assert "f" * 32 in err["reason"]
    # nothing was applied: the batch is checked first
    assert list_media(client, device["id"]).json()["result"][0]["protected"] is False
    other = client.post("/gw/devices", json={"ident": "9"}).json()["result"][0]
    error(client.put(f"/gw/devices/{other['id']}/media", json={"uuid": f["uuid"]}), 404)


@pytest.mark.parametrize(("item", "field"), [
    ({"protected": "yes"}, "protected"),
    ({"shared": 1}, "shared"),
    ({"name": ""}, "name"),
    ({"size": 1}, "size"),
    ({"created": 5}, "created"),
])
def test_put_bad_values_name_the_field(client: TestClient, device: dict[str, Any],
                                       item: dict[str, Any], field: str) -> None:
    f = uploaded(client, device["id"])
    err = error(client.put(f"/gw/devices/{device['id']}/media",
                           json={"uuid": f["uuid"], **item}), 400)
    assert err["field"] == field
    assert list_media(client, device["id"]).json()["result"] == [f]


def test_put_bad_bodies(client: TestClient, device: dict[str, Any]) -> None:
    url = f"/gw/devices/{device['id']}/media"
    assert error(client.put(url), 400)["field"] == "body"
    assert error(client.put(url, content=b"protected=true"), 400)["field"] == "body"
    assert error(client.put(url, json={"protected": True}), 400)["field"] == "uuid"


# -- delete -----------------------------------------------------------------------------
def test_delete_one_a_list_and_all(client: TestClient, device: dict[str, Any],
                                   settings: Settings) -> None:
    url = f"/gw/devices/{device['id']}/media"
    files = [uploaded(client, device["id"], data={"protected": i == 4}) for i in range(5)]
    ids = [f["uuid"] for f in files]

    r = client.request("DELETE", url, json={"uuid": ids[0]})
    assert r.status_code == 200
    assert r.json() == {"result": [{"uuid": ids[0], "device_id": device["id"]}],
                        "removed": 1, "kept": 0}
    assert client.get(f"/media/{ids[0]}").status_code == 404

    r = client.request("DELETE", url, json=[{"uuid": ids[1]}, ids[2]])
    assert [x["uuid"] for x in r.json()["result"]] == ids[1:3]
    assert sorted(uuids(list_media(client, device["id"]))) == sorted(ids[3:])
    assert len(stored_objects(settings.data_dir)) == 2

    error(client.request("DELETE", url, json={"uuid": ids[0]}), 404)
    error(client.request("DELETE", url, json={"name": "x"}), 400)

    r = client.delete(url)  # no body: every file but the protected ones
    assert [x["uuid"] for x in r.json()["result"]] == [ids[3]]
    assert (r.json()["removed"], r.json()["kept"]) == (1, 1)
    assert uuids(list_media(client, device["id"])) == [ids[4]]
    r = client.delete(url, params={"force": "true"})  # force: protected ones too
    assert [x["uuid"] for x in r.json()["result"]] == [ids[4]]
    assert (r.json()["removed"], r.json()["kept"]) == (1, 0)
    assert uuids(list_media(client, device["id"])) == []
    assert stored_objects(settings.data_dir) == []
    (d,) = client.get(f"/gw/devices/{device['id']}").json()["result"]
    assert d["media_size"] == 0


def test_delete_all_only_touches_the_selected_device(client: TestClient,
                                                     device: dict[str, Any]) -> None:
    other = client.post("/gw/devices", json={"ident": "2"}).json()["result"][0]
    mine = uploaded(client, device["id"])
    theirs = uploaded(client, other["id"])
    error(client.request("DELETE", f"/gw/devices/{device['id']}/media",
                         json={"uuid": theirs["uuid"]}), 404)
    client.delete(f"/gw/devices/{device['id']}/media")
    assert uuids(list_media(client, "all")) == [theirs["uuid"]]
    assert client.get(f"/media/{mine['uuid']}").status_code == 404
