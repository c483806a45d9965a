"""DVR thumbnails on AWS (moto's server): a segment's row added to the index → the index
table's stream (as template.yaml declares it, through the event source's filter) → the DVR
thumbnail function → one thumbnails object per segment, named by its index row, under every
root the product accepts (any prefix of the media bucket, another bucket); the API serves
each JPEG at ``/{name}/{from}.jpg`` with one ranged GET."""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fleetcam.domain import dvr
from fleetcam.media import fmp4
from tests import dvrgen
from tests.aws.conftest import ROOT, TOKEN, Aws, LambdaContext, load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
OTHER_BUCKET = "fleetcam-dvr-elsewhere"


def _template_trigger() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DvrSegmentsTable's StreamSpecification and the thumbnail function's filter patterns,
    from template.yaml."""
    from cfnlint.decode import decode

    tpl, problems = decode(str(ROOT / "template.yaml"))
    assert not problems, problems
    res = json.loads(json.dumps(tpl))["Resources"]
    spec = res["DvrSegmentsTable"]["Properties"]["StreamSpecification"]
    events = res["DvrThumbnailFunction"]["Properties"]["Events"]
    assert {e["Type"] for e in events.values()} == {"DynamoDB", "Schedule"}
    (event,) = [e for e in events.values() if e["Type"] == "DynamoDB"]
    assert event["Properties"]["Stream"] == {"Fn::GetAtt": ["DvrSegmentsTable", "StreamArn"]}
    patterns = [json.loads(f["Pattern"])
                for f in event["Properties"]["FilterCriteria"]["Filters"]]
    return spec, patterns


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filter for the exact-value patterns the template uses."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and _matches(p, value[k]) for k, p in pattern.items())
    assert isinstance(pattern, list) and all(isinstance(p, str) for p in pattern), pattern
    return value in pattern


class Stream:
    """The DVR index table's stream, read as Lambda's event source mapping reads it."""

    def __init__(self, aws: Aws) -> None:
        spec, self.patterns = _template_trigger()
        ddb = aws.client("dynamodb")
        table = aws.env["FLEETCAM_DVR_SEGMENTS_TABLE"]
        ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": True,
                                                               **spec})
        self.arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.streams = aws.client("dynamodbstreams")
        (shard,) = self.streams.describe_stream(StreamArn=self.arn)[
            "StreamDescription"]["Shards"]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.seen: list[dict[str, Any]] = []

    def event(self) -> dict[str, Any]:
        """The records written since the last call that pass the template's filter."""
        r = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = r["NextShardIterator"]
        out = []
        for rec in r["Records"]:
            rec = {**rec, "eventSourceARN": self.arn}
            at = rec["dynamodb"].get("ApproximateCreationDateTime")
            if hasattr(at, "timestamp"):
                rec["dynamodb"] = {**rec["dynamodb"], "ApproximateCreationDateTime":
                                   int(at.timestamp())}
            self.seen.append(rec)
            if any(_matches(p, rec) for p in self.patterns):
                out.append(rec)
        return {"Records": out}


def _record(c: Any, stream: str, root: str, start_ms: int, seconds: float,
            index: bool = True) -> dvr.SegmentEntry:
    """As the gateway records: the init and the segment object stored, then the row."""
    init, gops = dvrgen.encoded()
    ikey = dvr.init_key(stream, fmp4.init_digest(init))
    c.dvr_storage.put(root, ikey, init, content_type="video/mp4")
    seg, data = dvrgen.segment(stream, start_ms, seconds, gops=gops, root=root,
                               init_key=ikey)
    c.dvr_storage.put(root, seg.key, data, content_type="video/iso.segment")
    if index:
        assert c.dvr_index.add(seg)
    return seg


def _count(c: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    c.dvr_storage.s3.meta.events.register(
        "before-call.s3.*", lambda model, **_: counts.update([model.name]))
    return counts


def _get(api: ModuleType, context: LambdaContext, path: str) -> dict[str, Any]:
    event = load_event("api-get-dvr-archive.json")
    name, _, proxy = path.lstrip("/").partition("/")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"name": name, "proxy": proxy}
    assert event["queryStringParameters"] == {"token": TOKEN}
    return api.handler(event, context)  # type: ignore[no-any-return]


def _start() -> int:
    """A recent whole minute plus 40 s (its first keyframe, then one a minute)."""
    return (int(time.time()) // 60 - 30) * 60_000 + 40_000


@pytest.mark.parametrize("root", ["archive/fleet", f"s3://{OTHER_BUCKET}/rec"])
def test_a_segment_indexed_under_any_root_gets_its_thumbnails_served_in_one_get(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        monkeypatch: pytest.MonkeyPatch, root: str) -> None:
    import base64

    monkeypatch.setenv("FLEETCAM_DVR_BUCKETS", OTHER_BUCKET)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=OTHER_BUCKET)
    stream = Stream(aws)
    fn = load_handler("dvrthumbs")
    api = load_handler("api")
    c = fn.CONTAINER
    now = time.time()
    api.CONTAINER.devices.create([{"ident": "013912345678"}])
    c.dvr_streams.put(dvr.DvrStream("1-1", 1, 1, dvr.DvrConfig(root, 0), now, now))
    start = _start()
    seg = _record(c, "1-1", root, start, 150)  # its first keyframe + 3 minutes'
    event = stream.event()
    # the row's INSERT (and those of the stream's first #usage and range chunk items,
    # which the handler skips); the #usage counters' MODIFY is filtered out
    assert {r["eventName"] for r in event["Records"]} == {"INSERT"}
    assert {r["dynamodb"]["Keys"]["segment_id"]["S"] for r in event["Records"]} >= {
        seg.segment_id, "#usage"}
    counts = _count(c)
    assert fn.handler(event, context) == {"batchItemFailures": []}
    (row,) = c.dvr_index.segments("1-1")
    assert row.thumbs is not None and len(row.thumbs.items) == len(dvr.thumb_times(seg)) == 4
    assert row.thumbs.key.startswith(seg.key.removesuffix(".m4s")) and \
        row.thumbs.key.endswith(".mjpeg")
    # one PUT (the thumbnails object), one ranged GET of the segment, one of its init
    assert counts == {"PutObject": 1, "GetObject": 2}, counts
    bucket, prefix = c.dvr_storage.resolve(root).removeprefix("s3://").split("/", 1)
    assert bucket == (OTHER_BUCKET if root.startswith("s3://") else aws.bucket)
    s3.head_object(Bucket=bucket, Key=f"{prefix}/{row.thumbs.key}")
    # the thumbnails' own write is a MODIFY: filtered out, the function is not invoked again
    assert stream.event() == {"Records": []}
    assert [r["eventName"] for r in stream.seen][-1] == "MODIFY"
    # at least once: the same records again change nothing and cost no S3 request
    counts.clear()
    assert fn.handler(event, context) == {"batchItemFailures": []}
    assert counts == {} and c.dvr_index.segments("1-1")[0].thumbs == row.thumbs

    # the API serves each stored JPEG with one ranged GET of the thumbnails object
    served = _count(api.CONTAINER)
    blob = b"".join(c.dvr_storage.read(root, row.thumbs.key))
    for thumb in row.thumbs.items:
        served.clear()
        r = _get(api, context, f"/1-1/{thumb.utc_ms // 1000}.jpg")
        assert r["statusCode"] == 200, r.get("body", "")[:300]
        body = base64.b64decode(r["body"]) if r.get("isBase64Encoded") else r["body"]
        assert body == blob[thumb.offset:thumb.offset + thumb.size]
        assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
        assert served == {"GetObject": 1}, served
    # a second without its own thumbnail: 302 to the nearest, no request to the store
    served.clear()
    r = _get(api, context, f"/1-1/{row.thumbs.items[0].utc_ms // 1000 + 5}.jpg")
    assert r["statusCode"] == 302 and served == {}
    assert r["headers"]["location"].startswith(f"{row.thumbs.items[0].utc_ms // 1000}.jpg")

    # retention deletes the thumbnails object with its segment
    c.dvr_index.remove("1-1", [seg.segment_id])
    assert sorted(c.dvr_index.pending_deletions()) == sorted(
        [(seg.root, seg.key), (seg.root, row.thumbs.key)])
    assert c.dvr.finish_deletions() >= 2
    left = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/1-1/").get("Contents", [])
    assert [o["Key"] for o in left] == [f"{prefix}/{seg.init_key}"]
    # removals are filtered out; the watch mark the reads of recent minutes made is an
    # INSERT of another item, which the function skips
    after = stream.event()
    assert [r["dynamodb"]["Keys"] for r in after["Records"]] == [
        {"stream": {"S": "#watch"}, "segment_id": {"S": "1-1"}}]
    counts.clear()
    assert fn.handler(after, context) == {"batchItemFailures": []} and counts == {}


def test_a_segment_deleted_before_its_record_leaves_nothing(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    stream = Stream(aws)
    fn = load_handler("dvrthumbs")
    c = fn.CONTAINER
    seg = _record(c, "1-1", "cams", _start(), 20)
    event = stream.event()
    c.dvr_index.remove("1-1", [seg.segment_id])  # retention got there first
    c.dvr.finish_deletions()
    counts = _count(c)
    assert fn.handler(event, context) == {"batchItemFailures": []}
    assert counts == {}  # nothing read, nothing stored
    assert c.dvr_index.abandoned(before=time.time() + 7200) == []
    left = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix="cams/1-1/2")
    assert left.get("Contents", []) == []
    # the sample event names a segment that does not exist (anymore): nothing to do
    assert fn.handler(load_event("dynamodb-dvr-segment-indexed.json"), context) == {
        "batchItemFailures": []}


def test_a_failing_store_fails_only_its_record_and_a_retry_completes_it(
        aws: Aws, load_handler: Loader, context: LambdaContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Stream(aws)
    fn = load_handler("dvrthumbs")
    c = fn.CONTAINER
    first = _record(c, "1-1", "cams", _start(), 90)
    second = _record(c, "1-2", "cams", _start(), 90)
    event = stream.event()
    keys = [(r["dynamodb"]["Keys"]["stream"]["S"], r["dynamodb"]["Keys"]["segment_id"]["S"])
            for r in event["Records"]]
    assert ("1-1", first.segment_id) in keys and ("1-2", second.segment_id) in keys
    real_put = c.dvr_storage.put

    def put(root: str, key: str, data: bytes, **kw: Any) -> int:
        if key.startswith("1-2/") and key.endswith(".mjpeg"):
            raise ConnectionError("S3 is away")
        return real_put(root, key, data, **kw)

    monkeypatch.setattr(c.dvr_storage, "put", put)
    out = fn.handler(event, context)
    failed = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]
              if r["dynamodb"]["Keys"]["stream"]["S"] == "1-2" and
              r["dynamodb"]["Keys"]["segment_id"]["S"] == second.segment_id]
    assert out == {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}
    assert c.dvr_index.segments("1-1")[0].thumbs is not None
    assert c.dvr_index.segments("1-2")[0].thumbs is None
    # the intent recorded before the failed PUT is the sweeper's to clear (nothing stored)
    assert len(c.dvr_index.abandoned(before=time.time() + 7200)) == 1
    monkeypatch.setattr(c.dvr_storage, "put", real_put)
    assert fn.handler(event, context) == {"batchItemFailures": []}  # the stream's retry
    assert c.dvr_index.segments("1-2")[0].thumbs is not None
    # the same bytes make the same key: the row's write cleared the failed run's intent too
    assert c.dvr_index.abandoned(before=time.time() + 7200) == []


def test_the_daily_backfill_makes_what_the_stream_missed_once(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    """Rows of the last day without thumbnails (their records failed every retry, or came
    before the stream was on) get them from the schedule; recent rows are the stream's."""
    import dataclasses

    fn = load_handler("dvrthumbs")
    c = fn.CONTAINER
    now = time.time()
    for name in ("1-1", "1-2"):
        c.dvr_streams.put(dvr.DvrStream(name, 1, int(name[-1]), dvr.DvrConfig("cams", 0),
                                        now, now))
    hour = (int(now) // 60 - 120) * 60_000 + 40_000  # two hours ago
    missed = _record(c, "1-1", "cams", hour, 90, index=False)
    missed = dataclasses.replace(missed, created_at=now - 7000)
    assert c.dvr_index.add(missed)
    fresh = _record(c, "1-2", "cams", hour, 90, index=False)  # a clip folded in just now
    fresh = dataclasses.replace(fresh, created_at=now - 60)
    assert c.dvr_index.add(fresh)
    event = load_event("schedule-dvr-thumbs-backfill.json")
    counts = _count(c)
    assert fn.handler(event, context) == {"streams": 2, "segments": 1, "left": 0}
    assert counts == {"PutObject": 1, "GetObject": 2}, counts
    row = c.dvr_index.segments("1-1")[0]
    assert row.thumbs is not None and len(row.thumbs.items) == len(dvr.thumb_times(missed))
    assert c.dvr_index.segments("1-2")[0].thumbs is None  # left to its stream record
    assert c.dvr_index.abandoned(before=time.time() + 7200) == []
    counts.clear()  # the next run: nothing to do, no request to the store
    assert fn.handler(event, context) == {"streams": 2, "segments": 0, "left": 0}
    assert counts == {}
    # out of time: what is left is counted, not made
    c.dvr_index.remove("1-1", [missed.segment_id])
    c.dvr.finish_deletions()
    assert c.dvr_index.add(dataclasses.replace(missed, segment_id=missed.segment_id[:-1] + "f",
                                               key=missed.key.replace(
                                                   missed.segment_id,
                                                   missed.segment_id[:-1] + "f")))
    assert c.dvr_thumbs.backfill(["1-1", "1-2"], budget=0) == (0, 1)


def test_the_thumbnail_role_is_denied_every_prefix_a_dvr_root_may_not_use() -> None:
    """The role may touch any ``*.mjpeg`` of the media bucket (roots are any prefix), so its
    Deny must cover each prefix the adapter refuses as a root: the media store's files,
    clips, live segments, previews and staged downloads."""
    from cfnlint.decode import decode

    from fleetcam.adapters.aws.dvr import MEDIA_BUCKET_PREFIXES

    tpl, problems = decode(str(ROOT / "template.yaml"))
    assert not problems, problems
    fn = json.loads(json.dumps(tpl))["Resources"]["DvrThumbnailFunction"]["Properties"]
    statements = [s for p in fn["Policies"] if isinstance(p, dict) and "Statement" in p
                  for s in p["Statement"]]
    denied = {r["Fn::Sub"] for s in statements if s["Effect"] == "Deny"
              for r in s["Resource"]}
    assert denied == {f"${{MediaBucket.Arn}}/{p}/*" for p in MEDIA_BUCKET_PREFIXES}
