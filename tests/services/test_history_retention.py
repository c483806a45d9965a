"""The local sweeper deletes messages and log entries past their retention (30 days by
default), and new devices say so in ``messages_ttl``."""
from __future__ import annotations

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.runtime.container import Container
from fleetcam.runtime.dev import expire_history

DAY = 86400.0


def test_new_devices_keep_messages_30_days(container: Container) -> None:
    (d,) = container.devices.create([{"name": "cam", "ident": "ret-cam"}])
    assert d.messages_ttl == 30 * 86400 == container.messages.store.retention
    (e,) = container.devices.create([{"name": "e", "ident": "ret-e", "messages_ttl": 7}])
    assert e.messages_ttl == 7


def test_each_sweep_deletes_what_is_past_retention(container: Container,
                                                   clock: ManualClock) -> None:
    c = container
    (d,) = c.devices.create([{"name": "cam", "ident": "ret-cam"}])
    now = clock.now()
    c.messages.register(d.id, [{"timestamp": now - 31 * DAY}, {"timestamp": now - DAY}])
    clock.advance(-31 * DAY)
    c.journal.record(d.id, "media_file_uploaded", {"uuid": "old"})
    clock.advance(31 * DAY)
    c.journal.record(d.id, "media_file_uploaded", {"uuid": "new"})
    assert expire_history(c) == 2
    assert [m["timestamp"] for m in c.messages.store.query((d.id,))] == [now - DAY]
    assert [e.data["uuid"] for e in c.logs.query((d.id,))] == ["new"]
    assert expire_history(c) == 0
