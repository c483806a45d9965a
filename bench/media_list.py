"""Paging one device's 100 000 media files with the stable cursor: API, index and a bare floor.

Usage: ``.venv/bin/python bench/media_list.py [--files 100000] [--page 100]``
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's TestClient notice
from fastapi.testclient import TestClient  # noqa: E402

from fleetcam.adapters.local.repos import SqliteMediaIndex  # noqa: E402
from fleetcam.api.app import create_app  # noqa: E402
from fleetcam.config import Settings  # noqa: E402
from fleetcam.domain import expr  # noqa: E402
from fleetcam.domain.keys import media_key  # noqa: E402
from fleetcam.domain.models import MediaFile, Preview, new_uuid  # noqa: E402
from fleetcam.ports import MediaQuery  # noqa: E402
from fleetcam.runtime.container import Container  # noqa: E402
from fleetcam.runtime.local import build_local  # noqa: E402

TOKEN = "B" * 64
T0 = 1_700_000_000.0
TARGET_P99_MS = 20.0
OTHER_DEVICES = 4
REFERENCE_SQL = ("SELECT * FROM media WHERE device_id=? AND (created, uuid) > (?, ?)"
                 " ORDER BY created, uuid LIMIT ?")


def fake_files(device_id: int, n: int, preview: str, rng: random.Random) -> Iterator[MediaFile]:
    """``n`` snapshots, ten seconds apart per channel; four channels share each instant, so
    ``created`` ties are common and the cursor must break them by uuid."""
    for i in range(n):
        created = T0 + (i // 4) * 10.0
        uuid = new_uuid()
        yield MediaFile(
            uuid=uuid, device_id=device_id, key=media_key(device_id, uuid, "jpg"),
            name=f"ch{i % 4 + 1}_{int(created)}.jpg", size=rng.randint(40_000, 400_000),
            mime="image/jpeg", created=created, uploaded=created + 5, modified=created + 5,
            protected=i % 50 == 0, shared=False, channel_id=i % 4 + 1,
            preview=Preview(jpeg=preview, meta={"type": "image", "width": 1280,
                                                "height": 720}),
            attributes={"event": "snapshot"} if i % 10 else {"event": "alarm", "speed": 87})


def build(data_dir: Path, files: int, others: int, preview_bytes: int) -> Container:
    settings = Settings(data_dir=data_dir, admin_token=TOKEN, public_url="http://bench.invalid",
                        default_media_ttl=0)
    c = build_local(settings)
    devices = c.devices.create([{"ident": f"bench-{i:04d}"} for i in range(1 + OTHER_DEVICES)])
    assert devices[0].id == 1, "the benchmark expects a fresh database"
    rng = random.Random(1)
    preview = base64.b64encode(rng.randbytes(preview_bytes * 3 // 4)).decode() \
        if preview_bytes else ""
    index = c.index
    assert isinstance(index, SqliteMediaIndex)
    index.add_many(fake_files(1, files, preview, rng))
    for d in devices[1:]:
        index.add_many(fake_files(d.id, others // OTHER_DEVICES, preview, rng))
    return c


def walk(page: Callable[[Any], tuple[list[str], Any]]) -> tuple[list[float], list[str]]:
    """Call ``page(cursor)`` until it returns no cursor: (ms per page, uuids in order)."""
    times: list[float] = []
    seen: list[str] = []
    cursor = None
    while True:
        t = time.perf_counter()
        uuids, cursor = page(cursor)
        times.append((time.perf_counter() - t) * 1000)
        seen += uuids
        if cursor is None:
            return times, seen


def reference_pager(db_path: str, device_id: int, count: int
                    ) -> Callable[[Any], tuple[list[str], Any]]:
    """The floor: the same keyset query on a bare sqlite3 connection, rows fetched as tuples."""
    conn = sqlite3.connect(db_path)
    names = [d[0] for d in conn.execute("SELECT * FROM media LIMIT 0").description]
    at_uuid, at_created = names.index("uuid"), names.index("created")

    def page(cursor: tuple[float, str] | None) -> tuple[list[str], Any]:
        after = cursor or (float("-inf"), "")
        rows = conn.execute(REFERENCE_SQL, (device_id, *after, count)).fetchall()
        uuids = [r[at_uuid] for r in rows]
        if len(rows) < count:
            return uuids, None
        return uuids, (rows[-1][at_created], rows[-1][at_uuid])

    return page


def index_pager(c: Container, device_id: int, count: int, flt: str = ""
                ) -> Callable[[Any], tuple[list[str], Any]]:
    node = expr.parse(flt)

    def page(cursor: tuple[float, str] | None) -> tuple[list[str], Any]:
        files = c.index.query(MediaQuery(device_ids=(device_id,), filter=node, count=count,
                                         cursor=cursor))
        nxt = (files[-1].created, files[-1].uuid) if len(files) == count else None
        return [f.uuid for f in files], nxt

    return page


def api_pager(client: TestClient, device_id: int, count: int, flt: str = ""
              ) -> Callable[[Any], tuple[list[str], Any]]:
    def page(cursor: str | None) -> tuple[list[str], Any]:
        data: dict[str, Any] = {"count": count}
        if cursor:
            data["cursor"] = cursor
        if flt:
            data["filter"] = flt
        r = client.get(f"/gw/devices/{device_id}/media", params={"data": json.dumps(data)})
        if r.status_code != 200:
            raise SystemExit(f"API answered {r.status_code}: {r.text[:300]}")
        body = r.json()
        return [f["uuid"] for f in body["result"]], body.get("next_cursor")

    return page


def pct(times: list[float]) -> tuple[float, float, float, float]:
    q = statistics.quantiles(times, n=100, method="inclusive")
    return q[49], q[94], q[98], max(times)


def exactly_once(seen: list[str], expected: set[str]) -> bool:
    counts = Counter(seen)
    return set(counts) == expected and all(v == 1 for v in counts.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000, help="files on device 1")
    ap.add_argument("--page", type=int, default=100, help="files a page (data.count)")
    ap.add_argument("--others", type=int, default=4_000,
                    help=f"files spread over {OTHER_DEVICES} other devices")
    ap.add_argument("--preview-bytes", type=int, default=0,
                    help="bytes of base64 preview per file (a real 320 px thumbnail is ~10 000)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fleetcam-bench-") as tmp, ExitStack() as stack:
        t = time.perf_counter()
        c = build(Path(tmp), args.files, args.others, args.preview_bytes)
        built = time.perf_counter() - t
        db_path = c.extras["db"].path
        db_mb = sum(os.path.getsize(p) for p in Path(tmp).glob("fleetcam.sqlite3*")) / 1e6
        expected = {r[0] for r in sqlite3.connect(db_path).execute(
            "SELECT uuid FROM media WHERE device_id=1")}
        print(f"fleetcam media listing benchmark (python {sys.version.split()[0]}, "
              f"sqlite {sqlite3.sqlite_version})")
        print(f"  database: {args.files} files on device 1 + {args.others} on {OTHER_DEVICES}"
              f" other devices, preview {args.preview_bytes} B a file; {db_mb:.0f} MB,"
              f" built in {built:.1f} s")

        # one client for the whole run: its event loop thread is started once, as a server's is
        client = stack.enter_context(TestClient(
            create_app(c), headers={"Authorization": f"FlespiToken {TOKEN}"}))
        walk(reference_pager(db_path, 1, args.page))  # warm the page cache, untimed
        results: dict[str, tuple[list[float], list[str]]] = {
            "reference sqlite3": walk(reference_pager(db_path, 1, args.page)),
            "index.query": walk(index_pager(c, 1, args.page)),
            "API GET /media": walk(api_pager(client, 1, args.page)),
        }

        ok = True
        print(f"\n  paging device 1 with data.count={args.page} and the cursor"
              "            ms a page")
        print(f"  {'':20} {'pages':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
              f"  each file once")
        for name, (times, seen) in results.items():
            once = exactly_once(seen, expected)
            ok &= once
            p50, p95, p99, mx = pct(times)
            print(f"  {name:20} {len(times):6d} {p50:8.2f} {p95:8.2f} {p99:8.2f} {mx:8.2f}"
                  f"  {'yes' if once else 'NO'}")
        ref99 = pct(results["reference sqlite3"][0])[2]
        api99 = pct(results["API GET /media"][0])[2]
        idx99 = pct(results["index.query"][0])[2]
        print(f"\n  api_p99 / reference_p99   = {api99 / ref99:6.1f}x")
        print(f"  index_p99 / reference_p99 = {idx99 / ref99:6.1f}x")
        print(f"  target API p99 < {TARGET_P99_MS:.0f} ms a page: "
              f"{'met' if api99 < TARGET_P99_MS else 'NOT met'} ({api99:.2f} ms)")

        created = sorted(r[0] for r in sqlite3.connect(db_path).execute(
            "SELECT created FROM media WHERE device_id=1"))
        lo, hi = created[len(created) * 45 // 100], created[len(created) * 55 // 100]
        flt = f"created>{lo:.0f}&&created<{hi:.0f}"
        want = {r[0] for r in sqlite3.connect(db_path).execute(
            "SELECT uuid FROM media WHERE device_id=1 AND created>? AND created<?", (lo, hi))}
        print(f"\n  filtered search {flt!r} (middle 10%: {len(want)} files)")
        for name, pager in (("index.query", index_pager(c, 1, args.page, flt)),
                            ("API GET /media", api_pager(client, 1, args.page, flt))):
            t = time.perf_counter()
            first, _ = pager(None)
            first_ms = (time.perf_counter() - t) * 1000
            times, seen = walk(pager)
            once = exactly_once(seen, want)
            ok &= once
            print(f"  {name:20} first page {first_ms:7.2f} ms; all {len(times)} pages"
                  f" {sum(times):8.1f} ms (p99 {pct(times)[2]:.2f} ms);"
                  f" each file once: {'yes' if once else 'NO'}")
        c.extras["db"].close()
    if not ok:
        print("\n  FAILED: some file was missed or seen twice", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
