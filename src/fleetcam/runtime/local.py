"""The local composition root: files on disk, SQLite (WAL), MQTT through aiomqtt."""
from __future__ import annotations

import logging
import secrets
import string
from pathlib import Path

from fleetcam.adapters.local.clock import SystemClock
from fleetcam.adapters.local.db import Database
from fleetcam.adapters.local.dvr import (LocalDvrStorage, SqliteDvrIndex,
                                        SqliteDvrStreamStore, SqliteEpisodeStore)
from fleetcam.adapters.local.files import LocalObjectStore
from fleetcam.adapters.local.queue import EventQueue
from fleetcam.adapters.local.gateway_repos import (SqliteCommandStore,
                                                   SqliteConnectionRegistry,
                                                   SqliteMediaRequestStore, SqliteMessageStore,
                                                   SqliteRuleStore)
from fleetcam.adapters.local.repos import SqliteDeviceRepo, SqliteLogStore, SqliteMediaIndex
from fleetcam.adapters.local.tokens import SqliteShareStore, SqliteTokenStore
from fleetcam.config import Settings
from fleetcam.domain.access import token_hash
from fleetcam.ports import Clock, EventBus
from fleetcam.runtime.container import Container, attach_dvr, wire

log = logging.getLogger(__name__)
TOKEN_ALPHABET = string.ascii_letters + string.digits


def new_token() -> str:
    """64 alphanumeric characters, like a flespi token."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(64))


def admin_token(settings: Settings, db: Database) -> tuple[str | None, str, bool]:
    """The admin token: the configured one, else the one generated on first start, of which
    the database keeps only the hash (a plain one from older versions is hashed in place).

    Returns (token or None when only its hash is known, its hash, generated_now)."""
    if settings.admin_token:
        return settings.admin_token, token_hash(settings.admin_token), False
    with db.tx() as c:
        row = c.execute("SELECT value FROM settings WHERE name='admin_token'").fetchone()
        if row:  # written by an older version: keep only its hash from now on
            c.execute("INSERT OR REPLACE INTO settings (name, value) VALUES "
                      "('admin_token_sha256', ?)", (token_hash(row[0]),))
            c.execute("DELETE FROM settings WHERE name='admin_token'")
        row = c.execute("SELECT value FROM settings WHERE name='admin_token_sha256'").fetchone()
        if row:
            return None, str(row[0]), False
        token = new_token()
        c.execute("INSERT INTO settings (name, value) VALUES ('admin_token_sha256', ?)",
                  (token_hash(token),))
    return token, token_hash(token), True


def local_mqtt(settings: Settings) -> tuple[str, str]:
    """(URL local processes publish to, the secret of fleetcam's own publisher).

    With ``FLEETCAM_MQTT_URL`` that URL as given (no secret). Otherwise the embedded broker
    on this machine, logged into as ``fleetcam-server`` with a secret kept in the database
    (made on first use), so that ``fleetcam serve`` and a separate ``fleetcam gateway`` on the
    same data directory publish alike; reading it takes the access the database needs."""
    if settings.mqtt_url:
        return settings.mqtt_url, ""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / "fleetcam.sqlite3")
    with db.tx() as c:
        row = c.execute("SELECT value FROM settings WHERE name='mqtt_publisher_secret'"
                        ).fetchone()
        secret = str(row[0]) if row else new_token()
        if not row:
            c.execute("INSERT INTO settings (name, value) VALUES ('mqtt_publisher_secret', ?)",
                      (secret,))
    return f"mqtt://fleetcam-server:{secret}@127.0.0.1:{settings.mqtt_port}", secret


class NullBus:
    """An EventBus that drops everything (CLI tools that publish nothing)."""

    def publish(self, topic: str, payload: object, *, retain: bool = False) -> None:
        return None


def build_local(settings: Settings, *, clock: Clock | None = None,
                bus: EventBus | None = None) -> Container:
    """Build the all-in-one graph under ``settings.data_dir``; data survives restarts."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    db = Database(data_dir / "fleetcam.sqlite3")
    queue = EventQueue(db, clock, max_attempts=settings.ingest_max_attempts)
    store = LocalObjectStore(data_dir / "objects", db, queue)
    token, digest, generated = admin_token(settings, db)
    container = wire(settings, clock=clock, store=store, index=SqliteMediaIndex(db),
                device_repo=SqliteDeviceRepo(db), logs=SqliteLogStore(db, settings.log_ttl), bus=bus or NullBus(),
                message_store=SqliteMessageStore(db, settings.messages_ttl), registry=SqliteConnectionRegistry(db, clock.now),
                command_store=SqliteCommandStore(db), rule_store=SqliteRuleStore(db),
                media_requests=SqliteMediaRequestStore(db),
                token_store=SqliteTokenStore(db), share_store=SqliteShareStore(db),
                admin_hash=digest,
                db=db, queue=queue, admin_token=token, token_generated=generated)
    from fleetcam.adapters.local.dvrjobs import SqliteExportJobStore

    container.extras["dvr_export_store"] = SqliteExportJobStore(db)
    return attach_dvr(container, streams=SqliteDvrStreamStore(db),
                      index=SqliteDvrIndex(db, clock, queue), episodes=SqliteEpisodeStore(db),
                      storage=LocalDvrStorage(data_dir, settings.dvr_roots))
