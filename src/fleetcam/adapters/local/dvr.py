"""SQLite DvrStreamStore, DvrIndex and EpisodeStore; DvrStorage on local folders."""
from __future__ import annotations

import array
import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fleetcam.adapters.local.db import Database, placeholders
from fleetcam.domain.dvr import (RANGE_CHUNK_MS, chunk_add, chunk_ids, chunk_ranges,
                                 join_chunks, pack_ranges, unpack_ranges)
from fleetcam.domain.dvr import (MAX_SEGMENT_MS, DvrConfig, DvrStream, Episode, EpisodeQuery,
                                 SegmentEntry, Thumbs, pack_fragments,
                                 unpack_fragments)
from fleetcam.config import DATA_DB_NAME
from fleetcam.errors import Invalid, NotFound

DVR_SCHEMA = """
CREATE TABLE IF NOT EXISTS dvr_streams (
    name TEXT PRIMARY KEY,
    device_id INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    deleted_at REAL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dvr_streams_by_device ON dvr_streams (device_id, channel);
CREATE TABLE IF NOT EXISTS dvr_segments (
    stream TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    fragments BLOB NOT NULL,
    PRIMARY KEY (stream, segment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dvr_usage (
    stream TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL DEFAULT 0,
    segments INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS dvr_segments_ins AFTER INSERT ON dvr_segments BEGIN
    INSERT INTO dvr_usage (stream) VALUES (NEW.stream) ON CONFLICT DO NOTHING;
    UPDATE dvr_usage SET bytes = bytes + NEW.size, segments = segments + 1
    WHERE stream = NEW.stream;
END;
CREATE TRIGGER IF NOT EXISTS dvr_segments_del AFTER DELETE ON dvr_segments BEGIN
    UPDATE dvr_usage SET bytes = bytes - OLD.size, segments = segments - 1
    WHERE stream = OLD.stream;
END;
CREATE INDEX IF NOT EXISTS dvr_segments_spans ON dvr_segments (stream, segment_id, start_ms,
                                                               end_ms);
CREATE TABLE IF NOT EXISTS dvr_versions (
    stream TEXT PRIMARY KEY,
    version INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS dvr_segments_ins_version AFTER INSERT ON dvr_segments BEGIN
    INSERT INTO dvr_versions (stream, version) VALUES (NEW.stream, 1)
    ON CONFLICT (stream) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS dvr_segments_del_version AFTER DELETE ON dvr_segments BEGIN
    INSERT INTO dvr_versions (stream, version) VALUES (OLD.stream, 1)
    ON CONFLICT (stream) DO UPDATE SET version = version + 1;
END;
CREATE TABLE IF NOT EXISTS dvr_range_chunks (
    stream TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (stream, chunk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dvr_range_streams (stream TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dvr_gc (
    root TEXT NOT NULL,
    key TEXT NOT NULL,
    queued REAL NOT NULL,
    PRIMARY KEY (root, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dvr_intents (
    root TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (root, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dvr_watch (stream TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dvr_episodes (
    episode_id INTEGER PRIMARY KEY,
    media TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER,
    episode_type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dvr_episodes_by_media ON dvr_episodes (media, opened_at);
"""


ROOT_CACHE_SECONDS = 60.0
"""How long ``LocalDvrStorage.exists`` trusts a root's resolved folder."""
LOCAL_DVR_BUCKET = "dvr"
"""The bucket name of the local object-created events of DVR segments (their key is the
segment's key relative to its root; the index row says which root)."""


def _pad(ms: int) -> str:
    return f"{max(0, ms):013d}"


# -- streams ----------------------------------------------------------------------------------
def stream_to_json(s: DvrStream) -> dict[str, Any]:
    return {"name": s.name, "device_id": s.device_id, "channel": s.channel,
            "dvr": s.dvr.as_json() if s.dvr else None, "created_at": s.created_at,
            "updated_at": s.updated_at, "deleted_at": s.deleted_at, "title": s.title,
            "read_salt": s.read_salt}


def stream_from_json(d: dict[str, Any]) -> DvrStream:
    dvr = d.get("dvr")
    return DvrStream(name=d["name"], device_id=int(d["device_id"]), channel=int(d["channel"]),
                     dvr=DvrConfig(**dvr) if dvr else None, created_at=float(d["created_at"]),
                     updated_at=float(d["updated_at"]), deleted_at=d.get("deleted_at"),
                     title=d.get("title", ""),
                     read_salt=str(d.get("read_salt", "")))


class SqliteDvrStreamStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.conn().executescript(DVR_SCHEMA)

    def put(self, stream: DvrStream) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO dvr_streams (name, device_id, channel, deleted_at,"
                      " data) VALUES (?,?,?,?,?)",
                      (stream.name, stream.device_id, stream.channel, stream.deleted_at,
                       json.dumps(stream_to_json(stream))))

    def get(self, name: str, *, include_deleted: bool = False) -> DvrStream | None:
        row = self.db.conn().execute("SELECT data FROM dvr_streams WHERE name=?",
                                     (name,)).fetchone()
        s = stream_from_json(json.loads(row[0])) if row else None
        return s if s is not None and (include_deleted or s.deleted_at is None) else None

    def list(self, *, include_deleted: bool = False) -> list[DvrStream]:
        sql = "SELECT data FROM dvr_streams"
        if not include_deleted:
            sql += " WHERE deleted_at IS NULL"
        return [stream_from_json(json.loads(r[0]))
                for r in self.db.conn().execute(sql + " ORDER BY name")]

    def of_device(self, device_id: int) -> list[DvrStream]:
        rows = self.db.conn().execute(
            "SELECT data FROM dvr_streams WHERE device_id=? AND deleted_at IS NULL"
            " ORDER BY channel, name", (device_id,))
        return [stream_from_json(json.loads(r[0])) for r in rows]

    def purge(self, name: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM dvr_streams WHERE name=?", (name,))


# -- segments ---------------------------------------------------------------------------------
_SEG_COLS = "stream, segment_id, start_ms, end_ms, size, root, key, data, fragments"


def _segment_row(s: SegmentEntry) -> tuple[Any, ...]:
    data = {"init_key": s.init_key, "codec": s.codec, "width": s.width, "height": s.height,
            "source": s.source, "created_at": s.created_at, "tracks": list(s.tracks)}
    if s.thumbs is not None:
        data["thumbs"] = s.thumbs.pack()
    return (s.stream, s.segment_id, s.start_ms, s.end_ms, s.size, s.root, s.key,
            json.dumps(data), pack_fragments(s.fragments))


def _segment(row: Any) -> SegmentEntry:
    d = json.loads(row["data"])
    return SegmentEntry(stream=row["stream"], segment_id=row["segment_id"], root=row["root"],
                        key=row["key"], init_key=d["init_key"], start_ms=row["start_ms"],
                        end_ms=row["end_ms"], size=row["size"], codec=d["codec"],
                        width=d["width"], height=d["height"],
                        fragments=unpack_fragments(row["fragments"]), source=d["source"],
                        created_at=d["created_at"], tracks=tuple(d["tracks"]),
                        thumbs=Thumbs.unpack(d.get("thumbs")))


def gc_items(s: SegmentEntry) -> list[tuple[str, str]]:
    """The objects a segment row owns: its segment and its thumbnails object."""
    out = [(s.root, s.key)]
    if s.thumbs is not None and s.thumbs.key:
        out.append((s.root, s.thumbs.key))
    return out


class SqliteDvrIndex:
    def __init__(self, db: Database, clock: Any = None, queue: Any = None) -> None:
        """``queue``: the local object-created queue (adapters/local/queue.py); a new row
        stages its segment's event in the same transaction, the local stand-in for S3's
        notification (the ingest worker then makes its thumbnails, services/dvrthumbs.py)."""
        self.db = db
        self.clock = clock
        self.queue = queue
        self.on_indexed: Any = None
        """Called (no arguments, any thread) after a row was added: wakes the worker."""
        db.conn().executescript(DVR_SCHEMA)

    def add(self, segment: SegmentEntry) -> bool:
        from fleetcam.ports import ObjectCreated

        event_id = None
        with self.db.tx() as c:
            cur = c.execute(f"INSERT OR IGNORE INTO dvr_segments ({_SEG_COLS})"
                            " VALUES (?,?,?,?,?,?,?,?,?)", _segment_row(segment))
            c.execute("DELETE FROM dvr_intents WHERE root=? AND key=?",
                      (segment.root, segment.key))
            added = cur.rowcount == 1
            if added:
                self._chunks_added(c, segment)
            if added and self.queue is not None and segment.key:
                event_id = self.queue.stage(c, ObjectCreated(LOCAL_DVR_BUCKET, segment.key,
                                                             segment.size))
        if event_id is not None:
            self.queue.release(event_id)
            if self.on_indexed is not None:
                self.on_indexed()
        return added

    def set_thumbs(self, stream: str, segment_id: str, root: str,
                   thumbs: Thumbs) -> Thumbs | None:
        with self.db.tx() as c:
            row = c.execute("SELECT data FROM dvr_segments WHERE stream=? AND "
                            "segment_id=?", (stream, segment_id)).fetchone()
            if row is None:
                return None
            d = json.loads(row[0])
            if d.get("thumbs"):
                return Thumbs.unpack(d["thumbs"])
            d["thumbs"] = thumbs.pack()
            c.execute("UPDATE dvr_segments SET data=? WHERE stream=? AND segment_id=?",
                      (json.dumps(d), stream, segment_id))
            if thumbs.key:
                c.execute("DELETE FROM dvr_intents WHERE root=? AND key=?", (root, thumbs.key))
        return thumbs

    def _where(self, stream: str, start_ms: int | None, end_ms: int | None,
               after: str | None) -> tuple[str, list[Any]]:
        where, params = ["stream=?"], [stream]
        if start_ms is not None:
            where.append("segment_id >= ? AND end_ms > ?")
            params += [_pad(start_ms - MAX_SEGMENT_MS), start_ms]
        if end_ms is not None:
            where.append("segment_id < ? AND start_ms < ?")
            params += [_pad(end_ms), end_ms]
        if after is not None:
            where.append("segment_id > ?")
            params.append(after)
        return " AND ".join(where), params

    def segments(self, stream: str, start_ms: int | None = None, end_ms: int | None = None,
                 *, limit: int = 1000, after: str | None = None) -> list[SegmentEntry]:
        where, params = self._where(stream, start_ms, end_ms, after)
        rows = self.db.conn().execute(
            f"SELECT {_SEG_COLS} FROM dvr_segments WHERE {where} ORDER BY segment_id LIMIT ?",
            [*params, limit])
        return [_segment(r) for r in rows]

    def spans(self, stream: str, start_ms: int | None = None,
              end_ms: int | None = None) -> list[tuple[int, int]]:
        where, params = self._where(stream, start_ms, end_ms, None)
        cur = self.db.conn().cursor()
        cur.row_factory = None  # plain tuples: a year of segments is 52,560 rows
        return cur.execute(f"SELECT start_ms, end_ms FROM dvr_segments WHERE {where} "
                           "ORDER BY segment_id", params).fetchall()  # type: ignore[no-any-return]

    def usage(self, stream: str) -> tuple[int, int]:
        row = self.db.conn().execute("SELECT bytes, segments FROM dvr_usage WHERE stream=?",
                                     (stream,)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def version(self, stream: str) -> int:
        row = self.db.conn().execute("SELECT version FROM dvr_versions WHERE stream=?",
                                     (stream,)).fetchone()
        return int(row[0]) if row else 0

    def streams(self) -> list[str]:
        return [r[0] for r in self.db.conn().execute(
            "SELECT stream FROM dvr_usage WHERE segments > 0 ORDER BY stream")]

    def remove(self, stream: str, segment_ids: Iterable[str]) -> list[SegmentEntry]:
        ids = list(dict.fromkeys(segment_ids))
        if not ids:
            return []
        now = self.clock.now() if self.clock is not None else 0.0
        gone: list[SegmentEntry] = []
        with self.db.tx() as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                rows = c.execute(f"SELECT {_SEG_COLS} FROM dvr_segments WHERE stream=? AND "
                                 f"segment_id IN ({placeholders(chunk)})", [stream, *chunk])
                found = [_segment(r) for r in rows]
                c.execute(f"DELETE FROM dvr_segments WHERE stream=? AND segment_id IN "
                          f"({placeholders(chunk)})", [stream, *chunk])
                c.executemany("INSERT OR IGNORE INTO dvr_gc (root, key, queued) VALUES (?,?,?)",
                              [(r, k, now) for s in found for r, k in gc_items(s)])
                gone += found
            self._chunks_removed(c, stream, gone)
        return gone

    # -- merged ranges, materialized per chunk (domain.dvr.RANGE_CHUNK_MS) --------------------
    def _built(self, c: Any, stream: str) -> bool:
        return c.execute("SELECT 1 FROM dvr_range_streams WHERE stream=?",
                         (stream,)).fetchone() is not None

    def _chunks_added(self, c: Any, seg: SegmentEntry) -> None:
        """Merge a new row's span into its chunks (same transaction). A stream indexed
        before chunks existed is left alone until ``ranges`` builds them."""
        if not self._built(c, seg.stream):
            if c.execute("SELECT COUNT(*) FROM dvr_segments WHERE stream=?",
                         (seg.stream,)).fetchone()[0] != 1:
                return
            c.execute("INSERT INTO dvr_range_streams (stream) VALUES (?)", (seg.stream,))
        for chunk in chunk_ids(seg.start_ms, seg.end_ms):
            row = c.execute("SELECT data FROM dvr_range_chunks WHERE stream=? AND chunk=?",
                            (seg.stream, chunk)).fetchone()
            have = unpack_ranges(row[0]) if row else []
            self._put_chunk(c, seg.stream, chunk,
                            chunk_add(have, (seg.start_ms, seg.end_ms), chunk))

    def _chunks_removed(self, c: Any, stream: str, gone: list[SegmentEntry]) -> None:
        if not gone or not self._built(c, stream):
            return
        for chunk in sorted({k for s in gone for k in chunk_ids(s.start_ms, s.end_ms)}):
            lo = chunk * RANGE_CHUNK_MS
            spans = c.execute(
                "SELECT start_ms, end_ms FROM dvr_segments WHERE stream=? AND segment_id >= ?"
                " AND segment_id < ? AND end_ms > ?",
                (stream, _pad(lo - MAX_SEGMENT_MS), _pad(lo + RANGE_CHUNK_MS), lo)).fetchall()
            self._put_chunk(c, stream, chunk, chunk_ranges([(r[0], r[1]) for r in spans], chunk))

    @staticmethod
    def _put_chunk(c: Any, stream: str, chunk: int, ranges: list[tuple[int, int]]) -> None:
        if ranges:
            c.execute("INSERT OR REPLACE INTO dvr_range_chunks (stream, chunk, data) "
                      "VALUES (?,?,?)", (stream, chunk, pack_ranges(ranges)))
        else:
            c.execute("DELETE FROM dvr_range_chunks WHERE stream=? AND chunk=?",
                      (stream, chunk))

    def ranges(self, stream: str) -> tuple[array.array[int], array.array[int]]:
        conn = self.db.conn()
        if self._built(conn, stream):
            rows = conn.execute("SELECT data FROM dvr_range_chunks WHERE stream=? ORDER BY "
                                "chunk", (stream,)).fetchall()
            return join_chunks(r[0] for r in rows)
        with self.db.tx() as c:
            if not self._built(c, stream):  # indexed before chunks existed: build them once
                spans = c.execute("SELECT start_ms, end_ms FROM dvr_segments WHERE stream=?",
                                  (stream,)).fetchall()
                c.execute("DELETE FROM dvr_range_chunks WHERE stream=?", (stream,))
                chunks = sorted({k for a, b in spans for k in chunk_ids(a, b)})
                for chunk in chunks:
                    self._put_chunk(c, stream, chunk,
                                    chunk_ranges([(r[0], r[1]) for r in spans], chunk))
                if spans:
                    c.execute("INSERT INTO dvr_range_streams (stream) VALUES (?)", (stream,))
            rows = c.execute("SELECT data FROM dvr_range_chunks WHERE stream=? ORDER BY chunk",
                             (stream,)).fetchall()
        return join_chunks(r[0] for r in rows)

    def pending_deletions(self, limit: int = 1000) -> list[tuple[str, str]]:
        rows = self.db.conn().execute("SELECT root, key FROM dvr_gc ORDER BY queued LIMIT ?",
                                      (limit,))
        return [(r[0], r[1]) for r in rows]

    def deletion_done(self, items: Iterable[tuple[str, str]]) -> None:
        with self.db.tx() as c:
            c.executemany("DELETE FROM dvr_gc WHERE root=? AND key=?", list(items))


    def intend(self, root: str, key: str, at: float) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO dvr_intents (root, key, at) VALUES (?,?,?)",
                      (root, key, at))

    def abandoned(self, before: float, limit: int = 1000) -> list[tuple[str, str]]:
        rows = self.db.conn().execute(
            "SELECT root, key FROM dvr_intents WHERE at < ? ORDER BY at LIMIT ?",
            (before, limit))
        return [(r[0], r[1]) for r in rows]

    def drop_intents(self, items: Iterable[tuple[str, str]]) -> None:
        with self.db.tx() as c:
            c.executemany("DELETE FROM dvr_intents WHERE root=? AND key=?", list(items))


    def watch(self, stream: str, until: float) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO dvr_watch (stream, until) VALUES (?,?)",
                      (stream, until))

    def watched(self, now: float) -> list[str]:
        return [r[0] for r in self.db.conn().execute(
            "SELECT stream FROM dvr_watch WHERE until > ? ORDER BY stream", (now,))]


# -- episodes ---------------------------------------------------------------------------------
def episode_from_json(d: dict[str, Any]) -> Episode:
    known = {"episode_id", "media", "opened_at", "closed_at", "updated_at", "episode_type",
             "preview"}
    return Episode(episode_id=int(d["episode_id"]), media=d["media"],
                   opened_at=int(d["opened_at"]),
                   closed_at=None if d.get("closed_at") is None else int(d["closed_at"]),
                   updated_at=int(d["updated_at"]),
                   episode_type=d.get("episode_type") or "generic", preview=d.get("preview"),
                   meta={k: v for k, v in d.items() if k not in known})


class SqliteEpisodeStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.conn().executescript(DVR_SCHEMA)

    def put(self, episode: Episode, *, create_only: bool = False) -> bool:
        verb = "INSERT OR IGNORE" if create_only else "INSERT OR REPLACE"
        with self.db.tx() as c:
            cur = c.execute(f"{verb} INTO dvr_episodes (episode_id, media, opened_at, closed_at,"
                            " episode_type, data) VALUES (?,?,?,?,?,?)",
                            (episode.episode_id, episode.media, episode.opened_at,
                             episode.closed_at, episode.episode_type,
                             json.dumps(episode.as_json())))
            return cur.rowcount == 1

    def get(self, episode_id: int) -> Episode | None:
        row = self.db.conn().execute("SELECT data FROM dvr_episodes WHERE episode_id=?",
                                     (episode_id,)).fetchone()
        return episode_from_json(json.loads(row[0])) if row else None

    def delete(self, episode_id: int) -> bool:
        with self.db.tx() as c:
            return c.execute("DELETE FROM dvr_episodes WHERE episode_id=?",
                             (episode_id,)).rowcount == 1

    def query(self, q: EpisodeQuery) -> list[Episode]:
        where: list[str] = []
        params: list[Any] = []
        if q.media:
            where.append(f"media IN ({placeholders(q.media)})")
            params += q.media
        if q.episode_type:
            where.append(f"episode_type IN ({placeholders(q.episode_type)})")
            params += q.episode_type
        if q.time_to is not None:
            where.append("opened_at < ?")
            params.append(q.time_to)
        if q.time_from is not None:
            where.append("(closed_at IS NULL OR closed_at > ?)")
            params.append(q.time_from)
        if q.cursor is not None:
            where.append("episode_id > ?")
            params.append(q.cursor)
        sql = "SELECT data FROM dvr_episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.conn().execute(sql + " ORDER BY episode_id LIMIT ?", [*params, q.limit])
        return [episode_from_json(json.loads(r[0])) for r in rows]

    def overlapping(self, media: str, start_ms: int, end_ms: int) -> list[Episode]:
        rows = self.db.conn().execute(
            "SELECT data FROM dvr_episodes WHERE media=? AND opened_at < ? AND"
            " (closed_at IS NULL OR closed_at > ?) ORDER BY opened_at", (media, end_ms, start_ms))
        return [episode_from_json(json.loads(r[0])) for r in rows]


# -- objects ----------------------------------------------------------------------------------
RESERVED_DIRS = ("objects", "exports")
"""The data folder's own: the object store (media, raw clips, live segments, previews) and
the default export folder. A DVR root there would mix its segments with them."""


class LocalDvrStorage:
    """Segment objects as files: a root is a folder under the data folder (relative roots) or
    under one of ``allowed`` (absolute roots). Writes are atomic (temporary file + rename)."""

    def __init__(self, data_dir: Path | str, allowed: Iterable[Path | str] = ()) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.allowed = [Path(a).resolve() for a in allowed if str(a)]
        self._roots: dict[str, tuple[float, str]] = {}

    def resolve(self, root: str) -> str:
        if not isinstance(root, str) or not root.strip():
            raise Invalid("dvr.root must be a non-empty folder name", field="dvr.root")
        if "\x00" in root or len(root) > 1024 or root.startswith("s3://"):
            raise Invalid("dvr.root must be a local folder here", field="dvr.root")
        raw = Path(root)
        if ".." in raw.parts:
            raise Invalid("dvr.root may not contain '..'", field="dvr.root")
        if raw.is_absolute():
            path = raw.resolve()
            if not any(path == a or a in path.parents for a in self.allowed):
                raise Invalid("dvr.root is outside the allowed roots (FLEETCAM_DVR_ROOTS)",
                              field="dvr.root")
        else:
            path = (self.data_dir / raw).resolve()
            if self.data_dir not in path.parents:
                raise Invalid("dvr.root must be a folder inside the data folder",
                              field="dvr.root")
        if self.data_dir in path.parents:
            top = path.relative_to(self.data_dir).parts[0]
            if top in RESERVED_DIRS or top.startswith(DATA_DB_NAME):
                raise Invalid(f"dvr.root may not be {top!r} or under it (the all-in-one "
                              "server's own files)", field="dvr.root")
        elif path == self.data_dir or path in self.data_dir.parents:
            raise Invalid("dvr.root may not hold the data folder", field="dvr.root")
        return str(path)

    def _path(self, root: str, key: str) -> Path:
        base = Path(self.resolve(root))
        path = (base / key).resolve()
        if base not in path.parents:
            raise Invalid(f"object key escapes its root: {key[:80]!r}")
        return path

    def put(self, root: str, key: str, data: bytes, *, content_type: str) -> int:
        path = self._path(root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return len(data)

    def read(self, root: str, key: str, start: int = 0,
             end: int | None = None) -> Iterator[bytes]:
        path = self._path(root, key)
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            raise NotFound(f"no object {key}") from None
        return _chunks(f, start, end)

    def exists(self, root: str, key: str) -> bool:
        """Whether the object is there: a ``stat`` under the root resolved once a minute
        (a download checks each of its objects before its first byte). A key with ``..``
        or a symlink out of the root gets False here and is refused by ``read``."""
        if key.startswith("/") or ".." in key.split("/") or "\x00" in key:
            return False
        now = time.monotonic()
        hit = self._roots.get(root)
        if hit is None or now - hit[0] > ROOT_CACHE_SECONDS:
            if len(self._roots) > 256:
                self._roots.clear()
            hit = self._roots[root] = (now, self.resolve(root))
        path = os.path.join(hit[1], key)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            return False

    def delete(self, root: str, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(root, key))


def _chunks(f: Any, start: int, end: int | None, size: int = 1 << 20) -> Iterator[bytes]:
    with f:
        f.seek(start)
        left = None if end is None else end - start + 1
        while left is None or left > 0:
            data = f.read(size if left is None else min(size, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data
