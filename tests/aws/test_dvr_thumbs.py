"""DVR thumbnails on AWS (moto's server): a segment stored under dvr/ → the bucket's
notification → SQS → the DVR thumbnail function → one thumbnails object per segment, named by
its index row; the read side serves each JPEG with one ranged GET."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fleetcam.domain import dvr
from fleetcam.media import fmp4
from tests import dvrgen
from tests.aws.conftest import Aws, LambdaContext, load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
T0 = 1_699_990_000_000


def _notify(aws: Aws) -> tuple[str, str]:
    """The template's notification: dvr/…​.m4s objects to their own queue."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="fleetcam-dvr-thumbs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn = arn["Attributes"]["QueueArn"]
    aws.client("s3").put_bucket_notification_configuration(
        Bucket=aws.bucket, NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "dvr/"},
                                               {"Name": "suffix", "Value": ".m4s"}]}}}]})
    return url, arn


def _events(aws: Aws, url: str, arn: str, want: str) -> dict[str, Any]:
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(want in m["Body"] for m in messages):
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages += r.get("Messages", [])
    assert any(want in m["Body"] for m in messages), "no notification arrived"
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
        "awsRegion": "us-east-1"} for m in messages if want in m["Body"]]}


def _record(c: Any, start_ms: int, seconds: float, index: bool = True) -> dvr.SegmentEntry:
    init, gops = dvrgen.encoded()
    ikey = dvr.init_key("1-1", fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    seg, data = dvrgen.segment("1-1", start_ms, seconds, gops=gops, root="dvr", init_key=ikey)
    c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
    if index:
        assert c.dvr_index.add(seg)
    return seg


def _count(c: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    c.dvr_storage.s3.meta.events.register(
        "before-call.s3.*", lambda model, **_: counts.update([model.name]))
    return counts


def test_segment_notification_makes_one_thumbnails_object(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    fn = load_handler("dvrthumbs")
    c = fn.CONTAINER
    url, arn = _notify(aws)
    seg = _record(c, T0, 150)  # 2.5 min from hh:mm:40: its first keyframe + 3 minutes'
    event = _events(aws, url, arn, seg.segment_id)
    counts = _count(c)
    assert fn.handler(event, context) == {"batchItemFailures": []}
    (row,) = c.dvr_index.segments("1-1")
    assert row.thumbs is not None and len(row.thumbs.items) == len(dvr.thumb_times(seg)) == 4
    assert row.thumbs.key.startswith(seg.key.removesuffix(".m4s")) and \
        row.thumbs.key.endswith(".mjpeg")
    # one PUT (the thumbnails object), one ranged GET of the segment, one of its init
    assert counts == {"PutObject": 1, "GetObject": 2}, counts
    # at least once: the same event again changes nothing and costs no S3 request
    counts.clear()
    assert fn.handler(event, context) == {"batchItemFailures": []}
    assert counts == {} and c.dvr_index.segments("1-1")[0].thumbs == row.thumbs

    # the read side: the nearest stored thumbnail from the row, its bytes in one ranged GET
    from fleetcam.runtime.dvrplay import thumbnails

    th = thumbnails(c)
    at, found, thumb = th.stored_near("1-1", T0 + 61_000)
    assert found.segment_id == seg.segment_id and at == T0 + 80_000 == thumb.utc_ms
    counts.clear()
    jpeg = th.stored_bytes(found, thumb)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9" and len(jpeg) == thumb.size
    assert counts == {"GetObject": 1}
    # retention deletes the thumbnails object with its segment
    c.dvr_index.remove("1-1", [seg.segment_id])
    assert sorted(c.dvr_index.pending_deletions()) == sorted(
        [(seg.root, seg.key), (seg.root, row.thumbs.key)])
    assert c.dvr.finish_deletions() >= 2
    s3 = aws.client("s3")
    left = s3.list_objects_v2(Bucket=aws.bucket, Prefix="dvr/1-1/2023").get("Contents", [])
    assert left == []


def test_an_event_before_its_row_is_retried_and_a_deleted_segment_is_done(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcam.services import dvrthumbs

    fn = load_handler("dvrthumbs")
    c = fn.CONTAINER
    monkeypatch.setattr(dvrthumbs, "ROW_WAIT", 0.2)
    url, arn = _notify(aws)
    seg = _record(c, T0, 20, index=False)  # stored, its row not written yet
    event = _events(aws, url, arn, seg.segment_id)
    out = fn.handler(event, context)
    assert out == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert c.dvr_index.abandoned(before=time.time() + 10) == []  # nothing stored meanwhile
    c.dvr_index.add(seg)  # the row arrives: the retried message makes the thumbnails
    assert fn.handler(event, context) == {"batchItemFailures": []}
    assert c.dvr_index.segments("1-1")[0].thumbs is not None
    # the sample event names a segment that does not exist (anymore): nothing to do
    assert fn.handler(load_event("sqs-s3-dvr-segment-created.json"), context) == {
        "batchItemFailures": []}
