"""POST .../dvr/export: local files under the export roots and S3 (moto's server), no
overwrite, meta in udta, progress while it runs."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from tests.dvr_play.conftest import T0, Archive

S0 = T0 // 1000
URL = "/streamer/api/v3/streams/7-1/dvr/export"


def test_export_to_a_local_file(client: TestClient, recorded: Archive) -> None:
    r = client.post(URL, params={"from": S0, "duration": 20, "path": "cases/a.mp4",
                                 "meta": "true"})
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    out = Path(res["path"])
    assert out.is_file() and out.stat().st_size == res["bytes"]
    assert out.parent == recorded.c.settings.data_dir / "exports" / "cases"
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 500
        meta = json.loads(c.metadata["comment"])
    assert meta["title"] == "7-1" and meta["exported_to"] == str(out)
    again = client.post(URL, params={"from": S0, "duration": 20, "path": "cases/a.mp4"})
    assert again.status_code == 409 and out.stat().st_size == res["bytes"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize("path", ["/etc/x.mp4", "../../x.mp4", "a.txt", "", "s3://B/k",
                                  "s3://bucket/"])
def test_export_paths_outside_the_roots_are_refused(client: TestClient, recorded: Archive,
                                                    path: str) -> None:
    r = client.post(URL, params={"from": S0, "duration": 20, "path": path})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "path"


def test_export_needs_the_admin(anon: TestClient, recorded: Archive) -> None:
    r = anon.post(URL, params={"from": S0, "duration": 20, "path": "x.mp4", "token": "T" * 64})
    assert r.status_code == 401


def test_export_progress_stream(client: TestClient, recorded: Archive) -> None:
    r = client.post(URL, params={"from": S0, "duration": 70, "path": "p.mp4",
                                 "progress": "true"})
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert "result" in lines[-1] and lines[-1]["result"]["duration"] == 26.0
    assert all("progress" in x for x in lines[:-1])


def test_export_to_s3(client: TestClient, recorded: Archive, moto: object) -> None:
    import boto3

    endpoint = moto.url  # type: ignore[attr-defined]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="k", aws_secret_access_key="s")
    s3.create_bucket(Bucket="evidence")
    host = endpoint.split("://", 1)[1]
    path = f"s3://k:s@{host}/evidence/case 1/a.mp4"
    r = client.post(URL, params={"from": S0, "duration": 20, "path": path})
    assert r.status_code == 200, r.text
    body = s3.get_object(Bucket="evidence", Key="case 1/a.mp4")["Body"].read()
    assert len(body) == r.json()["result"]["bytes"] and body[4:8] == b"ftyp"
    assert client.post(URL, params={"from": S0, "duration": 20, "path": path}).status_code == 409
