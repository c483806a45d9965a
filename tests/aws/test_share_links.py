"""Share links on AWS: each access answers a freshly signed S3 link; tokens in DynamoDB."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fleetcam.config import Settings
from fleetcam.runtime.aws import build_aws
from fleetcam.runtime.container import Container
from tests.aws.conftest import Aws
from tests.aws.test_large_files import _clients, _stored
from tests.conftest import RecordingBus

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture
def container(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Container:
    monkeypatch.setenv("FLEETCAM_SHARE_LINK_EXPIRY", "900")
    return build_aws(Settings.from_env(), bus=RecordingBus())


def test_share_link_redirects_to_a_fresh_presigned_url(container: Container) -> None:
    f = _stored(container, b"clip-bytes" * 100, shared=False)
    admin, anon = _clients(container)
    assert anon.get(f"/media/{f.uuid}").status_code == 401
    expire = int(time.time()) + 120
    r = admin.post(f"/gw/devices/{f.device_id}/media/share",
                   json={"uuid": f.uuid, "expire": expire})
    assert r.status_code == 200, r.text
    url = r.json()["result"][0]["url"]
    link = urlsplit(url)
    first = anon.get(f"{link.path}?{link.query}")
    assert first.status_code == 307 and first.headers["cache-control"] == "no-store"
    q = parse_qs(urlsplit(first.headers["location"]).query)
    assert 0 < int(q["X-Amz-Expires"][0]) <= 120  # never outlives the share link
    assert requests.get(first.headers["location"], timeout=10).content == b"clip-bytes" * 100
    admin.request("DELETE", f"/gw/devices/{f.device_id}/media/share", json={"uuid": f.uuid})
    assert anon.get(f"{link.path}?{link.query}").status_code == 410


def test_scoped_tokens_on_dynamodb(container: Container) -> None:
    admin, anon = _clients(container)
    r = admin.post("/platform/customer/tokens", json=[{"ttl": 60, "access": {
        "type": 2, "acl": [{"uri": "gw/devices", "ids": [1], "methods": ["GET"]}]}}])
    assert r.status_code == 200, r.text
    key, tid = r.json()["result"][0]["key"], r.json()["result"][0]["id"]
    h = {"Authorization": f"FlespiToken {key}"}
    assert anon.get("/gw/devices/all", headers=h).status_code == 200
    assert anon.get("/gw/devices/2", headers=h).status_code == 403
    admin.delete(f"/platform/customer/tokens/{tid}")
    assert anon.get("/gw/devices/all", headers=h).status_code == 401
