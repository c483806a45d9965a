"""checkov on template.yaml, on the template as the SAM transform hands it to CloudFormation,
and on gateway/Dockerfile: no finding beyond the commented allow-list in .checkov.yaml (and
the commented skips in template.yaml resources' Metadata, counted with it).

checkov lives in a venv of its own (`make install` puts it in .venv/checkov: its exact pins
would downgrade the project's boto3). Run this alone with
`.venv/bin/python -m pytest tests/aws/test_security_scan.py -q`, or checkov itself from the
repository root: `.venv/checkov/bin/checkov -f template.yaml -f gateway/Dockerfile`
(it reads .checkov.yaml from the current folder).
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DOCKERFILE = ROOT / "gateway" / "Dockerfile"
ALLOW_LIST = ROOT / ".checkov.yaml"
MAX_ALLOWED = 11
"""Entries in .checkov.yaml plus skips in template.yaml's Metadata: a new finding gets fixed,
not listed."""


def _checkov() -> str:
    found = os.environ.get("FLEETCAM_CHECKOV") or next(
        (str(p) for p in (Path(sys.prefix) / "checkov" / "bin" / "checkov",)
         if p.is_file()), None) or shutil.which("checkov")
    if found:
        return found
    message = "checkov is not installed: `make install` puts it in .venv/checkov"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def allow_list() -> dict[str, str]:
    """check id -> the comment above it in .checkov.yaml (every entry must have one)."""
    out: dict[str, str] = {}
    comment: list[str] = []
    in_list = False
    for line in ALLOW_LIST.read_text().splitlines():
        stripped = line.strip()
        if re.match(r"^skip-check:\s*$", line):
            in_list, comment = True, []
        elif in_list and stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif in_list and stripped.startswith("- "):
            check = stripped[2:].split("#")[0].strip()
            out[check] = " ".join(comment).strip()
            comment = []
        elif stripped and not line.startswith((" ", "\t", "#")):
            in_list = False
    return out


def _sam_transform(tmp_path: Path) -> Path:
    """The template as CloudFormation gets it (roles, stages, event mappings included)."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.translator.transform import transform

    class BundledPolicies:
        def load(self) -> dict[str, str]:
            return get_bundled_managed_policy_map("aws")  # type: ignore[no-any-return]

    tpl, problems = decode(str(TEMPLATE))
    assert not problems, problems
    tpl = copy.deepcopy(json.loads(json.dumps(tpl)))
    for res in tpl["Resources"].values():  # sam package would upload these
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://fleetcam-artifacts/{props[key].strip('/')}.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        out = transform(tpl, {}, BundledPolicies())
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(out, indent=1))
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over the three files, every check on (the allow-list is applied by the
    test, so an entry that no longer matches anything is caught too)."""
    checkov = _checkov()
    work = tmp_path_factory.mktemp("checkov")
    transformed = _sam_transform(work)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_CONFIG": "1"}
    # run from an empty folder: checkov would read .checkov.yaml (and skip) from the cwd
    r = subprocess.run(
        [checkov, "--framework", "cloudformation", "dockerfile", "--skip-download",
         "--output", "json", "--soft-fail",
         "-f", str(TEMPLATE), "-f", str(transformed), "-f", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = json.loads(r.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {rep["check_type"]: rep for rep in reports}
    assert set(by_type) == {"cloudformation", "dockerfile"}, (set(by_type), r.stderr[-2000:])
    return by_type


def _findings(scan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted({(f["check_id"], f["file_path"].rsplit("/", 1)[-1], f["resource"])
                   for rep in scan.values() for f in rep["results"]["failed_checks"]})


def test_every_file_was_scanned(scan: dict[str, Any]) -> None:
    for rep in scan.values():
        assert rep["summary"]["parsing_errors"] == 0, rep["summary"]
        assert rep["summary"]["passed"] > 0, rep["summary"]
    scanned = {f["file_path"].rsplit("/", 1)[-1] for rep in scan.values()
               for f in rep["results"]["passed_checks"]}
    assert scanned == {"template.yaml", "transformed.json", "Dockerfile"}


def test_no_finding_beyond_the_allow_list(scan: dict[str, Any]) -> None:
    allowed = allow_list()
    left = [f for f in _findings(scan) if f[0] not in allowed]
    assert not left, "fix these, or allow-list with a reason in .checkov.yaml:\n" + "\n".join(
        f"{check} {file} {resource}" for check, file, resource in left)


def _inline_skips(scan: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(check id, resource) -> comment, for each skip in a resource's Metadata (template.yaml)."""
    return {(s["check_id"], s["resource"].rsplit(".", 1)[-1]):
            s["check_result"].get("suppress_comment", "")
            for rep in scan.values() for s in rep["results"]["skipped_checks"]}


def test_the_allow_list_is_short_commented_and_current(scan: dict[str, Any]) -> None:
    allowed = allow_list()
    inline = _inline_skips(scan)
    assert 0 < len(allowed) + len(inline) <= MAX_ALLOWED, (sorted(allowed), sorted(inline))
    for check, reason in [*allowed.items(), *((c, r) for (c, _), r in inline.items())]:
        assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check), check
        assert len(reason) >= 20 and reason != "No comment provided", \
            f"{check} needs a comment saying why it is accepted"
    fired = {f[0] for f in _findings(scan)}
    stale = sorted(set(allowed) - fired)
    assert not stale, f"no longer found, remove from .checkov.yaml: {stale}"


def test_every_queue_is_encrypted_though_checkov_misses_it() -> None:
    """CKV_AWS_27 is allow-listed because checkov knows only KMS keys: SSE-SQS must stay on."""
    tpl, _ = decode(str(TEMPLATE))
    queues = {k: v["Properties"] for k, v in tpl["Resources"].items()
              if v["Type"] == "AWS::SQS::Queue"}
    assert queues
    for name, props in queues.items():
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
