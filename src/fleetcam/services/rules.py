"""Event-triggered clips: device messages matched against rules queue ``request_video``."""
from __future__ import annotations

import logging
import threading
from typing import Any

from fleetcam.domain.rules import VideoRule, matches, validate_rule
from fleetcam.domain.selectors import parse_selector
from fleetcam.errors import Invalid, NotFound
from fleetcam.ports import Clock, DeviceRepo, RuleStore
from fleetcam.services.gateway import CommandService
from fleetcam.services.journal import Journal

log = logging.getLogger(__name__)
CACHE_SECONDS = 5.0
DELIVERY_MARGIN = 5.0
"""Seconds after the event's window closes before the clip is asked for (the device must
have finished writing it)."""


class RuleService:
    def __init__(self, store: RuleStore, devices: DeviceRepo, commands: CommandService,
                 journal: Journal, clock: Clock) -> None:
        self.store = store
        self.devices = devices
        self.commands = commands
        self.journal = journal
        self.clock = clock
        self._cache: list[VideoRule] = []
        self._cached_at = float("-inf")
        self._last_hit: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()
        self.dvr: Any = None
        """The cloud DVR service (set by attach_dvr): rules with ``episode`` open episodes."""

    # -- management -------------------------------------------------------------------
    def create(self, items: list[Any]) -> list[VideoRule]:
        checked = [validate_rule(item) for item in items]
        out = [self.store.add(rule) for rule in checked]
        self._cached_at = float("-inf")
        return out

    def select(self, text: str) -> list[VideoRule]:
        rules = self.store.list()
        if text == "all":
            return rules
        try:
            ids = {int(p) for p in text.split(",")}
        except ValueError as e:
            raise Invalid("rule selector must be all or a list of ids", field="selector") from e
        return [r for r in rules if r.id in ids]

    def update(self, text: str, raw: Any) -> list[VideoRule]:
        out = []
        for rule in self.select(text):
            new = validate_rule(raw, rule.id, base=rule)
            self.store.update(new)
            out.append(new)
        self._cached_at = float("-inf")
        return out

    def delete(self, text: str) -> list[VideoRule]:
        gone = [r for r in self.select(text) if self.store.delete(r.id)]
        self._cached_at = float("-inf")
        return gone

    # -- evaluation (a MessageService listener) ---------------------------------------
    def _rules(self) -> list[VideoRule]:
        now = self.clock.now()
        with self._lock:
            if now - self._cached_at > CACHE_SECONDS or now < self._cached_at:
                self._cache = [r for r in self.store.list() if r.enabled]
                self._cached_at = now
            return self._cache

    def __call__(self, device_id: int, message: dict[str, Any]) -> None:
        rules = self._rules()
        if not rules:
            return
        try:
            device = self.devices.get(device_id)
        except NotFound:
            return
        for rule in rules:
            try:
                if not parse_selector(rule.devices).matches(device) or not matches(rule, message):
                    continue
            except Invalid:
                continue
            self._hit(rule, device_id, message)

    def _hit(self, rule: VideoRule, device_id: int, message: dict[str, Any]) -> None:
        ts = float(message.get("timestamp", self.clock.now()))
        key = (rule.id, device_id)
        with self._lock:
            last = self._last_hit.get(key)
            if last is not None and 0 <= ts - last < rule.cooldown:
                return
            self._last_hit[key] = ts
        start = int(ts) - rule.before
        items = [{"name": "request_video", "ttl": rule.ttl,
                  "properties": {"channel": ch, "from": start,
                                 "duration": max(1, rule.before + rule.after)}}
                 for ch in rule.channels] if rule.clip else []
        cmds = self.commands.enqueue([device_id], items,
                                     not_before=ts + rule.after + DELIVERY_MARGIN) if items else []
        episodes = self._episodes(rule, device_id, ts) if rule.episode else []
        self.journal.record(device_id, "rule_hit", {
            "rule_id": rule.id, "rule": rule.name, "timestamp": ts,
            "commands": [c.id for c in cmds], "channels": list(rule.channels),
            "episodes": episodes}, topic=f"video-rules/{rule.id}/hit")

    def _episodes(self, rule: VideoRule, device_id: int, ts: float) -> list[int]:
        """One episode per recorded stream of the matched channels."""
        if self.dvr is None:
            return []
        out = []
        for stream in self.dvr.recording_streams(device_id):
            if stream.channel not in rule.channels:
                continue
            try:
                ep = self.dvr.open_episode(stream.name, int((ts - rule.before) * 1000),
                                           int((ts + rule.after) * 1000), "rule",
                                           rule_id=rule.id, rule=rule.name)
            except Exception:
                log.exception("rule %s: episode on %s not opened", rule.id, stream.name)
                continue
            out.append(ep.episode_id)
        return out
