"""Cloud DVR audio end to end: a simulated MDVR interleaving G.711 A-law with its H.264, the
gateway recording both, and the archive's downloads (.mp4, .ts), playlists and info.json."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx

from fleetcam.media import fmp4
from tests.mediagen import probe_streams
from tests.pipeline import TOKEN, http, pipeline_server, simulate, until

API = "/streamer/api/v3"




def test_a_recorded_channel_keeps_its_audio(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", dvr_object_seconds=3) as server, \
                simulate(server, width=320, height=240, audio=True) as _sim, \
                http(server) as api:
            r = await api.put(f"{API}/streams/1-1", json={"dvr": {"root": "dvr"}})
            assert r.status_code == 200, r.text

            async def three_segments() -> list[Any]:
                segs = await asyncio.to_thread(server.container.dvr_index.segments, "1-1")
                return segs if len(segs) >= 3 else []

            segs = await until(three_segments, 60, 0.2, "three stored segments")
            assert all(s.tracks == (1, 2) for s in segs), [s.tracks for s in segs]
            st = server.container.dvr_storage
            init = b"".join(st.read(segs[0].root, segs[0].init_key))
            assert fmp4.audio_of(init) == (8000, 1)
            rec = server.gateway.dvr.by_name["1-1"]
            assert rec.audio_frames > 0 and rec.audio_dropped == 0
            # a range inside the stored segments: whole seconds, as a player asks
            start = -(-segs[1].start_ms // 1000)
            duration = max(1, segs[2].end_ms // 1000 - start)
            q = {"token": TOKEN}
            base = server.settings.base_url
            async with httpx.AsyncClient(base_url=base, timeout=30) as anon:
                info = (await anon.get("/1-1/info.json", params=q)).json()
                tracks = info["media_info"]["tracks"]
                assert [t["content"] for t in tracks] == ["video", "audio"]
                assert tracks[1] | {"codec": "aac", "sample_rate": 8000, "channels": 1,
                                    "track_id": "a1"} == tracks[1]
                files = {}
                for ext, tr in (("mp4", None), ("ts", None), ("mp4", "v1"), ("ts", "v1"),
                                ("mp4", "a1"), ("mp4", "v1a1")):
                    params = {**q, **({"filter.tracks": tr} if tr else {})}
                    r = await anon.get(f"/1-1/archive-{start}-{duration}.{ext}", params=params)
                    assert r.status_code == 200, r.text
                    path = tmp_path / f"{ext}-{tr}.{ext}"
                    path.write_bytes(r.content)
                    files[ext, tr] = await asyncio.to_thread(probe_streams, path)
                # playlists pass the filter on to their objects
                pl = (await anon.get(f"/1-1/index-{start}-{duration}.m3u8",
                                     params={**q, "filter.tracks": "v1"})).text
                map_uri = next(x for x in pl.splitlines() if x.startswith("#EXT-X-MAP"))
                assert "filter.tracks=v1" in map_uri
                uri = map_uri.split('"')[1]
                video_init = (await anon.get(f"/1-1/{uri}")).content
                assert fmp4.audio_of(video_init) is None and b"avc1" in video_init
                # an MPEG-TS playlist's segments obey the filter too
                ts_pl = (await anon.get(f"/1-1/index-{start}-{duration}.ts.m3u8",
                                        params={**q, "filter.tracks": "v1"})).text
                part = next(x for x in ts_pl.splitlines() if x.startswith("dvr/"))
                assert "filter.tracks=v1" in part
                ts_path = tmp_path / "part-v1.ts"
                ts_path.write_bytes((await anon.get(f"/1-1/{part}")).content)
                assert set(await asyncio.to_thread(probe_streams, ts_path)) == {"video"}
                part_both = part.replace("&filter.tracks=v1", "").replace("filter.tracks=v1", "")
                ts_path.write_bytes((await anon.get(f"/1-1/{part_both}")).content)
                assert set(await asyncio.to_thread(probe_streams, ts_path)) == {"video", "audio"}
                bad = await anon.get(f"/1-1/archive-{start}-{duration}.mp4",
                                     params={**q, "filter.tracks": "x9"})
                assert bad.status_code == 400
            # the administrator's export to a file carries the audio too
            r = await api.post(f"{API}/streams/1-1/dvr/export",
                               params={"from": start, "duration": duration,
                                       "path": "cases/audio.mp4"})
            assert r.status_code == 200, r.text
            files["export", None] = await asyncio.to_thread(
                probe_streams, Path(r.json()["result"]["path"]))
            assert set(files["export", None]) == {"video", "audio"}

            for ext in ("mp4", "ts"):
                both = files[ext, None]
                assert set(both) == {"video", "audio"}, both
                v, a = both["video"], both["audio"]
                assert a["codec_name"] == "aac" and int(a["sample_rate"]) == 8000
                assert v["codec_name"] == "h264"
                assert abs(float(a["start_time"]) - float(v["start_time"])) < 0.2
                vdur, adur = float(v["duration"]), float(a["duration"])
                assert abs(vdur - duration) <= 2.5, (vdur, duration)
                assert abs(adur - vdur) < 0.5, (adur, vdur)
                # every audio frame decodes: 128 ms each, the whole duration covered
                assert int(a["nb_read_frames"]) >= (adur - 0.3) / 0.128
                assert set(files[ext, "v1"]) == {"video"}  # filter.tracks=v1 drops audio
            assert set(files["mp4", "a1"]) == {"audio"}
            assert set(files["mp4", "v1a1"]) == {"video", "audio"}

    asyncio.run(scenario())


def test_a_device_clip_folded_between_recorded_segments_keeps_its_audio(tmp_path: Path) -> None:
    """Part of the recording is deleted; request_video fetches that part from the device's SD
    card (video and G.711, as the simulator records it); the ingest worker folds it into the
    archive with its audio as AAC in the recorder's layout, so one download runs from the
    recording through the folded clip and on, with one audio track, and ffmpeg decodes it."""
    import math

    from fleetcam.domain import dvr
    from fleetcam.protocol.jt808 import messages as m
    from tests.pipeline import api_ok, record_platform_messages, wait_results

    async def scenario() -> None:
        async with pipeline_server(tmp_path / "data", dvr_object_seconds=2) as server, \
                simulate(server, width=320, height=240, audio=True) as sim, \
                http(server) as api:
            seen = record_platform_messages(sim.devices[0])
            r = await api.put(f"{API}/streams/1-1", json={"dvr": {"root": "dvr"}})
            assert r.status_code == 200, r.text

            async def six_segments() -> list[Any]:
                segs = await asyncio.to_thread(server.container.dvr_index.segments, "1-1")
                return segs if len(segs) >= 6 else []

            segs = sorted(await until(six_segments, 90, 0.2, "six stored segments"),
                          key=lambda s: s.start_ms)
            assert all(s.tracks == (1, 2) for s in segs), [s.tracks for s in segs]
            lo, hi = segs[2].start_ms, segs[3].end_ms  # about 4 s, deleted from the cloud
            r = await api.request("DELETE", f"{API}/streams/1-1/dvr/ranges",
                                  json={"from": lo / 1000, "duration": (hi - lo) / 1000})
            assert r.status_code == 200 and r.json()["deleted"], r.text
            start, end = lo // 1000, math.ceil(hi / 1000)
            r = await api.post("/gw/devices/1/commands-queue", json=[{
                "name": "request_video", "ttl": 120,
                "properties": {"channel": 1, "from": start, "duration": end - start}}])
            [cmd_id] = [c["id"] for c in api_ok(r)]
            result = (await wait_results(api, 1, [cmd_id], 90))[cmd_id]
            assert result["executed"] is True, result
            assert any(isinstance(b, m.PlaybackRequest) for b in seen)  # from the device

            async def folded() -> list[Any]:
                got = await asyncio.to_thread(server.container.dvr_index.segments, "1-1",
                                              lo, hi)
                return [s for s in got if s.source == dvr.SOURCE_DEVICE]

            clip = await until(folded, 60, 0.2, "the clip folded into the archive")
            assert all(s.tracks == (1, 2) for s in clip), [s.tracks for s in clip]
            assert {s.init_key for s in clip} == {segs[1].init_key}  # the recorder's init
            a, b = segs[1].start_ms // 1000, math.ceil(segs[4].end_ms / 1000)
            async with httpx.AsyncClient(base_url=server.settings.base_url,
                                         timeout=60) as anon:
                r = await anon.get(f"/1-1/archive-{a}-{b - a}.mp4", params={"token": TOKEN})
            assert r.status_code == 200, r.text
            assert "codec" not in r.headers.get("x-dvr-gaps", ""), r.headers
            path = tmp_path / "across.mp4"
            path.write_bytes(r.content)
            streams = await asyncio.to_thread(probe_streams, path)
            v, au = streams["video"], streams["audio"]
            assert au["codec_name"] == "aac"
            assert abs(float(au["start_time"]) - float(v["start_time"])) < 0.1
            assert abs(float(au["duration"]) - float(v["duration"])) < 0.5, (au, v)
            dec = await asyncio.to_thread(
                subprocess.run, ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                capture_output=True, text=True, timeout=120)
            assert dec.returncode == 0 and dec.stderr.strip() == "", dec.stderr

    asyncio.run(scenario())
