"""How event payloads become MQTT message bodies (shared by every EventBus)."""
from __future__ import annotations

import json
from typing import Any


def encode(payload: Any) -> bytes:
    """JSON, compact; None is the empty message (clears a retained topic)."""
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return json.dumps(payload, separators=(",", ":")).encode()
