"""MQTT topics and who may read them: pure rules for the broker.

fleetcam publishes under its prefix (``{p}`` below, ``fleetcam`` or ``flespi``):

- ``{p}/log/gw/devices/{id}/{event...}``: the device log (media_file_*, connections/...,
  commands-queue/{name}/{step}, mediastream/{channel}, video-rules/{id}/hit);
- ``{p}/state/gw/devices/{id}/{path...}``: retained state (``commands-queue/{command_id}``);
- ``{p}/message/gw/devices/{id}`` (flespi's) and ``{p}/gw/devices/{id}/messages``: messages.

Each topic maps onto a REST permission: GET on ``gw/devices`` item ``id``, submodule ``S``
(``Principal.allows("gw/devices", "GET", id, S)``). A log topic is readable with the ``logs``
submodule or with the submodule its event is about (``media`` for media_file_*, and so on).

flespi's extension: a level may list names separated by commas
(``.../7/media_file_uploaded,media_file_updated``); the broker expands it into one filter per
combination.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import product
from typing import Protocol

MAX_FILTER_BYTES = 512
MAX_LEVELS = 16
MAX_EXPANSION = 64
URI = "gw/devices"
SUBMODULES = ("media", "commands", "commands-queue", "commands-result", "connections", "logs",
              "messages")
# the first level after a log topic's device id -> submodules (besides "logs") that read it
_LOG_EVENT_SUBMODULES: dict[str, tuple[str, ...]] = {
    "connections": ("connections",),
    "commands-queue": ("commands-queue", "commands"),
    "commands": ("commands", "commands-queue"),
    "commands-result": ("commands-result", "commands"),
    "mediastream": ("connections", "media"),
}


class Reader(Protocol):
    """What the broker needs of a principal (fleetcam.domain.access.Principal)."""

    kind: str

    def allows(self, uri: str, method: str, device_id: int | None = None,
               submodule: str | None = None) -> bool: ...


class FilterError(ValueError):
    """A topic filter that is not a valid MQTT filter or exceeds the broker's limits."""


def expand(topic_filter: str) -> list[str]:
    """The filters a (possibly comma-listed) filter stands for; FilterError if invalid."""
    if not topic_filter or len(topic_filter.encode("utf-8")) > MAX_FILTER_BYTES:
        raise FilterError("empty or longer than %d bytes" % MAX_FILTER_BYTES)
    if topic_filter.startswith("$share/"):
        raise FilterError("shared subscriptions are not supported")
    levels = topic_filter.split("/")
    if len(levels) > MAX_LEVELS:
        raise FilterError(f"more than {MAX_LEVELS} levels")
    choices: list[list[str]] = []
    total = 1
    for i, level in enumerate(levels):
        alternatives = level.split(",") if "," in level else [level]
        for alt in alternatives:
            if ("#" in alt and (alt != "#" or i != len(levels) - 1 or len(alternatives) > 1)) \
                    or ("+" in alt and (alt != "+" or len(alternatives) > 1)):
                raise FilterError("a wildcard must be a whole level ('#' only the last)")
            if len(alternatives) > 1 and not alt:
                raise FilterError("an empty name in a comma list")
        unique = list(dict.fromkeys(alternatives))
        total *= len(unique)
        if total > MAX_EXPANSION:
            raise FilterError(f"the comma lists expand to more than {MAX_EXPANSION} filters")
        choices.append(unique)
    return ["/".join(combo) for combo in product(*choices)]


def valid_topic(topic: str) -> bool:
    """A topic name a client may publish to (no wildcards, bounded)."""
    return (bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic
            and len(topic.encode("utf-8")) <= MAX_FILTER_BYTES
            and topic.count("/") < MAX_LEVELS)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of one (expanded) filter against a topic name."""
    f, t = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and f[0] in ("+", "#"):
        return False
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def _covers(pattern: str, topic_filter: str) -> bool:
    """Does ``pattern`` (a token's mqtt ACL topic) match everything ``topic_filter`` can?"""
    p, f = pattern.split("/"), topic_filter.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(f) or f[i] == "#" or (level != "+" and (f[i] == "+" or level != f[i])):
            return False
    return len(p) == len(f)


def _mqtt_acl(principal: Reader, topic_filter: str, action: str) -> bool:
    """flespi's ``{"uri": "mqtt", "topic": ..., "actions": [...]}`` ACL entries."""
    for entry in getattr(principal, "acl", ()) or ():
        if getattr(entry, "uri", None) != "mqtt":
            continue
        topic = getattr(entry, "topic", None)
        if topic and action in (getattr(entry, "actions", ()) or ()) \
                and _covers(topic, topic_filter):
            return True
    return False


def _full(principal: Reader) -> bool:
    return principal.kind in ("master", "standard")


def _submodules(kind: str, rest: list[str]) -> tuple[str | None, ...] | None:
    """Submodules any of which reads topics of ``kind`` whose levels after the device id are
    ``rest`` (the first may be a wildcard: None = every submodule and the device itself)."""
    first = rest[0] if rest else ""
    if kind == "log":
        if first in ("+", "#"):
            return None
        if first.startswith("media_file_"):
            return ("logs", "media")
        return ("logs",) + _LOG_EVENT_SUBMODULES.get(first, ())
    if kind == "state":
        if first in ("+", "#"):
            return None
        if not rest:
            return (None,)
        return (first,) + _LOG_EVENT_SUBMODULES.get(first, ())
    return ("messages",)


def _parse(prefix: str, levels: list[str]) -> tuple[str, str, list[str]] | None:
    """(kind, device level, levels after it) of a topic or filter under ``prefix``."""
    if len(levels) < 4 or levels[0] != prefix:
        return None
    if levels[1] in ("log", "state", "message") and levels[2:4] == ["gw", "devices"] \
            and len(levels) >= 5:
        kind, dev, rest = levels[1], levels[4], levels[5:]
        if kind == "message" and rest and rest != ["#"]:
            return None
        return kind, dev, rest
    if levels[1:3] == ["gw", "devices"] and (levels[4:] in (["messages"], ["+"], ["#"])):
        return "message", levels[3], []
    return None


def _device(level: str) -> int | None | bool:
    """A device level as an id, None for '+'/'#', False when not a device id."""
    if level in ("+", "#"):
        return None
    if level.isdigit() and len(level) <= 19 and int(level) <= 2**63 - 1:
        return int(level)
    return False


def may_read(principal: Reader, prefix: str, topic: str) -> bool:
    """May ``principal`` receive a message published at ``topic``?"""
    levels = topic.split("/")
    if levels[0] != prefix:
        return _full(principal) or _mqtt_acl(principal, topic, "subscribe")
    if _full(principal):
        return True
    parsed = _parse(prefix, levels)
    if parsed is None:
        return _mqtt_acl(principal, topic, "subscribe")
    kind, dev, rest = parsed
    device = _device(dev)
    if not isinstance(device, int) or isinstance(device, bool):
        return False
    subs = _submodules(kind, rest)
    return any(principal.allows(URI, "GET", device, s) for s in subs or (None,)) \
        or _mqtt_acl(principal, topic, "subscribe")


def may_subscribe(principal: Reader, prefix: str, topic_filter: str) -> bool:
    """May ``principal`` hold this (expanded) filter? Wildcards above the device level under
    the prefix are refused to tokens limited by an ACL; a '+' device level is allowed when
    the token reads that submodule of some devices (delivery is still checked per message)."""
    if _full(principal) or _mqtt_acl(principal, topic_filter, "subscribe"):
        return True
    levels = topic_filter.split("/")
    if levels[0] != prefix:
        return False
    parsed = _parse(prefix, levels)
    if parsed is None:
        return False
    kind, dev, rest = parsed
    device = _device(dev)
    if device is False or dev == "#":
        return False
    subs = _submodules(kind, rest)
    candidates: Iterable[str | None] = subs if subs is not None else (None,) + SUBMODULES
    dev_id = device if isinstance(device, int) and not isinstance(device, bool) else None
    return any(principal.allows(URI, "GET", dev_id, s) for s in candidates)


def may_publish(principal: Reader, prefix: str, topic: str) -> bool:
    """Clients never publish under fleetcam's prefix; elsewhere full tokens may, and ACL
    tokens where an ``mqtt`` entry lets them."""
    if topic.split("/")[0] == prefix or topic.startswith("$"):
        return False
    return _full(principal) or _mqtt_acl(principal, topic, "publish")


class TopicTree:
    """Subscriptions indexed by level, for matching a topic without scanning them all."""

    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, TopicTree] = {}
        self.values: set[object] = set()

    def add(self, topic_filter: str, value: object) -> None:
        node = self
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, TopicTree())
        node.values.add(value)

    def remove(self, topic_filter: str, value: object) -> None:
        path: list[tuple[TopicTree, str]] = []
        node = self
        for level in topic_filter.split("/"):
            nxt = node.children.get(level)
            if nxt is None:
                return
            path.append((node, level))
            node = nxt
        node.values.discard(value)
        for parent, level in reversed(path):  # prune empty branches
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]

    def match(self, topic: str, visit: Callable[[object], None]) -> None:
        levels = topic.split("/")
        dollar = topic.startswith("$")

        def walk(node: TopicTree, i: int) -> None:
            wild = node.children.get("#")
            if wild is not None and not (dollar and i == 0):
                for v in wild.values:
                    visit(v)
            if i == len(levels):
                for v in node.values:
                    visit(v)
                return
            child = node.children.get(levels[i])
            if child is not None:
                walk(child, i + 1)
            plus = node.children.get("+")
            if plus is not None and not (dollar and i == 0):
                walk(plus, i + 1)

        walk(self, 0)

    def match_filter(self, topic_filter: str, visit: Callable[[object], None]) -> None:
        """The reverse of ``match``: values stored at topic names that ``topic_filter``
        matches (the retained messages a new subscription receives)."""
        levels = topic_filter.split("/")

        def everything(node: TopicTree) -> None:
            for v in node.values:
                visit(v)
            for child in node.children.values():
                everything(child)

        def walk(node: TopicTree, i: int) -> None:
            if i == len(levels):
                for v in node.values:
                    visit(v)
                return
            level = levels[i]
            if level == "#":
                for v in node.values:  # "a/#" matches "a" too
                    visit(v)
                for name, child in node.children.items():
                    if not (i == 0 and name.startswith("$")):
                        everything(child)
            elif level == "+":
                for name, child in node.children.items():
                    if not (i == 0 and name.startswith("$")):
                        walk(child, i + 1)
            elif (child := node.children.get(level)) is not None:
                walk(child, i + 1)

        walk(self, 0)
