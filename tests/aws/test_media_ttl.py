"""No silent loss on AWS when media_ttl changes (issue 14), against moto's server.

The contract suite (tests/contract/test_media_ttl.py) proves the end state in both runtimes;
these tests prove what only the DynamoDB side has: the job is bounded and resumable, a newer
change replaces an older job, the sweeper drives it, and a file that DynamoDB's TTL removes
before its expiry was moved is put back by the reaper instead of being deleted.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from fleetcam.adapters.aws.dynamodb import RETIME_START, media_from_image, sort_key
from fleetcam.domain.models import MediaFile
from fleetcam.domain.retention import file_expiry
from tests.aws.conftest import Aws, LambdaContext, load_event
from tests.aws.test_handlers import _device, _object_exists, _put_media

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]
DAY = 86400


def _files(device_id: int, n: int, uploaded: float) -> list[MediaFile]:
    return [MediaFile(uuid=f"{i:032x}", device_id=device_id, key=f"media/{device_id}/{i:032x}.jpg",
                      name=f"{i}.jpg", size=10, mime="image/jpeg", created=uploaded + i,
                      uploaded=uploaded + i, modified=uploaded + i) for i in range(n)]


def test_retime_is_bounded_resumable_and_replaced_by_a_newer_change(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    sweeper = load_handler("sweeper")
    c = sweeper.CONTAINER
    device_id = _device(sweeper, media_ttl=DAY)
    files = _files(device_id, 250, float(int(time.time())) - 3600)
    c.index.add_many(files)
    device = c.device_repo.get(device_id)

    c.device_repo.update(device.with_changes(media_ttl=30 * DAY))
    assert c.index.retime_jobs() == [(device_id, RETIME_START)]
    cursor = c.index.retime(device_id, 30 * DAY, RETIME_START, 100)
    assert cursor == sort_key(files[99].created, files[99].uuid)
    assert c.index.retime_jobs() == [(device_id, cursor)]  # the progress is saved
    assert c.index.expiry(files[99].uuid) == files[99].uploaded + 30 * DAY
    assert c.index.expiry(files[100].uuid) == files[100].uploaded + DAY  # not yet

    # media_ttl changes again mid-job: the old job's next step is refused, the new one
    # starts over
    c.device_repo.update(device.with_changes(media_ttl=0))
    assert c.index.retime(device_id, 30 * DAY, cursor, 100) is None
    assert c.index.retime_jobs() == [(device_id, RETIME_START)]

    result = sweeper.handler(load_event("schedule-sweeper.json"), context)
    assert result["retime_batches"] == 3 and result["expired"] == 0
    assert c.index.retime_jobs() == []
    assert all(c.index.expiry(f.uuid) is None for f in files)
    assert c.index.usage(device_id) == (2500, 0, 250)


def test_retime_stops_at_its_budget_and_the_next_run_resumes(
        aws: Aws, load_handler: Loader) -> None:
    sweeper = load_handler("sweeper")
    c = sweeper.CONTAINER
    device_id = _device(sweeper, media_ttl=DAY)
    files = _files(device_id, 150, float(int(time.time())))
    c.index.add_many(files)
    c.device_repo.update(c.device_repo.get(device_id).with_changes(media_ttl=7 * DAY))
    assert c.retention.retime(budget=0) == 0  # nothing done past the budget
    assert c.retention.retime(budget=60) == 2
    assert [c.index.expiry(f.uuid) for f in files] == [
        file_expiry(f.uploaded, False, 7 * DAY) for f in files]


def _ttl_removal(f: MediaFile) -> dict[str, Any]:
    """The sample TTL-removal event, for the file ``f`` (as its OldImage)."""
    from fleetcam.adapters.aws.dynamodb import _media_model

    event = copy.deepcopy(load_event("dynamodb-ttl-remove.json"))
    image = _media_model(f, DAY).serialize()
    event["Records"][0]["dynamodb"]["OldImage"] = image
    event["Records"][0]["dynamodb"]["Keys"] = {"uuid": {"S": f.uuid}}
    assert media_from_image(image) == f
    return event


@pytest.mark.parametrize("new_ttl", [0, 30 * DAY], ids=["zero", "longer"])
def test_reaper_puts_back_a_file_that_todays_media_ttl_keeps(
        aws: Aws, load_handler: Loader, context: LambdaContext, new_ttl: int) -> None:
    """TTL removed the record at its old expiry before the retime job reached it."""
    from fleetcam.adapters.aws.models import MediaModel

    reaper = load_handler("reaper")
    c = reaper.CONTAINER
    device_id = _device(reaper, media_ttl=60)
    (f,) = _files(device_id, 1, float(int(time.time()) - 3600))
    _put_media(aws, f.key, b"x" * f.size)
    assert c.index.add(f)
    c.device_repo.update(c.device_repo.get(device_id).with_changes(media_ttl=new_ttl))
    MediaModel(uuid=f.uuid).delete()  # what DynamoDB's TTL process does at the old expiry

    assert reaper.handler(_ttl_removal(f), context) == {"batchItemFailures": []}
    assert c.index.get(f.uuid) == f and _object_exists(aws, f.key)
    assert c.index.expiry(f.uuid) == file_expiry(f.uploaded, False, new_ttl)
    assert c.index.usage(device_id) == (f.size, 0, 1)
    assert not c.logs.query((device_id,), events=("media_file_expired",))


def test_reaper_does_not_bring_back_a_file_deleted_since(
        aws: Aws, load_handler: Loader, context: LambdaContext) -> None:
    """A late stream record of a file whose object is gone restores nothing."""
    reaper = load_handler("reaper")
    c = reaper.CONTAINER
    device_id = _device(reaper, media_ttl=0)
    (f,) = _files(device_id, 1, float(int(time.time()) - 3600))
    assert reaper.handler(_ttl_removal(f), context) == {"batchItemFailures": []}
    assert c.index.get(f.uuid) is None
    assert c.index.usage(device_id) == (0, 0, 0)
