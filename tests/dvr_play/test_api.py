"""The DVR read side through the API: ranges, downloads with byte ranges, playlists, auth."""
from __future__ import annotations

import base64
import io
import json

import av
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TOKEN
from tests.dvr_play.conftest import T0, Archive

S0 = T0 // 1000
Q = {"token": TOKEN}


def test_admin_ranges_merge_touching_segments(client: TestClient, recorded: Archive) -> None:
    r = client.get("/streamer/api/v3/streams/7-1/dvr/ranges")
    assert r.status_code == 200, r.text
    assert r.json() == {"ranges": [{"from": S0, "duration": 20}, {"from": S0 + 60, "duration": 6}]}


def test_ranges_json_in_ms_when_asked_in_ms(anon: TestClient, recorded: Archive) -> None:
    r = anon.get("/7-1/ranges.json", params={**Q, "closed_at_gte": T0 - 5000,
                                             "opened_at_lte": T0 + 100_000, "limit": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["ranges"][0] == {"opened_at": T0, "closed_at": T0 + 20_000}
    r = anon.get("/7-1/ranges.json", params=Q)
    assert r.json()["ranges"][1] == {"opened_at": S0 + 60, "closed_at": S0 + 66}


def test_ranges_follow_every_change_of_the_index(client: TestClient,
                                               recorded: Archive) -> None:
    """Ranges are kept per stream between requests: recording on is merged in, and a
    deletion with an addition in between (the segment count unchanged) is seen too."""
    url = "/streamer/api/v3/streams/7-1/dvr/ranges"
    first = client.get(url).json()["ranges"]
    assert first == [{"from": S0, "duration": 20}, {"from": S0 + 60, "duration": 6}]
    recorded.record(T0 + 66_000, 4)  # recording goes on
    recorded.record(T0 + 70_000, 5)
    assert client.get(url).json()["ranges"] == [{"from": S0, "duration": 20},
                                                {"from": S0 + 60, "duration": 15}]
    idx = recorded.c.dvr_index
    idx.remove("7-1", [recorded.segments[0].segment_id])  # retention, and a new segment
    recorded.record(T0 + 90_000, 2)
    assert client.get(url).json()["ranges"] == [
        {"from": S0 + 10, "duration": 10}, {"from": S0 + 60, "duration": 15},
        {"from": S0 + 90, "duration": 2}]
    r = client.get("/7-1/ranges.json", params=Q)
    assert r.json()["ranges"][0] == {"opened_at": S0 + 10, "closed_at": S0 + 20}


def test_strangers_are_refused(anon: TestClient, client: TestClient, recorded: Archive) -> None:
    for path in ["/7-1/ranges.json", f"/7-1/archive-{S0}-10.mp4", "/7-1/info.json",
                 f"/7-1/index-{S0}-60.fmp4.m3u8"]:
        assert anon.get(path).status_code == 401
        assert anon.get(path, params={"token": "x" * 40}).status_code == 401
    assert anon.get("/streamer/api/v3/streams/7-1/dvr/ranges",
                    params={"token": TOKEN}).status_code == 401  # admin: header only


def test_read_token_is_per_stream(client: TestClient, anon: TestClient,
                                  recorded: Archive) -> None:
    tok = client.get("/streamer/api/v3/streams/7-1/dvr/token").json()["token"]
    assert anon.get("/7-1/ranges.json", params={"token": tok}).status_code == 200
    assert anon.get("/7-1/ranges.json", headers={"Authorization": f"Bearer {tok}"}
                    ).status_code == 200
    assert anon.get("/streamer/api/v3/streams/7-1/dvr/ranges",
                    headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_read_token_is_revoked_alone(client: TestClient, anon: TestClient,
                                     recorded: Archive) -> None:
    url = "/streamer/api/v3/streams/7-1/dvr/token"
    old = client.get(url).json()["token"]
    assert anon.delete(url).status_code == 401  # a stranger cannot revoke it
    assert anon.delete(url, headers={"Authorization": f"Bearer {old}"}).status_code == 401
    new = client.delete(url).json()["token"]
    assert new != old and client.get(url).json()["token"] == new
    assert anon.get("/7-1/ranges.json", params={"token": old}).status_code == 401
    assert anon.get("/7-1/ranges.json", params={"token": new}).status_code == 200
    assert anon.get("/7-1/ranges.json", params={"token": TOKEN}).status_code == 200  # admin


def test_a_stream_configured_again_never_gets_its_old_token(client: TestClient,
                                                            anon: TestClient) -> None:
    dev = client.post("/gw/devices", json=[{"ident": "013912345678"}]).json()["result"][0]["id"]
    url = f"/streamer/api/v3/streams/{dev}-2"
    for _ in range(2):  # deleted with nothing recorded: the stream is purged, then re-created
        assert client.put(url, json={"dvr": {"root": "dvr"}}).status_code == 200
        old = client.get(f"{url}/dvr/token").json()["token"]
        assert anon.get(f"/{dev}-2/ranges.json", params={"token": old}).status_code == 200
        assert client.delete(url).status_code == 204
        assert client.put(url, json={"dvr": {"root": "dvr"}}).status_code == 200
        assert anon.get(f"/{dev}-2/ranges.json", params={"token": old}).status_code == 401
        assert client.get(f"{url}/dvr/token").json()["token"] != old
        assert client.delete(url).status_code == 204


def test_preflight(anon: TestClient, recorded: Archive) -> None:
    r = anon.options(f"/7-1/archive-{S0}-10.mp4", headers={
        "Origin": "http://player.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "session, x-originator, range"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    assert "x-originator" in r.headers["access-control-allow-headers"].lower()
    r = anon.get("/7-1/ranges.json", params=Q, headers={"Origin": "http://player.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "X-Dvr-Gaps" in r.headers["access-control-expose-headers"]


def _decode(data: bytes) -> tuple[int, float, dict[str, str]]:
    with av.open(io.BytesIO(data)) as c:
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
        return frames, float(c.duration or 0) / 1e6, dict(c.metadata)


def test_download_plays_and_answers_ranges(anon: TestClient, recorded: Archive) -> None:
    r = anon.get(f"/7-1/archive-{S0 + 5}-60.mp4", params=Q)
    assert r.status_code == 200, r.text
    assert r.headers["accept-ranges"] == "bytes"
    assert "7-1-" in r.headers["content-disposition"]
    gaps = json.loads(r.headers["x-dvr-gaps"])
    assert gaps == [{"from": S0 + 20, "duration": 40.0, "reason": "not recorded"}]
    whole = r.content
    assert len(whole) == int(r.headers["content-length"])
    frames, duration, meta = _decode(whole)
    assert frames == 20 * 25  # 15 s + 5 s: the fragments overlapping the window
    assert duration == pytest.approx(20, abs=0.1)
    assert json.loads(meta["comment"])["gaps"] == gaps
    for first, last in [(0, 99), (len(whole) // 2, len(whole) // 2 + 5000),
                        (len(whole) - 10, len(whole) - 1)]:
        p = anon.get(f"/7-1/archive-{S0 + 5}-60.mp4", params=Q,
                     headers={"Range": f"bytes={first}-{last}"})
        assert p.status_code == 206
        assert p.headers["content-range"] == f"bytes {first}-{last}/{len(whole)}"
        assert p.content == whole[first:last + 1]
    assert anon.get(f"/7-1/archive-{S0 + 5}-60.mp4", params=Q,
                    headers={"Range": f"bytes={len(whole)}-"}).status_code == 416


@pytest.mark.parametrize("path,status", [
    (f"/7-1/archive-{S0 + 30}-20.mp4", 404),         # nothing recorded there
    (f"/7-1/archive-{S0 + 10**6}-20.mp4", 400),      # from in the future
    (f"/7-1/archive-{S0}-0.mp4", 400),               # zero duration
    (f"/7-1/archive-{S0}-99999999.mp4", 400),        # huge duration
    (f"/7-1/archive-{S0}--5.mp4", 400),              # negative duration
    ("/7-1/archive-12-20.mp4", 400),                 # before 2000
    ("/7-1/archive-abc.mp4", 400),                   # malformed
    (f"/no-such/archive-{S0}-20.mp4", 404),
])
def test_bad_downloads(anon: TestClient, recorded: Archive, path: str, status: int) -> None:
    r = anon.get(path, params=Q)
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["reason"]


def test_track_filter(anon: TestClient, recorded: Archive) -> None:
    ok = anon.get(f"/7-1/archive-{S0}-10.mp4", params={**Q, "filter.tracks": "v1a1"})
    assert ok.status_code == 200 and _decode(ok.content)[0] == 250
    assert anon.get(f"/7-1/archive-{S0}-10.mp4",
                    params={**Q, "filter.tracks": "a1"}).status_code == 400


def test_vod_playlist_points_into_stored_objects(anon: TestClient, recorded: Archive) -> None:
    r = anon.get(f"/7-1/index-{S0}-100.fmp4.m3u8", params=Q)
    assert r.status_code == 200, r.text
    text = r.text
    assert "#EXT-X-ENDLIST" in text and "#EXT-X-PROGRAM-DATE-TIME:" in text
    assert text.count("#EXT-X-DISCONTINUITY") == 1
    uris = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert all(f"token={TOKEN}" in u for u in uris)
    seg = recorded.segments[0]
    assert uris[0].startswith(f"dvr/{seg.segment_id}.m4s?")
    line = text.splitlines()[text.splitlines().index(uris[0]) - 1]
    length, offset = map(int, line.split(":")[1].split("@"))
    path = "/7-1/" + uris[0]
    part = anon.get(path, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
    assert part.status_code == 206 and part.content == recorded.objects[seg.key][
        offset:offset + length]
    init = anon.get(path.replace(".m4s", ".mp4"))
    assert init.status_code == 200 and init.content[4:8] == b"ftyp"


def test_info_and_recording_status(anon: TestClient, recorded: Archive) -> None:
    info = anon.get("/7-1/info.json", params=Q).json()
    assert info["stats"]["dvr_enabled"] is True and info["permissions"]["export"] is True
    assert info["dvr"]["from"] == S0
    st = anon.get("/7-1/recording_status.json", params={**Q, "from": S0, "to": "now"}).json()
    assert st[0]["ranges"][0] == {"from": S0, "duration": 20}
    assert anon.put("/7-1/sessions/abc", params=Q, json={"x": 1}).status_code == 200


def _scoped(client: TestClient, device: int, sub: str) -> str:
    r = client.post("/platform/customer/tokens", json=[{"info": "viewer", "ttl": 600, "access": {
        "type": 2, "acl": [{"uri": "gw/devices", "ids": [device], "methods": ["GET"],
                            "submodules": [{"name": sub, "methods": ["GET"]}]}]}}])
    assert r.status_code == 200, r.text
    return str(r.json()["result"][0]["key"])


def test_scoped_tokens(client: TestClient, anon: TestClient, recorded: Archive) -> None:
    mine, other = _scoped(client, 7, "dvr"), _scoped(client, 8, "dvr")
    assert anon.get("/7-1/ranges.json", params={"token": mine}).status_code == 200
    assert anon.get(f"/7-1/archive-{S0}-5.mp4",
                    headers={"Authorization": f"FlespiToken {mine}"}).status_code == 200
    assert anon.get("/7-1/ranges.json", params={"token": other}).status_code == 403
    assert anon.get("/streamer/api/v3/streams/7-1/dvr/ranges",
                    headers={"Authorization": f"Bearer {mine}"}).status_code == 200
    basic = base64.b64encode(f"admin:{TOKEN}".encode()).decode()
    assert anon.get("/streamer/api/v3/streams/7-1/dvr/ranges",
                    headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_delete_range_keeps_what_episodes_protect(client: TestClient, recorded: Archive) -> None:
    from fleetcam.domain.dvr import Episode

    recorded.c.episodes.put(Episode(41, "7-1", T0 + 12_000, T0 + 14_000, T0))
    r = client.request("DELETE", "/streamer/api/v3/streams/7-1/dvr/ranges",
                       json={"from": S0 - 5, "duration": 30})
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": [{"from": S0, "duration": 10.0}], "kept": [
        {"from": S0 + 10, "duration": 10.0, "reason": "protected by episode 41",
         "episode_id": 41}]}
    root = recorded.c.dvr_storage
    assert not root.exists("dvr", recorded.segments[0].key)
    assert root.exists("dvr", recorded.segments[1].key)
    assert client.get("/streamer/api/v3/streams/7-1/dvr/ranges").json()["ranges"][0] == {
        "from": S0 + 10, "duration": 10}
    r = client.request("DELETE", "/streamer/api/v3/streams/7-1/dvr/ranges",
                       json={"from": S0 + 62, "duration": 100})
    assert r.json()["kept"][0]["reason"].startswith("reaches outside")
    assert client.request("DELETE", "/streamer/api/v3/streams/7-1/dvr/ranges",
                          json={"from": "x"}).status_code == 400


def test_delete_range_waits_when_episodes_are_unreadable(client: TestClient,
                                                          recorded: Archive) -> None:
    class Broken:
        def overlapping(self, *a: object) -> list[object]:
            raise OSError("disk gone")

    recorded.c.extras.pop("dvr_playback", None)
    recorded.c.episodes = Broken()  # type: ignore[assignment]
    r = client.request("DELETE", "/streamer/api/v3/streams/7-1/dvr/ranges",
                       json={"from": S0, "duration": 20})
    assert r.status_code == 503 and "nothing was deleted" in r.text
    assert recorded.c.dvr_storage.exists("dvr", recorded.segments[0].key)


def test_thumbnails_on_demand_and_stored(anon: TestClient, recorded: Archive) -> None:
    from fleetcam.runtime.worker import drain

    r = anon.get(f"/7-1/{S0 + 3}-preview.jpg", params=Q)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert r.headers["x-thumbnail-utc"] == f"{S0 + 3}.000"
    m = anon.get(f"/7-1/{S0 + 3}-preview.mp4", params=Q)
    assert m.status_code == 200
    with av.open(io.BytesIO(m.content)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 1
    assert anon.get(f"/7-1/{S0 + 3}-preview.jpg").status_code == 401
    assert anon.get(f"/7-1/{S0 - 3600}-preview.jpg", params=Q).status_code == 404
    # stored ones: made by the local object-created path (the ingest worker's queue holds
    # an event per indexed segment), one object per segment with offsets in its row
    assert anon.get(f"/7-1/{S0 + 7}.jpg", params=Q).status_code == 404  # not made yet
    assert drain(recorded.c.extras["queue"], recorded.c.ingest) == {"done": 3}
    rows = recorded.c.dvr_index.segments("7-1")
    assert [len(s.thumbs.items) for s in rows] == [1, 1, 1]  # first keyframe of each minute
    assert all(s.thumbs.key.endswith(".mjpeg") for s in rows)
    assert drain(recorded.c.extras["queue"], recorded.c.ingest) == {}
    r = anon.get(f"/7-1/{S0 + 7}.jpg", params=Q, follow_redirects=False)
    assert r.status_code == 302, r.text
    target = r.headers["location"]
    assert target.startswith(f"{int(r.headers['x-thumbnail-utc'].split('.')[0])}.jpg?token=")
    img = anon.get(f"/7-1/{target}")
    assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"


def test_ranges_follow_new_and_deleted_segments(client: TestClient, recorded: Archive) -> None:
    url = "/streamer/api/v3/streams/7-1/dvr/ranges"
    assert len(client.get(url).json()["ranges"]) == 2
    recorded.record(T0 + 66_000, 4)  # touches the last range
    recorded.record(T0 + 100_000, 2)
    assert client.get(url).json()["ranges"][1:] == [{"from": S0 + 60, "duration": 10},
                                                   {"from": S0 + 100, "duration": 2}]
    recorded.c.dvr_index.remove("7-1", [recorded.segments[0].segment_id])  # e.g. retention
    assert client.get(url).json()["ranges"][0] == {"from": S0 + 10, "duration": 10}
    r = client.get("/7-1/ranges.json", params={"from": S0 + 65, "to": S0 + 101})
    assert r.json()["ranges"] == [{"opened_at": S0 + 60, "closed_at": S0 + 70},
                                  {"opened_at": S0 + 100, "closed_at": S0 + 102}]


def test_ts_download(anon: TestClient, recorded: Archive, tmp_path: object) -> None:
    import subprocess
    from pathlib import Path

    r = anon.get(f"/7-1/archive-{S0}-20.ts", params=Q)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp2t" and r.content[0] == 0x47
    out = Path(str(tmp_path)) / "a.ts"
    out.write_bytes(r.content)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 500
    # Debian's ffmpeg reads it too
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                            str(out)], capture_output=True, text=True, timeout=60)
    assert set(probe.stdout.split()) == {"500"}, probe.stderr


def test_ts_event_and_live_playlists(anon: TestClient, recorded: Archive) -> None:
    r = anon.get(f"/7-1/index-{S0}-20.ts.m3u8", params=Q)
    assert r.status_code == 200, r.text
    assert "#EXT-X-MAP" not in r.text and "#EXT-X-BYTERANGE" not in r.text
    uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
    assert len(uris) == 20 and uris[0].startswith("dvr/") and ".ts?token=" in uris[0]
    seg = anon.get("/7-1/" + uris[3])
    assert seg.status_code == 200 and seg.content[0] == 0x47
    with av.open(io.BytesIO(seg.content)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 25
    bad = uris[3].replace("-", "-1", 2)
    assert anon.get("/7-1/" + bad).status_code in (404, 400)
    ev = anon.get(f"/7-1/timeshift_abs-{S0 + 60}.m3u8", params=Q)
    assert ev.status_code == 200 and "#EXT-X-PLAYLIST-TYPE:EVENT" in ev.text
    assert "#EXT-X-ENDLIST" not in ev.text and ev.text.count("#EXTINF") == 6
    now = anon.get(f"/7-1/archive-{S0 + 60}-now.fmp4.m3u8", params=Q)
    assert now.status_code == 200 and now.text.count("#EXTINF") == 6
    live = anon.get("/7-1/index.m3u8", params=Q)  # nothing in the last 30 s: an empty window
    assert live.status_code == 200 and "#EXT-X-ENDLIST" not in live.text


def test_live_playlist_slides_with_stable_sequence(anon: TestClient, recorded: Archive) -> None:
    now_ms = int(recorded.c.clock.now() * 1000)
    recorded.record(now_ms - 40_000, 40)
    r = anon.get("/7-1/index.fmp4.m3u8", params=Q)
    assert r.status_code == 200, r.text
    seq = int(next(ln for ln in r.text.splitlines() if ln.startswith("#EXT-X-MEDIA-SEQUENCE"))
              .split(":")[1])
    first_pdt = next(ln for ln in r.text.splitlines() if ln.startswith("#EXT-X-PROGRAM-DATE"))
    assert r.text.count("#EXTINF") >= 3 and "#EXT-X-ENDLIST" not in r.text
    recorded.record(now_ms, 3)  # three more seconds arrive
    recorded.c.clock.advance(3)  # type: ignore[attr-defined]
    later = anon.get("/7-1/index.fmp4.m3u8", params=Q).text
    seq2 = int(next(ln for ln in later.splitlines() if ln.startswith("#EXT-X-MEDIA-SEQUENCE"))
               .split(":")[1])
    assert seq2 == seq + 3  # the window moved three 1 s fragments on
    assert first_pdt not in later


def test_an_interrupted_download_plays_up_to_where_it_stopped(anon: TestClient,
                                                              recorded: Archive) -> None:
    whole = anon.get(f"/7-1/archive-{S0}-20.mp4", params=Q).content
    with av.open(io.BytesIO(whole[:len(whole) // 2])) as c:
        frames = 0
        try:
            for _ in c.decode(video=0):
                frames += 1
        except av.error.InvalidDataError:
            pass
    assert 200 <= frames <= 300  # about half of the 500 frames


def test_missing_object_is_a_named_gap(anon: TestClient, recorded: Archive) -> None:
    import os

    seg = recorded.segments[1]
    os.unlink(os.path.join(recorded.c.dvr_storage.resolve("dvr"), seg.key))
    r = anon.get(f"/7-1/archive-{S0}-70.mp4", params=Q)
    assert r.status_code == 200
    gaps = json.loads(r.headers["x-dvr-gaps"])
    assert {"from": S0 + 10, "duration": 10.0, "reason": "stored object missing"} in gaps
    frames, _, meta = _decode(r.content)
    assert frames == 16 * 25 and json.loads(meta["comment"])["gaps"] == gaps


def test_the_open_segment_extends_the_newest_range(recorded: Archive) -> None:
    """The gateway's open segment (not stored yet) joins the newest stored range in every
    form: whole answers, a window, the extent."""
    from dataclasses import replace

    from fleetcam.services.dvrplay import DvrPlayback

    last = recorded.segments[-1]  # T0 + 60 s, 6 s
    open_seg = replace(last, segment_id="open", key="", start_ms=last.end_ms,
                       end_ms=last.end_ms + 3000)

    class Tail:
        def open_segment(self, name: str):  # type: ignore[no-untyped-def]
            return open_seg if name == "7-1" else None

    c = recorded.c
    svc = DvrPlayback(c.dvr_streams, c.dvr_index, c.dvr_storage, c.episodes, c.clock,
                      tail=lambda: Tail())
    whole = [(r.start_ms, r.end_ms) for r in svc.ranges("7-1")]
    assert whole == [(T0, T0 + 20_000), (T0 + 60_000, T0 + 69_000)]
    assert [(r.start_ms, r.end_ms) for r in svc.ranges("7-1", T0 + 65_000, T0 + 99_000)] == [
        (T0 + 60_000, T0 + 69_000)]
    assert [(r.start_ms, r.end_ms) for r in svc.ranges("7-1", T0 + 1000, T0 + 2000)] == [
        (T0, T0 + 20_000)]
    assert svc.ranges("7-1", T0 + 30_000, T0 + 40_000) == []
    assert json.loads(svc.ranges_json("7-1", "ms", key="ranges")) == {"ranges": [
        {"opened_at": T0, "closed_at": T0 + 20_000},
        {"opened_at": T0 + 60_000, "closed_at": T0 + 69_000}]}
    assert svc.extent("7-1") == (T0, T0 + 69_000)
