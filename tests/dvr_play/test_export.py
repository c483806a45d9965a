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


# -- background exports: a job whose progress is read while it runs ------------------------------
def _wait_job(client: TestClient, location: str, timeout: float = 20.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).json()["job"]
        if job["status"] in ("done", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"export job still {job['status']}")


def test_export_job_progress_is_readable_while_it_runs(
        client: TestClient, recorded: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcam.runtime.dvrplay import export_jobs
    from fleetcam.services import dvrexport

    monkeypatch.setattr(dvrexport, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(dvrexport, "BEAT_EVERY", 0.0)
    jobs = export_jobs(recorded.c)
    seen: list[dict] = []
    save = jobs.store.save

    def save_and_read(job: object) -> None:  # what a GET returns at each beat, mid-run
        save(job)  # type: ignore[arg-type]
        seen.append(client.get(f"{URL}/{job.job_id}").json()["job"])  # type: ignore[attr-defined]

    monkeypatch.setattr(jobs.store, "save", save_and_read)
    r = client.post(URL, params={"from": S0, "duration": 70, "path": "jobs/a.mp4",
                                 "async": "true"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] == "queued" and job["total"] > 0 and job["bytes"] == 0
    assert r.headers["location"] == f"{URL}/{job['id']}"
    done = _wait_job(client, r.headers["location"])
    assert done["status"] == "done" and done["bytes"] == done["total"] == job["total"]
    assert done["result"]["duration"] == 26.0 and done["progress"] == 1.0
    running = [s for s in seen if s["status"] == "running"]
    assert len(running) >= 3, seen
    assert [s["bytes"] for s in running] == sorted(s["bytes"] for s in running)
    assert any(0 < s["bytes"] < done["total"] and 0 < s["seconds"] < 26.0 for s in running)
    out = Path(done["result"]["path"])
    assert out.is_file() and out.stat().st_size == done["total"]
    listed = client.get(URL).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_export_job_failures_and_strangers(client: TestClient, anon: TestClient,
                                           recorded: Archive) -> None:
    r = client.post(URL, params={"from": S0, "duration": 20, "path": "jobs/b.mp4",
                                 "async": "true"})
    loc = r.headers["location"]
    assert _wait_job(client, loc)["status"] == "done"
    # checked before any job exists: the file is there now (409), a bad path (400)
    again = client.post(URL, params={"from": S0, "duration": 20, "path": "jobs/b.mp4",
                                     "async": "true"})
    assert again.status_code == 409
    assert client.post(URL, params={"from": S0, "duration": 20, "path": "/etc/x.mp4",
                                    "async": "true"}).status_code == 400
    assert client.post(URL, params={"from": S0 - 7200, "duration": 20, "path": "c.mp4",
                                    "async": "true"}).status_code == 404
    assert len(client.get(URL).json()["jobs"]) == 1
    # strangers: no token, a wrong one, a stream's read token; unknown and malformed ids
    assert anon.get(loc).status_code == 401
    assert anon.get(loc, params={"token": "T" * 64}).status_code == 401
    read_token = client.get("/streamer/api/v3/streams/7-1/dvr/token").json()["token"]
    assert anon.get("/7-1/ranges.json", params={"token": read_token}).status_code == 200
    assert anon.get(loc, params={"token": read_token}).status_code in (401, 403)
    assert anon.get(URL, params={"token": read_token}).status_code in (401, 403)
    assert client.get(f"{URL}/{'0' * 29}").status_code == 404
    assert client.get(f"{URL}/..%2f..%2fx").status_code == 404
    assert client.get("/streamer/api/v3/streams/nope/dvr/export/x").status_code == 404
