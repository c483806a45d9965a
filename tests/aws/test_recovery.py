"""Recovery (issue 14): a transaction cancelled by a TransactionConflict is retried, against
moto's server, with the conflict injected where DynamoDB would answer it: botocore's
``before-call`` hook answers the first TransactWriteItems calls as DynamoDB does under
contention (HTTP 400, TransactionCanceledException, one reason per item)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest

from fleetcam.adapters.aws import dynamodb
from fleetcam.domain.models import MediaFile
from tests.aws.conftest import Aws
from tests.aws.metering import dynamodb_calls

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
Loader = Callable[[str], ModuleType]


class _Http:
    status_code = 400
    headers: dict[str, str] = {}


@contextmanager
def conflicts(times: int, reasons: list[str]) -> Iterator[list[int]]:
    """The next ``times`` TransactWriteItems are cancelled with ``reasons``."""
    client = dynamodb._connection().client
    seen = [0]

    def answer(**kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] > times:
            return None  # sent to the server
        return _Http(), {
            "Error": {"Code": "TransactionCanceledException",
                      "Message": "Transaction cancelled, please refer cancellation reasons"},
            "CancellationReasons": [{"Code": r} for r in reasons]}

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", answer)
    try:
        yield seen
    finally:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", answer)


def _file(device_id: int) -> MediaFile:
    now = 1_796_000_000.0
    return MediaFile(uuid="c" * 32, device_id=device_id, key=f"media/{device_id}/{'c' * 32}.jpg",
                     name="x.jpg", size=5, mime="image/jpeg", created=now, uploaded=now,
                     modified=now)


def test_counter_conflicts_are_retried(aws: Aws, load_handler: Loader) -> None:
    c = load_handler("ingest").CONTAINER
    (d,) = c.devices.create([{"ident": "013900000001"}])
    with conflicts(3, ["None", "TransactionConflict"]) as seen:
        assert c.index.add(_file(d.id)) is True
    assert seen[0] == 4
    assert c.index.usage(d.id) == (5, 0, 1)
    with conflicts(2, ["TransactionConflict", "None", "None"]) as seen:
        assert c.index.remove([_file(d.id)]) == [_file(d.id)]
    assert seen[0] == 3 and c.index.usage(d.id) == (0, 0, 0)


def test_a_conflict_that_lasts_fails_after_the_retries(aws: Aws, load_handler: Loader) -> None:
    c = load_handler("ingest").CONTAINER
    (d,) = c.devices.create([{"ident": "013900000001"}])
    with conflicts(100, ["None", "TransactionConflict"]) as seen, dynamodb_calls():
        with pytest.raises(dynamodb.TransactWriteError):
            c.index.add(_file(d.id))
    assert seen[0] == dynamodb.CONFLICT_RETRIES
    assert c.index.usage(d.id) == (0, 0, 0) and c.index.get("c" * 32) is None


def test_a_failed_condition_is_not_retried(aws: Aws, load_handler: Loader) -> None:
    c = load_handler("ingest").CONTAINER
    (d,) = c.devices.create([{"ident": "013900000001"}])
    with conflicts(1, ["ConditionalCheckFailed", "TransactionConflict"]) as seen:
        assert c.index.add(_file(d.id)) is False  # "exists already", as the reason says
    assert seen[0] == 1


def test_the_api_reads_the_admin_token_from_secrets_manager_at_cold_start(
        aws: Aws, load_handler: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's environment holds the secret's ARN, never the token."""
    import json

    from tests.aws.conftest import LambdaContext, load_event

    token = "S" * 64
    sm = aws.client("secretsmanager")
    arn = sm.create_secret(Name="fleetcam-admin", SecretString=token)["ARN"]
    monkeypatch.delenv("FLEETCAM_ADMIN_TOKEN")
    monkeypatch.setenv("FLEETCAM_ADMIN_TOKEN_SECRET", arn)
    api = load_handler("api")
    event = load_event("api-get-media.json")
    event["headers"]["authorization"] = f"FlespiToken {token}"
    r = api.handler(event, LambdaContext())
    assert r["statusCode"] == 200, r
    assert json.loads(r["body"])["result"] == []
    event["headers"]["authorization"] = "FlespiToken " + "x" * 64
    assert api.handler(event, LambdaContext())["statusCode"] == 401


def test_ingest_emits_photo_and_byte_metrics(aws: Aws, load_handler: Loader,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """powertools Metrics: the EMF document on stdout names PhotosStored and BytesIngested."""
    import json

    from tests.aws.conftest import LambdaContext, load_event
    from tests.aws.test_handlers import _device, _event_key, _put_media
    from tests.mediagen import make_image

    ingest = load_handler("ingest")
    event = load_event("sqs-s3-object-created.json")
    key, device_id, uuid = _event_key(event)
    assert _device(ingest) == device_id
    image = make_image(64, 48)
    _put_media(aws, key, image, name="front.jpg", channel=2)
    capsys.readouterr()
    assert ingest.handler(event, LambdaContext()) == {"batchItemFailures": []}
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{") and '"_aws"' in line]
    values = {k: v for d in docs for k, v in d.items() if not k.startswith("_")}
    assert values["PhotosStored"] in (1.0, [1.0])
    assert values["BytesIngested"] in (float(len(image)), [float(len(image))])
    assert "ClipsPackaged" not in values
