"""bench/aws_cost.py at its smallest: the replay counts what each activity really asks of
AWS (moto's server), and ``--json`` has exactly the issue's shape. No timing is checked."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FLEETS = {"100", "1000", "10000"}


def _run(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    counts = tmp_path / "counts.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "aws_cost.py"), "--json", "--devices", "1",
         "--photos", "1", "--clips", "1", "--positions", "3", "--views", "1", "--lists", "1",
         "--counts", str(counts)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout  # --json prints the JSON and nothing else
    return json.loads(lines[0]), json.loads(counts.read_text())


def test_replay_counts_and_json_shape(tmp_path: Path) -> None:
    table, counts = _run(tmp_path)

    # --json: {"heavy": {"100": usd, ...}, "light": {...}, "flespi": {"heavy": ..., "light": ...}}
    assert set(table) == {"heavy", "light", "flespi"}
    assert set(table["flespi"]) == {"heavy", "light"}
    for row in (table["heavy"], table["light"], table["flespi"]["heavy"],
                table["flespi"]["light"]):
        assert set(row) == FLEETS
        assert all(isinstance(v, float) and v > 0 for v in row.values()), row
        assert row["100"] >= row["1000"] >= row["10000"]  # fixed costs spread thinner
    assert table["heavy"]["1000"] > table["light"]["1000"]
    assert table["flespi"]["heavy"]["1000"] > table["flespi"]["light"]["1000"]

    for profile in ("heavy", "light"):
        acts = {k: v["counts"] for k, v in counts[profile]["activities"].items()}

        def c(act: str, key: str) -> float:
            return float(acts[act].get(key, 0))

        # a position: one stored message (a write of about 1 KB) and one MQTT publish
        n = counts[profile]["activities"]["positions"]["sample"]
        assert n == 3
        assert n <= c("positions", "dynamodb.wru") <= 10 * n
        assert n <= c("positions", "iot.units") <= 5 * n
        assert c("positions", "s3.requests") == 0
        assert c("positions", "lambda.invocations") == 0

        # a photo: the gateway's PUT, the ingest function once, a record in a transaction
        assert c("photos", "s3.requests.PUT") >= 1
        assert c("photos", "s3.requests.GET") + c("photos", "s3.requests.HEAD") >= 1
        assert c("photos", "lambda.invocations.ingest") == 1
        assert c("photos", "lambda.gb_s.ingest") > 0
        assert 5 <= c("photos", "dynamodb.wru") <= 300  # 9 since the media GSIs are 3
        assert c("photos", "dynamodb.rru") > 0
        assert c("photos", "sqs.requests") >= 2  # receive + delete
        assert c("photos", "iot.units") >= 1

        # a clip: asked through the API, the raw recording packaged, the MP4 ingested
        assert c("clips", "apigw.requests") == 1
        assert c("clips", "lambda.invocations.packager") == 1
        assert c("clips", "lambda.invocations.ingest") == 1
        assert c("clips", "lambda.invocations.api") == 1
        assert c("clips", "s3.requests.PUT") >= 2  # raw/ and media/
        assert c("clips", "s3.requests.DELETE") >= 1  # the raw clip, once packaged
        assert c("clips", "dynamodb.wru") >= 10

    heavy = {k: v["counts"] for k, v in counts["heavy"]["activities"].items()}
    assert heavy["view-photos"].get("apigw.requests") == 1
    assert heavy["view-clips"].get("s3.requests.GET", 0) >= 1  # 307 to a pre-signed link
    assert heavy["lists"].get("dynamodb.rru", 0) >= 2  # a page of 100 files (20 KB or more)
    assert heavy["expire"].get("dynamodb.wru", 0) >= 10  # the sweeper removed the files
    assert heavy["expire"].get("s3.requests.DELETE", 0) >= 1
    light = {k: v["counts"] for k, v in counts["light"]["activities"].items()}
    assert light["copy-photos"].get("apigw.requests") == 2  # GET, then DELETE
    assert light["copy-photos"].get("dynamodb.wru", 0) >= 5
