"""The README's "first hour" runs as written: its shell blocks, with bash, against
`fleetcam serve --simulate 2` started here on free ports (the way `make run` starts it)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e_local import free_port

ROOT = Path(__file__).resolve().parents[2]


def first_hour_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the "The first hour" section."""
    section = readme.split("## The first hour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"FlespiToken {token}"}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except OSError:
        return 0, b""


def test_the_first_hour_runs_as_written(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash and shutil.which("curl") and shutil.which("python3"), "needs bash, curl, python3"
    blocks = first_hour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 2 and "take_photo" in blocks[0] and "fleetcam watch" in blocks[0]

    # a fresh clone's layout: .venv/bin/fleetcam, run from the clone's folder
    work = tmp_path / "clone"
    (work / ".venv" / "bin").mkdir(parents=True)
    fleetcam = Path(sys.executable).with_name("fleetcam")
    assert fleetcam.exists(), f"{fleetcam} missing: install the package (make install)"
    (work / ".venv" / "bin" / "fleetcam").symlink_to(fleetcam)
    # free ports are free when chosen, not reserved: another run may take one before the
    # server binds it, so a start-up that fails is tried again on new ports
    for attempt in range(3):
        env = _environment(tmp_path)
        api = env["FLEETCAM_URL"]
        log = (tmp_path / f"server{attempt}.log").open("wb")
        server = subprocess.Popen([str(fleetcam), "serve", "--simulate", "2"], cwd=work,
                                  env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            token = _wait_ready(api, work, env, server)
            break
        except ServerExited:
            _stop(server)
            log.close()
            if attempt == 2:
                raise AssertionError(_tail(tmp_path / f"server{attempt}.log")) from None
        except BaseException:
            _stop(server)
            log.close()
            raise
    try:
        script = "set -euo pipefail\n" + "\n".join(blocks)
        run = subprocess.run([bash, "-c", script], cwd=work, env=env, capture_output=True,
                             text=True, timeout=300)
        out = run.stdout
        assert run.returncode == 0, f"{out}\n{run.stderr}\n{_tail(Path(log.name))}"
        assert (work / "photo.jpg").read_bytes()[:2] == b"\xff\xd8"
        assert (work / "clip.mp4").read_bytes()[4:8] == b"ftyp"
        assert "/request_video/progress" in out and "/request_video/processed" in out
        assert "#EXTM3U" in out and "live: " in out
        status, body = _get(f"{api}/gw/devices/all", token)
        assert status == 200 and "truck-7" in body.decode()
        assert len(json.loads(_get(f"{api}/gw/devices/1/media", token)[1])["result"]) == 3
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (its children too), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class ServerExited(Exception):
    """fleetcam serve stopped during start-up (a port taken meanwhile, say)."""


def _environment(tmp_path: Path) -> dict[str, str]:
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAM_")}
    env.update({"FLEETCAM_DATA_DIR": str(tmp_path / "data"),
                "FLEETCAM_HTTP_PORT": str(http_port), "FLEETCAM_MQTT_PORT": str(free_port()),
                "FLEETCAM_JT808_PORT": str(free_port()),
                "FLEETCAM_JT1078_PORT": str(free_port()),
                "FLEETCAM_ATTACHMENT_PORT": str(free_port()),
                "FLEETCAM_TELTONIKA_PORT": str(free_port()),
                "FLEETCAM_TELTONIKA_CAMERA_PORT": str(free_port()),
                "FLEETCAM_GATEWAY_HOST": "127.0.0.1",
                "FLEETCAM_URL": f"http://127.0.0.1:{http_port}"})
    return env


def _wait_ready(api: str, work: Path, env: dict[str, str], server: subprocess.Popen[bytes],
                timeout: float = 60.0) -> str:
    """Until the API answers and both simulated MDVRs are online; a token for the checks."""
    deadline = time.monotonic() + timeout
    token = ""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerExited(f"fleetcam serve exited with {server.returncode}")
        if _get(f"{api}/health")[0] == 200:
            if not token:
                token = subprocess.run([str(work / ".venv/bin/fleetcam"), "token"], cwd=work,
                                       env=env, capture_output=True, text=True,
                                       check=True).stdout.strip()
            status, body = _get(f"{api}/gw/devices/1,2/connections/all", token)
            if status == 200 and {c["device_id"] for c in json.loads(body)["result"]} == {1, 2}:
                return token
        time.sleep(0.3)
    pytest.fail("the server or its simulated MDVRs did not come up")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
