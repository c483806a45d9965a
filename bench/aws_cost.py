"""AWS cost per device-month, measured: a fleet day replayed against moto's server.

Usage: ``.venv/bin/python bench/aws_cost.py [--json] [--devices 2] [--profiles light,heavy]``

For each usage profile, a few sample devices live a compressed day through the stack's own code
on moto's server (S3, DynamoDB, SQS, IoT data plane): simulated MDVRs (fleetcam.simulator) talk
JT/T 808/1078 to a real gateway (the ECS task's code, on the AWS container); S3 notifications
reach SQS; the bench polls the queues like Lambda's event source mappings and invokes the
functions' own handlers (functions/*/app.py, timed); views, copies and deletions go through the
API function's handler with REST API events; the sweeper function expires the files after
their TTL. A botocore event hook on every client counts the requests per service: S3 by class,
DynamoDB read and write units (computed from the items' sizes the way DynamoDB rounds them,
since moto's ConsumedCapacity is a constant: 1 KB write units, 4 KB read units, halved for
eventually consistent reads, doubled in transactions, plus every GSI write), SQS requests, IoT
messages in 5 KB units. Each activity is replayed for a sample (``--photos`` of a day's
photos...) and its counts are scaled linearly to the profile's daily rate; fleet-wide work
(the gateway's polling, sweeper runs, pollers, the NLB, tasks, alarms...) is computed per
fleet size from what was measured once. Prices come from bench/aws_prices.json and flespi's
from bench/flespi_prices.json, each with its date.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import dataclasses
import importlib.util
import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
import urllib.request
import uuid as uuidlib
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

PRICES = ROOT / "bench" / "aws_prices.json"
FLESPI = ROOT / "bench" / "flespi_prices.json"
TEMPLATE = ROOT / "template.yaml"
FLEETS = (100, 1000, 10000)
DAYS = 730 / 24
"""Days in a billing month (730 hours)."""
TOKEN = "K" * 64
GB = 1024 ** 3


# ----------------------------------------------------------------------------- profiles
@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    photos_per_day: float
    clips_per_day: float
    photo_bytes: int
    clip_bytes: int
    media_ttl_days: float
    copy_and_delete: bool
    """The customer's backend copies each file as it arrives (one GET), then deletes it."""
    view_share: float
    """Share of the files viewed once each through the API."""
    api_requests_per_month: float
    """Views plus list pages (count 100) a device-month."""
    positions_per_day: float
    connects_per_day: float
    what: str


def positions_per_day(drive_hours: float, drive_every: float, park_every: float) -> float:
    return drive_hours * 3600 / drive_every + (24 - drive_hours) * 3600 / park_every


def make_profiles(positions: float) -> dict[str, Profile]:
    return {
        "light": Profile("light", 4, 2 / 7, 200_000, 5_000_000, 30, True, 0.0, 0, positions, 2,
                         "flespi's pitch: 4 photos a day, 2 clips a week, each copied by the "
                         "customer's backend as it arrives and then deleted"),
        "heavy": Profile("heavy", 200, 20, 200_000, 5_000_000, 30, False, 0.10, 2000, positions,
                         2, "docs/aws.md: 200 photos of 200 KB and 20 clips of 5 MB a day, "
                         "30-day TTL, 10% viewed once, 2,000 API requests a month"),
    }


# ----------------------------------------------------------------------------- metering
TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("aws_cost_tag", default=None)
"""Set inside the gateway's housekeeping tasks: their requests are fleet-wide polling."""

PUT_CLASS = {"PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2",
             "ListObjectVersions", "CreateMultipartUpload", "UploadPart",
             "CompleteMultipartUpload", "ListMultipartUploads", "ListParts"}
GET_CLASS = {"GetObject", "HeadObject", "GetObjectTagging", "GetObjectAttributes"}
S3_KIND = {"PutObject": "PUT", "CopyObject": "PUT", "CreateMultipartUpload": "PUT",
           "UploadPart": "PUT", "CompleteMultipartUpload": "PUT", "GetObject": "GET",
           "HeadObject": "HEAD", "ListObjects": "LIST", "ListObjectsV2": "LIST",
           "ListObjectVersions": "LIST", "DeleteObject": "DELETE", "DeleteObjects": "DELETE"}


def attr_size(v: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (typed JSON, as botocore sends and parses)."""
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "N":
        digits = str(x).lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if t == "B":
        return len(x) if isinstance(x, (bytes, bytearray)) else len(base64.b64decode(x))
    if t in ("BOOL", "NULL"):
        return 1
    if t == "M":
        return 3 + sum(len(k.encode()) + 1 + attr_size(e) for k, e in x.items())
    if t == "L":
        return 3 + sum(1 + attr_size(e) for e in x)
    if t == "SS":
        return sum(len(e.encode()) for e in x)
    if t == "NS":
        return sum(attr_size({"N": e}) for e in x)
    if t == "BS":
        return sum(attr_size({"B": e}) for e in x)
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    return 0 if not item else sum(len(k.encode()) + attr_size(v) for k, v in item.items())


def wunits(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def runits(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


@dataclasses.dataclass
class Schema:
    keys: list[str]
    gsis: list[tuple[str, list[str], str, list[str]]]
    """(name, key attributes, projection type, included attributes)"""

    def key(self, item: dict[str, Any]) -> str:
        return json.dumps({k: item.get(k) for k in self.keys}, sort_keys=True, default=str)

    def project(self, item: dict[str, Any], gsi: tuple[str, list[str], str, list[str]]
                ) -> dict[str, Any] | None:
        _, keys, ptype, include = gsi
        if not all(k in item for k in keys):
            return None
        if ptype == "ALL":
            return item
        wanted = set(self.keys) | set(keys) | (set(include) if ptype == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in wanted}


@dataclasses.dataclass
class Stored:
    phase: str
    size: int
    """Item plus its GSI copies, with DynamoDB's 100 bytes of overhead each."""
    lifetime_days: float | None
    """From its TTL attribute; None: no TTL (kept as long as the device)."""


ACTIVE: Meter | None = None
_ORIGINAL: Any = None


def install_hooks() -> Any:
    """Hook every botocore client made from now on (PynamoDB's per-thread clients too): a
    before-parameter-build and an after-call handler that hand the request to the active
    meter. Returns the unhooked ``create_client``."""
    global _ORIGINAL
    import botocore.session

    if _ORIGINAL is None:
        _ORIGINAL = botocore.session.Session.create_client

        def before(**kw: Any) -> None:
            if ACTIVE is not None:
                ACTIVE._before(**kw)

        def after(**kw: Any) -> None:
            if ACTIVE is not None:
                ACTIVE._after(**kw)

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = _ORIGINAL(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build", before)
            client.meta.events.register("after-call", after)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    return _ORIGINAL


class CountingSink(io.TextIOBase):
    """Where the functions' stdout (powertools logs and EMF metrics) goes: counted, dropped."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.line = ""
        self.metrics: set[tuple[str, str, tuple[str, ...]]] = set()
        """(namespace, name, dimensions) of every EMF metric the functions emitted."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.meter.add("logs", "bytes", len(s.encode()))
        self.line += s
        while "\n" in self.line:
            line, self.line = self.line.split("\n", 1)
            if '"_aws"' in line:
                self._emf(line)
        return len(s)

    def _emf(self, line: str) -> None:
        """powertools' embedded metric format: each metric is a custom metric to pay for."""
        try:
            doc = json.loads(line)
            for d in doc["_aws"]["CloudWatchMetrics"]:
                for dims in d.get("Dimensions") or [[]]:
                    for m in d["Metrics"]:
                        self.metrics.add((d["Namespace"], m["Name"], tuple(dims)))
        except (ValueError, KeyError, TypeError):
            pass


class Meter:
    """Counts every AWS request of the process, by activity (``phase``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.phase = "setup"
        self.lock = threading.RLock()
        self.counts: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.schemas: dict[str, Schema] = {}
        self.items: dict[tuple[str, str], Stored] = {}
        self.objects: dict[str, tuple[str, int]] = {}
        self.deleted: list[tuple[str, str, int]] = []
        self.parts: dict[str, int] = {}
        self.shadow: Any = None
        self.storage_items: dict[tuple[str, str], Stored] = {}
        self.storage_objects: dict[str, tuple[str, int]] = {}
        self.storage_deleted: list[tuple[str, str, int]] = []

    def snapshot(self) -> None:
        """What is stored now (storage is priced from it)."""
        with self.lock:
            self.storage_items = dict(self.items)
            self.storage_objects = dict(self.objects)
            self.storage_deleted = list(self.deleted)

    # -- plumbing
    def current(self) -> str:
        return TAG.get() or self.phase

    def add(self, service: str, metric: str, n: float = 1, detail: str = "",
            phase: str | None = None) -> None:
        with self.lock:
            self.counts[phase or self.current()][(service, metric, detail)] += n

    def total(self, phases: Iterator[str] | list[str] | None = None) -> Counter[tuple[str, ...]]:
        out: Counter[tuple[str, ...]] = Counter()
        for p, c in self.counts.items():
            if phases is None or p in phases:
                out.update(c)
        return out

    def activity(self) -> int:
        """Requests made so far outside the gateway's polling (for waiting until quiet)."""
        with self.lock:
            return sum(n for p, c in self.counts.items() if p != "housekeeping"
                       for (s, m, _), n in c.items() if m == "requests")

    def activate(self) -> None:
        """Count this process's requests from now on (every botocore client made after
        ``install_hooks``), reading items back through a raw client of its own."""
        from tests.aws.motoserver import DUMMY_ENV

        original = install_hooks()
        import botocore.session
        self.shadow = original(botocore.session.get_session(), "dynamodb",
                               region_name="us-east-1", endpoint_url=self.url,
                               aws_access_key_id=DUMMY_ENV["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=DUMMY_ENV["AWS_SECRET_ACCESS_KEY"])
        global ACTIVE
        ACTIVE = self

    def deactivate(self) -> None:
        global ACTIVE
        if ACTIVE is self:
            ACTIVE = None

    # -- DynamoDB shadow reads (a raw client: never counted)
    def schema(self, table: str) -> Schema:
        if table not in self.schemas:
            d = self.shadow.describe_table(TableName=table)["Table"]
            gsis = [(g["IndexName"], [k["AttributeName"] for k in g["KeySchema"]],
                     g["Projection"]["ProjectionType"],
                     list(g["Projection"].get("NonKeyAttributes", [])))
                    for g in d.get("GlobalSecondaryIndexes", [])]
            self.schemas[table] = Schema([k["AttributeName"] for k in d["KeySchema"]], gsis)
        return self.schemas[table]

    def peek(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self.shadow.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        except Exception:
            return None

    def gsi_writes(self, table: str, old: dict[str, Any] | None,
                   new: dict[str, Any] | None) -> int:
        s = self.schema(table)
        units = 0
        for g in s.gsis:
            po = s.project(old, g) if old else None
            pn = s.project(new, g) if new else None
            if po is None and pn is None:
                continue
            if po is not None and pn is not None and all(po[k] == pn[k] for k in g[1]):
                if po != pn:
                    units += wunits(item_size(pn))
                continue
            units += (wunits(item_size(po)) if po is not None else 0) + \
                (wunits(item_size(pn)) if pn is not None else 0)
        return units

    def stored(self, table: str, item: dict[str, Any]) -> Stored:
        s = self.schema(table)
        size = item_size(item) + 100 + sum(item_size(p) + 100 for g in s.gsis
                                           if (p := s.project(item, g)) is not None)
        ttl = item.get("expires_at", {}).get("N")
        life = None if ttl is None else max(0.0, (float(ttl) - time.time()) / 86400)
        return Stored(self.current(), size, life)

    # -- hooks
    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any],
                **_: Any) -> None:
        service = model.service_model.service_name
        if service == "s3":
            body = params.get("Body")
            size = params.get("ContentLength") or (
                len(body) if isinstance(body, (bytes, bytearray)) else
                len(body) if hasattr(body, "__len__") else 0)
            context["aws_cost_s3"] = {"Key": params.get("Key"), "size": int(size or 0),
                                      "UploadId": params.get("UploadId")}
        elif service == "iot-data":
            context["aws_cost_payload"] = len(params.get("payload") or b"")
            context["aws_cost_topic"] = str(params.get("topic", ""))
        if service != "dynamodb":
            return
        context["aws_cost_params"] = params
        op = model.name
        olds: list[dict[str, Any] | None] = []
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            key = params.get("Key") or {k: params["Item"][k] for k in self.schema(table).keys}
            olds = [self.peek(table, key)]
        elif op == "TransactWriteItems":
            for t in params["TransactItems"]:
                (kind, body), = t.items()
                key = body.get("Key") or {k: body["Item"][k]
                                          for k in self.schema(body["TableName"]).keys}
                olds.append(self.peek(body["TableName"], key))
        elif op == "BatchWriteItem":
            for table, reqs in params["RequestItems"].items():
                for r in reqs:
                    body = r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"]
                    key = {k: body[k] for k in self.schema(table).keys}
                    olds.append(self.peek(table, key))
        context["aws_cost_old"] = olds

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any,
               context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        op = model.name
        try:
            if service == "dynamodb":
                self._dynamodb(op, parsed, context)
            elif service == "s3":
                self._s3(op, parsed, context)
            elif service == "sqs":
                self.add("sqs", "requests", 1, op)
            elif service == "iot-data":
                payload = context.get("aws_cost_payload", 0)
                topic = re.sub(r"/\d+(?=/|$)", "/+", context.get("aws_cost_topic", ""))
                topic = topic.split("/", 1)[-1]  # without the prefix
                self.add("iot", "requests", 1, topic)
                self.add("iot", "units", max(1, math.ceil(payload / 5120)), topic)
            else:
                self.add(service, "requests", 1, op)
        except Exception as e:  # metering must never break the code it measures
            self.add("meter", "errors", 1, f"{service}.{op}: {e!r}"[:120])

    def _s3(self, op: str, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        kind = S3_KIND.get(op, "OTHER")
        self.add("s3", "requests", 1, kind)
        if op in PUT_CLASS:
            self.add("s3", "put_class", 1, op)
        elif op in GET_CLASS:
            self.add("s3", "get_class", 1, op)
        p = context.get("aws_cost_s3", {})
        key, size = p.get("Key"), p.get("size", 0)
        if "Error" in parsed or not key:
            return
        with self.lock:
            if op == "PutObject":
                self.objects[key] = (self.current(), size)
            elif op == "UploadPart":
                self.parts[p.get("UploadId", "")] = self.parts.get(p.get("UploadId", ""), 0) + size
            elif op == "CompleteMultipartUpload":
                self.objects[key] = (self.current(), self.parts.pop(p.get("UploadId", ""), 0))
            elif op == "DeleteObject" and key in self.objects:
                phase, size = self.objects.pop(key)
                self.deleted.append((phase, key, size))

    def _dynamodb(self, op: str, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        p = context.get("aws_cost_params", {})
        olds = context.get("aws_cost_old", [])
        failed = "Error" in parsed
        self.add("dynamodb", "requests", 1, op)
        rru = wru = 0.0
        table = p.get("TableName", "")
        call: dict[str, Any] = {"op": op, "table": table, "index": p.get("IndexName"),
                                "bytes": 0, "consistent": bool(p.get("ConsistentRead"))}
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            old = olds[0] if olds else None
            key = p.get("Key") or {k: p["Item"][k] for k in self.schema(table).keys}
            new = None
            if not failed:
                new = p["Item"] if op == "PutItem" else (
                    self.peek(table, key) if op == "UpdateItem" else None)
            wru = wunits(max(item_size(old), item_size(new)))
            if not failed:
                wru += self.gsi_writes(table, old, new)
                self._track(table, key, new)
            self.add("dynamodb", "wru", wru, table)
        elif op == "TransactWriteItems":
            for t, old in zip(p["TransactItems"], olds):
                (kind, body), = t.items()
                tb = body["TableName"]
                key = body.get("Key") or {k: body["Item"][k] for k in self.schema(tb).keys}
                new = old
                if not failed:
                    new = body["Item"] if kind == "Put" else (
                        self.peek(tb, key) if kind == "Update" else
                        None if kind == "Delete" else old)
                units = 2 * wunits(max(item_size(old), item_size(new)))
                if not failed and kind != "ConditionCheck":
                    units += self.gsi_writes(tb, old, new)
                    self._track(tb, key, new)
                self.add("dynamodb", "wru", units, tb)
                wru += units
        elif op == "BatchWriteItem":
            olds_it = iter(olds)
            for tb, reqs in p["RequestItems"].items():
                for r in reqs:
                    old = next(olds_it, None)
                    new = r.get("PutRequest", {}).get("Item")
                    body = new or r["DeleteRequest"]["Key"]
                    key = {k: body[k] for k in self.schema(tb).keys}
                    units = wunits(max(item_size(old), item_size(new)))
                    units += self.gsi_writes(tb, old, new)
                    self._track(tb, key, new)
                    self.add("dynamodb", "wru", units, tb)
                    wru += units
        elif op == "GetItem":
            item = parsed.get("Item")
            if item and (p.get("ProjectionExpression") or p.get("AttributesToGet")):
                item = self.peek(table, p["Key"])
            rru = runits(item_size(item), bool(p.get("ConsistentRead")))
            self.add("dynamodb", "rru", rru, table)
        elif op in ("BatchGetItem", "TransactGetItems"):
            if op == "BatchGetItem":
                asks = [(tb, k, bool(spec.get("ConsistentRead")),
                         bool(spec.get("ProjectionExpression") or spec.get("AttributesToGet")))
                        for tb, spec in p["RequestItems"].items() for k in spec["Keys"]]
                got = {(tb, self.schema(tb).key(i)): i
                       for tb, items in parsed.get("Responses", {}).items() for i in items}
            else:
                asks = [(t["Get"]["TableName"], t["Get"]["Key"], True,
                         bool(t["Get"].get("ProjectionExpression"))) for t in p["TransactItems"]]
                got = {}
            for tb, k, consistent, projected in asks:
                item = got.get((tb, self.schema(tb).key(k)))
                if op == "TransactGetItems" or (item and projected):
                    item = self.peek(tb, k)
                units = runits(item_size(item), consistent) * (2 if op == "TransactGetItems" else 1)
                self.add("dynamodb", "rru", units, tb)
                rru += units
        elif op in ("Query", "Scan"):
            items = parsed.get("Items", [])
            count, scanned = parsed.get("Count", len(items)), parsed.get("ScannedCount", 0)
            if items and count and not (p.get("ProjectionExpression") and not p.get("IndexName")) \
                    and p.get("Select") != "COUNT":
                size = sum(item_size(i) for i in items) * scanned / count
            else:
                size = scanned * self.mean_size(table, p.get("IndexName"))
            consistent = bool(p.get("ConsistentRead"))
            rru = runits(int(size), consistent)
            call.update(bytes=size, scanned=scanned)
            self.add("dynamodb", "rru", rru, table)
        call.update(rru=rru, wru=wru)
        with self.lock:
            self.calls[self.current()].append(call)

    def mean_size(self, table: str, index: str | None) -> float:
        """What an item of the table (or its index) weighs on average, for reads whose answer
        does not show the items DynamoDB read (filtered out, projected, counted)."""
        s = self.schema(table)
        sizes = [st.size for (tb, _), st in list(self.items.items()) if tb == table]
        if not sizes:
            return 1024.0
        mean = sum(sizes) / len(sizes) / (1 + len(s.gsis))
        return mean if index is None else min(mean, 512.0)

    def _track(self, table: str, key: dict[str, Any], new: dict[str, Any] | None) -> None:
        k = (table, json.dumps(key, sort_keys=True, default=str))
        with self.lock:
            if new is None:
                self.items.pop(k, None)
            else:
                self.items[k] = self.stored(table, new)


# ----------------------------------------------------------------------------- the stack
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, problems = decode(str(TEMPLATE))
    if problems:
        raise RuntimeError(f"template.yaml does not decode: {problems}")
    return json.loads(json.dumps(tpl))  # type: ignore[no-any-return]


def default(tpl: dict[str, Any], param: str) -> Any:
    return tpl["Parameters"][param]["Default"]


def memory_mb(tpl: dict[str, Any], function: str) -> int:
    props = tpl["Resources"][function]["Properties"]
    return int(props.get("MemorySize", tpl["Globals"]["Function"].get("MemorySize", 128)))


@dataclasses.dataclass
class Context:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuidlib.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class Function:
    """One function's handler module (its own container, as one execution environment)."""

    def __init__(self, meter: Meter, sink: CountingSink, name: str, code: str,
                 memory: int) -> None:
        self.meter, self.sink, self.name, self.memory = meter, sink, name, memory
        t = time.perf_counter()
        mod_name = f"aws_cost_{name}_{uuidlib.uuid4().hex[:6]}"
        spec = importlib.util.spec_from_file_location(mod_name,
                                                      ROOT / "functions" / code / "app.py")
        assert spec and spec.loader
        self.module = importlib.util.module_from_spec(spec)
        with contextlib.redirect_stdout(sink):
            spec.loader.exec_module(self.module)
        self.init_seconds = time.perf_counter() - t
        quiet_powertools(sink)

    def __call__(self, event: dict[str, Any]) -> Any:
        ctx = Context(self.name, self.memory)
        try:  # Mangum wants the thread's event loop, as Lambda's main thread has one
            asyncio.get_event_loop()
        except RuntimeError:
            asyncio.set_event_loop(asyncio.new_event_loop())
        t = time.perf_counter()
        with contextlib.redirect_stdout(self.sink):
            out = self.module.handler(event, ctx)
        ms = math.ceil((time.perf_counter() - t) * 1000)
        self.meter.add("lambda", "invocations", 1, self.name)
        self.meter.add("lambda", "gb_s", ms / 1000 * self.memory / 1024, self.name)
        return out


def quiet_powertools(sink: CountingSink) -> None:
    """powertools' Logger writes JSON lines to the stdout it found: send them to the sink."""
    for name in ("fleetcam", "aws_lambda_powertools"):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler) and h.stream is not sink:
                h.setStream(sink)  # type: ignore[arg-type]


def rest_event(method: str, path: str, *, query: dict[str, str] | None = None,
               body: str | None = None) -> dict[str, Any]:
    host = "bench.execute-api.us-east-1.amazonaws.com"
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": {"host": host, "authorization": f"FlespiToken {TOKEN}",
                    "content-type": "application/json", "accept": "*/*"},
        "multiValueHeaders": None,
        "queryStringParameters": query, "multiValueQueryStringParameters":
            {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": host,
                           "httpMethod": method, "identity": {"sourceIp": "203.0.113.7"},
                           "path": f"/v1{path}", "protocol": "HTTP/1.1",
                           "requestId": str(uuidlib.uuid4()), "resourcePath": "/{proxy+}",
                           "stage": "v1", "requestTimeEpoch": int(time.time() * 1000)},
        "body": body, "isBase64Encoded": False}


# ----------------------------------------------------------------------------- gateway
def metered_gateway_class() -> type:
    from fleetcam.gateway.server import Gateway

    class MeteredGateway(Gateway):  # type: ignore[misc, valid-type]
        """The gateway, with its polling tagged as such (per-device work it triggers is not)."""

        started_at = 0.0

        async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            tag = TAG.get()

            def run() -> Any:
                token = TAG.set(tag)
                try:
                    return fn(*args, **kwargs)
                finally:
                    TAG.reset(token)
            return await super().call(run)

        async def _housekeeping(self) -> None:
            TAG.set("housekeeping")
            await super()._housekeeping()

        async def _leases(self) -> None:
            TAG.set("housekeeping")
            await super()._leases()

        async def _deliver_assigned(self) -> None:
            pending = await self.call(self.commands.store.assigned, self.gateway_id)
            token = TAG.set(None)  # delivering a command is that command's cost
            try:
                for device_id in dict.fromkeys(c.device_id for c in pending):
                    session = self.sessions_by_device.get(device_id)
                    if session is not None:
                        await session.deliver()
            finally:
                TAG.reset(token)

    return MeteredGateway


# ----------------------------------------------------------------------------- replay
@dataclasses.dataclass
class Activity:
    name: str
    per_day: float
    """How often a device does it a day (fleet-wide activities: 0)."""
    sample: int
    """How many times each sample device did it."""


@dataclasses.dataclass
class Replay:
    profile: Profile
    devices: int
    activities: list[Activity]
    meter: Meter
    gateway_seconds: float
    sweep_runs: int
    inits: dict[str, float]
    memory: dict[str, int]
    connected: int
    dto_bytes: Counter[str]
    wall: float
    emf_metrics: int = 0


class Stack:
    """moto's server, provisioned as template.yaml provisions the account."""

    def __init__(self, server: Any, meter: Meter, tpl: dict[str, Any]) -> None:
        self.server, self.meter, self.tpl = server, meter, tpl

    def provision(self) -> dict[str, str]:
        import boto3

        from tests.aws.motoserver import BUCKET, client_kwargs, provision

        self.server.reset()
        env = provision(self.server.url)
        kw = client_kwargs(self.server.url)
        sqs, s3 = boto3.client("sqs", **kw), boto3.client("s3", **kw)
        queues = {"IngestQueue": env["FLEETCAM_INGEST_QUEUE_URL"]}
        configs = []
        bucket = self.tpl["Resources"]["MediaBucket"]["Properties"]
        for q in bucket["NotificationConfiguration"]["QueueConfigurations"]:
            logical = q["Queue"]["Fn::GetAtt"][0]
            if logical not in queues:
                queues[logical] = sqs.create_queue(QueueName=f"fleetcam-{logical}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queues[logical], AttributeNames=[
                "QueueArn"])["Attributes"]["QueueArn"]
            configs.append({"QueueArn": arn, "Events": [q["Event"]], "Filter": {"Key": {
                "FilterRules": [{"Name": r["Name"], "Value": r["Value"]}
                                for r in q["Filter"]["S3Key"]["Rules"]]}}})
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": configs})
        clip = queues["ClipQueue"]
        for q in queues.values():  # S3's s3:TestEvent of the new configuration: not a day's work
            sqs.purge_queue(QueueUrl=q)
        self.sqs = sqs
        env.update({"FLEETCAM_ADMIN_TOKEN": TOKEN, "POWERTOOLS_TRACE_DISABLED": "true",
                    "POWERTOOLS_SERVICE_NAME": "fleetcam",
                    "POWERTOOLS_METRICS_NAMESPACE": "fleetcam", "POWERTOOLS_DEV": "false",
                    "POWERTOOLS_LOG_LEVEL": "INFO", "FLEETCAM_DATA_DIR": self._tmp()})
        for k in ("FLEETCAM_PUBLIC_URL", "FLEETCAM_IOT_ENDPOINT", "AWS_PROFILE"):
            os.environ.pop(k, None)
        # the settings the template gives every function from its parameters' defaults
        # (retention of messages and logs, default media TTL...), as a deployed stack has them
        params = self.tpl["Parameters"]
        for k, v in self.tpl["Globals"]["Function"]["Environment"]["Variables"].items():
            ref = v.get("Ref") if isinstance(v, dict) else None
            if k not in env and ref in params and str(params[ref].get("Default", "")) != "":
                env[k] = str(params[ref]["Default"])
        os.environ.update(env)
        self.env, self.clip_queue = env, clip
        return env

    def _tmp(self) -> str:
        import tempfile

        return tempfile.mkdtemp(prefix="aws-cost-")


class Day:
    """One profile's compressed day for ``devices`` sample devices."""

    def __init__(self, stack: Stack, profile: Profile, args: argparse.Namespace,
                 sink: CountingSink) -> None:
        self.stack, self.p, self.args, self.sink = stack, profile, args, sink
        self.meter = stack.meter
        self.activities: list[Activity] = []
        self.dto: Counter[str] = Counter()
        self.files: dict[int, list[dict[str, Any]]] = defaultdict(list)

    # -- helpers
    def phase(self, name: str) -> None:
        self.meter.phase = name

    async def settle(self, quiet: float = 1.5, limit: float = 60.0) -> None:
        """Until no request but the gateway's polling was made for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        last, since = self.meter.activity(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            now = self.meter.activity()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    async def api(self, method: str, path: str, *, query: dict[str, str] | None = None,
                  body: Any = None, content_bytes: int | None = None) -> dict[str, Any]:
        event = rest_event(method, path, query=query,
                           body=None if body is None else json.dumps(body))
        out = await asyncio.to_thread(self.fn["api"], event)
        self.meter.add("apigw", "requests", 1, f"{method} {path.split('/')[1]}")
        status = out["statusCode"]
        if status >= 400 and status != 404:
            raise RuntimeError(f"{method} {path} answered {status}: {out.get('body')}")
        if status == 307:  # a large file: the client follows to S3 (a GET on S3's bill)
            location = out.get("headers", {}).get("location") or \
                out.get("multiValueHeaders", {}).get("location", [""])[0]
            with urllib.request.urlopen(location, timeout=30) as r:
                r.read()
            self.meter.add("s3", "requests", 1, "GET")
            self.meter.add("s3", "get_class", 1, "GetObject (pre-signed)")
        elif content_bytes is None:
            self.dto[self.meter.phase] += len(out.get("body") or "")
        if content_bytes is not None:
            self.dto[self.meter.phase] += content_bytes
        return out

    async def drain(self, queue: str, fn: str, want: int, limit: float = 180.0) -> int:
        """Lambda's event source mapping: receive, invoke, delete what succeeded."""
        sqs = self.sqs
        done = 0
        deadline = time.monotonic() + limit
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.meter.add("sqs", "requests", -1, "GetQueueAttributes")
        while done < want and time.monotonic() < deadline:
            r = await asyncio.to_thread(sqs.receive_message, QueueUrl=queue,
                                        MaxNumberOfMessages=self.args.batch,
                                        WaitTimeSeconds=1, AttributeNames=["All"])
            msgs = r.get("Messages", [])
            if not msgs:  # the real pollers' empty receives are computed, not these
                self.meter.add("sqs", "requests", -1, "ReceiveMessage")
                continue
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"], "attributes": m.get("Attributes", {}),
                "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                "eventSourceARN": arn, "awsRegion": "us-east-1"} for m in msgs]}
            out = await asyncio.to_thread(self.fn[fn], event)
            failed = {f["itemIdentifier"] for f in out.get("batchItemFailures", [])}
            ok = [m for m in msgs if m["MessageId"] not in failed]
            if ok:
                await asyncio.to_thread(sqs.delete_message_batch, QueueUrl=queue, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(ok)])
            if failed:
                raise RuntimeError(f"{fn} failed {len(failed)} message(s)")
            done += sum(len(json.loads(m["Body"]).get("Records", [])) for m in ok)
        if done < want:
            raise RuntimeError(f"{fn}: {done} of {want} objects ingested in {limit:.0f} s")
        return done

    def objects(self, prefix: str, phase: str) -> int:
        with self.meter.lock:
            return sum(1 for k, (ph, _) in self.meter.objects.items()
                       if k.startswith(prefix) and ph == phase) + \
                sum(1 for ph, k, _ in self.meter.deleted if k.startswith(prefix) and ph == phase)

    async def wait_objects(self, prefix: str, phase: str, want: int, limit: float = 120.0
                           ) -> None:
        deadline = time.monotonic() + limit
        while self.objects(prefix, phase) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{phase}: {self.objects(prefix, phase)} of {want} {prefix}"
                                   " objects written")
            await asyncio.sleep(0.1)

    def sweep(self, offset: float = 0.0) -> dict[str, int]:
        clock = self.fn["sweeper"].module.CONTAINER.clock
        clock.now = (lambda: time.time() + offset)  # type: ignore[method-assign]
        return self.fn["sweeper"]({"source": "aws.events", "detail-type": "Scheduled Event"})

    # -- the day
    async def run(self) -> Replay:
        from fleetcam.config import Settings
        from fleetcam.protocol.jt808 import messages as m
        from fleetcam.runtime.aws import build_aws
        from fleetcam.simulator.device import DeviceConfig
        from fleetcam.simulator.run import Simulation

        t_start = time.perf_counter()
        p, a, meter, tpl = self.p, self.args, self.meter, self.stack.tpl
        self.phase("setup")
        env = self.stack.provision()
        self.sqs = self.stack.sqs
        mem = {"api": memory_mb(tpl, "ApiFunction"), "ingest": memory_mb(tpl, "IngestFunction"),
               "packager": memory_mb(tpl, "PackagerFunction"),
               "sweeper": memory_mb(tpl, "SweeperFunction")}
        code = {"api": "api", "ingest": "ingest", "packager": "ingest", "sweeper": "sweeper"}
        self.fn = {k: Function(meter, self.sink, k, code[k], mem[k]) for k in mem}
        inits = {k: f.init_seconds for k, f in self.fn.items()}
        settings = dataclasses.replace(
            Settings.from_env(), jt808_port=0, jt1078_port=0, attachment_port=0,
            teltonika_port=0, teltonika_camera_port=0, gateway_host="127.0.0.1",
            media_host="127.0.0.1")
        gw = metered_gateway_class()(build_aws(settings))
        quiet_powertools(self.sink)

        clip_seconds = a.clip_seconds
        template = DeviceConfig(phone="", host="127.0.0.1", port=0, media_host="127.0.0.1",
                                report_interval=10 ** 6, heartbeat_interval=30.0,
                                bitrate=int(p.clip_bytes * 8 / clip_seconds), playback_speed=0,
                                channels=1)
        sim = Simulation(a.devices, template)
        ids: dict[str, int] = {}
        for i, ident in enumerate(sim.idents, start=1):
            r = await self.api("POST", "/gw/devices", body=[{
                "name": f"bench {i}", "configuration": {"ident": ident},
                "media_ttl": int(p.media_ttl_days * 86400)}])
            ids[ident] = json.loads(r["body"])["result"][0]["id"]
        self.phase("sweep-base")
        self.sweep()

        await gw.start()
        gw_started = time.monotonic()
        for d in sim.devices:
            d.cfg.port = gw.port_808
        try:
            # -- connect (and the one position each sends once authenticated)
            self.phase("connect")
            await sim.start()
            await sim.wait_authenticated(20)
            await self.settle()
            self.activities.append(Activity("connect", p.connects_per_day, 1))

            # -- positions
            self.phase("positions")
            n = min(a.positions, math.ceil(p.positions_per_day))
            now = time.time()
            for d in sim.devices:
                for k in range(n):
                    d.send(d.location(now - (n - k) * 30))
                    if k % 20 == 19:
                        await d.writer.drain()
                await d.writer.drain()
            await self.settle()
            self.activities.append(Activity("positions", p.positions_per_day, n))

            # -- photos: pushed by the device (0x0801), written by the gateway, ingested
            from fleetcam.media.testpattern import snapshot_jpeg

            self.phase("photos")
            n = min(a.photos, math.ceil(p.photos_per_day))
            for d in sim.devices:
                for k in range(n):
                    t = time.time() - 3600 + k
                    jpeg = await asyncio.to_thread(snapshot_jpeg, 1920, 1080, t)
                    d.media_serial += 1
                    d.send(m.MultimediaData(media_id=d.media_serial, media_type=0,
                                            media_format=0, event=0, channel=1,
                                            location=d.location(t), data=jpeg))
                    await d.writer.drain()
            await self.wait_objects("media/", "photos", n * a.devices)
            await self.drain(env["FLEETCAM_INGEST_QUEUE_URL"], "ingest", n * a.devices)
            await self.settle()
            self.activities.append(Activity("photos", p.photos_per_day, n))

            # -- clips: request_video through the API, recorded by the gateway from the
            #    device's playback, packaged by the packager, ingested
            self.phase("clips")
            n = max(1, min(a.clips, math.ceil(p.clips_per_day)))
            for k in range(n):
                for d in sim.devices:
                    start = int(time.time()) - 600 - k * 120
                    await self.api("POST", f"/gw/devices/{ids[d.cfg.phone]}/commands-queue",
                                   body=[{"name": "request_video", "properties": {
                                       "channel": 1, "from": start, "duration": clip_seconds}}])
                await self.wait_objects("raw/", "clips", (k + 1) * a.devices, limit=180)
                await self.drain(self.stack.clip_queue, "packager", a.devices)
                await self.drain(env["FLEETCAM_INGEST_QUEUE_URL"], "ingest", a.devices)
            await self.settle()
            self.activities.append(Activity("clips", p.clips_per_day, n))

            # what each device now has
            self.phase("setup")
            for ident, dev in ids.items():
                r = await self.api("GET", f"/gw/devices/{dev}/media", query={
                    "data": json.dumps({"fields": "uuid,mime,size", "count": 1000})})
                self.files[dev] = json.loads(r["body"])["result"]
            if p.copy_and_delete:
                await self.copy_and_delete(ids)
            else:
                await self.views(ids)
            # storage is what a steady day leaves behind: taken before the expiry
            meter.snapshot()
            if not p.copy_and_delete:  # expiry after the TTL, by the sweeper
                self.phase("expire")
                runs = 0
                while self.sweep(offset=p.media_ttl_days * 86400 + 3600)["expired"] and runs < 20:
                    runs += 1
                self.activities.append(Activity(
                    "expire", p.photos_per_day + p.clips_per_day,
                    sum(len(v) for v in self.files.values()) // a.devices))
                self.sweep_runs_expire = runs + 1
            else:
                self.sweep_runs_expire = 0
            gateway_seconds = time.monotonic() - gw_started
            # -- the devices go offline (a session's other end)
            self.phase("disconnect")
            await sim.stop_all()
            await self.settle()
            self.activities.append(Activity("disconnect", p.connects_per_day, 1))
        finally:
            self.phase("teardown")
            await sim.stop_all()
            await gw.stop()
        return Replay(p, a.devices, self.activities, meter, gateway_seconds,
                      getattr(self, "sweep_runs_expire", 0), inits, mem, a.devices, self.dto,
                      time.perf_counter() - t_start, function_metrics(self.sink.metrics))

    async def views(self, ids: dict[str, int]) -> None:
        """Heavy: a tenth of the files viewed once; the rest of the API requests list pages."""
        p, a = self.p, self.args
        photos = {d: [f for f in fs if f["mime"].startswith("image/")]
                  for d, fs in self.files.items()}
        clips = {d: [f for f in fs if not f["mime"].startswith("image/")]
                 for d, fs in self.files.items()}
        self.phase("view-photos")
        n = max(1, min(a.views, len(min(photos.values(), key=len))))
        for d, fs in photos.items():
            for f in fs[:n]:
                await self.api("GET", f"/media/{f['uuid']}", content_bytes=p.photo_bytes)
        self.activities.append(Activity("view-photos", p.view_share * p.photos_per_day, n))
        self.phase("view-clips")
        for d, fs in clips.items():
            await self.api("GET", f"/media/{fs[0]['uuid']}", content_bytes=p.clip_bytes)
        self.activities.append(Activity("view-clips", p.view_share * p.clips_per_day, 1))
        # a list page holds 100 files: give each device that many (clones of its own items,
        # written around the meter), as a device keeping 30 days of files has
        self.phase("setup")
        self.clone_media(ids, 100)
        self.phase("lists")
        views = p.view_share * (p.photos_per_day + p.clips_per_day)
        for d in ids.values():
            for _ in range(a.lists):
                await self.api("GET", f"/gw/devices/{d}/media",
                               query={"data": json.dumps({"count": 100})})
        self.activities.append(Activity(
            "lists", max(0.0, p.api_requests_per_month / DAYS - views), a.lists))

    def clone_media(self, ids: dict[str, int], want: int) -> None:
        table = self.stack.env["FLEETCAM_MEDIA_TABLE"]
        shadow = self.meter.shadow
        items = shadow.scan(TableName=table)["Items"]
        by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for it in items:
            by_device[it["device_id"]["N"]].append(it)
        for dev, own in by_device.items():
            for i in range(max(0, want - len(own))):
                it = dict(own[i % len(own)])
                u = uuidlib.uuid4().hex
                it["uuid"] = {"S": u}
                if "sort_key" in it:
                    it["sort_key"] = {"S": it["sort_key"]["S"][:-32] + u}
                it.pop("expires_at", None)  # kept out of the sweep
                shadow.put_item(TableName=table, Item=it)

    async def copy_and_delete(self, ids: dict[str, int]) -> None:
        """Light: the customer's backend copies each new file and deletes it."""
        p = self.p
        for kind, rate, size in (("photos", p.photos_per_day, p.photo_bytes),
                                 ("clips", p.clips_per_day, p.clip_bytes)):
            self.phase(f"copy-{kind}")
            n = 0
            for dev, fs in self.files.items():
                mine = [f for f in fs if f["mime"].startswith("image/") == (kind == "photos")]
                for f in mine:
                    await self.api("GET", f"/media/{f['uuid']}", content_bytes=size)
                    await self.api("DELETE", f"/gw/devices/{dev}/media", body={"uuid": f["uuid"]})
                n = len(mine)
            self.sweep()  # unfinished object deletions, if any, are the next sweep's
            self.activities.append(Activity(f"copy-{kind}", rate, n))


# ----------------------------------------------------------------------------- cost model
@dataclasses.dataclass
class Line:
    name: str
    how: str
    """measured, computed, or both."""
    fleet_month: Callable[[int], float]
    """USD a month for a fleet of N devices."""


class Model:
    """Per-device counts from a replay, fleet-wide items per fleet size, priced."""

    def __init__(self, r: Replay, tpl: dict[str, Any], prices: dict[str, Any]) -> None:
        self.r, self.tpl, self.P = r, tpl, prices
        self.meter = r.meter
        base = self.meter.counts.get("sweep-base", Counter())
        self.sweep_base = base
        # per device-month counts of the device's own activities
        self.month: Counter[tuple[str, ...]] = Counter()
        self.by_activity: dict[str, Counter[tuple[str, ...]]] = {}
        self.scale: dict[str, float] = {}
        for act in r.activities:
            c = Counter(self.meter.counts.get(act.name, Counter()))
            if act.name.startswith("copy-") or act.name == "expire":
                runs = 1 if act.name.startswith("copy-") else r.sweep_runs
                for k, v in base.items():  # the sweeper runs that did it, less a bare run
                    c[k] -= v * runs
            f = act.per_day / act.sample / r.devices * DAYS if act.sample else 0.0
            self.scale[act.name] = f
            mine = self.by_activity.setdefault(act.name, Counter())
            for k, v in c.items():
                if v > 0:
                    self.month[k] += v * f
                    mine[k] += v * f

    # -- helpers
    def m(self, service: str, metric: str, detail: str | None = None) -> float:
        return sum(v for (s, mt, d), v in self.month.items()
                   if s == service and mt == metric and (detail is None or d == detail))

    def storage(self) -> tuple[float, float, dict[str, float]]:
        """(S3 GB-month, DynamoDB GB-month, DynamoDB GB-month by table) per device."""
        p = self.r.profile
        meter = self.meter
        noncurrent = float(default(self.tpl, "DeletedMediaRetentionDays"))

        def nominal(key: str, size: int) -> int:
            if key.startswith("media/") and key.endswith((".jpg", ".jpeg")):
                return p.photo_bytes
            if key.startswith(("media/", "raw/")):
                return p.clip_bytes
            return size

        s3 = 0.0
        self.s3_by_phase: Counter[str] = Counter()
        self.ddb_by_phase: Counter[str] = Counter()
        for key, (phase, size) in meter.storage_objects.items():
            # kept until the TTL, then a noncurrent version for DeletedMediaRetentionDays
            b = nominal(key, size) * self.scale.get(phase, 0.0) / DAYS * (
                p.media_ttl_days + noncurrent)
            s3 += b
            self.s3_by_phase[phase] += b / GB
        for phase, key, size in meter.storage_deleted:  # deleted (packaged raw clips, copies)
            b = nominal(key, size) * self.scale.get(phase, 0.0) / DAYS * noncurrent
            s3 += b
            self.s3_by_phase[phase] += b / GB
        ddb = 0.0
        by_table: Counter[str] = Counter()
        for (table, _), st in meter.storage_items.items():
            if st.lifetime_days is None:  # one per device (device, ident, counters...)
                gb = st.size / self.r.devices / GB if st.phase in ("setup", "connect") else \
                    st.size * self.scale.get(st.phase, 0.0) / DAYS * 30 / GB
            else:
                gb = st.size * self.scale.get(st.phase, 0.0) / DAYS * st.lifetime_days / GB
            ddb += gb
            by_table[table] += gb
            self.ddb_by_phase[st.phase] += gb
        return s3 / GB, ddb, dict(by_table)

    def activity_usd(self, name: str) -> float:
        """What one activity costs a device-month: its requests, units, invocations,
        messages, transfer and logs, and the storage of what it wrote."""
        P = self.P
        c = self.by_activity.get(name, Counter())

        def g(service: str, metric: str, details: tuple[str, ...] = ()) -> float:
            return sum(v for (s, mt, det), v in c.items()
                       if s == service and mt == metric and (not details or det in details))

        self.storage()
        logs = g("logs", "bytes") + g("lambda", "invocations") * 500 + g("apigw", "requests") * 400
        retention = float(default(self.tpl, "LogRetentionDays"))
        cw, lam, d = P["cloudwatch"], P["lambda"], P["dynamodb"]
        return (g("s3", "put_class") * P["s3"]["put_per_1000"] / 1000
                + g("s3", "get_class") * P["s3"]["get_per_1000"] / 1000
                + g("dynamodb", "wru") * d["wru_per_million"] / 1e6
                + g("dynamodb", "rru") * d["rru_per_million"] / 1e6
                + g("lambda", "gb_s") * lam["gb_second_arm64"]
                + g("lambda", "invocations") * lam["requests_per_million"] / 1e6
                + g("apigw", "requests") * P["api_gateway_rest"]["requests_per_million"] / 1e6
                + (g("sqs", "requests") + g("s3", "put_class", ("PutObject",
                                                                "CompleteMultipartUpload")))
                * P["sqs"]["requests_per_million"] / 1e6
                + g("iot", "units") * 2 * P["iot_core"]["messages_per_million"] / 1e6
                + self.r.dto_bytes[name] * self.scale.get(name, 0.0) / GB
                * P["data_transfer_out_gb"]
                + logs / GB * (cw["logs_ingested_gb"] + retention / DAYS
                               * cw["logs_stored_gb_month"])
                + self.s3_by_phase.get(name, 0.0) * P["s3"]["storage_gb_month"]
                + self.ddb_by_phase.get(name, 0.0) * d["storage_gb_month"])

    def pitr_tables(self) -> set[str]:
        out = set()
        for name, res in self.tpl["Resources"].items():
            if res["Type"] == "AWS::DynamoDB::Table" and res["Properties"].get(
                    "PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
                out.add("fleetcam-" + name.removesuffix("Table").lower())
        return out

    def housekeeping_month(self, connections_per_task: float) -> tuple[float, float, float]:
        """(RRU, WRU, requests) a gateway task's polling makes in a month, its reads of the
        connections it holds scaled from the sample's to ``connections_per_task``.

        The gateway reads its connections and assigned commands in full only when its change
        marker moves (a command queued for one of its devices), for a few ticks after, and
        as a safety net every so often; every tick it reads only the marker. A compressed
        day moves the marker far more often than a real one, so the full reads are priced
        per move at the fleet's rate, and the rest per second as measured."""
        from fleetcam.gateway import server

        seconds = self.r.gateway_seconds
        month = 3600 * self.P["hours_per_month"]
        k = connections_per_task / max(1, self.r.connected)
        fixed = [0.0, 0.0, 0.0]
        full = [0.0, 0.0, 0.0]
        syncs = 0
        for c in self.meter.calls.get("housekeeping", []):
            is_full = c["op"] == "Query" and (
                (c["table"].endswith("-connections") and c["index"] == "by-gateway")
                or (c["table"].endswith("-commands") and c["index"] == "by-gateway-queued"))
            rru = c.get("rru", 0.0)
            if c["op"] in ("Query", "Scan") and c["table"].endswith("-connections"):
                rru = runits(int(c["bytes"] * k), c["consistent"])
            acc = full if is_full else fixed
            acc[0] += rru
            acc[1] += c.get("wru", 0.0)
            acc[2] += 1
            syncs += is_full and c["table"].endswith("-connections")
        settle = getattr(server, "SETTLE_TICKS", None)
        every = getattr(server, "FULL_SYNC_EVERY", None)
        if not settle or not every or not syncs:  # a gateway without markers: all per second
            return tuple((f + g) * month / seconds for f, g in zip(fixed, full))  # type: ignore
        moves = self.r.profile.clips_per_day * DAYS * connections_per_task
        ticks = month / getattr(server, "HOUSEKEEPING_EVERY", 1.0)
        full_syncs = min(ticks, settle * moves + month / every)
        return tuple(f * month / seconds + g / syncs * full_syncs  # type: ignore
                     for f, g in zip(fixed, full))

    def sweep_run(self, devices: int) -> tuple[float, float]:
        """(RRU, WRU) of one sweeper run with nothing to expire, its scans of the Devices
        table scaled to the fleet."""
        rru = wru = 0.0
        for c in self.meter.calls.get("sweep-base", []):
            wru += c.get("wru", 0.0)
            if c["op"] == "Scan" and c["table"].endswith("-devices"):
                rru += runits(int(c["bytes"] * devices / self.r.devices), c["consistent"])
            else:
                rru += c.get("rru", 0.0)
        return rru, wru

    def lines(self) -> list[Line]:
        P, tpl, r, p = self.P, self.tpl, self.r, self.r.profile
        H = P["hours_per_month"]
        s3gb, ddbgb, _ = self.storage()
        pitr = self.pitr_tables()
        _, _, by_table = self.storage()
        pitr_gb = sum(v for t, v in by_table.items() if t in pitr)
        lam = P["lambda"]

        def lambda_cost(gbs: float, inv: float) -> float:
            return gbs * lam["gb_second_arm64"] + inv * lam["requests_per_million"] / 1e6

        per_task = int(default(tpl, "GatewayConnectionsPerTask"))
        min_tasks = int(default(tpl, "GatewayDesiredCount"))

        def tasks(n: int) -> int:
            return max(min_tasks, math.ceil(n / per_task))

        fg = P["fargate_arm64"]
        task_month = (int(default(tpl, "GatewayCpu")) / 1024 * fg["vcpu_hour"]
                      + int(default(tpl, "GatewayMemory")) / 1024 * fg["gb_hour"]) * H
        d = P["dynamodb"]
        sweeps = 30 * 24 * 12 * DAYS / 30  # rate(5 minutes)
        sweep_gbs = self.meter.counts["sweep-base"][("lambda", "gb_s", "sweeper")]
        up_bytes = (p.photos_per_day * p.photo_bytes + p.clips_per_day * p.clip_bytes) * DAYS
        dto = sum(self.r.dto_bytes[a.name] * self.scale.get(a.name, 0.0)
                  for a in r.activities)
        api_requests = self.m("apigw", "requests")
        invocations = self.m("lambda", "invocations")
        log_bytes = self.m("logs", "bytes") + invocations * 500 + api_requests * 400
        retention = float(default(tpl, "LogRetentionDays"))
        alarms = sum(1 for v in tpl["Resources"].values() if v["Type"] == "AWS::CloudWatch::Alarm")
        filters = sum(1 for v in tpl["Resources"].values()
                      if v["Type"] == "AWS::Logs::MetricFilter")
        metrics = r.emf_metrics + gateway_metrics() + filters
        secrets = sum(1 for v in tpl["Resources"].values()
                      if v["Type"] == "AWS::SecretsManager::Secret")
        rule = next(v["Properties"]["SamplingRule"] for v in tpl["Resources"].values()
                    if v["Type"] == "AWS::XRay::SamplingRule")
        rate = float(default(tpl, "TraceSampleRate"))
        per_second = rule["ReservoirSize"]
        if isinstance(per_second, dict):  # {"Ref": parameter}
            per_second = default(tpl, per_second["Ref"])
        per_second = int(float(per_second))
        reservoir = per_second * 3600 * H
        cross_zone = str(default(tpl, "GatewayCrossZone")).lower() == "true"
        iot = P["iot_core"]
        # S3 notifications into SQS are requests too: one per object created under a prefix
        notifications = sum(v for (s, mt, det), v in self.month.items()
                            if s == "s3" and mt == "put_class" and det in (
                                "PutObject", "CompleteMultipartUpload"))
        sqs_sources = sum(1 for v in tpl["Resources"].values()
                          if v["Type"] == "AWS::Serverless::Function"
                          for e in v["Properties"].get("Events", {}).values()
                          if e["Type"] == "SQS")
        pollers = sqs_sources * 5 * 3 * 60 * H  # 5 long polls of 20 s each per queue
        init = sum(self.r.inits[f] * self.r.memory[f] / 1024 for f in self.r.inits)

        def hk(n: int) -> tuple[float, float, float]:
            t = tasks(n)
            rru, wru, req = self.housekeeping_month(n / t)
            return rru * t, wru * t, req * t

        def traces(n: int) -> float:
            reqs = (api_requests + invocations) * n + sweeps
            return min(reqs, reservoir) + rate * max(0.0, reqs - reservoir)

        S3 = P["s3"]
        lines = [
            Line("S3 storage", "computed: objects counted, profile sizes, TTL + noncurrent",
                 lambda n: n * s3gb * S3["storage_gb_month"]),
            Line("S3 requests", "measured",
                 lambda n: n * (self.m("s3", "put_class") * S3["put_per_1000"] / 1000
                                + self.m("s3", "get_class") * S3["get_per_1000"] / 1000)),
            Line("DynamoDB writes", "measured",
                 lambda n: n * self.m("dynamodb", "wru") * d["wru_per_million"] / 1e6),
            Line("DynamoDB reads", "measured",
                 lambda n: n * self.m("dynamodb", "rru") * d["rru_per_million"] / 1e6),
            Line("DynamoDB storage", "measured: item sizes x TTLs",
                 lambda n: n * ddbgb * d["storage_gb_month"]),
            Line("DynamoDB PITR", "computed from measured storage",
                 lambda n: n * pitr_gb * d["pitr_gb_month"]),
            Line("gateway polling (DynamoDB)", "measured: marker reads per second, full reads "
                 "per command queued; scaled to tasks",
                 lambda n: hk(n)[0] * d["rru_per_million"] / 1e6
                 + hk(n)[1] * d["wru_per_million"] / 1e6),
            Line("Lambda (ingest, packager, API)", "measured",
                 lambda n: n * lambda_cost(self.m("lambda", "gb_s"), invocations)),
            Line("sweeper runs (5 min)", "measured run, Devices scan scaled",
                 lambda n: sweeps * (lambda_cost(sweep_gbs, 1)
                                     + self.sweep_run(n)[0] * d["rru_per_million"] / 1e6
                                     + self.sweep_run(n)[1] * d["wru_per_million"] / 1e6)),
            Line("Lambda cold starts", "measured init, one per function-hour",
                 lambda n: H * lambda_cost(init, 0)),
            Line("API Gateway REST", "measured",
                 lambda n: n * api_requests * P["api_gateway_rest"]["requests_per_million"]
                 / 1e6),
            Line("SQS", f"measured + computed notifications and empty polls ({sqs_sources} "
                 "queues)",
                 lambda n: (n * (self.m("sqs", "requests") + notifications) + pollers)
                 * P["sqs"]["requests_per_million"] / 1e6),
            Line("IoT Core", "measured publishes, 1 subscriber",
                 lambda n: n * self.m("iot", "units") * 2 * iot["messages_per_million"] / 1e6
                 + 60 * H * iot["connectivity_per_million_minutes"] / 1e6),
            Line("IoT authorizer", "computed: 1 session re-authorized every 5 min",
                 lambda n: lambda_cost(12 * H * 0.1 * memory_mb(tpl, "IotAuthorizerFunction")
                                       / 1024, 12 * H)),
            Line("data transfer out", "computed: profile sizes + measured JSON",
                 lambda n: n * dto / GB * P["data_transfer_out_gb"]),
            Line("NLB", "computed",
                 lambda n: H * (P["nlb"]["hour"] + P["nlb"]["lcu_hour"] * max(
                     n * up_bytes / H / GB, n * 1.1 / 100_000))),
            Line("Fargate tasks", f"computed: {per_task} connections a task, at least "
                 f"{min_tasks}", lambda n: tasks(n) * task_month),
            Line("public IPv4", "computed: a task each + 2 NLB zones",
                 lambda n: (tasks(n) + 2) * P["public_ipv4_hour"] * H),
            Line("cross-zone traffic", "computed: GatewayCrossZone "
                 + ("on" if cross_zone else "off (none)"),
                 lambda n: n * up_bytes / 2 / GB * 2 * P["cross_az_gb_each_way"] if cross_zone
                 else 0.0),
            Line("CloudWatch metrics, alarms", f"{r.emf_metrics} metrics of the functions "
                 f"(EMF seen + named), {metrics - r.emf_metrics} of the gateway and log "
                 f"filters; {alarms} alarms",
                 lambda n: metrics * P["cloudwatch"]["metric_month"]
                 + alarms * P["cloudwatch"]["alarm_month"]),
            Line("CloudWatch Logs", f"measured lines + computed platform lines, "
                 f"{retention:.0f} days kept",
                 lambda n: n * log_bytes / GB * (P["cloudwatch"]["logs_ingested_gb"]
                                                 + retention / DAYS
                                                 * P["cloudwatch"]["logs_stored_gb_month"])),
            Line("Secrets Manager", "computed",
                 lambda n: secrets * P["secrets_manager"]["secret_month"]),
            Line("X-Ray", f"computed: reservoir {per_second}/s + {rate:.0%}",
                 lambda n: traces(n) * P["xray"]["traces_recorded_per_million"] / 1e6),
        ]
        return lines

    def per_device(self, n: int) -> float:
        return sum(line.fleet_month(n) for line in self.lines()) / n

    def floor(self, n: int) -> tuple[float, dict[str, float]]:
        """A lower bound of the per-device-month cost at ``n`` devices under flespi's semantics
        (each device message published on MQTT by itself), whatever the code does: each
        position published and delivered once on IoT Core and stored as one item of one write
        unit; each file one S3 PUT, one item write and two events (stored, then expired or
        deleted) published and delivered; the profile's files in S3 for their TTL (no
        previews, no noncurrent versions) and its transfer out; and
        the smallest stack devices can reach over TCP (the NLB's hours, one gateway task and
        their public IPv4 addresses). Everything else (Lambda, the second object, indexes,
        counters, logs, alarms...) counts as zero."""
        P, p = self.P, self.r.profile
        iot = P["iot_core"]["messages_per_million"] / 1e6
        wru = P["dynamodb"]["wru_per_million"] / 1e6
        put = P["s3"]["put_per_1000"] / 1000
        files = (p.photos_per_day + p.clips_per_day) * DAYS
        fixed = {line.name: line.fleet_month(n) / n for line in self.lines()
                 if line.name in ("data transfer out", "Fargate tasks", "public IPv4")}
        stored = 0.0 if p.copy_and_delete else (
            (p.photos_per_day * p.photo_bytes + p.clips_per_day * p.clip_bytes)
            * p.media_ttl_days / GB)  # the files the profile keeps, nothing else
        nlb_hours = P["nlb"]["hour"] * P["hours_per_month"] / n
        parts = {"positions (IoT publish + delivery, one item)":
                 p.positions_per_day * DAYS * (2 * iot + wru),
                 "files (one PUT, one item, two events)": files * (put + wru + 4 * iot),
                 "S3 storage of the profile's files": stored * P["s3"]["storage_gb_month"],
                 **fixed, "NLB hours": nlb_hours}
        return sum(parts.values()), parts


def function_metrics(seen: set[tuple[str, str, tuple[str, ...]]]) -> int:
    """Custom metrics of the functions: those their EMF output showed in the replay, and
    those named in their code that the replay did not reach (the reaper's...)."""
    named = set()
    for f in (ROOT / "functions").glob("*/app.py"):
        named |= set(re.findall(r'add_metric\(name="(\w+)"', f.read_text()))
    return len(seen | {("fleetcam", n, ("service",)) for n in named
                       if n not in {name for _, name, _ in seen}})


def gateway_metrics() -> int:
    """The gateway task's own EMF metrics (printed every minute, so not seen in a replay):
    the names ``connection_metrics`` puts in its document."""
    import inspect

    from fleetcam.gateway import server

    src = inspect.getsource(server.connection_metrics)
    return len(set(re.findall(r'"Name": "(\w+)"', src))) or 2


def flespi_month(n: int, stored_gb_per_device: float, f: dict[str, Any]) -> tuple[float, str]:
    """EUR a month flespi's price list charges a fleet of ``n`` devices storing that much."""
    best: tuple[float, str] | None = None
    for plan in f["plans"]:
        if plan.get("commercial") is False or n > plan["max_devices"]:
            continue
        extra = max(0, n - plan["devices_included"])
        fee = plan["month"] + math.ceil(extra / 100) * plan["extra_100_devices"]
        storage = max(0.0, n * stored_gb_per_device - f["storage_included_gb"]) \
            * f["storage_gb_month"]
        if best is None or fee + storage < best[0]:
            best = (fee + storage, plan["name"])
    assert best is not None
    return best


def flespi_stored_gb(p: Profile) -> float:
    """Average media a device keeps on flespi: copied-and-deleted files stay minutes."""
    if p.copy_and_delete:
        return (p.photos_per_day * p.photo_bytes + p.clips_per_day * p.clip_bytes) \
            * (10 / 1440) / 1e9  # ten minutes each
    return (p.photos_per_day * p.photo_bytes + p.clips_per_day * p.clip_bytes) \
        * p.media_ttl_days / 1e9


# ----------------------------------------------------------------------------- output
def code_version() -> str:
    """The commit measured (and whether the work tree differs from it)."""
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def report(models: dict[str, Model], flespi: dict[str, Any], prices: dict[str, Any]
           ) -> tuple[str, dict[str, Any]]:
    rate = flespi["eur_usd"]
    out: dict[str, Any] = {"flespi": {}}
    lines: list[str] = []
    w = lines.append
    w(f"code {code_version()}; AWS prices: {PRICES.name} ({prices['region']}, "
      f"{prices['date']}); flespi: {FLESPI.name} ({flespi['date']}, EUR 1 = USD {rate})")
    for name, model in models.items():
        p = model.r.profile
        out[name] = {}
        out["flespi"][name] = {}
        w("")
        w(f"== {name}: {p.what}")
        w(f"   telemetry {p.positions_per_day:.0f} positions a day; replayed with "
          f"{model.r.devices} devices in {model.r.wall:.0f} s; samples per device: "
          + ", ".join(f"{a.name} {a.sample} of {a.per_day:.3g}/day" for a in model.r.activities))
        w(f"   {'devices':>8} {'USD/device-month':>17} {'flespi USD':>11} {'flespi plan':>12}"
          f" {'ratio':>6}")
        gb = flespi_stored_gb(p)
        for n in FLEETS:
            usd = model.per_device(n)
            eur, plan = flespi_month(n, gb, flespi)
            fl = eur * rate / n
            out[name][str(n)] = round(usd, 4)
            out["flespi"][name][str(n)] = round(fl, 4)
            w(f"   {n:>8} {usd:>17.3f} {fl:>11.3f} {plan:>12} {usd / fl:>6.2f}")
        acts = {a.name: model.activity_usd(a.name) for a in model.r.activities}
        total = model.per_device(1000)
        w("   by activity, USD per device-month (storage of what it wrote included): "
          + ", ".join(f"{k} {v:.4f}" for k, v in acts.items())
          + f"; fleet-wide and fixed at 1,000 devices {total - sum(acts.values()):.4f}")
        w(f"   line items, USD per device-month ({' / '.join(str(n) for n in FLEETS)} devices):")
        for line in sorted(model.lines(), key=lambda ln: -ln.fleet_month(1000)):
            vals = " / ".join(f"{line.fleet_month(n) / n:.4f}" for n in FLEETS)
            w(f"     {line.name:<32} {vals:<26} {line.how}")
        c = model.month
        w("   counts per device-month (measured, scaled):")
        s3 = {k: model.m("s3", "requests", k) for k in ("PUT", "GET", "HEAD", "LIST", "DELETE")}
        w("     S3 " + ", ".join(f"{k} {v:,.0f}" for k, v in s3.items()))
        w(f"     DynamoDB {model.m('dynamodb', 'wru'):,.0f} WRU, {model.m('dynamodb', 'rru'):,.0f}"
          f" RRU, {model.m('dynamodb', 'requests'):,.0f} requests")
        by_table = Counter()
        for (s, mt, det), v in c.items():
            if s == "dynamodb" and mt == "wru":
                by_table[det.removeprefix("fleetcam-")] += v
        w("       WRU by table: " + ", ".join(f"{t} {v:,.0f}" for t, v in by_table.most_common()))
        by_act = {a.name: sum(v * model.scale[a.name] for (s, mt, _), v in
                              model.meter.counts.get(a.name, Counter()).items()
                              if s == "dynamodb" and mt == "wru") for a in model.r.activities}
        w("       WRU by activity: " + ", ".join(f"{k} {v:,.0f}" for k, v in by_act.items()))
        w(f"     SQS {model.m('sqs', 'requests'):,.0f} requests; "
          f"IoT {model.m('iot', 'requests'):,.0f}"
          f" publishes = {model.m('iot', 'units'):,.0f} units of 5 KB (x2 with the delivery)")
        topics: Counter[str] = Counter()
        for (s, mt, det), v in c.items():
            if s == "iot" and mt == "units":
                topics[det] += v
        w("       IoT units by topic: " + ", ".join(f"{t} {v:,.0f}"
                                                   for t, v in topics.most_common(8)))
        for fn in ("ingest", "packager", "api"):
            inv, gbs = model.m("lambda", "invocations", fn), model.m("lambda", "gb_s", fn)
            if inv:
                w(f"     Lambda {fn}: {inv:,.0f} invocations, {gbs:,.0f} GB-s "
                  f"({gbs / inv * 1024 / model.r.memory[fn] * 1000:.0f} ms each at "
                  f"{model.r.memory[fn]} MB)")
        s3gb, ddbgb, tables = model.storage()
        w(f"     storage: S3 {s3gb:.3f} GB, DynamoDB {ddbgb * 1024:.1f} MB ("
          + ", ".join(f"{t.removeprefix('fleetcam-')} {v * 1024:.1f}"
                      for t, v in sorted(tables.items(), key=lambda x: -x[1]) if v * 1024 >= 0.05)
          + ")")
        hr, hw, hq = model.housekeeping_month(2000)
        w(f"     gateway polling, a task with 2,000 connections: {hq:,.0f} requests, "
          f"{hr:,.0f} RRU, {hw:,.0f} WRU a month")
        sr, sw = model.sweep_run(1000)
        w(f"     sweeper run with nothing to do (1,000 devices): {sr:.1f} RRU, {sw:.1f} WRU")
        errs = sum(v for (s, mt, _), v in model.meter.total().items() if s == "meter")
        if errs:
            w(f"     (metering errors: {errs:.0f})")
    w("")
    w("Targets (issue 14):")
    if "heavy" in out:
        h = out["heavy"]["1000"]
        w(f"  heavy at 1,000 devices: ${h:.3f} per device-month, target <= $0.35: "
          f"{'met' if h <= 0.35 else 'NOT met'} ({h / 0.35:.2f}x the target)")
    if "light" in out:
        lt, fl = out["light"]["1000"], out["flespi"]["light"]["1000"]
        w(f"  light at 1,000 devices: ${lt:.3f} against flespi's ${fl:.3f} ({lt / fl:.2f}x), "
          f"target <= half: {'met' if lt <= fl / 2 else 'NOT met'}")
    w("  lower bound at 1,000 devices under flespi's per-message MQTT (Model.floor: what no "
      "code change on this stack goes below):")
    for name, model in models.items():
        total, parts = model.floor(1000)
        target = 0.35 if name == "heavy" else out["flespi"]["light"]["1000"] / 2
        w(f"    {name}: ${total:.3f} against the target ${target:.3f} ({total / target:.2f}x): "
          + ", ".join(f"{k} {v:.4f}" for k, v in parts.items()))
    return "\n".join(lines), out


# ----------------------------------------------------------------------------- main
def replay(profile: Profile, args: argparse.Namespace, server: Any, tpl: dict[str, Any]
           ) -> Replay:
    meter = Meter(server.url)
    meter.activate()
    sink = CountingSink(meter)
    try:
        stack = Stack(server, meter, tpl)
        return asyncio.run(Day(stack, profile, args, sink).run())
    finally:
        meter.deactivate()


def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from tests.aws.motoserver import DUMMY_ENV, MotoServer

    install_hooks()  # before any client exists
    os.environ.update(DUMMY_ENV)
    prices = json.loads(PRICES.read_text())
    flespi = json.loads(FLESPI.read_text())
    tpl = template()
    pos = positions_per_day(args.drive_hours, args.drive_every, args.park_every)
    profiles = make_profiles(pos)
    models: dict[str, Model] = {}
    server = MotoServer(txfix=True).start()  # moto_txfix: safe with the sweep's pool
    try:
        for name in args.profiles.split(","):
            print(f"replaying {name}...", file=sys.stderr, flush=True)
            r = replay(profiles[name], args, server, tpl)
            print(f"  {name}: {r.wall:.0f} s", file=sys.stderr, flush=True)
            models[name] = Model(r, tpl, prices)
    finally:
        server.stop()
    text, data = report(models, flespi, prices)
    if args.counts:
        Path(args.counts).write_text(json.dumps(raw_counts(models), indent=1))
    return text, data


def raw_counts(models: dict[str, Model]) -> dict[str, Any]:
    """Each activity's requests and units as measured (before scaling), by service."""
    out: dict[str, Any] = {}
    for name, model in models.items():
        acts: dict[str, Any] = {}
        for a in model.r.activities:
            c: Counter[str] = Counter()
            for (s, mt, det), v in model.meter.counts.get(a.name, Counter()).items():
                c[f"{s}.{mt}"] += v
                if s in ("s3", "lambda"):
                    c[f"{s}.{mt}.{det}"] += v
            acts[a.name] = {"per_day": a.per_day, "sample": a.sample, "counts": dict(c)}
        out[name] = {"devices": model.r.devices, "activities": acts}
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON table")
    ap.add_argument("--profiles", default="heavy,light")
    ap.add_argument("--devices", type=int, default=2, help="sample devices replayed")
    ap.add_argument("--positions", type=int, default=60, help="positions replayed a device")
    ap.add_argument("--photos", type=int, default=10, help="photos replayed a device")
    ap.add_argument("--clips", type=int, default=2, help="clips replayed a device")
    ap.add_argument("--views", type=int, default=3, help="photo views replayed a device")
    ap.add_argument("--lists", type=int, default=3, help="list pages replayed a device")
    ap.add_argument("--clip-seconds", type=int, default=10,
                    help="length of a replayed clip (its bitrate makes it the profile's size)")
    ap.add_argument("--batch", type=int, default=1,
                    help="SQS messages per invocation (the template sets no batching window, "
                         "so objects trickling in arrive one by one)")
    ap.add_argument("--counts", metavar="PATH",
                    help="also write the raw counts of each activity there (JSON)")
    ap.add_argument("--drive-hours", type=float, default=10.0)
    ap.add_argument("--drive-every", type=float, default=30.0,
                    help="seconds between positions while driving")
    ap.add_argument("--park-every", type=float, default=600.0,
                    help="seconds between positions while parked")
    return ap


def main() -> int:
    args = parser().parse_args()
    text, data = run(args)
    if args.json:
        print(json.dumps({k: data[k] for k in ("heavy", "light", "flespi") if k in data}))
    else:
        print(text)
        print()
        print(json.dumps({k: data[k] for k in ("heavy", "light", "flespi") if k in data}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
