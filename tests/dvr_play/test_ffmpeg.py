"""Debian's ffmpeg reads archive downloads over HTTP: the whole MP4, and a seek into it (byte
ranges: the file is never built)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from fleetcam.api.app import create_app
from tests.dvr_play.test_player import TOKEN, _archive
from tests.integration.httpserver import ServerThread


def _ffprobe_frames(url: str) -> int:
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[0])


@pytest.mark.parametrize("references", [None, 10], ids=["sidx-per-fragment",
                                                        "sidx-6-fragments-a-reference"])
def test_ffmpeg_reads_and_seeks_the_download(tmp_path: Path, references: int | None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Also with several fragments a ``sidx`` reference, as downloads of over 65,535
    fragments (18 h of 1 s GOPs) are laid out: here forced on 60 fragments."""
    if references is not None:
        from fleetcam.media import archive

        monkeypatch.setattr(archive, "MAX_REFERENCES", references)
    start = int(time.time()) - 900
    c = _archive(tmp_path, start, 60)
    seen: list[tuple[str, str | None]] = []
    app = create_app(c)

    @app.middleware("http")
    async def log_ranges(request, call_next):  # type: ignore[no-untyped-def]
        seen.append((request.url.path, request.headers.get("range")))
        return await call_next(request)

    with ServerThread(app) as base:
        url = f"{base}/7-1/archive-{start}-60.mp4?token={TOKEN}"
        assert _ffprobe_frames(url) == 1500
        seen.clear()
        # a seek to 40 s: ffmpeg reads the sidx and jumps there with a byte range
        shot = tmp_path / "at40.png"
        r = subprocess.run(["ffmpeg", "-v", "error", "-ss", "40", "-i", url, "-frames:v", "1",
                            "-y", str(shot)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and shot.stat().st_size > 0, r.stderr
    ranged = [rg for _, rg in seen if rg and not rg.startswith("bytes=0-")]
    assert ranged, seen
    import av

    from fleetcam.media.testpattern import read_burnt_time
    with av.open(str(shot)) as png:
        burnt = read_burnt_time(next(png.decode(video=0)))
    assert burnt is not None and abs(burnt - (start + 40)) < 1.0, (burnt, start)
