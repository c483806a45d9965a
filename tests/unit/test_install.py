"""`make run` installs what the server needs and nothing of the test or AWS tooling."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLING = ("boto3", "botocore", "pynamodb", "mangum", "aws_lambda_powertools", "moto",
           "cfnlint", "samtranslator", "playwright", "hypothesis", "pytest", "schemathesis",
           "httpx", "requests")


def _make_dry_run(target: str, venv: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_make_run_installs_the_package_without_extras(tmp_path: Path) -> None:
    steps = _make_dry_run("run", tmp_path / "venv")
    installs = [line for line in steps.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all(line.rstrip().endswith("-e .") for line in installs), installs
    assert "[test" not in steps and "aws]" not in steps
    assert "fleetcam serve" in steps


def test_make_test_adds_the_test_tools_and_aws_extra(tmp_path: Path) -> None:
    steps = _make_dry_run("test", tmp_path / "venv")
    assert "-e '.[test,aws]'" in steps and "pytest" in steps


def test_runtime_dependencies_hold_no_tooling() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for name in ("pytest", "moto", "playwright", "boto3", "cfn-lint", "schemathesis"):
        assert name not in runtime
    assert "schemathesis" in " ".join(project["optional-dependencies"]["test"])


def test_the_server_imports_none_of_the_tooling() -> None:
    code = ("import sys, fleetcam.cli, fleetcam.runtime.dev, fleetcam.api.app\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT / "src").stdout.split()
    assert [m for m in TOOLING if m in out] == []
