"""Messages and log entries are kept 30 days by default (issue 14, "Cost"), then deleted:
locally by the sweeper (``expire``), on AWS by DynamoDB's TTL (``expires_at``, free of write
units). Both runtimes keep the same rule: an entry goes ``retention`` seconds after its
timestamp, and a retention of 0 keeps it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetcam.config import Settings
from fleetcam.domain.models import LogEntry
from tests.contract.conftest import Backend

DAY = 86400.0
NOW = 1_700_000_000.0


def _gone_after(b: Backend, table: str, key: dict[str, Any]) -> float | None:
    """AWS: the item's TTL (``expires_at``), None when it has none."""
    import boto3

    from tests.aws.motoserver import client_kwargs
    ddb = boto3.client("dynamodb", **client_kwargs(b.extras["url"]))
    got = ddb.get_item(TableName=b.extras["tables"][table], Key=key)["Item"]
    return float(got["expires_at"]["N"]) if "expires_at" in got else None


def _surviving_logs(b: Backend) -> list[float]:
    """Timestamps of the log entries that outlive ``NOW``'s expiry pass."""
    assert b.logs.expire(NOW) >= 0
    out = []
    for e in b.logs.query((1,)):
        if b.name == "aws":
            sk = f"{e.timestamp:017.6f}#{e.id:016d}"
            when = _gone_after(b, "LogsModel", {"device_id": {"N": "1"}, "sk": {"S": sk}})
            if when is not None and when <= NOW:
                continue  # DynamoDB's TTL deletes it
        out.append(e.timestamp)
    return out


def test_the_default_retention_is_30_days_and_configurable(tmp_path: Path) -> None:
    base = {"FLEETCAM_DATA_DIR": str(tmp_path)}
    s = Settings.from_env(base)
    assert s.messages_ttl == s.log_ttl == 30 * 86400
    s = Settings.from_env({**base, "FLEETCAM_MESSAGES_TTL": "86400", "FLEETCAM_LOG_TTL": "0"})
    assert (s.messages_ttl, s.log_ttl) == (86400, 0)
    for bad in ("-1", "1.5", "forever", str(11 * 365 * 86400)):
        with pytest.raises(ValueError, match="FLEETCAM_LOG_TTL"):
            Settings.from_env({**base, "FLEETCAM_LOG_TTL": bad})


def test_log_entries_older_than_30_days_go(backend: Backend) -> None:
    assert backend.logs.retention == 30 * 86400
    for age in (31, 30.5, 29, 1):
        backend.logs.append(LogEntry(device_id=1, timestamp=NOW - age * DAY, event="x"))
    assert _surviving_logs(backend) == [NOW - 29 * DAY, NOW - DAY]


def test_a_retention_of_zero_keeps_log_entries(backend: Backend) -> None:
    backend.logs.retention = 0
    backend.logs.append(LogEntry(device_id=1, timestamp=NOW - 400 * DAY, event="x"))
    assert _surviving_logs(backend) == [NOW - 400 * DAY]


def test_messages_older_than_30_days_go(backend: Backend) -> None:
    store = backend.messages
    assert store.retention == 30 * 86400
    store.append(1, [{"timestamp": NOW - age * DAY, "age": age} for age in (40, 31, 29, 1)])
    assert store.expire(NOW) == (2 if backend.name == "local" else 0)
    kept = []
    for m in store.query((1,)):
        if backend.name == "aws":
            from fleetcam.adapters.aws.models import MessagesModel
            (item,) = [i for i in MessagesModel.query(1) if i.timestamp == m["timestamp"]]
            if item.expires_at is not None and item.expires_at.timestamp() <= NOW:
                continue
        kept.append(m["age"])
    assert kept == [29, 1]
