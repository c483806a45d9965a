"""Event-triggered clip rules: when a device message matches, ask for video around it (pure)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fleetcam.domain import expr
from fleetcam.domain.selectors import parse_selector
from fleetcam.errors import Invalid

MAX_WINDOW = 600


@dataclass(frozen=True)
class VideoRule:
    """``condition`` is a filter expression over message fields, e.g. ``alarm.collision`` or
    ``position.speed>120``; ``devices`` is a device selector (``all``, ``1,2``...)."""

    id: int
    name: str
    condition: str
    devices: str = "all"
    channels: tuple[int, ...] = (1,)
    before: int = 10
    after: int = 10
    ttl: int = 86400
    cooldown: int = 60
    """Seconds after a hit during which the same rule does not fire again for that device."""
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    clip: bool = True
    """Queue request_video for the matched channels."""
    episode: bool = False
    """Open a cloud-DVR episode (``episode_type`` "rule") on the matched channels' recorded
    streams, protecting ``before`` + ``after`` seconds around the hit from deletion."""

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out


def _int(raw: dict[str, Any], name: str, lo: int, hi: int, default: int) -> int:
    v = raw.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid(f"{name} must be an integer from {lo} to {hi}", field=name)
    return v


def validate_rule(raw: Any, rule_id: int = 0, base: VideoRule | None = None) -> VideoRule:
    """Check a rule body (a partial one when ``base`` is given).

    Raises:
        Invalid: naming the field and why.
    """
    if not isinstance(raw, dict):
        raise Invalid("a rule must be a JSON object", field="body")
    merged = {**(base.as_json() if base else {}), **raw}
    unknown = set(raw) - {"name", "condition", "devices", "channels", "before", "after", "ttl",
                          "cooldown", "enabled", "extra", "id", "clip", "episode"}
    if unknown:
        raise Invalid(f"unknown rule field(s): {', '.join(sorted(unknown))}",
                      field=sorted(unknown)[0])
    name = merged.get("name", "")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Invalid("name must be a non-empty string", field="name")
    cond = merged.get("condition")
    if not isinstance(cond, str) or not cond.strip():
        raise Invalid("condition must be a filter expression", field="condition")
    expr.parse(cond)  # raises Invalid with the position
    devices = merged.get("devices", "all")
    if not isinstance(devices, str):
        raise Invalid("devices must be a device selector string", field="devices")
    parse_selector(devices)
    channels = merged.get("channels", [1])
    if (not isinstance(channels, list) or not channels or len(channels) > 16
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 255
                       for c in channels)):
        raise Invalid("channels must be a list of 1 to 16 channel numbers (1-255)",
                      field="channels")
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        raise Invalid("enabled must be a boolean", field="enabled")
    clip, episode = merged.get("clip", True), merged.get("episode", False)
    if not isinstance(clip, bool) or not isinstance(episode, bool):
        raise Invalid("clip and episode must be booleans",
                      field="clip" if not isinstance(clip, bool) else "episode")
    if not clip and not episode:
        raise Invalid("a rule needs clip or episode (or both)", field="clip")
    extra = merged.get("extra", {})
    if not isinstance(extra, dict):
        raise Invalid("extra must be an object", field="extra")
    return VideoRule(id=rule_id, name=name, condition=cond, devices=devices,
                     channels=tuple(dict.fromkeys(channels)),
                     before=_int(merged, "before", 0, MAX_WINDOW, 10),
                     after=_int(merged, "after", 0, MAX_WINDOW, 10),
                     ttl=_int(merged, "ttl", 60, 30 * 86400, 86400),
                     cooldown=_int(merged, "cooldown", 0, 86400, 60), enabled=enabled,
                     extra=extra, clip=clip, episode=episode)


def matches(rule: VideoRule, message: dict[str, Any]) -> bool:
    """Whether a (non-media) device message triggers the rule."""
    if not rule.enabled or message.get("media"):
        return False
    return expr.evaluate(expr.parse(rule.condition), message.get)
