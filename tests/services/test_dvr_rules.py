"""Video rules on recorded streams open episodes (instead of, or as well as, clips)."""
from __future__ import annotations

import pytest

from fleetcam.domain.dvr import EpisodeQuery
from fleetcam.errors import Invalid
from fleetcam.runtime.container import Container


def hit(c: Container, ts: float) -> None:
    c.messages.register(1, [{"timestamp": ts, "alarm.collision": True, "ident": "x"}])


def test_an_episode_rule_opens_episodes_on_recorded_channels_only(container: Container,
                                                                  client, device, clock):
    container.dvr.put_stream("1-1", {"dvr": {"root": "d"}})
    container.dvr.put_stream("1-2", {"dvr": None})  # configured, not recording
    (rule,) = container.rules.create([{"name": "crash", "condition": "alarm.collision",
                                       "channels": [1, 2], "before": 10, "after": 20,
                                       "episode": True, "clip": False}])
    ts = clock.now()
    hit(container, ts)
    (ep,) = container.episodes.query(EpisodeQuery())
    assert ep.media == "1-1" and ep.episode_type == "rule"
    assert (ep.opened_at, ep.closed_at) == (int((ts - 10) * 1000), int((ts + 20) * 1000))
    assert ep.meta == {"rule_id": rule.id, "rule": "crash"}
    assert container.commands.store.pending(1) == []  # no clip asked for
    (entry,) = container.logs.query((1,), events=("rule_hit",))
    assert entry.data["episodes"] == [ep.episode_id] and entry.data["commands"] == []


def test_clip_and_episode_together(container: Container, client, device, clock):
    container.dvr.put_stream("1-1", {"dvr": {"root": "d"}})
    container.rules.create([{"name": "both", "condition": "alarm.collision",
                             "episode": True}])
    hit(container, clock.now())
    assert len(container.episodes.query(EpisodeQuery())) == 1
    assert [c.name for c in container.commands.store.pending(1)] == ["request_video"]


def test_a_rule_needs_an_action(container: Container):
    with pytest.raises(Invalid):
        container.rules.create([{"name": "x", "condition": "a", "clip": False}])
    with pytest.raises(Invalid):
        container.rules.create([{"name": "x", "condition": "a", "episode": "yes"}])
