"""/auth/regions: this deployment's public addresses, as flespi's web clients discover them."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter

from fleetcam.api.deps import ContainerDep
from fleetcam.config import Settings

router = APIRouter(prefix="/auth", tags=["auth"])


def mqtt_ws(settings: Settings) -> str:
    """MQTT over WebSocket without its scheme (clients put ``wss://`` before it)."""
    if settings.public_mqtt_ws:
        return settings.public_mqtt_ws.split("://", 1)[-1]
    if settings.iot_endpoint:  # IoT Core serves MQTT over WebSocket at /mqtt
        return f"{settings.iot_endpoint}/mqtt"
    return f"{urlsplit(settings.base_url).netloc}/mqtt"


@router.get("/regions")
def regions(c: ContainerDep) -> dict[str, Any]:
    """One region, the default: ``rest``, ``mqtt-ws`` and ``media`` (no token needed)."""
    s = c.settings
    return {"result": [{"name": s.region_name, "default": True, "rest": s.base_url,
                        "mqtt-ws": mqtt_ws(s), "media": f"{s.base_url}/media"}]}
