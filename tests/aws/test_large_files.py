"""Large file content on AWS: a 307 to a pre-signed S3 link (Lambda answers at most 6 MB)."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from fleetcam.api.app import create_app
from fleetcam.api.routers.files import REDIRECT_ABOVE
from fleetcam.config import Settings
from fleetcam.domain.keys import media_key
from fleetcam.domain.models import MediaFile, new_uuid
from fleetcam.runtime.aws import build_aws
from fleetcam.runtime.container import Container
from tests.aws.conftest import TOKEN, Aws, LambdaContext, load_event
from tests.conftest import RecordingBus

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
BIG = os.urandom(REDIRECT_ABOVE + 300_000)
EXPIRY = 900


@pytest.fixture
def container(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Container:
    monkeypatch.setenv("FLEETCAM_SHARE_LINK_EXPIRY", str(EXPIRY))
    return build_aws(Settings.from_env(), bus=RecordingBus())


def _stored(c: Container, data: bytes, *, shared: bool = False) -> MediaFile:
    """A recorded clip whose object holds ``data`` (ingest itself is tested elsewhere)."""
    device_id = c.devices.create([{"ident": new_uuid()[:15]}])[0].id
    uuid = new_uuid()
    key = media_key(device_id, uuid, "mp4")
    c.store.put(key, data, content_type="video/mp4")
    f = MediaFile(uuid=uuid, device_id=device_id, key=key, name="rear cam.mp4", size=len(data),
                  mime="video/mp4", created=1.7e9, uploaded=1.7e9, modified=1.7e9,
                  shared=shared)
    assert c.index.add(f)
    return f


def _clients(c: Container) -> tuple[TestClient, TestClient]:
    app = create_app(c)
    admin = TestClient(app, follow_redirects=False)
    admin.headers["Authorization"] = f"FlespiToken {TOKEN}"
    return admin, TestClient(app, follow_redirects=False)


def test_large_content_redirects_to_a_presigned_link(aws: Aws, container: Container) -> None:
    f = _stored(container, BIG)
    admin, _ = _clients(container)
    r = admin.get(f"/media/{f.uuid}")
    assert r.status_code == 307 and r.content == b""
    assert r.headers["cache-control"] == "no-store"
    location = r.headers["location"]
    url = urlsplit(location)
    assert (url.scheme, url.netloc, url.path) == ("http", urlsplit(aws.url).netloc,
                                                  f"/{aws.bucket}/{f.key}")  # S3 itself
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == [str(EXPIRY)]  # FLEETCAM_SHARE_LINK_EXPIRY
    assert "X-Amz-Signature" in query

    got = requests.get(location, timeout=30)  # no token: the signature is the credential
    assert got.status_code == 200 and got.content == BIG
    assert got.headers["content-type"] == "video/mp4"
    assert "rear%20cam.mp4" in got.headers["content-disposition"]
    part = requests.get(location, headers={"Range": "bytes=4194000-4194999"}, timeout=30)
    assert part.status_code == 206 and part.content == BIG[4194000:4195000]
    assert part.headers["content-range"] == f"bytes 4194000-4194999/{len(BIG)}"


def test_a_range_request_is_redirected_with_its_range(container: Container) -> None:
    f = _stored(container, BIG)
    admin, _ = _clients(container)
    r = admin.get(f"/media/{f.uuid}", headers={"Range": "bytes=-100"})
    assert r.status_code == 307
    again = requests.get(r.headers["location"], headers={"Range": "bytes=-100"}, timeout=30)
    assert again.status_code == 206 and again.content == BIG[-100:]


def test_the_token_and_shared_rules_come_first(container: Container) -> None:
    private = _stored(container, BIG)
    admin, anon = _clients(container)
    r = anon.get(f"/media/{private.uuid}")
    assert r.status_code == 401 and "location" not in r.headers
    admin.put(f"/gw/devices/{private.device_id}/media",
              json={"uuid": private.uuid, "shared": True}).raise_for_status()
    public = container.index.get(private.uuid)
    assert public is not None and public.shared
    r = anon.get(f"/media/{private.uuid}")
    assert r.status_code == 307
    assert requests.get(r.headers["location"], timeout=30).content == BIG
    assert anon.get("/media/" + "0" * 32).status_code == 404


def test_head_small_files_and_previews_are_answered_directly(container: Container) -> None:
    big, small = _stored(container, BIG), _stored(container, b"x" * 1000)
    admin, _ = _clients(container)
    r = admin.head(f"/media/{big.uuid}")
    assert r.status_code == 200 and r.headers["content-length"] == str(len(BIG))
    r = admin.get(f"/media/{small.uuid}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == b"x" * 10
    r = admin.get(f"/media/{big.uuid}", params={"preview": "json"})
    assert r.status_code == 200 and r.json()["size"] == len(BIG)


def test_the_lambda_response_is_the_redirect(
        load_handler: Callable[[str], ModuleType], context: LambdaContext) -> None:
    api = load_handler("api")
    f = _stored(api.CONTAINER, BIG)
    event = copy.deepcopy(load_event("api-get-media.json"))
    event["path"] = f"/media/{f.uuid}"  # a REST API (proxy integration) event
    event["resource"] = "/media/{proxy+}"
    event["pathParameters"] = {"proxy": f.uuid}
    r = api.handler(event, context)
    assert r["statusCode"] == 307
    assert len(r.get("body") or "") < 1000  # far below Lambda's 6 MB response limit
    assert requests.get(r["headers"]["location"], timeout=30).content == BIG


def test_share_link_expiry_setting() -> None:
    assert Settings.from_env({}).share_link_expiry == 3600
    assert Settings.from_env({"FLEETCAM_SHARE_LINK_EXPIRY": "604800"}).share_link_expiry == 604800
    for bad in ("0", "604801", "soon"):
        with pytest.raises(ValueError):
            Settings.from_env({"FLEETCAM_SHARE_LINK_EXPIRY": bad})
