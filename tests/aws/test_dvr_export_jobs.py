"""Background DVR exports on AWS (moto's server): the API function answers 202 with a job and
queues it, DvrExportFunction writes the MP4 to S3, and the API function's GET reads the job's
progress (bytes, time covered) while the other function is still writing."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from fleetcam.domain import dvr
from fleetcam.media import fmp4
from tests import dvrgen
from tests.aws.conftest import Aws, LambdaContext, load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
T0 = 1_699_990_000_000
S0 = T0 // 1000
BASE = "/streamer/api/v3/streams/1-1/dvr/export"


@pytest.fixture
def queue(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    url = aws.client("sqs").create_queue(QueueName="fleetcam-dvr-export")["QueueUrl"]
    monkeypatch.setenv("FLEETCAM_DVR_EXPORT_QUEUE_URL", url)
    return url


def _request(method: str, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("api-put-dvr-stream.json"))
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} /streamer/{{proxy+}}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = urlencode(query or {})
    event["pathParameters"] = {"proxy": path.removeprefix("/streamer/")}
    event["body"] = ""
    return event


def _archive(c: Any) -> None:
    now = c.clock.now()
    c.dvr_streams.put(dvr.DvrStream("1-1", 1, 1, dvr.DvrConfig("dvr"), now, now))
    init, gops = dvrgen.encoded()
    ikey = dvr.init_key("1-1", fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    for start in (T0, T0 + 30_000):
        seg, data = dvrgen.segment("1-1", start, 30, gops=gops, root="dvr", init_key=ikey)
        c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
        assert c.dvr_index.add(seg)


def test_export_job_runs_in_its_function_and_the_api_reads_its_progress(
        aws: Aws, queue: str, load_handler: Loader, context: LambdaContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcam.services import dvrexport

    api = load_handler("api")
    _archive(api.CONTAINER)
    target = f"s3://{aws.bucket}/exports/1-1.mp4"
    # progress=true cannot stream through API Gateway and Lambda: it becomes a job
    r = api.handler(_request("POST", BASE, {"from": S0, "duration": 60, "path": target,
                                            "progress": "true"}), context)
    assert r["statusCode"] == 202, r["body"]
    job = json.loads(r["body"])["job"]
    assert job["status"] == "queued" and job["path"] == target and job["total"] > 0
    location = r["headers"]["location"]
    assert location == f"{BASE}/{job['id']}"

    sqs = aws.client("sqs")
    (msg,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    assert json.loads(msg["Body"]) == {"media": "1-1", "job_id": job["id"], "path": target}
    worker = load_handler("dvrexport")
    monkeypatch.setattr(dvrexport, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(dvrexport, "BEAT_EVERY", 0.0)
    seen: list[dict[str, Any]] = []
    store = worker.CONTAINER.extras["dvr_export_store"]
    save = store.save

    def save_then_get(j: Any) -> None:  # the API function reads it while the worker writes
        save(j)
        got = api.handler(_request("GET", location), context)
        seen.append(json.loads(got["body"])["job"])

    monkeypatch.setattr(store, "save", save_then_get)
    event = {"Records": [{
        "messageId": msg["MessageId"], "receiptHandle": msg["ReceiptHandle"],
        "body": msg["Body"], "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "md5OfBody": msg["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleetcam-dvr-export",
        "awsRegion": "us-east-1"}]}
    assert worker.handler(event, context) == {"batchItemFailures": []}
    running = [s for s in seen if s["status"] == "running"]
    assert len(running) >= 2 and 0 < running[0]["bytes"] < job["total"], seen
    assert any(0 < s["seconds"] < 60 for s in running)
    done = json.loads(api.handler(_request("GET", location), context)["body"])["job"]
    assert done["status"] == "done" and done["bytes"] == done["total"] == job["total"]
    head = aws.client("s3").head_object(Bucket=aws.bucket, Key="exports/1-1.mp4")
    assert head["ContentLength"] == job["total"]
    # SQS delivers the message again: the job is done, nothing is written twice
    assert worker.handler(event, context) == {"batchItemFailures": []}
    assert json.loads(api.handler(_request("GET", location), context)["body"])["job"] == done
    listed = json.loads(api.handler(_request("GET", BASE), context)["body"])["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_export_jobs_refuse_what_would_fail_or_leak(
        aws: Aws, queue: str, load_handler: Loader, context: LambdaContext) -> None:
    api = load_handler("api")
    _archive(api.CONTAINER)
    # credentials in the path would sit in the queue (and its DLQ): refused for jobs here
    creds = f"s3://AKIAEXAMPLE:secret@s3.amazonaws.com/{aws.bucket}/x.mp4"
    r = api.handler(_request("POST", BASE, {"from": S0, "duration": 60, "path": creds,
                                            "async": "true"}), context)
    assert r["statusCode"] == 400 and "credentials" in r["body"]
    aws.client("s3").put_object(Bucket=aws.bucket, Key="exports/there.mp4", Body=b"x")
    r = api.handler(_request("POST", BASE, {"from": S0, "duration": 60, "async": "true",
                                            "path": f"s3://{aws.bucket}/exports/there.mp4"}),
                    context)
    assert r["statusCode"] == 409
    assert aws.client("sqs").receive_message(QueueUrl=queue).get("Messages", []) == []
    stranger = _request("GET", f"{BASE}/{'1' * 13}{'a' * 16}")
    stranger["headers"].pop("authorization")
    assert api.handler(stranger, context)["statusCode"] == 401
    assert api.handler(_request("GET", f"{BASE}/{'1' * 13}{'a' * 16}"),
                       context)["statusCode"] == 404
    # the sample event names a job that does not exist: nothing to do, nothing retried
    worker = load_handler("dvrexport")
    assert worker.handler(load_event("sqs-dvr-export-job.json"), context) == {
        "batchItemFailures": []}
