"""Fleet-wide requests on AWS: DynamoDB calls and wall time at 100, 1000 and 10000 devices.

Usage: ``.venv/bin/python bench/aws_fleet.py [--devices 100,1000,10000] [--files 2]
[--reference-max 1000] [--moto-as-is]``

Against moto's server (a real HTTP endpoint on 127.0.0.1): ``GET /gw/devices/all/media``
(count 1000) through the FastAPI app over the AWS container, and one sweep
(``RetentionService.sweep``, 1% of the files expired). The reference, measured in the same
run up to ``--reference-max`` devices, is the per-device way the code had before: the same
request with the fleet index switched off (one Query per device) and the sweep as a loop of
``RetentionService.enforce`` over every device. Exits non-zero if a result is wrong.

moto's server runs with tests/aws/moto_txfix.py (a transaction backs up the items it
writes, not every table it touches: moto's own way costs ~1.5 s a transaction at 30 000
items); ``--moto-as-is`` measures moto unchanged.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from tests.aws.metering import dynamodb_calls  # noqa: E402
from tests.aws.motoserver import DUMMY_ENV, MotoServer, provision  # noqa: E402

SWEEP_TIMEOUT = 300.0  # template.yaml: SweeperFunction Timeout
TOKEN = "C" * 64


EXPIRED_EVERY = 100


def seed(devices: int, files: int, now: float) -> int:
    """Devices and their files written in batches (no per-device reads); 1% of the files
    uploaded long enough ago to have expired. Returns the number expired."""
    from fleetcam.adapters.aws.dynamodb import _media_model
    from fleetcam.adapters.aws.models import DevicesModel, MediaModel
    from fleetcam.domain.models import MediaFile

    ttl = 86400
    with DevicesModel.batch_write() as batch:
        for d in range(1, devices + 1):
            batch.save(DevicesModel(id=d, name=f"cam{d}", ident=f"{d:012d}", protocol="jt808",
                                    media_ttl=ttl, media_rotate=0))
        batch.save(DevicesModel(id=0, next_id=devices))
    expired = 0
    with MediaModel.batch_write() as batch:
        for d in range(1, devices + 1):
            for n in range(files):
                i = (d - 1) * files + n
                old = i % EXPIRED_EVERY == 0
                expired += old
                uploaded = now - (2 * ttl if old else 3600) + n
                uuid = f"{d:08x}{n:024x}"
                batch.save(_media_model(MediaFile(
                    uuid=uuid, device_id=d, key=f"media/{d}/{uuid}.jpg", name=f"{n}.jpg",
                    size=100_000, mime="image/jpeg", created=uploaded, uploaded=uploaded,
                    modified=uploaded), ttl))
    return expired


def measure(fn: Any) -> tuple[Any, Counter[str], float]:
    with dynamodb_calls() as calls:
        t = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t
    return out, Counter(calls), wall


def fmt(calls: Counter[str]) -> str:
    return f"{sum(calls.values())} ({', '.join(f'{k} {v}' for k, v in calls.most_common())})"


def run(server: MotoServer, devices: int, files: int, reference: bool) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from fleetcam.api.app import create_app
    from fleetcam.config import Settings
    from fleetcam.runtime.aws import build_aws

    server.reset()
    env = provision(server.url)
    env.update({"FLEETCAM_ADMIN_TOKEN": TOKEN, "FLEETCAM_DEFAULT_MEDIA_TTL": "0"})
    os.environ.update(env)
    now = time.time()
    t = time.perf_counter()
    expired = seed(devices, files, now)
    seeding = time.perf_counter() - t
    c = build_aws(Settings.from_env())
    client = TestClient(create_app(c))
    client.headers["Authorization"] = f"FlespiToken {TOKEN}"
    rows = []

    def listing() -> int:
        r = client.get("/gw/devices/all/media", params={"data": '{"count": 1000}'})
        assert r.status_code == 200, r.text
        return len(r.json()["result"])

    print(f"  {devices} devices: seeded {devices * files} files in {seeding:.1f} s",
          file=sys.stderr)
    got, calls, wall = measure(listing)
    assert got == min(1000, devices * files), got
    row: dict[str, Any] = {"what": "GET /gw/devices/all/media", "devices": devices,
                           "calls": calls, "wall": wall}
    if reference:
        c.index.fleet_min = 10**9  # type: ignore[attr-defined]
        _, row["ref_calls"], row["ref_wall"] = measure(listing)
        c.index.fleet_min = 16  # type: ignore[attr-defined]
    rows.append(row)
    print(f"  {devices} devices: listing {fmt(calls)} in {wall:.2f} s", file=sys.stderr)

    if reference:  # first, on a copy of the state: the per-device sweep of before
        def old_sweep() -> int:
            c.retention.per_device_ttl = True  # the AWS runtime no longer expires this way
            try:
                n = sum(len(c.retention.enforce(d)) for d in c.devices.repo.list())
            finally:
                c.retention.per_device_ttl = False
            c.media.finish_deletions()
            return n

        n_old, ref_calls, ref_wall = measure(old_sweep)
        assert n_old == expired, (n_old, expired)
        server.reset()
        os.environ.update(provision(server.url))
        seed(devices, files, now)
    n, calls, wall = measure(c.retention.sweep)
    assert n == expired, (n, expired)
    print(f"  {devices} devices: sweep {fmt(calls)} in {wall:.2f} s", file=sys.stderr)
    row = {"what": f"sweep ({expired} expired)", "devices": devices, "calls": calls,
           "wall": wall}
    if reference:
        row["ref_calls"], row["ref_wall"] = ref_calls, ref_wall
    rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", default="100,1000,10000")
    ap.add_argument("--files", type=int, default=2, help="files per device")
    ap.add_argument("--expired-every", type=int, default=100,
                    help="one file in this many has expired when the sweep runs")
    ap.add_argument("--reference-max", type=int, default=1000,
                    help="measure the per-device reference up to this many devices")
    ap.add_argument("--moto-as-is", action="store_true",
                    help="moto without tests/aws/moto_txfix.py (whole-table transaction backups)")
    args = ap.parse_args()
    global EXPIRED_EVERY
    EXPIRED_EVERY = args.expired_every
    os.environ.update(DUMMY_ENV)
    sizes = [int(x) for x in args.devices.split(",")]
    server = MotoServer(txfix=not args.moto_as_is).start()
    print(f"moto: {'as is (whole-table transaction backups)' if args.moto_as_is else 'moto_txfix (item backups)'}")
    try:
        rows = [r for n in sizes for r in run(server, n, args.files, n <= args.reference_max)]
    finally:
        server.stop()
    print(f"{'request':<28} {'devices':>7} {'calls':>6} {'wall s':>7} {'ref calls':>9}"
          f" {'ref wall s':>10} {'calls/ref':>9}")
    for r in rows:
        ref = r.get("ref_calls")
        refn = sum(ref.values()) if ref else None
        print(f"{r['what']:<28} {r['devices']:>7} {sum(r['calls'].values()):>6} "
              f"{r['wall']:>7.2f} {refn if refn is not None else '-':>9} "
              f"{r['ref_wall'] if ref else float('nan'):>10.2f} "
              f"{sum(r['calls'].values()) / refn if refn else float('nan'):>9.3f}")
    print()
    for r in rows:
        print(f"{r['what']} at {r['devices']}: {fmt(r['calls'])}")
    sweeps = [r for r in rows if r["what"].startswith("sweep")]
    biggest = max(sweeps, key=lambda r: r["devices"])
    print(f"\nlargest sweep ({biggest['devices']} devices): {biggest['wall']:.1f} s against moto,"
          f" target under {SWEEP_TIMEOUT / 10:.0f} s (a tenth of the function's timeout):"
          f" {'met' if biggest['wall'] < SWEEP_TIMEOUT / 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
