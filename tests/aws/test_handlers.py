"""Every Lambda handler invoked with its events/*.json against moto's server."""
from __future__ import annotations

import copy
import io
import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fleetcam import cli
from fleetcam.adapters.aws.dynamodb import media_from_image
from fleetcam.adapters.aws.sqs import object_created_events
from fleetcam.domain.keys import parse_media_key
from fleetcam.domain.models import MediaFile
from fleetcam.services.media import META_KEY
from tests.aws.conftest import TOKEN, Aws, LambdaContext, load_event
from tests.mediagen import make_image

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]


def _put_media(aws: Aws, key: str, body: bytes, **options: Any) -> None:
    aws.client("s3").put_object(Bucket=aws.bucket, Key=key, Body=body, ContentType="image/jpeg",
                                Metadata={META_KEY: json.dumps(options)})


def _object_exists(aws: Aws, key: str) -> bool:
    r = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=key)
    return r.get("KeyCount", 0) > 0


def _device(module: ModuleType, ident: str = "013912345678", **fields: Any) -> int:
    (d,) = module.CONTAINER.devices.create([{"ident": ident, **fields}])
    return int(d.id)


def _event_key(event: dict[str, Any]) -> tuple[str, int, str]:
    (created,) = object_created_events(event["Records"][0]["body"])
    parsed = parse_media_key(created.key)
    assert parsed is not None
    return created.key, parsed[0], parsed[1]


# -- api ------------------------------------------------------------------------------
def test_api_health(load_handler: Loader, context: LambdaContext) -> None:
    api = load_handler("api")
    r = api.handler(load_event("api-get-health.json"), context)
    assert r["statusCode"] == 200
    assert json.loads(r["body"]) == {"status": "ok"}


def test_api_lists_media_with_token_and_refuses_without(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    api = load_handler("api")
    device_id = _device(api)
    api.CONTAINER.ingest.upload(device_id, io.BytesIO(make_image(64, 48)), filename="a.jpg",
                                content_type="image/jpeg", raw_options=None)
    event = load_event("api-get-media.json")
    assert event["headers"]["authorization"] == f"FlespiToken {TOKEN}"
    r = api.handler(event, context)
    assert r["statusCode"] == 200, r["body"]
    (item,) = json.loads(r["body"])["result"]
    assert item["device_id"] == device_id and item["mime"] == "image/jpeg"
    # no PublicUrl: the link names the host the request came through
    ctx = event["requestContext"]  # a REST API's default URL includes its stage
    assert item["url"] == f"https://{ctx['domainName']}/{ctx['stage']}/media/{item['uuid']}"

    bad = copy.deepcopy(event)
    bad["headers"]["authorization"] = "FlespiToken wrong"
    r = api.handler(bad, context)
    assert r["statusCode"] == 401
    assert json.loads(r["body"])["errors"][0]["reason"]


# -- ingest ---------------------------------------------------------------------------
def test_ingest_object_created_is_idempotent(aws: Aws, load_handler: Loader,
                                             context: LambdaContext) -> None:
    ingest = load_handler("ingest")
    event = load_event("sqs-s3-object-created.json")
    key, device_id, uuid = _event_key(event)
    assert _device(ingest) == device_id
    _put_media(aws, key, make_image(64, 48), name="front.jpg", channel=2)

    assert ingest.handler(event, context) == {"batchItemFailures": []}
    f = ingest.CONTAINER.index.get(uuid)
    assert f is not None and f.name == "front.jpg" and f.channel_id == 2
    assert ingest.CONTAINER.index.usage(device_id)[2] == 1

    # S3 and SQS deliver at least once: a second delivery makes no second file
    assert ingest.handler(event, context) == {"batchItemFailures": []}
    assert ingest.CONTAINER.index.usage(device_id) == (f.size, 0, 1)
    logs = ingest.CONTAINER.logs.query((device_id,), events=("media_file_uploaded",))
    assert len(logs) == 1


def test_ingest_missing_object_is_done(aws: Aws, load_handler: Loader,
                                       context: LambdaContext) -> None:
    ingest = load_handler("ingest")
    event = load_event("sqs-s3-object-created.json")
    _, device_id, uuid = _event_key(event)
    _device(ingest)
    assert ingest.handler(event, context) == {"batchItemFailures": []}
    assert ingest.CONTAINER.index.get(uuid) is None


def test_ingest_poison_object_is_rejected_not_retried(aws: Aws, load_handler: Loader,
                                                      context: LambdaContext) -> None:
    ingest = load_handler("ingest")
    event = load_event("sqs-s3-object-created.json")
    key, device_id, uuid = _event_key(event)
    _device(ingest)
    _put_media(aws, key, b"\xff\xd8 this is not a JPEG")
    assert ingest.handler(event, context) == {"batchItemFailures": []}
    assert ingest.CONTAINER.index.get(uuid) is None
    assert not _object_exists(aws, key)
    assert ingest.CONTAINER.logs.query((device_id,), events=("media_file_rejected",))


def test_ingest_transient_error_fails_only_that_item(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = load_handler("ingest")
    event = load_event("sqs-s3-object-created.json")
    key, device_id, uuid = _event_key(event)
    _device(ingest)
    _put_media(aws, key, make_image(64, 48))
    test_record = load_event("sqs-s3-test-event.json")["Records"][0]
    event["Records"].append(test_record)

    index = ingest.CONTAINER.index
    real_add = index.add
    calls = []

    def flaky_add(f: MediaFile) -> bool:
        calls.append(f.uuid)
        if len(calls) == 1:
            raise RuntimeError("ProvisionedThroughputExceeded (simulated)")
        return bool(real_add(f))

    monkeypatch.setattr(index, "add", flaky_add)
    failed = ingest.handler(event, context)["batchItemFailures"]
    assert failed == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert index.get(uuid) is None
    # SQS redelivers the failed item: now it goes through, once
    assert ingest.handler({"Records": event["Records"][:1]}, context) == {"batchItemFailures": []}
    assert index.get(uuid) is not None and index.usage(device_id)[2] == 1


def test_ingest_test_event_is_ignored(aws: Aws, load_handler: Loader,
                                      context: LambdaContext) -> None:
    ingest = load_handler("ingest")
    assert ingest.handler(load_event("sqs-s3-test-event.json"), context) == {
        "batchItemFailures": []}


def test_keys_arrive_url_encoded() -> None:
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "b"}, "object": {"key": "media/a+b%2Bc%3D.jpg", "size": 3}}}]})
    (e,) = object_created_events(body)
    assert e.key == "media/a b+c=.jpg" and e.size == 3


def test_bucket_notification_reaches_ingest_through_sqs(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    """The real path: S3 put → bucket notification → SQS message → ingest handler."""
    ingest = load_handler("ingest")
    s3, sqs = aws.client("s3"), aws.client("sqs")
    queue = aws.env["FLEETCAM_INGEST_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(Bucket=aws.bucket, NotificationConfiguration={
        "QueueConfigurations": [{
            "QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "media/"}]}}}]})
    device_id = _device(ingest)
    uuid = "a" * 32
    key = f"media/{device_id}/{uuid}.jpg"
    _put_media(aws, key, make_image(64, 48), name="cab.jpg")

    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(uuid in m["Body"] for m in messages):
        r = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                AttributeNames=["All"])
        messages += r.get("Messages", [])
    event = {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": arn["Attributes"]["QueueArn"],
        "awsRegion": "us-east-1"} for m in messages]}
    assert any(uuid in r["body"] for r in event["Records"]), "no notification arrived"
    assert ingest.handler(event, context) == {"batchItemFailures": []}
    f = ingest.CONTAINER.index.get(uuid)
    assert f is not None and f.name == "cab.jpg" and f.device_id == device_id


def test_dlq_list_and_replay(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetcam dlq list|replay` with FLEETCAM_INGEST_DLQ_URL set works on the real SQS."""

    def cli_list() -> list[dict[str, Any]]:
        assert cli.main(["dlq", "list"]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    sqs = aws.client("sqs")
    body = load_event("sqs-s3-object-created.json")["Records"][0]["body"]
    for _ in range(3):
        sqs.send_message(QueueUrl=aws.env["FLEETCAM_INGEST_DLQ_URL"], MessageBody=body)

    listed = cli_list()
    assert len(listed) == 3 and all(m["body"] == body for m in listed)
    # listing leaves them in the queue
    assert len(cli_list()) == 3

    assert cli.main(["dlq", "replay"]) == 0
    assert "moved 3 messages" in capsys.readouterr().out
    r = sqs.receive_message(QueueUrl=aws.env["FLEETCAM_INGEST_QUEUE_URL"],
                            MaxNumberOfMessages=10)
    assert [m["Body"] for m in r["Messages"]] == [body] * 3
    r = sqs.receive_message(QueueUrl=aws.env["FLEETCAM_INGEST_DLQ_URL"], MaxNumberOfMessages=10)
    assert not r.get("Messages")


# -- sweeper --------------------------------------------------------------------------
def test_sweeper_expires_old_media(aws: Aws, load_handler: Loader,
                                   context: LambdaContext) -> None:
    sweeper = load_handler("sweeper")
    device_id = _device(sweeper, media_ttl=60)
    uuid = "b" * 32
    key = f"media/{device_id}/{uuid}.jpg"
    _put_media(aws, key, b"old bytes")
    old = time.time() - 3600  # built in the past rather than waited for
    sweeper.CONTAINER.index.add(MediaFile(
        uuid=uuid, device_id=device_id, key=key, name="old.jpg", size=9, mime="image/jpeg",
        created=old, uploaded=old, modified=old))

    from fleetcam.domain.gateway import Command

    overdue = sweeper.CONTAINER.commands.store.add(Command(
        id=0, device_id=device_id, name="take_photo", properties={"channel": 1},
        queued=old, expires=old + 60))
    result = sweeper.handler(load_event("schedule-sweeper.json"), context)
    assert result == {"expired": 1, "objects_deleted": 0, "commands_expired": 1,
                      "retime_batches": 0, "dvr_segments_deleted": 0}
    assert sweeper.CONTAINER.commands.store.get(overdue.id).status == "expired"
    assert sweeper.CONTAINER.index.get(uuid) is None and not _object_exists(aws, key)
    assert sweeper.CONTAINER.index.usage(device_id) == (0, 0, 0)
    assert sweeper.CONTAINER.logs.query((device_id,), events=("media_file_expired",))


def test_api_configures_a_dvr_stream_and_the_sweeper_expires_its_segments(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    from fleetcam.domain import dvr

    api = load_handler("api")
    _device(api)
    r = api.handler(load_event("api-put-dvr-stream.json"), context)
    assert r["statusCode"] == 200, r["body"]
    body = json.loads(r["body"])
    assert body["name"] == "1-1" and body["dvr"]["root"] == "dvr"
    stranger = load_event("api-put-dvr-stream.json")
    stranger["headers"]["authorization"] = "Bearer " + "x" * 64
    assert api.handler(stranger, context)["statusCode"] == 401

    sweeper = load_handler("sweeper")
    c = sweeper.CONTAINER
    start = int((time.time() - 3 * 86400) * 1000)
    key = dvr.segment_key("1-1", start, "0badcafe")
    c.dvr_storage.put("dvr", key, b"fragments", content_type="video/iso.segment")
    c.dvr_index.add(dvr.SegmentEntry(
        "1-1", dvr.segment_id(start, "0badcafe"), "dvr", key, "1-1/init/x.mp4", start,
        start + 600_000, 9, "avc1.42c01e", 320, 240,
        (dvr.FragmentEntry(start, 600_000, 0, 9, 100, 25),)))
    assert _object_exists(aws, f"dvr/{key}")
    result = sweeper.handler(load_event("schedule-sweeper.json"), context)
    assert result["dvr_segments_deleted"] == 1
    assert not _object_exists(aws, f"dvr/{key}") and c.dvr_index.usage("1-1") == (0, 0)


# -- reaper ---------------------------------------------------------------------------
def test_reaper_deletes_object_and_counts_off_ttl_removals(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    from fleetcam.adapters.aws.models import MediaModel

    reaper = load_handler("reaper")
    event = load_event("dynamodb-ttl-remove.json")
    f = media_from_image(event["Records"][0]["dynamodb"]["OldImage"])
    # uploaded a day and more ago: today's media_ttl says the file has expired
    assert _device(reaper, media_ttl=86400) == f.device_id
    _put_media(aws, f.key, b"x" * f.size)
    assert reaper.CONTAINER.index.add(f)
    assert reaper.CONTAINER.index.usage(f.device_id) == (f.size, 0, 1)
    MediaModel(uuid=f.uuid).delete()  # what DynamoDB's TTL process does

    assert reaper.handler(event, context) == {"batchItemFailures": []}
    assert not _object_exists(aws, f.key)
    assert reaper.CONTAINER.index.usage(f.device_id) == (0, 0, 0)
    (entry,) = reaper.CONTAINER.logs.query((f.device_id,), events=("media_file_expired",))
    assert entry.data["uuid"] == f.uuid
    assert reaper.CONTAINER.index.pending_deletions() == []

    # a redelivered stream record does not count the file off twice
    assert reaper.handler(event, context) == {"batchItemFailures": []}
    assert reaper.CONTAINER.index.usage(f.device_id) == (0, 0, 0)


def test_api_serves_archive_downloads_through_s3_when_large(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    """Above the Lambda response cap, the download is written once to the media bucket and the
    function answers 307 to a pre-signed link; S3 then answers byte ranges itself."""
    import base64
    import io

    import av
    import httpx

    from fleetcam.domain import dvr
    from fleetcam.media import fmp4
    from tests import dvrgen

    api = load_handler("api")
    c = api.CONTAINER
    _device(api)
    now = time.time()
    c.dvr_streams.put(dvr.DvrStream("1-1", 1, 1, dvr.DvrConfig("dvr", 0), now, now))
    init, gops = dvrgen.encoded(gops=4, bitrate=1_500_000)
    ikey = dvr.init_key("1-1", fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    seg, data = dvrgen.segment("1-1", 1795435200_000, 60, gops=gops, init_key=ikey)
    c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
    assert c.dvr_index.add(seg)
    event = load_event("api-get-dvr-archive.json")
    r = api.handler(event, context)
    assert r["statusCode"] == 307, r.get("body", "")[:300]
    link = r["headers"]["location"]
    whole = httpx.get(link, timeout=60)
    assert whole.status_code == 200 and len(whole.content) > 4 * 1024 * 1024
    with av.open(io.BytesIO(whole.content)) as mp4:
        assert sum(1 for _ in mp4.decode(video=0)) == 1500
    part = httpx.get(link, headers={"Range": "bytes=5000000-5000999"}, timeout=60)
    assert part.status_code == 206 and part.content == whole.content[5000000:5001000]
    assert api.handler(event, context)["statusCode"] == 307  # staged once, reused
    small = load_event("api-get-dvr-archive.json")
    small["rawPath"] = small["requestContext"]["http"]["path"] = "/1-1/archive-1795435200-2.mp4"
    small["pathParameters"]["proxy"] = "archive-1795435200-2.mp4"
    r = api.handler(small, context)
    assert r["statusCode"] == 200, r.get("body", "")[:300]
    body = base64.b64decode(r["body"]) if r.get("isBase64Encoded") else r["body"].encode()
    assert body[4:8] == b"ftyp"
    stranger = load_event("api-get-dvr-archive.json")
    stranger["rawQueryString"] = "token=" + "x" * 64
    stranger["queryStringParameters"] = {"token": "x" * 64}
    assert api.handler(stranger, context)["statusCode"] == 401


def test_packager_turns_an_alarm_attachment_into_an_mp4(aws: Aws, load_handler: Loader,
                                                        context: LambdaContext) -> None:
    """An ADAS camera's H.265 clip, written by the gateway as raw/{device}/{uuid}.fcfile,
    goes through the same packager Lambda as recorded clips: an H.264 MP4 in media/ with the
    alarm's attributes, then a media file when its own object-created event arrives."""
    from fleetcam.media.testpattern import encode_pattern

    ingest = load_handler("ingest")
    event = load_event("sqs-s3-attachment-created.json")
    (created,) = object_created_events(event["Records"][0]["body"])
    assert created.key.endswith(".fcfile")
    device_id = _device(ingest)
    clip = b"".join(f.data for f in encode_pattern("hevc", 320, 240, 25, seconds=2))
    options = {"name": "02_01_6401_1_x.mp4", "channel": 1, "created": 1_700_000_000,
               "attributes": {"alarm.id": "T123456-1700000000-1", "alarm.source": "adas"}}
    aws.client("s3").put_object(Bucket=aws.bucket, Key=created.key, Body=clip,
                                ContentType="application/octet-stream",
                                Metadata={META_KEY: json.dumps(options)})
    assert ingest.handler(event, context) == {"batchItemFailures": []}
    uuid = created.key.split("/")[-1].split(".")[0]
    out_key = f"media/{device_id}/{uuid}.mp4"
    assert _object_exists(aws, out_key) and not _object_exists(aws, created.key)
    follow = copy.deepcopy(load_event("sqs-s3-object-created.json"))
    body = json.loads(follow["Records"][0]["body"])
    body["Records"][0]["s3"]["object"]["key"] = out_key
    follow["Records"][0]["body"] = json.dumps(body)
    assert ingest.handler(follow, context) == {"batchItemFailures": []}
    f = ingest.CONTAINER.index.get(uuid)
    assert f is not None and f.mime == "video/mp4" and f.created == 1_700_000_000
    assert f.preview.meta["codec"] == "h264"
    assert f.attributes["alarm.id"] == "T123456-1700000000-1"


def test_api_serves_the_console_offline(load_handler: Loader, context: LambdaContext) -> None:
    """The console's page and vendored scripts come from the API function itself (no CDN)."""
    api = load_handler("api")
    r = api.handler(load_event("api-get-console.json"), context)
    assert r["statusCode"] == 200, r
    assert "/console/app.js" in r["body"]
    assert "frame-ancestors *" in r["headers"]["content-security-policy"]
    asset = copy.deepcopy(load_event("api-get-console.json"))
    asset["rawPath"] = asset["requestContext"]["http"]["path"] = "/console/vendor/hls.min.js"
    asset["rawQueryString"] = ""
    r = api.handler(asset, context)
    assert r["statusCode"] == 200 and r["headers"]["content-type"].startswith("text/javascript")
