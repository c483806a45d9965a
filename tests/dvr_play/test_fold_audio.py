"""Device clips folded into the archive keep their audio: AAC-LC in the recorder's track
layout, so a download across recorded segments and a folded clip has one init, continuous
audio, and stays valid (ffprobe, ffmpeg), with byte ranges and ``filter.tracks`` working."""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleetcam.domain import dvr, rawclip
from fleetcam.media import fmp4
from fleetcam.media.testpattern import encode_pattern
from fleetcam.runtime.container import Container
from fleetcam.simulator.streamer import alaw_tone
from tests import dvrgen
from tests.conftest import TOKEN
from tests.mediagen import decode_errors, probe_streams

T = 1_699_996_000_000
"""A minute-aligned archive start an hour before the test clock's now (1_700_000_000)."""
NAME = "9-1"


def raw_clip(start_ms: int, seconds: int, audio: Any = 6, sound: str = "alaw") -> io.BytesIO:
    """A raw clip as the gateway writes a request_video recording: the simulator's H.264
    pattern (the recorder's parameters, as tests/dvrgen.encoded) with one 40 ms G.711 A-law
    frame after each video frame (``sound`` "none": no audio; "garbage": undecodable)."""
    header: dict[str, Any] = {"codec": "h264", "channel": 1, "device_id": 9,
                              "start": start_ms // 1000, "end": start_ms // 1000 + seconds}
    if sound != "none":
        header["audio"] = audio
    buf = io.BytesIO()
    buf.write(rawclip.encode_header(header))
    for f in encode_pattern("h264", 320, 240, 25, start_time=start_ms / 1000,
                            seconds=seconds, bitrate=300_000, gop=25):
        ts = round(f.time * 1000)
        buf.write(rawclip.encode_frame(0 if f.keyframe else 1, ts, f.data))
        if sound == "alaw":
            buf.write(rawclip.encode_frame(3, ts, alaw_tone(40, f.pts_ms)))
        elif sound == "garbage":
            buf.write(rawclip.encode_frame(3, ts, b"\xff\xf1garbage" * 8))
    buf.seek(0)
    return buf


def stream(c: Container) -> None:
    now = c.clock.now()
    c.dvr_streams.put(dvr.DvrStream(
        name=NAME, device_id=9, channel=1, dvr=dvr.DvrConfig(root="dvr", expiration=86400),
        created_at=now, updated_at=now))


def record(c: Container, start_ms: int, seconds: int, audio: bool) -> dvr.SegmentEntry:
    """A recorded (cloud) segment, as the gateway stores it, with or without its audio."""
    init, gops = dvrgen.encoded()
    if audio:
        init = dvrgen.with_audio(init, dvrgen.tone(start_ms, seconds)[0])
    ikey = dvr.init_key(NAME, fmp4.init_digest(init))
    c.dvr_storage.put("dvr", ikey, init, content_type="video/mp4")
    seg, data = dvrgen.segment(NAME, start_ms, seconds, gops=gops, init_key=ikey, audio=audio)
    c.dvr_storage.put("dvr", seg.key, data, content_type="video/iso.segment")
    assert c.dvr_index.add(seg)
    return seg






def download(anon: TestClient, tmp_path: Path, start: int, seconds: int,
             tracks: str | None = None) -> tuple[Path, Any]:
    params = {"token": TOKEN, **({"filter.tracks": tracks} if tracks else {})}
    r = anon.get(f"/{NAME}/archive-{start}-{seconds}.mp4", params=params)
    assert r.status_code == 200, r.text
    path = tmp_path / f"{start}-{seconds}-{tracks}.mp4"
    path.write_bytes(r.content)
    return path, r


def test_a_folded_clip_keeps_its_audio_and_plays_on_from_the_recording(
        container: Container, anon: TestClient, tmp_path: Path) -> None:
    stream(container)
    rec = record(container, T, 4, audio=True)
    segs = container.dvr_clips.fold(9, "clip-a", raw_clip(T + 4000, 4))
    assert segs and all(s.source == dvr.SOURCE_DEVICE and s.tracks == (1, 2) for s in segs)
    # the recorder's layout exactly: one init for both, so one download covers both
    assert {s.init_key for s in segs} == {rec.init_key}
    assert segs[0].start_ms == T + 4000 and segs[-1].end_ms == T + 8000

    path, r = download(anon, tmp_path, T // 1000, 8)
    assert r.headers["x-dvr-gaps"] == "[]", r.headers  # no gap: one init, no hole
    streams = probe_streams(path)
    a, v = streams["audio"], streams["video"]
    assert a["codec_name"] == "aac" and a["sample_rate"] == "8000"
    assert abs(float(a["start_time"]) - float(v["start_time"])) < 0.1
    assert int(v["nb_read_frames"]) == 200
    # continuous audio: 8 s of AAC frames (128 ms each) across the recording and the clip
    assert int(a["nb_read_frames"]) >= (8000 - 200) // 128, a
    assert decode_errors(path) == ""

    # the clip alone: audio and video start together
    alone = probe_streams(download(anon, tmp_path, T // 1000 + 4, 4)[0])
    assert abs(float(alone["audio"]["start_time"]) - float(alone["video"]["start_time"])) < 0.1

    # MPEG-TS carries the same audio (ADTS)
    r = anon.get(f"/{NAME}/archive-{T // 1000}-8.ts", params={"token": TOKEN})
    assert r.status_code == 200, r.text
    ts = tmp_path / "across.ts"
    ts.write_bytes(r.content)
    assert probe_streams(ts)["audio"]["codec_name"] == "aac" and decode_errors(ts) == ""

    # filter.tracks and byte ranges over the same download
    only_audio = probe_streams(download(anon, tmp_path, T // 1000, 8, "a1")[0])
    assert set(only_audio) == {"audio"}
    only_video = probe_streams(download(anon, tmp_path, T // 1000, 8, "v1")[0])
    assert set(only_video) == {"video"}
    whole = path.read_bytes()
    part = anon.get(f"/{NAME}/archive-{T // 1000}-8.mp4",
                    params={"token": TOKEN}, headers={"Range": "bytes=1000-99999"})
    assert part.status_code == 206 and part.content == whole[1000:100000]


def test_a_clip_without_audio_beside_recorded_audio_gets_silent_aac(
        container: Container, anon: TestClient, tmp_path: Path) -> None:
    """As the recorder fills a hole in a channel's audio: silent AAC frames in the recorded
    audio's configuration, so the init (and the download) stays the same."""
    stream(container)
    rec = record(container, T, 4, audio=True)
    segs = container.dvr_clips.fold(9, "clip-b", raw_clip(T + 4000, 4, sound="none"))
    assert segs and all(s.tracks == (1, 2) for s in segs)
    assert {s.init_key for s in segs} == {rec.init_key}
    path, _ = download(anon, tmp_path, T // 1000, 8)
    streams = probe_streams(path)
    assert streams["audio"]["codec_name"] == "aac"
    assert int(streams["audio"]["nb_read_frames"]) >= (8000 - 200) // 128
    assert decode_errors(path) == ""


def test_a_clip_with_audio_beside_a_video_only_recording_is_its_own_segment(
        container: Container, anon: TestClient, tmp_path: Path) -> None:
    """As the recorder does when audio starts late: a new init, so downloads split there
    (the gap header says why), and the clip's own download has its audio."""
    stream(container)
    rec = record(container, T, 4, audio=False)
    segs = container.dvr_clips.fold(9, "clip-c", raw_clip(T + 4000, 4))
    assert segs and all(s.tracks == (1, 2) for s in segs)
    assert rec.init_key not in {s.init_key for s in segs}
    _, r = download(anon, tmp_path, T // 1000, 8)
    assert "codec parameters changed" in r.headers.get("x-dvr-gaps", ""), r.headers
    path, _ = download(anon, tmp_path, T // 1000 + 4, 4)
    streams = probe_streams(path)
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(streams["audio"]["start_time"]) - float(streams["video"]["start_time"])) \
        < 0.1
    assert decode_errors(path) == ""


def test_bad_audio_in_a_clip_keeps_its_video(container: Container, anon: TestClient,
                                             tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Undecodable audio frames (and an audio codec the recorder does not take) are dropped
    and counted, one warning per interval; every video frame is folded."""
    stream(container)
    clips = container.dvr_clips
    with caplog.at_level(logging.WARNING, logger="fleetcam.services.dvr"):
        segs = clips.fold(9, "clip-d", raw_clip(T, 4, audio=19, sound="garbage"))
        more = clips.fold(9, "clip-e", raw_clip(T + 10_000, 4, audio=99))
    assert segs and more
    assert sum(f.frames for s in segs for f in s.fragments) == 100
    assert sum(f.frames for s in more for f in s.fragments) == 100
    assert clips.audio_dropped == 200
    warnings = [r for r in caplog.records if "audio frame(s) dropped" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    path, _ = download(anon, tmp_path, T // 1000, 4)
    assert set(probe_streams(path)) == {"video"} and decode_errors(path) == ""


def test_a_long_clip_is_folded_in_bounded_objects_with_its_audio_running_on(
        container: Container, anon: TestClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip longer than an object is stored as several (one in memory at a time), each
    opening on a keyframe; the audio runs on across them, and a second delivery of the same
    clip (a repeated event) folds nothing again."""
    from fleetcam.services import dvr as service

    monkeypatch.setattr(service, "FOLD_OBJECT_MS", 2000)
    monkeypatch.setattr(service, "SPANS_WINDOW_MS", 3000)
    stream(container)
    segs = container.dvr_clips.fold(9, "clip-f", raw_clip(T, 7))
    assert [(s.start_ms - T, s.end_ms - T) for s in segs] == [
        (0, 2000), (2000, 4000), (4000, 6000), (6000, 7000)]
    assert all(s.tracks == (1, 2) and s.fragments[0].keyframe for s in segs)
    assert len({s.init_key for s in segs}) == 1
    assert container.dvr_clips.fold(9, "clip-f", raw_clip(T, 7)) == []
    path, r = download(anon, tmp_path, T // 1000, 7)
    assert r.headers["x-dvr-gaps"] == "[]"
    streams = probe_streams(path)
    assert int(streams["video"]["nb_read_frames"]) == 175
    assert int(streams["audio"]["nb_read_frames"]) >= (7000 - 200) // 128
    assert decode_errors(path) == ""
