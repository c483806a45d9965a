"""Fleet-wide requests make a number of DynamoDB calls that grows with their results, not
with the number of devices (issue 14), counted against moto's server.

Before: ``GET /gw/devices/all/media`` was one Query per device and a sweep a Query and a
GetItem per device. bench/aws_fleet.py measures the same at 100, 1000 and 10000 devices.
"""
from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from types import ModuleType

import pytest

from fleetcam.adapters.aws.models import FLEET_SHARDS, DevicesModel
from fleetcam.domain.models import MediaFile
from tests.aws.conftest import TOKEN, Aws, LambdaContext, load_event
from tests.aws.metering import dynamodb_calls

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
DEVICES = 60
FILES = 3


def _seed(c: object, now: float, *, ttl: int) -> list[MediaFile]:
    """DEVICES devices (written in one batch) with FILES files each, uploaded an hour ago."""
    with DevicesModel.batch_write() as batch:
        for i in range(1, DEVICES + 1):
            batch.save(DevicesModel(id=i, name=f"cam{i}", ident=f"{i:012d}", protocol="jt808",
                                    media_ttl=ttl, media_rotate=0))
    files = [MediaFile(uuid=f"{d:08x}{n:024x}", device_id=d, key=f"media/{d}/{d:08x}{n:024x}.jpg",
                       name=f"{n}.jpg", size=10, mime="image/jpeg", created=now - 3600 + d + n,
                       uploaded=now - 3600 + 600 * n, modified=now - 3600)
             for d in range(1, DEVICES + 1) for n in range(FILES)]
    c.index.add_many(files)  # type: ignore[attr-defined]
    return files


def test_listing_all_media_reads_the_fleet_index_not_every_device(
        aws: Aws, load_handler: Loader) -> None:
    from fastapi.testclient import TestClient

    from fleetcam.api.app import create_app

    api = load_handler("api")
    files = _seed(api.CONTAINER, time.time(), ttl=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(create_app(api.CONTAINER))
    client.headers["Authorization"] = f"FlespiToken {TOKEN}"
    with dynamodb_calls() as calls:
        r = client.get("/gw/devices/all/media", params={"data": '{"count": 100}'})
    assert r.status_code == 200, r.text
    want = sorted(files, key=lambda f: (f.created, f.uuid))[:100]
    assert [f["uuid"] for f in r.json()["result"]] == [f.uuid for f in want]
    # the device list (one Scan page), one Query (and maybe a second page) per shard, one
    # BatchGetItem per 100 files; per device it would be DEVICES Queries
    assert calls["Query"] <= 2 * FLEET_SHARDS, calls
    assert sum(calls.values()) <= 2 * FLEET_SHARDS + 4, calls


def test_a_sweep_reads_what_expired_not_every_device(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    sweeper = load_handler("sweeper")
    c = sweeper.CONTAINER
    files = _seed(c, time.time(), ttl=3600 - 1)  # file 0 of each device has just expired
    threads: set[str] = set()
    remove = c.media.remove

    def spy(batch: list[MediaFile], event: str) -> list[MediaFile]:
        threads.add(threading.current_thread().name)
        return remove(batch, event)

    c.media.remove = spy
    with dynamodb_calls() as calls:
        result = sweeper.handler(load_event("schedule-sweeper.json"), context)
    assert result["expired"] == DEVICES
    assert all((c.index.get(f.uuid) is None) == (f.uploaded < time.time() - 3300)
               for f in files)
    # removed in chunks over the runtime's bounded pool, each counted off exactly once
    assert len(threads) > 1 and all(t.startswith("sweep") for t in threads), threads
    assert all(c.index.usage(d) == (20, 0, 2) for d in range(1, DEVICES + 1))
    # per expired file: a transaction, a log entry (and, per batch, the Gc bookkeeping);
    # per device, nothing: no Query, no GetItem for the devices that had nothing to expire
    assert calls["Query"] <= 2 * FLEET_SHARDS + 4, calls  # the expiry index and commands
    assert calls["GetItem"] <= DEVICES, calls  # device lookups of the expired files' logs
    per_file = sum(calls.values()) / DEVICES
    assert per_file < 6, calls


def test_the_dvr_sweep_works_on_streams_in_parallel(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    """Each stream costs the DVR sweep a few round trips even with nothing due: the AWS
    runtime spreads them over the sweep's pool, and every stream is still swept once."""
    from fleetcam.domain import dvr

    sweeper = load_handler("sweeper")
    c = sweeper.CONTAINER
    assert c.dvr is not None and c.dvr.workers is c.retention.workers
    streams = 12
    with DevicesModel.batch_write() as batch:
        for i in range(1, streams + 1):
            batch.save(DevicesModel(id=i, name=f"cam{i}", ident=f"{i:012d}", protocol="jt808"))
    start = int((time.time() - 3 * 86400) * 1000)
    for i in range(1, streams + 1):
        name = f"{i}-1"
        c.dvr.put_stream(name, {"dvr": {"root": "dvr", "expiration": 86400}})
        key = dvr.segment_key(name, start, "0badcafe")
        c.dvr_storage.put("dvr", key, b"fragments", content_type="video/iso.segment")
        assert c.dvr_index.add(dvr.SegmentEntry(
            name, dvr.segment_id(start, "0badcafe"), "dvr", key, f"{name}/init/x.mp4", start,
            start + 600_000, 9, "avc1.42c01e", 320, 240,
            (dvr.FragmentEntry(start, 600_000, 0, 9, 100, 25),)))
    threads: set[str] = set()
    sweep_stream = c.dvr._sweep_stream

    def spy(s: object) -> int:
        threads.add(threading.current_thread().name)
        return sweep_stream(s)

    c.dvr._sweep_stream = spy
    result = sweeper.handler(load_event("schedule-sweeper.json"), context)
    assert result["dvr_segments_deleted"] == streams
    assert all(c.dvr_index.usage(f"{i}-1") == (0, 0) for i in range(1, streams + 1))
    assert len(threads) > 1 and all(t.startswith("sweep") for t in threads), threads
