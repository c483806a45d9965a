"""The object graph every entry point shares."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetcam.config import Settings
from fleetcam.ports import (Clock, CommandStore, ConnectionRegistry, DeviceRepo, EventBus,
                            LogStore, MediaIndex, MessageStore, ObjectStore)
from fleetcam.services.devices import DeviceService
from fleetcam.services.gateway import CommandService, ConnectionService, MessageService
from fleetcam.services.ingest import IngestService
from fleetcam.services.journal import Journal
from fleetcam.services.media import MediaService
from fleetcam.services.retention import RetentionService


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
    extras: dict[str, Any] = field(default_factory=dict)


def wire(settings: Settings, *, clock: Clock, store: ObjectStore, index: MediaIndex,
         device_repo: DeviceRepo, logs: LogStore, bus: EventBus, message_store: MessageStore,
         registry: ConnectionRegistry, command_store: CommandStore, **extras: Any) -> Container:
    """Build the services over whichever adapters the runtime chose."""
    from fleetcam.media.probe import probe_image

    journal = Journal(logs, bus, clock, settings.topic_prefix)
    media = MediaService(store, index, device_repo, journal, clock, settings.base_url, probe_image)
    retention = RetentionService(media, index, device_repo, clock)
    connections = ConnectionService(registry, journal)
    return Container(
        settings=settings, clock=clock, store=store, index=index, device_repo=device_repo,
        logs=logs, bus=bus, devices=DeviceService(device_repo, settings.default_media_ttl),
        media=media, retention=retention, ingest=IngestService(media, retention, device_repo),
        journal=journal, messages=MessageService(message_store, journal),
        connections=connections,
        commands=CommandService(command_store, connections, journal, clock),
        extras=dict(extras))
