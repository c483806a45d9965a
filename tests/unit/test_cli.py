"""The command line: which data folder each command uses, and help that reads as plain text."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcam.cli import _parser, main
from fleetcam.config import ENV_ADMIN_TOKEN, ENV_DATA_DIR, Settings, find_data_dir
from fleetcam.logs import CHATTY
from fleetcam.runtime.local import build_local


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """main() configures logging for a whole process; give the next tests theirs back."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: logging.getLogger(n).level for n in CHATTY})
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture()
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with an empty home and no fleetcam variables, working in an unrelated folder."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in (ENV_DATA_DIR, ENV_ADMIN_TOKEN, "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    return home


def _start_server_once(env_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``fleetcam serve`` does to the data folder on its first start, from ``env_cwd``."""
    monkeypatch.chdir(env_cwd)
    c = build_local(Settings.from_env())
    c.extras["db"].close()
    return str(c.extras["admin_token"])


def test_token_from_another_folder_reads_the_servers_data(
        user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "clone"
    repo.mkdir()
    token = _start_server_once(repo, monkeypatch)
    data = user / ".local" / "share" / "fleetcam"
    assert (data / "fleetcam.sqlite3").is_file()
    assert not (repo / "data").exists()

    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["token"]) == 0
    out, err = capsys.readouterr()
    # only the admin token's hash is kept, so the command issues a new master token there
    printed = out.strip()
    assert len(printed) == 64 and printed.isalnum() and printed != token
    c = build_local(Settings(data_dir=data))
    p = c.access.authenticate(printed)
    assert p is not None and p.kind == "master" and p.token_id is not None
    assert c.access.authenticate(token) is not None
    c.extras["db"].close()
    assert f"data folder {data} (the per-user default)" in err
    assert not (tmp_path / "elsewhere" / "data").exists()


def test_token_never_creates_a_data_folder(user: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    data = user / ".local" / "share" / "fleetcam"
    assert f"no fleetcam data in {data}" in err and ENV_DATA_DIR in err
    assert not data.exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert main(["sweep"]) == 2
    assert not data.exists()


def test_an_existing_dot_data_install_keeps_working(
        user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "old-install"
    (repo / "data").mkdir(parents=True)
    monkeypatch.setenv(ENV_DATA_DIR, str(repo / "data"))
    token = _start_server_once(repo, monkeypatch)
    monkeypatch.delenv(ENV_DATA_DIR)
    assert main(["token"]) == 0
    out, err = capsys.readouterr()
    c = build_local(Settings(data_dir=repo / "data"))
    assert out.strip() != token and c.access.authenticate(out.strip()) is not None
    c.extras["db"].close()
    assert f"data folder {repo / 'data'} (./data of an existing install)" in err
    assert not (user / ".local").exists()


def test_the_variable_wins_and_xdg_is_honoured(tmp_path: Path) -> None:
    env = {ENV_DATA_DIR: str(tmp_path / "x"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert find_data_dir(env, cwd=tmp_path, home=tmp_path) == (tmp_path / "x",
                                                               f"from {ENV_DATA_DIR}")
    del env[ENV_DATA_DIR]
    assert find_data_dir(env, cwd=tmp_path, home=tmp_path)[0] == tmp_path / "xdg" / "fleetcam"
    assert find_data_dir({}, cwd=tmp_path, home=tmp_path)[0] == (
        tmp_path / ".local" / "share" / "fleetcam")
    assert not (tmp_path / "xdg").exists()


def _helps(parser: argparse.ArgumentParser) -> list[str]:
    out = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += [p.format_help() for p in action.choices.values()]
    return out


def test_help_is_plain_text() -> None:
    helps = _helps(_parser())
    assert len(helps) > 5
    for text in helps:
        assert "``" not in text and ":func:" not in text, text
    assert "~/.local/share/fleetcam" in helps[0]


def test_sample_photo_is_a_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    assert main(["sample-photo", str(path)]) == 0
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9" and 1000 < len(data) < 200_000


def test_a_user_without_a_home_still_gets_settings(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """Lambda and ECS users may have no home directory: settings must still load."""
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.chdir(tmp_path)
    found, why = find_data_dir({})
    assert why == "the per-user default" and found.name == "fleetcam"
    assert not found.exists()
