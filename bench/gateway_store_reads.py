"""An idle gateway's shared-store traffic on AWS: DynamoDB calls and read units a minute.

Usage: ``.venv/bin/python bench/gateway_store_reads.py [--devices 1000] [--seconds 60]
[--no-reference]``

Against moto's server (a real HTTP endpoint on 127.0.0.1): a gateway copy over the AWS
container (``build_aws``) is started on ephemeral ports with ``--devices`` connections
registered as its own in the shared connections table, as after its devices connected, and
left idle (no frames, no commands, no API calls) for ``--seconds``. Every DynamoDB request
it makes is counted by operation, with the read units DynamoDB would charge, estimated from
the items returned (their JSON size, rounded up to 4 KB per request; half for an eventually
consistent read). The reference, measured in the same run on a fresh table, is the way the
gateway read before change markers: the connection list and the queued commands read in
full every housekeeping tick (``Gateway.full_sync_every`` = one tick). It prints calls and
read units a minute, read units per device-month and the ratio against the reference.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from tests.aws.motoserver import DUMMY_ENV, MotoServer, provision  # noqa: E402

MONTH_MINUTES = 30 * 24 * 60
PRICE_PER_MILLION_RRU = 0.125
"""On-demand read request units, us-east-1 (USD per million), for the per-month figure."""


class Meter:
    """Counts PynamoDB's requests by operation and estimates their read units."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by_table: Counter[str] = Counter()
        self.rru = 0.0
        self.lock = threading.Lock()

    def __enter__(self) -> Meter:
        from pynamodb.connection.base import Connection

        self.original = Connection._make_api_call
        meter = self

        def counted(conn: Any, operation_name: str, operation_kwargs: Any,
                    *args: Any, **kwargs: Any) -> Any:
            out = meter.original(conn, operation_name, operation_kwargs, *args, **kwargs)
            meter.count(operation_name, operation_kwargs, out)
            return out

        Connection._make_api_call = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        from pynamodb.connection.base import Connection

        Connection._make_api_call = self.original  # type: ignore[method-assign]

    def count(self, op: str, kw: dict[str, Any], out: Any) -> None:
        out = out or {}
        consistent = bool(kw.get("ConsistentRead"))
        if op == "GetItem":
            items = [out["Item"]] if out.get("Item") else []
        elif op in ("Query", "Scan"):
            items = out.get("Items", [])
        elif op == "BatchGetItem":
            items = [i for rows in out.get("Responses", {}).values() for i in rows]
        else:
            items = None
        units = 0.0
        if items is not None:
            size = sum(len(json.dumps(i)) for i in items)
            units = max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)
        table = str(kw.get("TableName", "")).removeprefix("fleetcam-")
        if kw.get("IndexName"):
            table += "/" + kw["IndexName"]
        with self.lock:
            self.calls[op] += 1
            self.by_table[f"{op} {table}"] += 1
            self.rru += units


async def idle(devices: int, seconds: float, reference: bool) -> tuple[Meter, float]:
    from fleetcam.adapters.aws.models import ConnectionsModel
    from fleetcam.config import Settings
    from fleetcam.domain.gateway import Connection
    from fleetcam.gateway.server import HOUSEKEEPING_EVERY, Gateway
    from fleetcam.runtime.aws import build_aws

    settings = Settings.from_env()
    c = build_aws(settings)
    gw = Gateway(c)
    if reference:
        if not hasattr(gw, "full_sync_every"):
            raise SystemExit("this gateway has no full_sync_every: run with --no-reference")
        gw.full_sync_every = HOUSEKEEPING_EVERY
    now = time.time()
    with ConnectionsModel.batch_write() as batch:
        for i in range(1, devices + 1):
            conn = Connection(id=i, device_id=i, ident=f"{i:012d}", established=now,
                              source=f"10.0.0.{i % 250}:{40000 + i}", gateway_id=gw.gateway_id)
            batch.save(ConnectionsModel(id=i, device_id=i, gateway_id=gw.gateway_id,
                                        data=conn.__dict__))
    await gw.start()
    try:
        await asyncio.sleep(2)  # its first lease and reads: not idle traffic
        with Meter() as meter:
            t = time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - t
    finally:
        await gw.stop()
    return meter, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    os.environ.update(DUMMY_ENV)
    server = MotoServer(txfix=True).start()
    rows = []
    try:
        for reference in ([True, False] if not args.no_reference else [False]):
            server.reset()
            env = provision(server.url)
            env.update({"FLEETCAM_ADMIN_TOKEN": "C" * 64, "FLEETCAM_GATEWAY_HOST": "127.0.0.1",
                        "FLEETCAM_JT808_PORT": "0", "FLEETCAM_JT1078_PORT": "0",
                        "FLEETCAM_ATTACHMENT_PORT": "0", "FLEETCAM_TELTONIKA_PORT": "0",
                        "FLEETCAM_TELTONIKA_CAMERA_PORT": "0"})
            os.environ.update(env)
            meter, elapsed = asyncio.run(idle(args.devices, args.seconds, reference))
            per_min = 60.0 / elapsed
            rows.append(("reference (full reads every tick)" if reference else "now",
                         meter, per_min))
    finally:
        server.stop()
    print(f"idle gateway, {args.devices} connected devices, {args.seconds:.0f} s on moto")
    print(f"{'':36} {'calls/min':>9} {'read units/min':>14} {'RRU/device-month':>16}"
          f" {'USD/device-month':>16}")
    for name, meter, per_min in rows:
        calls = sum(meter.calls.values()) * per_min
        rru = meter.rru * per_min
        month = rru * MONTH_MINUTES / args.devices
        print(f"{name:36} {calls:>9.1f} {rru:>14.1f} {month:>16.0f}"
              f" {month * PRICE_PER_MILLION_RRU / 1e6:>16.5f}")
    for name, meter, per_min in rows:
        print(f"  {name}: " + ", ".join(f"{op} {n * per_min:.1f}/min"
                                         for op, n in meter.by_table.most_common()))
    if len(rows) == 2:
        (_, ref, ref_pm), (_, now, now_pm) = rows
        calls_ratio = (sum(now.calls.values()) * now_pm) / max(1e-9, sum(ref.calls.values())
                                                               * ref_pm)
        rru_ratio = (now.rru * now_pm) / max(1e-9, ref.rru * ref_pm)
        print(f"now/reference: calls {calls_ratio:.3f}, read units {rru_ratio:.4f}"
              f" ({1 / max(rru_ratio, 1e-9):.0f}x fewer read units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
