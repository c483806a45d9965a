"""EventBus over AWS IoT Core's data plane (the same topics as the local broker)."""
from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from fleetcam.adapters.payload import encode

log = logging.getLogger(__name__)


class IotEventBus:
    """Publishes with iot-data ``publish`` (QoS 1, retain supported by IoT Core)."""

    def __init__(self, iot_client: Any | None = None, endpoint_url: str | None = None) -> None:
        self.iot = iot_client or boto3.client("iot-data", endpoint_url=endpoint_url)

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        try:
            self.iot.publish(topic=topic, qos=1, retain=retain, payload=encode(payload))
        except (ClientError, BotoCoreError) as e:
            # events are best effort, as on the local broker; the device log keeps the record
            log.warning("iot publish to %s failed: %s", topic, e)
