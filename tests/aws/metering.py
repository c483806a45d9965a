"""Count the DynamoDB requests PynamoDB makes (tests and bench/aws_fleet.py read them)."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dynamodb_calls() -> Iterator[Counter[str]]:
    """Within the block, every DynamoDB request of any thread is counted by operation name
    (``Query``, ``GetItem``, ``TransactWriteItems``...); the counter is live."""
    from pynamodb.connection.base import Connection

    calls: Counter[str] = Counter()
    lock = threading.Lock()
    original = Connection._make_api_call

    def counted(self: Any, operation_name: str, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[operation_name] += 1
        return original(self, operation_name, *args, **kwargs)

    Connection._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        Connection._make_api_call = original  # type: ignore[method-assign]


# -- DynamoDB write units, as DynamoDB bills them ------------------------------------------
# moto answers ReturnConsumedCapacity with a constant, so the meter reads each written item
# before and after the request (with its own client, not counted) and applies the billing
# rules of on-demand tables (AWS "Read/write capacity mode" and "Managing settings on
# DynamoDB provisioned capacity tables" pages):
# * a PutItem/UpdateItem/DeleteItem costs one WRU per started KB of the larger of the item's
#   before and after images; a TransactWriteItems costs two per KB for each of its items,
#   ConditionCheck included; BatchWriteItem items cost as single writes;
# * each GSI whose projection changes costs one WRU per started KB of its index item
#   (projected attributes + 100 bytes), two writes when the index key changes, one when the
#   item enters or leaves the index, none when no projected attribute changed (at the
#   standard rate for transactions too);
# * a write refused by its condition still costs the item's units (no GSI write).

def _value_size(v: dict[str, Any]) -> int:
    (kind, x), = v.items()
    if kind in ("S",):
        return len(x.encode())
    if kind == "B":
        return len(x) if isinstance(x, (bytes, bytearray)) else len(x.encode())
    if kind == "N":
        digits = len(x.lstrip("-").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(e) + 1 for k, e in x.items())
    if kind == "L":
        return 3 + sum(_value_size(e) + 1 for e in x)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: e}) for e in x)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item in DynamoDB JSON, as DynamoDB sizes it (names + values)."""
    return sum(len(k.encode()) + _value_size(v) for k, v in (item or {}).items())


def _units(size: int) -> int:
    return max(1, -(-size // 1024))


class WriteMeter:
    """Write units by table (``units[table]``) and their GSIs (``units[table + "/" + gsi]``)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.units: Counter[str] = Counter()
        self._schemas: dict[str, dict[str, Any]] = {}

    @property
    def total(self) -> int:
        return sum(self.units.values())

    def _schema(self, table: str) -> dict[str, Any]:
        if table not in self._schemas:
            self._schemas[table] = self.client.describe_table(TableName=table)["Table"]
        return self._schemas[table]

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {k["AttributeName"]: item[k["AttributeName"]]
                for k in self._schema(table)["KeySchema"]}

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def targets(self, op: str, kw: dict[str, Any]) -> list[tuple[str, dict[str, Any], int]]:
        """(table, key, factor) of each item a write request touches."""
        if op == "PutItem":
            return [(kw["TableName"], self._key(kw["TableName"], kw["Item"]), 1)]
        if op in ("UpdateItem", "DeleteItem"):
            return [(kw["TableName"], kw["Key"], 1)]
        if op == "BatchWriteItem":
            return [(t, self._key(t, r["PutRequest"]["Item"]) if "PutRequest" in r
                     else r["DeleteRequest"]["Key"], 1)
                    for t, reqs in kw["RequestItems"].items() for r in reqs]
        if op == "TransactWriteItems":
            out = []
            for t in kw["TransactItems"]:
                (kind, body), = t.items()
                key = self._key(body["TableName"], body["Item"]) if kind == "Put" else body["Key"]
                out.append((body["TableName"], key, 2))
            return out
        return []

    def charge(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
               factor: int, failed: bool) -> None:
        self.units[table] += factor * _units(max(item_size(before), item_size(after)))
        if failed:
            return
        schema = self._schema(table)
        table_keys = [k["AttributeName"] for k in schema["KeySchema"]]
        for gsi in schema.get("GlobalSecondaryIndexes", []):
            keys = [k["AttributeName"] for k in gsi["KeySchema"]]
            proj = gsi["Projection"]

            def image(item: dict[str, Any] | None) -> dict[str, Any] | None:
                if item is None or any(k not in item for k in keys):
                    return None  # not in this (sparse) index
                if proj["ProjectionType"] == "ALL":
                    return dict(item)
                names = set(keys) | set(table_keys) | set(proj.get("NonKeyAttributes", []))
                return {k: v for k, v in item.items() if k in names}

            old, new = image(before), image(after)
            name = f"{table}/{gsi['IndexName']}"
            if old == new:
                continue
            if old is not None and new is not None and all(old[k] == new[k] for k in keys):
                self.units[name] += _units(item_size(new) + 100)
                continue
            for img in (old, new):
                if img is not None:
                    self.units[name] += _units(item_size(img) + 100)


@contextmanager
def write_units(client: Any) -> Iterator[WriteMeter]:
    """Within the block, the write units of every DynamoDB write PynamoDB makes (any
    thread), read through ``client`` (a boto3 DynamoDB client of the same server)."""
    from pynamodb.connection.base import Connection

    meter = WriteMeter(client)
    lock = threading.Lock()
    original = Connection._make_api_call

    def metered(self: Any, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        targets = meter.targets(operation_name, operation_kwargs)
        if not targets:
            return original(self, operation_name, operation_kwargs)
        with lock:  # one write at a time, so before and after images are this write's
            before = [meter._get(t, k) for t, k, _ in targets]
            failed = False
            try:
                return original(self, operation_name, operation_kwargs)
            except Exception:
                failed = True
                raise
            finally:
                for (t, k, factor), old in zip(targets, before):
                    meter.charge(t, old, None if failed else meter._get(t, k), factor, failed)

    Connection._make_api_call = metered  # type: ignore[method-assign]
    try:
        yield meter
    finally:
        Connection._make_api_call = original  # type: ignore[method-assign]
