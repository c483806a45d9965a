"""Cloud DVR use cases: stream configuration, episodes and retention (docs/dvr.md)."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from fleetcam.domain import dvr
from fleetcam.domain.dvr import DvrConfig, DvrStream, Episode, EpisodeQuery, SegmentEntry
from fleetcam.errors import Conflict, Invalid, NotFound
from fleetcam.ports import Clock, DeviceRepo, DvrIndex, DvrStorage, DvrStreamStore, EpisodeStore

log = logging.getLogger(__name__)
PAGE = 500
WARN_EVERY = 300.0
"""Seconds between two warnings about the same stream's clean-up waiting."""
MAX_LIMIT = 1000
ABANDONED_AFTER = 3600.0
"""Seconds after which an intent whose row never came is an orphan (a write retries for
seconds, never an hour)."""


def _int(raw: dict[str, Any], name: str, lo: int, hi: int, default: int,
         prefix: str = "dvr.") -> int:
    v = raw.get(name, default)
    if v is None:
        v = default
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid(f"{prefix}{name} must be an integer from {lo} to {hi}",
                      field=f"{prefix}{name}")
    return v


class DvrService:
    """Streams and episodes over the DVR stores; retention over the index and the storage."""

    def __init__(self, streams: DvrStreamStore, index: DvrIndex, episodes: EpisodeStore,
                 storage: DvrStorage, devices: DeviceRepo, clock: Clock) -> None:
        self.streams = streams
        self.index = index
        self.episodes = episodes
        self.storage = storage
        self.devices = devices
        self.clock = clock
        self.changed: list[Callable[[DvrStream], None]] = []
        """Called with a stream whose configuration changed (the gateway starts or stops)."""
        self._warned: dict[str, float] = {}
        self.workers: Executor | None = None
        """Where a sweep works on the streams, several at once (the AWS runtime gives a
        bounded thread pool: each stream is two or three round trips even with nothing due,
        so ten thousand streams in a row would pass the sweeper's timeout); None: in the
        calling thread, in order."""

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    # -- streams ----------------------------------------------------------------------------
    def put_stream(self, name: str, body: Any) -> DvrStream:
        """Create or change a stream (Flussonic's ``PUT /streams/{name}``)."""
        dvr.check_stream_name(name)
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object", field="body")
        old = self.streams.get(name, include_deleted=True)
        if old is not None and old.deleted_at is not None:
            old_live = None
        else:
            old_live = old
        device_id, channel = self._source(name, body, old_live)
        try:
            self.devices.get(device_id)
        except NotFound:
            raise Invalid(f"device {device_id} does not exist", field="inputs") from None
        for other in self.streams.of_device(device_id):
            if other.channel == channel and other.name != name:
                raise Conflict(f"channel {channel} of device {device_id} is stream "
                               f"{other.name!r} already", field="inputs")
        config = self._dvr(body["dvr"], old_live.dvr if old_live else None) if "dvr" in body \
            else (old_live.dvr if old_live else None)
        title = body.get("title", old_live.title if old_live else "")
        if not isinstance(title, str) or len(title) > 256:
            raise Invalid("title must be a string of at most 256 characters", field="title")
        now = self.clock.now()
        # a stream deleted (or purged) and configured again never gets its old read token
        salt = old_live.read_salt if old_live and old_live.read_salt else secrets.token_hex(16)
        stream = DvrStream(name=name, device_id=device_id, channel=channel, dvr=config,
                           created_at=old.created_at if old else now, updated_at=now,
                           title=title, read_salt=salt)
        self.streams.put(stream)
        self._notify(stream)
        return stream

    def _source(self, name: str, body: dict[str, Any],
                old: DvrStream | None) -> tuple[int, int]:
        inputs = body.get("inputs")
        if inputs is not None:
            if (not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict)
                    or not isinstance(inputs[0].get("url"), str)):
                raise Invalid('inputs must be [{"url": "jt1078://{device_id}/{channel}"}]',
                              field="inputs")
            return dvr.parse_source(inputs[0]["url"])
        if old is not None:
            return old.device_id, old.channel
        m = dvr.DEFAULT_NAME.match(name)
        if m is None or not 1 <= int(m["channel"]) <= dvr.MAX_CHANNEL:
            raise Invalid("a stream not named {device_id}-{channel} needs inputs: "
                          '[{"url": "jt1078://{device_id}/{channel}"}]', field="inputs")
        return int(m["device_id"]), int(m["channel"])

    def _dvr(self, raw: Any, old: DvrConfig | None) -> DvrConfig | None:
        if raw is None or raw is False:
            return None
        if not isinstance(raw, dict):
            raise Invalid("dvr must be an object or null", field="dvr")
        unknown = set(raw) - {"root", "expiration", "storage_limit", "episodes_expiration",
                              "episode_expiration", "limits"}
        if unknown:
            raise Invalid(f"unknown dvr field {sorted(unknown)[0]!r}", field="dvr")
        root = raw.get("root", old.root if old else None)
        if not isinstance(root, str):
            raise Invalid("dvr.root is required (a folder, or a key prefix / s3://bucket/prefix"
                          " on AWS)", field="dvr.root")
        self.storage.resolve(root)  # Invalid with the reason
        base = old or DvrConfig(root=root)
        limits = raw.get("limits") or {}
        if not isinstance(limits, dict):
            raise Invalid("dvr.limits must be an object", field="dvr.limits")
        size = raw.get("storage_limit", limits.get("size", base.storage_limit))
        episodes = raw.get("episodes_expiration", raw.get("episode_expiration",
                                                          base.episodes_expiration))
        return DvrConfig(
            root=root,
            expiration=_int(raw, "expiration", 0, dvr.MAX_EXPIRATION, base.expiration),
            storage_limit=_int({"storage_limit": size}, "storage_limit", 0, 2**62, 0),
            episodes_expiration=_int({"episodes_expiration": episodes}, "episodes_expiration",
                                     0, dvr.MAX_EXPIRATION, dvr.DEFAULT_EPISODES_EXPIRATION))

    def get_stream(self, name: str) -> DvrStream:
        s = self.streams.get(dvr.check_stream_name(name))
        if s is None:
            raise NotFound(f"no stream {name!r}")
        return s

    def revoke_read_token(self, name: str) -> DvrStream:
        """Invalidate the stream's read token; the stream gets a new one (other streams' and
        scoped tokens are untouched)."""
        s = self.get_stream(name)
        s = s.with_changes(read_salt=secrets.token_hex(16), updated_at=self.clock.now())
        self.streams.put(s)
        return s

    def list_streams(self) -> list[DvrStream]:
        return self.streams.list()

    def delete_stream(self, name: str) -> DvrStream:
        """Stop recording and remove the configuration; the archive outside episodes goes at
        the next sweep, episodes' footage after ``episodes_expiration``."""
        s = self.get_stream(name)
        gone = s.with_changes(deleted_at=self.clock.now(), updated_at=self.clock.now())
        if self.index.usage(name)[1] == 0:
            self.streams.purge(name)
        else:
            self.streams.put(gone)
        self._notify(gone)
        return gone

    def recording_streams(self, device_id: int) -> list[DvrStream]:
        return [s for s in self.streams.of_device(device_id) if s.recording]

    def stream_json(self, s: DvrStream) -> dict[str, Any]:
        size, count = self.index.usage(s.name)
        return {"name": s.name, "title": s.title,
                "inputs": [{"url": dvr.source_url(s.device_id, s.channel)}],
                "dvr": s.dvr.as_json() if s.dvr else None,
                "device_id": s.device_id, "channel": s.channel,
                "created_at": int(s.created_at), "updated_at": int(s.updated_at),
                "stats": {"dvr_enabled": s.recording,
                          "dvr_info": {"disk_size": size, "segments": count}}}

    def _notify(self, s: DvrStream) -> None:
        for fn in self.changed:
            try:
                fn(s)
            except Exception:
                log.exception("DVR stream change listener failed for %s", s.name)

    # -- episodes ---------------------------------------------------------------------------
    def put_episode(self, episode_id: int, body: Any) -> Episode:
        if not 1 <= episode_id <= dvr.MAX_EPISODE_ID:
            raise Invalid(f"episode_id must be 1 to {dvr.MAX_EPISODE_ID}", field="episode_id")
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object", field="body")
        old = self.episodes.get(episode_id)
        merged = {**(old.as_json() if old else {}), **body}
        media = merged.get("media")
        if not isinstance(media, str):
            raise Invalid("media (the stream name) is required", field="media")
        dvr.check_stream_name(media)
        if self.streams.get(media) is None:
            raise Invalid(f"no stream {media!r}", field="media")
        opened = merged.get("opened_at")
        closed = merged.get("closed_at")
        if isinstance(opened, bool) or not isinstance(opened, int) or opened <= 0:
            raise Invalid("opened_at must be UTC milliseconds", field="opened_at")
        if closed is not None and (isinstance(closed, bool) or not isinstance(closed, int)
                                   or closed <= opened):
            raise Invalid("closed_at must be UTC milliseconds after opened_at, or null",
                          field="closed_at")
        now = self.now_ms()
        if opened > now + 86_400_000:
            raise Invalid("opened_at is more than a day in the future", field="opened_at")
        etype = merged.get("episode_type") or "generic"
        preview = merged.get("preview")
        if not isinstance(etype, str) or not 0 < len(etype) <= 64:
            raise Invalid("episode_type must be a short string", field="episode_type")
        if preview is not None and (not isinstance(preview, str) or len(preview) > 2048):
            raise Invalid("preview must be a string (a link or key) or null", field="preview")
        meta = {k: v for k, v in merged.items()
                if k not in ("episode_id", "media", "opened_at", "closed_at", "updated_at",
                             "episode_type", "preview")}
        if len(repr(meta)) > 4096:
            raise Invalid("episode fields take at most 4 KB", field="body")
        ep = Episode(episode_id=episode_id, media=media, opened_at=opened, closed_at=closed,
                     updated_at=now, episode_type=etype, preview=preview, meta=meta)
        self.episodes.put(ep)
        return ep

    def open_episode(self, media: str, opened_at: int, closed_at: int | None,
                     episode_type: str, **meta: Any) -> Episode:
        """A new episode with a server-chosen id (rules): time-based, unique by retry."""
        for _ in range(10):
            eid = self.now_ms() * 1000 + secrets.randbelow(1000)
            ep = Episode(episode_id=min(eid, dvr.MAX_EPISODE_ID), media=media,
                         opened_at=opened_at, closed_at=closed_at, updated_at=self.now_ms(),
                         episode_type=episode_type, meta=meta)
            if self.episodes.put(ep, create_only=True):
                return ep
        raise Conflict("could not allocate an episode id")

    def get_episode(self, episode_id: int) -> Episode:
        ep = self.episodes.get(episode_id)
        if ep is None:
            raise NotFound(f"no episode {episode_id}")
        return ep

    def delete_episode(self, episode_id: int) -> None:
        if not self.episodes.delete(episode_id):
            raise NotFound(f"no episode {episode_id}")

    def list_episodes(self, q: EpisodeQuery) -> list[Episode]:
        if not 1 <= q.limit <= MAX_LIMIT:
            raise Invalid(f"limit must be 1 to {MAX_LIMIT}", field="limit")
        return self.episodes.query(q)

    # -- retention --------------------------------------------------------------------------
    def sweep(self) -> int:
        """One retention pass over every stream; returns segments deleted."""
        def one(s: DvrStream) -> int:
            try:
                return self._sweep_stream(s)
            except Exception:
                log.exception("DVR retention of stream %s failed", s.name)
                return 0

        streams = self.streams.list(include_deleted=True)
        deleted = sum(map(one, streams) if self.workers is None
                      else self.workers.map(one, streams))
        self.finish_deletions()
        return deleted

    def _sweep_stream(self, s: DvrStream) -> int:
        now_ms = self.now_ms()
        if s.deleted_at is None and (s.dvr is None or not (s.dvr.expiration
                                                            or s.dvr.storage_limit)):
            return 0
        if s.deleted_at is not None:
            protect_until = (s.deleted_at + (s.dvr.episodes_expiration if s.dvr else 0)) * 1000
            protect = now_ms < protect_until
        else:
            protect = True
        keep: list[tuple[int, int]] = []
        if protect:
            try:
                episodes = self.episodes.overlapping(s.name, 0, now_ms + 1)
            except Exception as e:
                self._warn(s.name, f"episode store unreadable ({type(e).__name__}: {e}); "
                                   "clean-up waits")
                return 0
            keep = dvr.protected_spans(episodes, now_ms)

        def free(c: SegmentEntry) -> bool:
            return not any(c.start_ms < e and c.end_ms > b for b, e in keep)

        if s.deleted_at is not None or s.dvr is None:
            doomed = [c for c in self._oldest(s.name, None) if free(c)]
        else:
            doomed = []
            if s.dvr.expiration > 0:
                doomed = [c for c in self._oldest(s.name, now_ms - s.dvr.expiration * 1000)
                          if free(c)]
            if s.dvr.storage_limit > 0:
                doomed = self._over_limit(s.name, s.dvr.storage_limit, doomed, free)
        removed = self.index.remove(s.name, [c.segment_id for c in doomed])
        self._delete_objects([(r.root, r.key) for r in removed])
        if removed:
            log.info("DVR retention: stream %s, %d segments (%d bytes) deleted", s.name,
                     len(removed), sum(r.size for r in removed))
        self._finish_tombstone(s, removed)
        return len(removed)

    def _oldest(self, stream: str, before_ms: int | None) -> list[SegmentEntry]:
        """Segments that ended before ``before_ms`` (all when None), oldest first."""
        out: list[SegmentEntry] = []
        after = None
        while True:
            page = self.index.segments(stream, None, before_ms, limit=PAGE, after=after)
            out += [p for p in page if before_ms is None or p.end_ms <= before_ms]
            if len(page) < PAGE:
                return out
            after = page[-1].segment_id

    def _over_limit(self, stream: str, limit: int, chosen: list[SegmentEntry],
                    free: Callable[[SegmentEntry], bool]) -> list[SegmentEntry]:
        """``chosen`` plus the oldest free segments until the rest fits in ``limit``."""
        size = self.index.usage(stream)[0] - sum(c.size for c in chosen)
        out = list(chosen)
        ids = {c.segment_id for c in chosen}
        after = None
        while size > limit:
            page = self.index.segments(stream, limit=PAGE, after=after)
            for p in page:
                if size <= limit:
                    break
                if p.segment_id not in ids and free(p):
                    out.append(p)
                    size -= p.size
            if len(page) < PAGE:
                break
            after = page[-1].segment_id
        return sorted(out, key=lambda x: x.segment_id)

    def _finish_tombstone(self, s: DvrStream, removed: list[SegmentEntry] = ()) -> int:
        if s.deleted_at is not None and self.index.usage(s.name)[1] == 0:
            inits = {(r.root, r.init_key) for r in removed}
            self._delete_objects(sorted(inits))
            self.streams.purge(s.name)
            log.info("DVR: deleted stream %s has no archive left; forgotten", s.name)
        return 0

    def _delete_each(self, items: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
        """Delete each object; those deleted (a failure is logged and retried later)."""
        done = []
        for root, key in items:
            try:
                self.storage.delete(root, key)
                done.append((root, key))
            except Exception:
                log.warning("DVR: could not delete %s%s under %s (retried later)", what, key,
                            root, exc_info=True)
        return done

    def _delete_objects(self, items: list[tuple[str, str]]) -> None:
        done = self._delete_each(items, "")
        if done:
            self.index.deletion_done(done)

    def finish_deletions(self) -> int:
        """Delete objects whose rows went (a crash, or a failed delete, left them), and
        objects stored but never indexed (their writer died in between)."""
        pending = self.index.pending_deletions()
        self._delete_objects(pending)
        orphans = self.index.abandoned(self.clock.now() - ABANDONED_AFTER)
        gone = self._delete_each(orphans, "unindexed ")
        if gone:
            log.warning("DVR: %d object(s) stored but never indexed were deleted", len(gone))
            self.index.drop_intents(gone)
        return len(pending) + len(gone)

    def _warn(self, stream: str, text: str) -> None:
        now = self.clock.now()
        if now - self._warned.get(stream, float("-inf")) >= WARN_EVERY:
            self._warned[stream] = now
            log.warning("DVR retention of stream %s: %s", stream, text)


# -- device clips and the archive ----------------------------------------------------------------
NEIGHBOUR_MS = 600_000
"""A clip without audio gets silent AAC when the recorded segment nearest it (this close)
has audio."""
FOLD_OBJECT_MS = 600_000
FOLD_OBJECT_BYTES = 64 << 20
"""A folded clip's objects: at most this long or this large, as the recorder's (the default
``dvr_object_seconds`` and its ``MAX_OBJECT_BYTES``); memory holds one at a time."""
SPANS_WINDOW_MS = 600_000
"""The index's spans are read this much of the clip at a time."""
AUDIO_TYPES = {"g711a": 6, "alaw": 6, "pcm_alaw": 6, "g711u": 7, "ulaw": 7, "pcm_mulaw": 7,
               "g726": 8, "adpcm": 26, "g722": 2, "aac": 19, "mp3": 25}
"""Names a raw clip's header may give its ``audio`` as (the gateway writes the JT/T 1078
payload type)."""


def audio_type(value: Any) -> int | None:
    """The JT/T 1078 audio payload type of a raw clip's ``audio`` header field, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 256 else None
    if isinstance(value, str):
        return AUDIO_TYPES.get(value.lower())
    return None


def clip_token(uuid: str, n: int) -> str:
    """Deterministic per clip and segment: a repeated packaging event rewrites the same rows."""
    import hashlib

    return hashlib.sha1(f"{uuid}:{n}".encode()).hexdigest()[:8]


class DvrClips:
    """Device clips (request_video) folded into a recorded stream's archive, and clips of
    recorded ranges cut from the archive instead of fetched from the device again."""

    def __init__(self, dvr: DvrService) -> None:
        self.dvr = dvr
        self.audio_dropped = 0
        """Device clip audio frames dropped since start (logged once per ``WARN_EVERY``)."""
        self._audio_warned = float("-inf")
        self._fills: dict[tuple[str, str], tuple[Any]] = {}

    def stream_for(self, device_id: int, channel: int) -> DvrStream | None:
        for s in self.dvr.recording_streams(device_id):
            if s.channel == channel:
                return s
        return None

    def fold(self, device_id: int, uuid: str, raw: Any) -> list[SegmentEntry]:
        """Store a raw clip's video and audio as ``device`` segments of the channel's recorded
        stream, leaving out what the cloud has already (``raw`` is a readable file at its
        start). Its audio becomes AAC-LC as the recorder makes it; a clip without audio next
        to recorded audio gets silent AAC in that audio's configuration, so a download across
        both keeps one init and one continuous audio track (docs/dvr.md)."""
        import itertools

        from fleetcam.domain import rawclip
        from fleetcam.media.dvr import ClipAudio, OpenSegment, clip_fragments
        from fleetcam.media.fmp4 import init_digest

        header = rawclip.read_header(raw)
        stream = self.stream_for(device_id, int(header.get("channel", 0)))
        if stream is None or stream.dvr is None:
            return []
        codec = str(header.get("codec", "h264"))
        records = ((f.kind, f.timestamp, f.data, f.keyframe) for f in rawclip.read_frames(raw))
        ahead: list[Any] = []  # the frames up to the first video frame (its time is needed)
        for r in records:
            ahead.append(r)
            if r[0] < rawclip.KIND_AUDIO:
                break
        if not ahead or ahead[-1][0] >= rawclip.KIND_AUDIO:
            return []
        first_ms = ahead[-1][1]
        length_s = max(0, int(header.get("end", 0) or 0) - int(header.get("start", 0) or 0))
        fill = self._neighbour_audio(stream, first_ms, first_ms + length_s * 1000)
        stats = ClipAudio()
        frags = clip_fragments(itertools.chain(ahead, records), codec,
                               audio_type(header.get("audio")), fill=fill, stats=stats)
        out: list[SegmentEntry] = []
        seg: OpenSegment | None = None
        have: list[tuple[int, int]] = []
        seen_until = None  # the index's spans are read for [.., seen_until) so far

        def close() -> None:
            nonlocal seg
            if seg is not None and seg.fragments:
                out.append(self._store(seg))
            seg = None

        for f in frags:
            end = f.start_ms + f.duration_ms
            if seen_until is None or end > seen_until:  # spans a window at a time
                seen_until = f.start_ms + SPANS_WINDOW_MS
                have = self.dvr.index.spans(stream.name, f.start_ms, seen_until)
            if any(f.start_ms < e and end > b for b, e in have):
                close()  # recorded in the cloud already: a gap in this clip
                continue
            if seg is not None and (f.discontinuity or seg.duration_ms >= FOLD_OBJECT_MS
                                    or seg.size + len(f.data) > FOLD_OBJECT_BYTES):
                close()
            if seg is None:
                if not f.keyframe:
                    continue  # a segment opens on a keyframe, as the recorder's do
                ikey = dvr.init_key(stream.name, init_digest(f.init))
                if not self.dvr.storage.exists(stream.dvr.root, ikey):
                    self.dvr.storage.put(stream.dvr.root, ikey, f.init,
                                         content_type="video/mp4")
                seg = OpenSegment(stream.name, stream.dvr.root, clip_token(uuid, len(out)), f,
                                  ikey)
            seg.append(f)
        close()
        if stats.dropped:
            self._audio_dropped(stream.name, uuid, stats)
        if out:
            log.info("DVR stream %s: clip %s folded into the archive as %d segment(s)%s",
                     stream.name, uuid, len(out),
                     " with audio" if any(e.tracks == (1, 2) for e in out) else "")
        return out

    def _store(self, seg: Any) -> SegmentEntry:
        """Store a folded segment's object and index it (an intent first: a crash between
        the two leaves no orphan object)."""
        entry = seg.entry(created_at=self.dvr.clock.now())
        entry = SegmentEntry(**{**entry.__dict__, "source": dvr.SOURCE_DEVICE})
        self.dvr.index.intend(entry.root, entry.key, self.dvr.clock.now())
        self.dvr.storage.put(entry.root, entry.key, seg.read(), content_type="video/iso.segment")
        self.dvr.index.add(entry)
        return entry  # type: ignore[no-any-return]

    def _neighbour_audio(self, stream: DvrStream, start_ms: int, end_ms: int) -> Any:
        """The audio configuration (with its silent frame) of the recorded segment nearest
        the clip within ``NEIGHBOUR_MS``, or None (none, or it has no audio)."""
        from fleetcam.media.dvraudio import with_silence
        from fleetcam.media.fmp4 import audio_config_of

        segs = self.dvr.index.segments(stream.name, start_ms - NEIGHBOUR_MS,
                                       end_ms + NEIGHBOUR_MS)
        if not segs:
            return None
        near = min(segs, key=lambda s: max(0, s.start_ms - end_ms, start_ms - s.end_ms))
        if 2 not in near.tracks:
            return None
        cached = self._fills.get((near.root, near.init_key))
        if cached is None:
            try:
                init = b"".join(self.dvr.storage.read(near.root, near.init_key))
                cfg = audio_config_of(init)
                cached = (with_silence(cfg) if cfg is not None else None,)
            except Exception:  # noqa: BLE001 - the clip is folded with its own audio only
                log.warning("DVR stream %s: init %s unreadable; clip folded without filling "
                            "its audio", stream.name, near.init_key, exc_info=True)
                return None
            if len(self._fills) >= 64:
                self._fills.clear()
            self._fills[(near.root, near.init_key)] = cached
        return cached[0]

    def _audio_dropped(self, stream: str, uuid: str, stats: Any) -> None:
        self.audio_dropped += stats.dropped
        now = self.dvr.clock.now()
        if now - self._audio_warned >= WARN_EVERY:
            self._audio_warned = now
            log.warning("DVR stream %s: clip %s: %d audio frame(s) dropped (%d in all since "
                        "start), its video kept: %s", stream, uuid, stats.dropped,
                        self.audio_dropped, stats.reason)

    def recorded(self, device_id: int, channel: int, start_ms: int,
                 end_ms: int) -> list[SegmentEntry] | None:
        """The segments covering ``[start_ms, end_ms)`` when the archive has all of it."""
        stream = self.stream_for(device_id, channel)
        if stream is None:
            return None
        segs = self.dvr.index.segments(stream.name, start_ms, end_ms)
        if not segs or not dvr.covered((start_ms, end_ms), dvr.iter_spans(segs)):
            return None
        return segs

    def cut(self, segs: list[SegmentEntry], start_ms: int, end_ms: int, dst_path: str) -> None:
        """An MP4 of the archive's fragments overlapping the range (whole GOPs)."""
        from fleetcam.media.dvr import mp4_of

        init = b"".join(self.dvr.storage.read(segs[0].root, segs[0].init_key))
        parts = []
        for s in segs:
            if s.init_key != segs[0].init_key:
                break  # a codec change: the clip ends there
            for f in s.fragments_in(start_ms, end_ms):
                data = b"".join(self.dvr.storage.read(s.root, s.key, f.offset,
                                                      f.offset + f.size - 1))
                parts.append((data, f.start_ms))
        mp4_of(init, parts, dst_path)


WATCH_FOR = 120.0
"""Seconds a reader's interest in a stream's newest minutes lasts (renewed while it reads)."""
MARK_EVERY = 30.0


class WatchedTail:
    """The DvrTail of a process that cannot reach the gateway's memory (the AWS API Lambda):
    a read of the newest minutes marks the stream watched (one write per stream every
    ``MARK_EVERY`` s at most), and while it is, the recorder stores objects of
    ``WATCHED_OBJECT_SECONDS`` instead of ``object_seconds``: the newest minutes reach the
    index within seconds, and the PUTs that costs are paid only while someone watches."""

    def __init__(self, index: DvrIndex, clock: Clock) -> None:
        self.index = index
        self.clock = clock
        self._marked: dict[str, float] = {}

    def open_segment(self, stream: str) -> SegmentEntry | None:
        now = self.clock.now()
        if now - self._marked.get(stream, float("-inf")) >= MARK_EVERY:
            try:
                self.index.watch(stream, now + WATCH_FOR)
                self._marked[stream] = now
            except Exception:
                log.warning("DVR: could not mark %s watched", stream, exc_info=True)
        return None

    def read_open(self, stream: str, segment_id: str, start: int = 0,
                  end: int | None = None) -> bytes:
        raise NotFound(f"segment {segment_id} of {stream} is not readable here")
