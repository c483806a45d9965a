"""The object graph every entry point shares."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetcam.config import Settings
from fleetcam.ports import (Clock, CommandStore, ConnectionRegistry, DeviceRepo, DvrIndex,
                            DvrStorage, DvrStreamStore, DvrTail, EpisodeStore, EventBus,
                            LogStore, MediaIndex, MediaRequestStore, MessageStore, ObjectStore,
                            RuleStore, ShareStore, TokenStore)
from fleetcam.services.access import AccessService
from fleetcam.services.sharing import ShareService
from fleetcam.services.devices import DeviceService
from fleetcam.services.dvr import DvrClips, DvrService
from fleetcam.services.dvrthumbs import ThumbnailWriter
from fleetcam.services.gateway import CommandService, ConnectionService, MessageService
from fleetcam.services.ingest import IngestService
from fleetcam.services.journal import Journal
from fleetcam.services.media import MediaService
from fleetcam.services.pipeline import MediaMessages, PackagingService
from fleetcam.services.retention import RetentionService
from fleetcam.services.rules import RuleService


@dataclass
class Container:
    settings: Settings
    clock: Clock
    store: ObjectStore
    index: MediaIndex
    device_repo: DeviceRepo
    logs: LogStore
    bus: EventBus
    devices: DeviceService
    media: MediaService
    retention: RetentionService
    ingest: IngestService
    journal: Journal
    messages: MessageService
    connections: ConnectionService
    commands: CommandService
    rules: RuleService
    media_requests: MediaRequestStore
    access: AccessService
    shares: ShareService
    extras: dict[str, Any] = field(default_factory=dict)
    dvr_streams: DvrStreamStore | None = None
    dvr_index: DvrIndex | None = None
    episodes: EpisodeStore | None = None
    dvr_storage: DvrStorage | None = None
    dvr_tail: DvrTail | None = None
    dvr: DvrService | None = None
    dvr_clips: DvrClips | None = None
    """The cloud DVR's ports (docs/dvr.md); the recording gateway sets ``dvr_tail``."""
    dvr_thumbs: ThumbnailWriter | None = None
    """The object-created handler of DVR segments (stored thumbnails)."""


def wire(settings: Settings, *, clock: Clock, store: ObjectStore, index: MediaIndex,
         device_repo: DeviceRepo, logs: LogStore, bus: EventBus, message_store: MessageStore,
         registry: ConnectionRegistry, command_store: CommandStore, rule_store: RuleStore,
         media_requests: MediaRequestStore, token_store: TokenStore, share_store: ShareStore,
         admin_hash: str | None = None, **extras: Any) -> Container:
    """Build the services over whichever adapters the runtime chose."""
    from fleetcam.media.probe import probe_image

    def probe_video(path: str) -> Any:
        from fleetcam.media.probe import probe_video as probe

        return probe(path)

    def package_raw(src: Any, dst_path: str) -> Any:
        from fleetcam.media.package import package_raw as package

        return package(src, dst_path)

    journal = Journal(logs, bus, clock, settings.topic_prefix)
    media = MediaService(store, index, device_repo, journal, clock, settings.base_url,
                         probe_image, probe_video)
    media.default_shared = settings.media_shared
    retention = RetentionService(media, index, device_repo, clock)
    connections = ConnectionService(registry, journal)
    messages = MessageService(message_store, journal)
    commands = CommandService(command_store, connections, journal, clock)
    media_messages = MediaMessages(messages, message_store, commands, media.render,
                                   settings.media_enrich)
    media.created_listeners.append(media_messages)
    media.rejected_listeners.append(media_messages.rejected)
    def package_file(src: Any, dst_path: str) -> Any:
        from fleetcam.media.attachment import package_file as package

        return package(src, dst_path)

    packaging = PackagingService(store, journal, commands, package_raw, package_file)
    rules = RuleService(rule_store, device_repo, commands, journal, clock)
    messages.listeners.append(rules)
    return Container(
        settings=settings, clock=clock, store=store, index=index, device_repo=device_repo,
        logs=logs, bus=bus, devices=DeviceService(device_repo, settings.default_media_ttl, clock,
                                                      message_store.retention),
        media=media, retention=retention,
        ingest=IngestService(media, retention, device_repo, packaging),
        journal=journal, messages=messages, connections=connections, commands=commands,
        rules=rules, access=AccessService(token_store, clock, admin_hash=admin_hash),
        shares=ShareService(share_store, index, registry, clock, settings.base_url),
        media_requests=media_requests, extras=dict(extras))


def attach_dvr(c: Container, *, streams: DvrStreamStore, index: DvrIndex,
               episodes: EpisodeStore, storage: DvrStorage, thumb_reads: int | None = None
               ) -> Container:
    """Add the cloud DVR's stores and service to a built container (``thumb_reads``: see
    ``ThumbnailWriter``)."""
    c.dvr_streams, c.dvr_index, c.episodes, c.dvr_storage = streams, index, episodes, storage

    def jpeg(init: bytes, fragment: bytes) -> bytes:
        from fleetcam.media.dvrthumb import keyframe_jpeg

        return keyframe_jpeg(init, fragment)

    c.dvr_thumbs = ThumbnailWriter(index, storage, c.clock, jpeg, max_reads=thumb_reads)
    c.ingest.dvr_objects = c.dvr_thumbs.handle
    c.dvr = DvrService(streams, index, episodes, storage, c.device_repo, c.clock)
    c.rules.dvr = c.dvr
    c.dvr_clips = DvrClips(c.dvr)
    if c.ingest.packaging is not None:
        c.ingest.packaging.archive = c.dvr_clips.fold
    return c
