"""The Lambda layers fit Lambda's 250 MB unzipped limit (downloads PyAV's wheel from PyPI)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from cfnlint.decode import decode
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 250 * 1024 * 1024
"""Function code plus all its layers, unzipped."""
MB = 1024 * 1024


def _installed_size(dist: metadata.Distribution) -> int:
    return sum(f.size or 0 for f in dist.files or [])


def _closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions a requirements list pulls in (extras followed)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[name] = dist
        for dep in dist.requires or []:
            sub = Requirement(dep)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in (req.extras or {""})):
                todo.append(sub)
    return seen


def shared_layer_estimate() -> int:
    """What layers/shared/requirements.txt plus fleetcam weigh in this venv (Lambda's
    manylinux wheels are within a few MB of these)."""
    lines = (ROOT / "layers/shared/requirements.txt").read_text().splitlines()
    reqs = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    dists = _closure(reqs)
    src = sum(p.stat().st_size for p in (ROOT / "src/fleetcam").rglob("*.py"))
    return sum(_installed_size(d) for d in dists.values()) + src


def _runtime_and_arch() -> tuple[str, str]:
    tpl, _ = decode(str(ROOT / "template.yaml"))
    runtime = str(tpl["Globals"]["Function"]["Runtime"])
    arch = str(tpl["Parameters"]["Architecture"]["Default"])
    return runtime.removeprefix("python"), {"arm64": "aarch64"}.get(arch, arch)


def test_shared_layer_estimate_is_sane() -> None:
    size = shared_layer_estimate()
    print(f"shared layer (estimated): {size / MB:.1f} MB")
    assert 5 * MB < size < 120 * MB


@pytest.mark.skipif(os.environ.get("FLEETCAM_SKIP_NETWORK") == "1",
                    reason="FLEETCAM_SKIP_NETWORK=1: no PyPI download")
def test_pyav_and_shared_layers_fit_in_250_mb(tmp_path: Path) -> None:
    py, arch = _runtime_and_arch()
    # the runtime's glibc must run the wheel: python3.12 is Amazon Linux 2023 (glibc 2.34)
    assert tuple(map(int, py.split("."))) >= (3, 12), "manylinux_2_28 needs AL2023's glibc"
    makefile = (ROOT / "layers/pyav/Makefile").read_text()
    version = re.search(r"AV_VERSION \?= (\S+)", makefile)
    assert version, "layers/pyav/Makefile pins AV_VERSION"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"av=={version[1]}", "--no-deps",
         "--only-binary=:all:", "--implementation", "cp", "--python-version", py,
         "--platform", f"manylinux_2_28_{arch}", "-d", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "Could not find" not in r.stderr + r.stdout:
        pytest.skip(f"PyPI unreachable: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("av-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "python")
    av_size = sum(p.stat().st_size for p in (tmp_path / "python").rglob("*") if p.is_file())
    shared = shared_layer_estimate()
    total = av_size + shared
    print(f"\n{wheel.name}: {wheel.stat().st_size / MB:.1f} MB zipped, "
          f"{av_size / MB:.1f} MB unzipped; shared layer ~{shared / MB:.1f} MB; "
          f"total ~{total / MB:.1f} MB of {LIMIT / MB:.0f} MB")
    assert total < LIMIT


def test_the_shared_layer_carries_the_console(tmp_path: Path) -> None:
    """The layer installs fleetcam as a package (not editable): its console assets must be
    package data, or the Lambda API would answer /console with 500."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-compile", str(ROOT), "-t", str(tmp_path / "python")],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "No matching distribution" in r.stderr:
        pytest.skip(f"PyPI unreachable for the build backend: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr
    console = tmp_path / "python" / "fleetcam" / "console"
    for name in ("index.html", "app.js", "texts.js", "style.css", "vendor/hls.min.js",
                 "vendor/mqtt.min.js", "vendor/qrcode.js"):
        assert (console / name).is_file(), name
