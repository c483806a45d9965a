"""Device messages, connections and the commands queue: what the gateway and the API share."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from fleetcam.domain.gateway import (CANCELED, EXPIRED, PROCESSED, QUEUED, SENT, Command,
                                     Connection, validate_command, validate_ttl)
from fleetcam.domain.keys import media_topic
from fleetcam.errors import FleetcamError, NotFound
from fleetcam.ports import Clock, CommandStore, ConnectionRegistry, MessageStore
from fleetcam.services.journal import Journal

log = logging.getLogger(__name__)


OUTCOMES = ("queued", "sent", "answered", "failed", "timed_out", "expired", "canceled")
"""The steps CommandService reports to its ``outcome_listeners``: queued, sent to the device,
answered (executed), failed (answered not executed, refused, or given up by the gateway),
timed out (a real-time wait ran out: canceled), expired (ttl passed), canceled (by a user)."""


class NotConnected(FleetcamError):
    """flespi's error for a real-time command to an offline device."""

    code = 2


RESENDABLE = ("request_video", "take_photo", "start_videostream", "playback_video",
              "video_timeline", "custom")
"""Commands sent again on the device's next connection when the one they went out on is gone
unanswered (README, "Commands": what a repeat does for each)."""


class MessageService:
    """Every location and event becomes a stored, published device message."""

    def __init__(self, store: MessageStore, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self.listeners: list[Callable[[int, dict[str, Any]], None]] = []

    def register(self, device_id: int, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        self.store.append(device_id, messages)
        for m in messages:
            self.journal.message(device_id, m)
            for listener in self.listeners:
                listener(device_id, m)


class ConnectionService:
    def __init__(self, registry: ConnectionRegistry, journal: Journal) -> None:
        self.registry = registry
        self.journal = journal
        self.drop_listeners: list[Callable[[Connection], None]] = []

    def opened(self, conn: Connection) -> None:
        self.registry.open(conn)
        self.journal.state(conn.device_id, f"connections/{conn.id}", conn.as_json())
        self.journal.record(conn.device_id, "device_connected", conn.as_json(),
                            topic="connections/connected")

    def closed(self, conn_id: int, reason: str,
               by_gateway: str | None = None) -> Connection | None:
        """The connection ended (``by_gateway``: the gateway copy ending it, if any)."""
        conn = self.registry.close(conn_id, by_gateway)
        if conn is not None:
            self.journal.state(conn.device_id, f"connections/{conn.id}", None)
            self.journal.record(conn.device_id, "device_disconnected",
                                {**conn.as_json(), "reason": reason},
                                topic="connections/disconnected")
        return conn

    def drop_gateway(self, gateway_id: str, reason: str) -> list[Connection]:
        """Forget a gateway copy's connections and lease (it stops, or its lease passed) and
        publish each as disconnected."""
        gone = self.registry.drop_gateway(gateway_id)
        for conn in gone:
            self.journal.state(conn.device_id, f"connections/{conn.id}", None)
            self.journal.record(conn.device_id, "device_disconnected",
                                {**conn.as_json(), "reason": reason},
                                topic="connections/disconnected")
        return gone

    def drop(self, device_ids: Iterable[int], conn_id: int) -> Connection:
        """A user's DELETE: forget it in the shared store (the holding gateway notices) and
        tell local gateways at once."""
        conn = self.registry.get(conn_id)
        if conn is None or conn.device_id not in set(device_ids):
            raise NotFound(f"connection {conn_id} not found")
        self.closed(conn_id, "user")
        for listener in self.drop_listeners:
            listener(conn)
        return conn

    def online(self, device_id: int) -> Connection | None:
        """The device's most recently authenticated live signalling connection."""
        primary = [c for c in self.registry.list((device_id,)) if not c.secondary]
        return max(primary, key=lambda c: (c.established, c.id)) if primary else None


class CommandService:
    """The durable commands queue: queued → sent → processed, or canceled / expired."""

    def __init__(self, store: CommandStore, connections: ConnectionService, journal: Journal,
                 clock: Clock) -> None:
        self.store = store
        self.connections = connections
        self.journal = journal
        self.clock = clock
        self._merge = threading.Lock()
        """``progress`` and ``record_serial`` read, merge and write a sent command; a fast
        answer's progress and the serial's write run in two threads of one gateway copy, and
        without this the later write could drop what the other just stored (media ids)."""
        self.wake: list[Callable[[str], None]] = []
        """Local gateways register here to learn at once that their queue grew."""
        self.outcome_listeners: list[Callable[[str, Command], None]] = []
        """Called with (outcome, command) at each step a command takes here, the outcome one
        of OUTCOMES (metrics count them; a listener must be quick and thread-safe)."""

    def _outcome(self, outcome: str, cmd: Command) -> None:
        for listener in self.outcome_listeners:
            try:
                listener(outcome, cmd)
            except Exception:  # counting must never fail a command
                log.exception("command outcome listener failed")

    def _publish(self, cmd: Command, step: str) -> None:
        body = cmd.result_json() if step in (PROCESSED, CANCELED, EXPIRED) else cmd.queue_json()
        # the log item's own "id" hides the command's: keep it as command_id too
        self.journal.record(cmd.device_id, f"command_{step}", body,
                            {"command_id": cmd.id, **body},
                            topic=f"commands-queue/{cmd.name}/{step}")
        self.journal.state(cmd.device_id, f"commands-queue/{cmd.id}",
                           None if cmd.final else cmd.queue_json())

    def enqueue(self, device_ids: Iterable[int], items: list[Any],
                ttl_override: int | None = None, not_before: float = 0.0) -> list[Command]:
        """Queue each command for each device (validated first: all or nothing)."""
        checked = [(*validate_command(item), ttl_override or validate_ttl(item))
                   for item in items]
        now = self.clock.now()
        out = []
        for device_id in device_ids:
            conn = self.connections.online(device_id)
            gateway = conn.gateway_id if conn else ""
            for name, props, ttl in checked:
                cmd = self.store.add(Command(id=0, device_id=device_id, name=name,
                                             properties=props, queued=now, expires=now + ttl,
                                             gateway_id=gateway, not_before=not_before))
                self._publish(cmd, QUEUED)
                self._outcome("queued", cmd)
                out.append(cmd)
                if gateway:
                    for wake in self.wake:
                        wake(gateway)
        return out

    def queue(self, device_ids: Iterable[int]) -> list[Command]:
        return [c for d in device_ids for c in self.store.pending(d)]

    def cancel(self, device_ids: Iterable[int], ids: list[int] | None, *,
               outcome: str = "canceled") -> list[Command]:
        """Cancel queued or sent commands (``outcome`` "timed_out": a real-time command the
        device did not answer within its wait)."""
        wanted = None if ids is None else set(ids)
        out = []
        for cmd in self.queue(device_ids):
            if wanted is not None and cmd.id not in wanted:
                continue
            done = cmd.with_changes(status=CANCELED, timestamp=self.clock.now(), executed=False)
            if self.store.update(done, expect_status=cmd.status):
                self._publish(done, CANCELED)
                self._outcome(outcome, done)
                out.append(done)
        return out

    def results(self, device_ids: tuple[int, ...], **kw: Any) -> list[Command]:
        return self.store.results(device_ids, **kw)

    def expire(self) -> int:
        """Finish every command whose ttl passed (run periodically)."""
        n = 0
        now = self.clock.now()
        while batch := self.store.expiring(now):
            for cmd in batch:
                done = cmd.with_changes(status=EXPIRED, timestamp=now, executed=False,
                                        response=cmd.response or "ttl expired")
                if self.store.update(done, expect_status=cmd.status):
                    self._publish(done, EXPIRED)
                    self._outcome("expired", done)
                    n += 1
        return n

    # -- the gateway's side -----------------------------------------------------------
    def claim(self, device_id: int, gateway_id: str,
              conn_id: int | None = None) -> list[Command]:
        """Take over the device's commands for its connection ``conn_id`` (on connect, and
        when the queue grows): the queued ones (another copy may have held the device), and
        the ones sent on an earlier connection of the device and never answered (that
        connection is gone: a gateway copy died or was stopped, the device reconnected), to be
        sent again while their ttl lasts."""
        out = []
        now = self.clock.now()
        for cmd in self.store.pending(device_id):
            if cmd.not_before > now or cmd.expires <= now:
                continue
            if cmd.status == QUEUED and cmd.gateway_id != gateway_id:
                moved = cmd.with_changes(gateway_id=gateway_id)
                if self.store.update(moved, expect_status=QUEUED):
                    cmd = moved
            if cmd.status == QUEUED:
                out.append(cmd)
            elif (cmd.status == SENT and conn_id is not None and cmd.conn_id != conn_id
                  and cmd.name in RESENDABLE):
                again = cmd.with_changes(status=QUEUED, gateway_id=gateway_id, serial=None)
                if self.store.update(again, expect_status=SENT):
                    out.append(again)
        return out

    def mark_sent(self, cmd: Command, serial: int | None,
                  conn_id: int | None = None) -> Command | None:
        sent = cmd.with_changes(status=SENT, serial=serial, sent=self.clock.now(),
                                conn_id=conn_id, attempts=cmd.attempts + 1)
        if not self.store.update(sent, expect_status=QUEUED):
            return None  # canceled or taken meanwhile
        self._publish(sent, SENT)
        self._outcome("sent", sent)
        return sent

    def progress(self, cmd: Command, details: dict[str, Any]) -> Command | None:
        """A running command's details so far (merged into what it reported before): kept
        for commands-queue reads, retained on its state topic and published at
        ``.../commands-queue/{name}/progress``. Ignored once the command is final."""
        with self._merge:
            current = self.store.get(cmd.id)
            if current is None or current.status != SENT:
                return None
            before = current.response if isinstance(current.response, dict) else {}
            merged = {**before, **details}
            if "progress" in details and isinstance(before.get("progress"), dict):
                merged["progress"] = {**before["progress"], **details["progress"]}
            updated = current.with_changes(response=merged)
            if not self.store.update(updated, expect_status=SENT):
                return None
        self.journal.state(cmd.device_id, f"commands-queue/{cmd.id}", updated.queue_json())
        self.journal.bus.publish(media_topic(self.journal.prefix, cmd.device_id,
                                             f"commands-queue/{cmd.name}/progress"),
                                 {"command_id": cmd.id, **updated.queue_json()})
        return updated

    def record_serial(self, cmd: Command, serial: int) -> Command | None:
        """Note the serial a sent command went out with, keeping whatever its answer already
        stored (progress, media ids); nothing once it is final."""
        with self._merge:
            current = self.store.get(cmd.id)
            if current is None or current.status != SENT:
                return None
            updated = current.with_changes(serial=serial)
            return updated if self.store.update(updated, expect_status=SENT) else None

    def running_details(self, cmd: Command) -> dict[str, Any]:
        """What ``progress`` stored beside the progress counters (a clip report, expected
        media ids), to go into the final response."""
        current = self.store.get(cmd.id)
        response = current.response if current is not None else None
        if not isinstance(response, dict):
            return {}
        return {k: v for k, v in response.items() if k != "progress"}

    def finish(self, cmd: Command, executed: bool, response: Any) -> Command | None:
        done = cmd.with_changes(status=PROCESSED, executed=executed, response=response,
                                timestamp=self.clock.now())
        if not self.store.update(done, expect_status=cmd.status):
            return None
        self._publish(done, PROCESSED)
        self._outcome("answered" if executed else "failed", done)
        return done
