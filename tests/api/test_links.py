"""A media file's link: GET/HEAD, byte ranges, previews and the shared flag."""
from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.runtime.container import Container
from tests.api import error, uploaded
from tests.mediagen import make_image


@pytest.fixture
def content() -> bytes:
    data = make_image(320, 240, "png")
    assert len(data) > 200
    return data


@pytest.fixture
def media(client: TestClient, device: dict[str, Any], content: bytes) -> dict[str, Any]:
    return uploaded(client, device["id"], content, filename="rear view.png",
                    content_type="image/png",
                    data={"attributes": {"event": "alarm"}, "shared": False})


@pytest.fixture
def anon(container: Container) -> TestClient:
    """A client without the token."""
    return TestClient(create_app(container))


def link(f: dict[str, Any]) -> str:
    assert f["url"].startswith("http://fleetcam.test/media/")
    return "/media/" + f["uuid"]


def test_get_whole_file(client: TestClient, media: dict[str, Any], content: bytes) -> None:
    r = client.get(link(media))
    assert r.status_code == 200
    assert r.content == content
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(len(content))
    assert r.headers["accept-ranges"] == "bytes"
    assert "content-range" not in r.headers
    assert "rear%20view.png" in r.headers["content-disposition"]


def test_head(client: TestClient, media: dict[str, Any], content: bytes) -> None:
    r = client.head(link(media))
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(len(content))
    r = client.head(link(media), headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == b""
    assert r.headers["content-length"] == "10"
    assert r.headers["content-range"] == f"bytes 0-9/{len(content)}"


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, None),
    ("bytes=-50", -50, None),
    ("bytes=5-5", 5, 5),
    ("bytes=0-999999999", 0, None),  # the end is clipped to the file
])
def test_ranges(client: TestClient, media: dict[str, Any], content: bytes, header: str,
                first: int, last: int | None) -> None:
    size = len(content)
    start = first % size
    end = size - 1 if last is None else last
    r = client.get(link(media), headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.content == content[start:end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.headers["content-type"] == "image/png"


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{more}", "bytes=-0",
                                    "bytes=20-10"])
def test_unsatisfiable_range_is_416(client: TestClient, media: dict[str, Any], content: bytes,
                                    header: str) -> None:
    size = len(content)
    r = client.get(link(media), headers={"Range": header.format(size=size, more=size + 10)})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=-"])
def test_ranges_we_ignore_send_everything(client: TestClient, media: dict[str, Any],
                                          content: bytes, header: str) -> None:
    r = client.get(link(media), headers={"Range": header})
    assert r.status_code == 200 and r.content == content


def test_preview_jpeg(client: TestClient, media: dict[str, Any]) -> None:
    r = client.get(link(media), params={"preview": "jpeg"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content[:2] == b"\xff\xd8" and r.content[-2:] == b"\xff\xd9"
    assert media["preview"]["url"] == media["url"] + "?preview=jpeg"
    assert "jpeg" not in media["preview"]  # a link, not the image (lists stay small)


def test_preview_json(client: TestClient, media: dict[str, Any]) -> None:
    r = client.get(link(media), params={"preview": "json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == media  # the bare file object, as flespi answers
    assert r.json()["event"] == "alarm"


def test_bad_preview_is_400(client: TestClient, media: dict[str, Any]) -> None:
    assert error(client.get(link(media), params={"preview": "gif"}), 400)["field"] == "preview"


def test_token_needed_until_shared(client: TestClient, anon: TestClient, device: dict[str, Any],
                                   media: dict[str, Any], content: bytes) -> None:
    for params in (None, {"preview": "jpeg"}, {"preview": "json"}):
        err = error(anon.get(link(media), params=params), 401)
        assert "token" in err["reason"]
    assert anon.head(link(media)).status_code == 401
    assert anon.get(link(media), headers={"Authorization": "FlespiToken " + "x" * 64}) \
        .status_code == 401
    assert client.get(link(media)).status_code == 200

    r = client.put(f"/gw/devices/{device['id']}/media",
                   json={"uuid": media["uuid"], "shared": True})
    assert r.status_code == 200 and r.json()["result"][0]["shared"] is True
    r = anon.get(link(media))
    assert r.status_code == 200 and r.content == content
    assert anon.get(link(media), params={"preview": "json"}).json()["shared"]

    client.put(f"/gw/devices/{device['id']}/media", json={"uuid": media["uuid"], "shared": False})
    assert anon.get(link(media)).status_code == 401


def test_shared_at_upload(anon: TestClient, client: TestClient, device: dict[str, Any]) -> None:
    f = uploaded(client, device["id"], data={"shared": True})
    assert anon.get(link(f)).status_code == 200


def test_new_files_are_shared_unless_the_device_says_otherwise(
        anon: TestClient, client: TestClient, device: dict[str, Any],
        container: Container) -> None:
    f = uploaded(client, device["id"])
    assert f["shared"] is True and anon.get(link(f)).status_code == 200
    for params in ({"preview": "jpeg"}, {"preview": "json"}):
        assert anon.get(link(f), params=params).status_code == 200
    client.put(f"/gw/devices/{device['id']}", json={"metadata": {"media_shared": False}})
    g = uploaded(client, device["id"])
    assert g["shared"] is False and anon.get(link(g)).status_code == 401
    client.put(f"/gw/devices/{device['id']}", json={"metadata": {}})
    container.media.default_shared = False  # FLEETCAM_MEDIA_SHARED=0
    h = uploaded(client, device["id"])
    assert h["shared"] is False and anon.get(link(h)).status_code == 401


def test_deleted_file_is_404(client: TestClient, anon: TestClient, device: dict[str, Any],
                             media: dict[str, Any]) -> None:
    client.put(f"/gw/devices/{device['id']}/media", json={"uuid": media["uuid"], "shared": True})
    r = client.request("DELETE", f"/gw/devices/{device['id']}/media",
                       content=json.dumps({"uuid": media["uuid"]}))
    assert r.status_code == 200
    for c in (client, anon):
        error(c.get(link(media)), 404)
        assert c.head(link(media)).status_code == 404
        error(c.get(link(media), params={"preview": "json"}), 404)


@pytest.mark.parametrize("uuid", ["nope", "0" * 31, "G" * 32, "A" * 32, "0" * 33,
                                  "..%2F..%2Ffleetcam.sqlite3"])
def test_malformed_or_unknown_uuid_is_404(client: TestClient, media: dict[str, Any],
                                          uuid: str) -> None:
    assert client.get(f"/media/{uuid}").status_code == 404
    error(client.get("/media/" + "0" * 32), 404)


def test_large_content_streams_from_a_store_without_presigned_links(
        client: TestClient, container: Container, device: dict[str, Any]) -> None:
    """The local store cannot pre-sign, so content above the AWS redirect size still
    streams (tests/aws/test_large_files.py has the redirect)."""
    from fleetcam.api.routers.files import REDIRECT_ABOVE
    from fleetcam.domain.keys import media_key
    from fleetcam.domain.models import MediaFile, new_uuid

    assert getattr(container.store, "presigned_url", None) is None
    data = bytes(range(256)) * (REDIRECT_ABOVE // 256 + 10)
    uuid = new_uuid()
    key = media_key(device["id"], uuid, "mp4")
    container.store.put(key, data, content_type="video/mp4")
    container.index.add(MediaFile(uuid=uuid, device_id=device["id"], key=key, name="big.mp4",
                                  size=len(data), mime="video/mp4", created=1.7e9,
                                  uploaded=1.7e9, modified=1.7e9))
    r = client.get(f"/media/{uuid}")
    assert r.status_code == 200 and r.content == data
    r = client.get(f"/media/{uuid}", headers={"Range": "bytes=4194300-4194309"})
    assert r.status_code == 206 and r.content == data[4194300:4194310]
