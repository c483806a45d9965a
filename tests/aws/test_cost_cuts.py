"""What one file costs in DynamoDB, IoT Core and S3 on AWS (issue 14, "Cost"), measured
against moto's server: the media record's size, the write units of a file's life (upload,
then deletion) and the MQTT event's size.

``python -m tests.aws.test_cost_cuts`` prints the same figures (docs/aws.md quotes them).
"""
from __future__ import annotations

import io
import json
import random
import sys
from fractions import Fraction
from typing import Any

import av
import pytest

from fleetcam.adapters.payload import encode
from fleetcam.config import Settings
from fleetcam.domain.keys import preview_key
from fleetcam.ports import MediaQuery
from fleetcam.runtime.aws import build_aws
from fleetcam.runtime.container import Container
from tests.aws.conftest import Aws
from tests.aws.metering import dynamodb_calls, item_size, write_units
from tests.aws.motoserver import client_kwargs
from tests.conftest import RecordingBus

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
IOT_UNIT = 5 * 1024
"""IoT Core bills a publish and each delivery per started 5 KB of payload."""


def noisy_jpeg(width: int = 1280, height: int = 720, seed: int = 1) -> bytes:
    """A gradient with noise: its thumbnail is about as large as a real 720p photo's
    (≈13 KB of base64, the figure docs/aws.md assumes)."""
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    rnd = random.Random(seed)
    pad = bytes(plane.line_size - width * 3)
    data = bytearray()
    for y in range(height):
        noise = rnd.randbytes(width * 3)
        data += bytes((x // 3 + y // 4 + noise[x] % 100) % 256 for x in range(width * 3)) + pad
    plane.update(bytes(data))
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    frame = frame.reformat(format="yuvj420p")
    frame.pts = 0
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def _container(bus: RecordingBus) -> Container:
    return build_aws(Settings.from_env(), bus=bus)


def _ddb(url: str) -> Any:
    import boto3
    return boto3.client("dynamodb", **client_kwargs(url))


def file_life(url: str, c: Container, bus: RecordingBus) -> dict[str, Any]:
    """Upload one 1280x720 photo through the API's path, list it, delete it; return what
    each step cost."""
    from fleetcam.adapters.aws.models import MediaModel

    cam = c.devices.create([{"name": "cam", "ident": "cost-cam-01", "media_ttl": 30 * 86400}])[0]
    ddb = _ddb(url)
    with write_units(ddb) as add:
        f = c.media.upload(cam.id, io.BytesIO(noisy_jpeg()), filename="shot.jpg",
                           content_type="image/jpeg", raw_options={"channel": 1})
    item = ddb.get_item(TableName=MediaModel.Meta.table_name,
                        Key={"uuid": {"S": f.uuid}})["Item"]
    events = [p for t, p, _ in bus.messages if t.endswith("/media_file_uploaded")]
    with dynamodb_calls() as listing:
        listed = c.media.search(MediaQuery(device_ids=(cam.id,)))
    with write_units(ddb) as delete:
        c.media.delete((cam.id,), [f.uuid])
    return {"file": f, "listed": listed, "item_bytes": item_size(item),
            "event_bytes": len(encode(events[0])), "event": events[0],
            "add_wru": add.total, "delete_wru": delete.total,
            "add_units": dict(add.units), "delete_units": dict(delete.units),
            "listing_calls": dict(listing)}


@pytest.fixture
def life(aws: Aws) -> dict[str, Any]:
    bus = RecordingBus()
    c = _container(bus)
    return {**file_life(aws.url, c, bus), "container": c}


def test_the_media_record_is_under_1_kb_and_the_preview_an_object(life: dict[str, Any]) -> None:
    c, f = life["container"], life["file"]
    assert life["item_bytes"] < 1024, life["item_bytes"]
    # listed from the index alone: no BatchGetItem of the records
    assert life["listed"] == [f]
    assert "BatchGetItem" not in life["listing_calls"], life["listing_calls"]
    # the preview went with the file
    from fleetcam.errors import NotFound
    with pytest.raises(NotFound):
        c.store.head(preview_key(f.device_id, f.uuid))


def test_the_preview_is_stored_before_the_record_and_served(aws: Aws) -> None:
    from fastapi.testclient import TestClient

    from fleetcam.api.app import create_app
    c = _container(RecordingBus())
    cam = c.devices.create([{"name": "cam", "ident": "cost-cam-02"}])[0]
    f = c.media.upload(cam.id, io.BytesIO(noisy_jpeg()), filename="a.jpg",
                       content_type="image/jpeg", raw_options={})
    thumb = b"".join(c.store.read(preview_key(cam.id, f.uuid)))
    assert thumb[:2] == b"\xff\xd8" and len(thumb) > 5000  # a large preview, out of the item
    r = TestClient(create_app(c)).get(f"/media/{f.uuid}", params={"preview": "jpeg"})
    assert r.status_code == 200 and r.content == thumb


def test_a_file_life_costs_at_most_19_write_units(life: dict[str, Any]) -> None:
    """Upload then deletion, every table: 70 WRU with the preview in the record (34 + 36),
    22 without it, 20 with three media GSIs instead of four, 19 with the Gc entry written
    outside the deletion's transaction."""
    media_gsis = {k for k in {**life["add_units"], **life["delete_units"]}
                  if k.startswith("fleetcam-media/")}
    assert media_gsis == {"fleetcam-media/by-device-created", "fleetcam-media/by-shard-created",
                          "fleetcam-media/by-shard-expiry"}
    assert all(life["add_units"][g] == life["delete_units"][g] == 1 for g in media_gsis)
    assert life["add_units"]["fleetcam-media"] == life["delete_units"]["fleetcam-media"] == 2
    assert life["delete_units"]["fleetcam-gc"] == 2  # put alone, deleted once done
    assert life["add_wru"] + life["delete_wru"] <= 19, (life["add_units"],
                                                        life["delete_units"])


def command_life(url: str, c: Container) -> dict[str, Any]:
    """One request_video command's life as the gateway lives it: queued for a device that is
    not connected, claimed by the copy it connects to (queued for that copy), sent, two
    progress reports, answered; return its write units and what the store's reads give."""
    cam = c.devices.create([{"name": "cam", "ident": "cost-cam-cmd"}])[0]
    ddb = _ddb(url)
    with write_units(ddb) as meter:
        cmd, = c.commands.enqueue([cam.id], [{
            "name": "request_video", "ttl": 600,
            "properties": {"channel": 1, "from": 1_700_000_000, "duration": 30}}])
        claimed, = c.commands.claim(cam.id, "gw-cost", conn_id=7)
        assigned = c.commands.store.assigned("gw-cost")
        sent = c.commands.mark_sent(claimed, 12, conn_id=7)
        assert sent is not None
        pending = c.commands.store.pending(cam.id)
        for done in (1, 2):
            c.commands.progress(sent, {"progress": {"uploaded": done, "expected": 2}})
        final = c.commands.finish(sent, True, {"files": ["a.mp4"]})
        assert final is not None
    return {"wru": meter.total, "units": dict(meter.units), "assigned": assigned,
            "pending": pending, "final": final, "device_id": cam.id,
            "results": c.commands.results((cam.id,)), "after": c.commands.store.pending(cam.id)}


def test_a_request_video_life_costs_at_most_18_write_units(aws: Aws) -> None:
    """Queued, claimed, sent, two progress reports, answered: 25 WRU (15 of them in the
    Commands table's indexes) when its four indexes projected ALL, each rewrite copied into
    each index the item was in; 18 (8) with keys only, by-device keeping ``status``, which
    its query filters on: an index is written only when the item enters or leaves it or
    its status changes, never for a progress report."""
    got = command_life(aws.url, _container(RecordingBus()))
    # what the reads answer from the items themselves, fresh
    assert [x.id for x in got["assigned"]] == [got["final"].id]
    assert got["assigned"][0].gateway_id == "gw-cost"
    assert [(x.id, x.status) for x in got["pending"]] == [(got["final"].id, "sent")]
    assert got["pending"][0].serial == 12 and got["pending"][0].name == "request_video"
    assert got["after"] == []
    assert got["results"] == [got["final"]]
    assert got["final"].response == {"files": ["a.mp4"]}
    gsis = {k: v for k, v in got["units"].items() if k.startswith("fleetcam-commands/")}
    assert sum(gsis.values()) <= 8, got["units"]
    assert got["wru"] <= 18, got["units"]


def test_a_removal_that_died_before_its_transaction_loses_nothing(aws: Aws) -> None:
    """The Gc entry is written before the transaction that deletes the record: if the
    process dies in between, the entry names a live file. ``finish_deletions`` must keep
    that file's objects, leave a young entry to its removal in flight, and drop an old one."""
    import time

    from fleetcam.adapters.aws import dynamodb
    from fleetcam.adapters.aws.models import GcModel
    c = _container(RecordingBus())
    cam = c.devices.create([{"name": "cam", "ident": "cost-cam-03"}])[0]
    f = c.media.upload(cam.id, io.BytesIO(noisy_jpeg(320, 180)), filename="a.jpg",
                       content_type="image/jpeg", raw_options={})
    GcModel(key=f.key, queued=time.time()).save()  # then the process died
    assert c.media.finish_deletions() == 0
    assert GcModel.count() == 1  # in flight, as far as anyone can tell
    GcModel(key=f.key, queued=time.time() - dynamodb.GC_ABANDONED - 1).save()
    assert c.media.finish_deletions() == 0
    assert GcModel.count() == 0  # abandoned: dropped, the file kept whole
    assert c.store.head(f.key).size == f.size and c.media.preview(f)[:2] == b"\xff\xd8"
    assert c.media.search(MediaQuery(device_ids=(cam.id,))) == [f]
    assert c.index.usage(cam.id) == (f.size, 0, 1)
    assert [g.uuid for g in c.media.delete((cam.id,), [f.uuid])] == [f.uuid]
    assert GcModel.count() == 0 and c.index.usage(cam.id) == (0, 0, 0)


def test_the_media_event_fits_one_iot_unit(life: dict[str, Any]) -> None:
    """IoT Core bills per 5 KB: the event carries the file's JSON with a link to its preview
    (what MediaBox loads: ``{url}?preview=jpeg``), not the image."""
    event, f = life["event"], life["file"]
    assert life["event_bytes"] < IOT_UNIT, life["event_bytes"]
    assert event["uuid"] == f.uuid and event["url"].endswith(f"/media/{f.uuid}")
    assert event["preview"] == {"url": event["url"] + "?preview=jpeg",
                                "meta": {"type": "image", "width": 1280, "height": 720}}
    assert event["meta"]["channel"] == 1 and event["mime"] == "image/jpeg"


if __name__ == "__main__":  # python -m tests.aws.test_cost_cuts
    from tests.aws.motoserver import MotoServer, provision, DUMMY_ENV
    import os
    os.environ.update(DUMMY_ENV)
    moto = MotoServer().start()
    try:
        os.environ.update(provision(moto.url))
        os.environ.update({"FLEETCAM_ADMIN_TOKEN": "x" * 64, "FLEETCAM_DEFAULT_MEDIA_TTL":
                           str(30 * 86400), "POWERTOOLS_TRACE_DISABLED": "true"})
        bus = RecordingBus()
        got = file_life(moto.url, _container(bus), bus)
    finally:
        moto.stop()
    json.dump({k: v for k, v in got.items() if k not in ("file", "listed", "event")},
              sys.stdout, indent=1)
    print()
