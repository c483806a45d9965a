"""Uploads larger than the API's payload limit (issue 14): the API answers with a pre-signed
S3 POST, the client sends the file to S3, and the object is ingested like any other, against
moto's server (the notification's SQS message is what the ingest function receives)."""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from types import ModuleType

import pytest
import requests

from fleetcam.adapters.aws.sqs import object_created_events
from tests.aws.conftest import TOKEN, Aws
from tests.mediagen import make_image

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
LIMIT = 6 * 1024 * 1024  # Lambda's buffered payload; API Gateway's is 10 MB


def _client(module: ModuleType) -> object:
    from fastapi.testclient import TestClient

    from fleetcam.api.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(create_app(module.CONTAINER))


def test_a_large_upload_goes_to_s3_and_is_ingested(aws: Aws, load_handler: Loader) -> None:
    api = load_handler("api")
    (d,) = api.CONTAINER.devices.create([{"ident": "013900000001"}])
    client = _client(api)
    jpeg = make_image(64, 48)
    big = jpeg + b"\x00" * (LIMIT + 1024 - len(jpeg))  # a JPEG with trailing padding
    body = {"name": "huge.jpg", "mime": "image/jpeg", "size": len(big),
            "data": {"meta": {"channel": 2, "created": 1700000000},
                     "attributes": {"plate": "AB123"}}}
    url = f"/gw/devices/{d.id}/media-upload"
    assert client.post(url, json=body).status_code == 401  # a stranger gets nothing
    r = client.post(url, json=body, headers={"Authorization": f"FlespiToken {TOKEN}"})
    assert r.status_code == 200, r.text
    (ticket,) = r.json()["result"]
    assert ticket["method"] == "POST" and ticket["url"].startswith(aws.url)

    up = requests.post(ticket["url"], data=ticket["fields"],
                       files={"file": ("huge.jpg", big, "image/jpeg")}, timeout=60)
    assert up.status_code in (200, 201, 204), up.text
    key = ticket["fields"]["key"]
    head = aws.client("s3").head_object(Bucket=aws.bucket, Key=key)
    assert head["ContentLength"] == len(big) and head["ContentType"] == "image/jpeg"

    # what S3 sends the ingest queue for it, handled by the ingest function's service
    record = {"eventName": "ObjectCreated:Post", "s3": {
        "bucket": {"name": aws.bucket}, "object": {"key": key, "size": len(big)}}}
    (event,) = object_created_events(json.dumps({"Records": [record]}))
    f = load_handler("ingest").CONTAINER.ingest.handle(event)
    assert f is not None and f.uuid == ticket["uuid"] and f.size == len(big)
    assert (f.channel_id, f.created, f.attributes) == (2, 1700000000, {"plate": "AB123"})


def test_the_ticket_refuses_what_the_device_cannot_store(aws: Aws, load_handler: Loader) -> None:
    api = load_handler("api")
    (d,) = api.CONTAINER.devices.create([{"ident": "013900000001", "media_rotate": 1000}])
    client = _client(api)
    headers = {"Authorization": f"FlespiToken {TOKEN}"}
    url = f"/gw/devices/{d.id}/media-upload"
    r = client.post(url, json={"mime": "image/jpeg", "size": 5000}, headers=headers)
    assert r.status_code == 413, r.text
    r = client.post(url, json={"mime": "text/html", "size": 10}, headers=headers)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "mime"
    r = client.post("/gw/devices/999/media-upload", json={"mime": "image/jpeg", "size": 10},
                    headers=headers)
    assert r.status_code == 404
