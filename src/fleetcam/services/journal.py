"""The device log: every media operation is stored and published on MQTT."""
from __future__ import annotations

from typing import Any

from fleetcam.domain.keys import media_topic
from fleetcam.domain.models import LogEntry
from fleetcam.ports import Clock, EventBus, LogStore

# flespi documents event_code 25 for media_file_updated; the others are fleetcam's own.
EVENT_CODES = {
    "media_file_uploaded": 24,
    "media_file_updated": 25,
    "media_file_deleted": 26,
    "media_file_expired": 27,
    "media_file_rejected": 28,
    "device_connected": 300,
    "device_disconnected": 301,
    "device_connection_replaced": 302,
    "device_reregistered": 303,
    "command_queued": 310,
    "command_sent": 311,
    "command_processed": 312,
    "command_canceled": 313,
    "command_expired": 314,
    "frame_error": 320,
    "rule_hit": 330,
    "alarm_attachments_requested": 340,
    "alarm_attachments_complete": 341,
    "alarm_attachments_incomplete": 342,
    "alarm_attachments_interrupted": 343,
    "alarm_attachment_skipped": 344,
}


class Journal:
    """Appends device log entries and publishes them at flespi's topics."""

    def __init__(self, logs: LogStore, bus: EventBus, clock: Clock, topic_prefix: str) -> None:
        self.logs = logs
        self.bus = bus
        self.clock = clock
        self.prefix = topic_prefix

    def record(self, device_id: int, event: str, payload: dict[str, Any],
               log_data: dict[str, Any] | None = None, topic: str | None = None) -> LogEntry:
        """Log ``event`` for the device and publish ``payload`` at
        ``{prefix}/log/gw/devices/{id}/{topic or event}``."""
        entry = self.logs.append(LogEntry(device_id=device_id, timestamp=self.clock.now(),
                                          event=event, data=log_data or payload))
        self.bus.publish(media_topic(self.prefix, device_id, topic or event), payload)
        return entry

    def state(self, device_id: int, path: str, payload: dict[str, Any] | None) -> None:
        """The retained ``{prefix}/state/gw/devices/{id}/{path}``; None empties it."""
        self.bus.publish(f"{self.prefix}/state/gw/devices/{device_id}/{path}", payload,
                         retain=True)

    def message(self, device_id: int, message: dict[str, Any]) -> None:
        """A device message at ``{prefix}/gw/devices/{id}/messages`` (flespi's layout)."""
        self.bus.publish(f"{self.prefix}/gw/devices/{device_id}/messages", message)


def render_log(entry: LogEntry) -> dict[str, Any]:
    """A log entry as flespi's device log item."""
    item: dict[str, Any] = {
        "id": entry.id,
        "timestamp": entry.timestamp,
        "event_code": EVENT_CODES.get(entry.event, 0),
        "event_text": entry.event,
        "event_origin": f"gw/devices/{entry.device_id}",
        "origin_type": 11,
        "origin_id": entry.device_id,
        "device_id": entry.device_id,
    }
    for k, v in entry.data.items():
        item.setdefault(k, v)
    return item
