"""MessageStore, ConnectionRegistry and CommandStore over DynamoDB (models.py, issue 5)."""
from __future__ import annotations

import hashlib
import heapq
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from fleetcam.adapters.aws.models import (CommandsModel, ConnectionsModel, DevicesModel,
                                          MediaRequestsModel, MessagesModel, RulesModel)
from fleetcam.domain.admission import MediaRequest
from fleetcam.domain.gateway import QUEUED, SENT, Command, Connection
from fleetcam.domain.rules import VideoRule

RESULT_RETENTION = 30 * 86400


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class _Ids:
    """Strictly increasing microsecond ids within this process (sort-key tie breakers)."""

    def __init__(self) -> None:
        self.last = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.last = max(self.last + 1, time.time_ns() // 1000)
            return self.last


class DynamoMessageStore:
    def __init__(self, retention: int = 30 * 86400) -> None:
        self.ids = _Ids()
        self.retention = retention

    def expire(self, now: float) -> int:
        return 0  # DynamoDB's TTL deletes messages (expires_at), without write units

    def append(self, device_id: int, messages: list[dict[str, Any]]) -> None:
        with MessagesModel.batch_write() as batch:
            for msg in messages:
                ts = float(msg["timestamp"])
                batch.save(MessagesModel(device_id=device_id,
                                         sk=f"{ts:017.6f}#{self.ids.next():016d}", timestamp=ts,
                                         data=msg, expires_at=None if self.retention <= 0
                                         else _at(ts + self.retention)))

    def query(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
              time_to: float | None = None, count: int = 1000,
              reverse: bool = False) -> list[dict[str, Any]]:
        lo = f"{time_from:017.6f}#" if time_from is not None else None
        hi = f"{time_to:017.6f}#~" if time_to is not None else None
        cond = (MessagesModel.sk.between(lo, hi) if lo and hi else
                MessagesModel.sk >= lo if lo else MessagesModel.sk <= hi if hi else None)

        def stream(device_id: int) -> Any:
            for m in MessagesModel.query(device_id, range_key_condition=cond,
                                         scan_index_forward=not reverse, page_size=500):
                yield m.data

        merged = heapq.merge(*(stream(d) for d in device_ids),
                             key=lambda msg: msg["timestamp"], reverse=reverse)
        return list(itertools.islice(merged, count))

    def nearest(self, device_id: int, when: float, within: float) -> dict[str, Any] | None:
        candidates = []
        for forward, cond in ((False, MessagesModel.sk <= f"{when:017.6f}#~"),
                              (True, MessagesModel.sk >= f"{when:017.6f}#")):
            for m in MessagesModel.query(device_id, range_key_condition=cond,
                                         scan_index_forward=forward, limit=1):
                candidates.append(m.data)
        candidates = [c for c in candidates if abs(c["timestamp"] - when) <= within]
        return min(candidates, key=lambda c: abs(c["timestamp"] - when), default=None)


def _conn(m: ConnectionsModel) -> Connection:
    return Connection(**m.data)


def lease_id(gateway_id: str) -> int:
    """The item of a gateway copy's lease in the connections table: a negative id (connection
    ids are positive), stable for the copy's id."""
    return -int.from_bytes(hashlib.sha256(gateway_id.encode()).digest()[:6], "big") - 1


LEASE_CACHE = 2.0
"""Seconds a read trusts the gateway leases it fetched (one GetItem per copy, not per row)."""


class DynamoConnectionRegistry:
    """Connection items have no TTL: a healthy device's entry never expires by itself. A
    connection is live while its gateway copy's lease item (renewed by ``heartbeat``) is;
    any copy drops the entries of copies whose lease passed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._leases: dict[str, tuple[float, float | None]] = {}

    def _lease(self, gateway_id: str) -> float | None:
        now = time.monotonic()
        hit = self._leases.get(gateway_id)
        if hit is not None and now - hit[0] < LEASE_CACHE:
            return hit[1]
        try:
            m = ConnectionsModel.get(lease_id(gateway_id), consistent_read=True)
            until: float | None = float(m.data.get("lease_until", 0))
        except DoesNotExist:
            until = None
        if len(self._leases) > 1000:
            self._leases.clear()
        self._leases[gateway_id] = (now, until)
        return until

    def _live(self, conns: Any) -> list[Connection]:
        now = self.clock()
        out = []
        for m in conns:
            if int(m.id) <= 0:
                continue  # a lease item, or the fleet marker
            until = self._lease(m.gateway_id)
            if until is None or until > now:
                out.append(_conn(m))
        return out

    def open(self, conn: Connection) -> None:
        ConnectionsModel(id=conn.id, device_id=conn.device_id, gateway_id=conn.gateway_id,
                         data=asdict(conn)).save()

    def close(self, conn_id: int, by_gateway: str | None = None) -> Connection | None:
        try:
            m = ConnectionsModel.get(conn_id, consistent_read=True)
        except DoesNotExist:
            return None
        m.delete()
        if m.gateway_id != by_gateway:  # the copy holding it closes its session
            bump_inbox(m.gateway_id)
        return _conn(m)

    def get(self, conn_id: int) -> Connection | None:
        try:
            found = self._live([ConnectionsModel.get(conn_id, consistent_read=True)])
        except DoesNotExist:
            return None
        return found[0] if found else None

    def list(self, device_ids: tuple[int, ...] | None = None) -> list[Connection]:
        if device_ids is None:
            rows: Any = ConnectionsModel.scan()
        else:
            rows = itertools.chain.from_iterable(ConnectionsModel.by_device.query(d)
                                                 for d in device_ids)
        return sorted(self._live(rows), key=lambda c: c.id)

    def of_gateway(self, gateway_id: str) -> list[Connection]:
        return self._live(ConnectionsModel.by_gateway.query(gateway_id))

    def touch(self, conn_id: int, when: float) -> bool:
        try:
            m = ConnectionsModel.get(conn_id)
        except DoesNotExist:
            return False
        data = dict(m.data)
        meta = dict(data.get("meta") or {})
        if float(meta.get("last_access", 0)) >= when:
            return False
        meta["last_access"] = when
        data["meta"] = meta
        try:
            m.update(actions=[ConnectionsModel.data.set(data)],
                     condition=ConnectionsModel.id.exists())
        except UpdateError:
            return False
        return True

    def drop_gateway(self, gateway_id: str) -> list[Connection]:
        gone = []
        for m in ConnectionsModel.by_gateway.query(gateway_id):
            if int(m.id) <= 0:
                continue
            m.delete()
            gone.append(_conn(m))
        # the lease last: until it is gone, its connections stay hidden
        ConnectionsModel(id=lease_id(gateway_id)).delete()
        self._leases.pop(gateway_id, None)
        return gone

    def heartbeat(self, gateway_id: str, until: float) -> None:
        """An UpdateItem (not a put): the item's change marker stays as it is."""
        M = ConnectionsModel
        M(id=lease_id(gateway_id)).update(actions=[
            M.device_id.set(0), M.gateway_id.set(LEASES),
            M.data.set({"gateway_id": gateway_id, "lease_until": until}),
            M.epoch.set(M.epoch | secrets.token_hex(8))])
        self._leases[gateway_id] = (time.monotonic(), until)

    def inbox(self, gateway_id: str, fleet: bool = True) -> tuple[object, object] | None:
        """Eventually consistent reads (a change seen a moment late is seen at the next
        tick): ((epoch, changes) of the copy's lease item, or a value never seen before
        while the item is missing (removed with the copy's connections); the fleet marker's
        ``changes``, or None unless ``fleet``). One GetItem (half a read unit) without the
        fleet marker, one BatchGetItem of both items with it."""
        own: object = ("missing", next(_missing))
        if not fleet:
            try:
                m = ConnectionsModel.get(lease_id(gateway_id))
            except DoesNotExist:
                return own, None
            self._leases[gateway_id] = (time.monotonic(),
                                        float((m.data or {}).get("lease_until", 0)))
            return (m.epoch, int(m.changes or 0)), None
        found: object = 0
        for m in ConnectionsModel.batch_get([lease_id(gateway_id), FLEET_MARKER]):
            if int(m.id) == FLEET_MARKER:
                found = int(m.changes or 0)
            else:
                own = (m.epoch, int(m.changes or 0))
                self._leases[gateway_id] = (time.monotonic(),
                                            float((m.data or {}).get("lease_until", 0)))
        return own, found

    def expired_gateways(self, now: float) -> list[str]:
        return [m.data["gateway_id"] for m in ConnectionsModel.by_gateway.query(LEASES)
                if float(m.data.get("lease_until", 0)) <= now]


LEASES = "#leases"
"""The by-gateway key of the lease items (so expired leases are one Query away)."""
_missing = itertools.count()
FLEET_MARKER = 0
"""The connections-table item whose ``changes`` counts changes every gateway copy must
read (the DVR streams and their watch marks); connection ids are positive, leases negative."""


def bump_fleet_marker() -> None:
    """Every gateway copy reads the DVR streams again at its next tick (one UpdateItem)."""
    ConnectionsModel(id=FLEET_MARKER).update(actions=[ConnectionsModel.changes.add(1)])


def bump_inbox(gateway_id: str | None) -> None:
    """Tell a gateway copy to read its lists again (see ``inbox``): one UpdateItem of its
    lease item, if it has one (a copy without a lease reads in full anyway)."""
    if not gateway_id or gateway_id == LEASES:
        return
    try:
        ConnectionsModel(id=lease_id(gateway_id)).update(
            actions=[ConnectionsModel.changes.add(1)], condition=ConnectionsModel.id.exists())
    except UpdateError as e:
        if e.cause_response_code != "ConditionalCheckFailedException":
            raise


def _cmd(m: CommandsModel) -> Command:
    return Command(**m.data)


def _cmd_model(cmd: Command) -> CommandsModel:
    final = cmd.final
    return CommandsModel(
        id=cmd.id, device_id=cmd.device_id, status=cmd.status, expires=cmd.expires,
        gateway_queued=cmd.gateway_id if cmd.status == QUEUED and cmd.gateway_id else None,
        open=None if final else "1", finished=(cmd.timestamp or cmd.queued) if final else None,
        data=asdict(cmd),
        expires_at=_at((cmd.timestamp or cmd.expires) + RESULT_RETENTION) if final else None)


class DynamoCommandStore:
    def add(self, cmd: Command) -> Command:
        counter = DevicesModel(id=0)
        counter.update(actions=[DevicesModel.next_command_id.add(1)])
        cmd = cmd.with_changes(id=int(counter.next_command_id))
        _cmd_model(cmd).save(condition=CommandsModel.id.does_not_exist())
        if cmd.status == QUEUED:
            bump_inbox(cmd.gateway_id)  # the copy holding the device sends it
        return cmd

    def get(self, command_id: int) -> Command | None:
        try:
            return _cmd(CommandsModel.get(command_id, consistent_read=True))
        except DoesNotExist:
            return None

    def update(self, cmd: Command, *, expect_status: str | None = None) -> bool:
        cond = CommandsModel.id.exists()
        if expect_status is not None:
            cond = cond & (CommandsModel.status == expect_status)
        try:
            _cmd_model(cmd).save(condition=cond)
        except (PutError, UpdateError) as e:
            if "ConditionalCheckFailed" in str(e):
                return False
            raise
        if cmd.status == QUEUED and expect_status != QUEUED:
            bump_inbox(cmd.gateway_id)  # queued again (its answer never came): send it
        return True

    def pending(self, device_id: int) -> list[Command]:
        ids = [m.id for m in CommandsModel.by_device.query(
            device_id, filter_condition=CommandsModel.status.is_in(QUEUED, SENT))]
        return [c for c in _fetch(ids) if c.status in (QUEUED, SENT)]

    def assigned(self, gateway_id: str) -> list[Command]:
        ids = [m.id for m in CommandsModel.by_gateway_queued.query(gateway_id)]
        return [c for c in _fetch(ids) if c.status == QUEUED and c.gateway_id == gateway_id]

    def expiring(self, now: float, limit: int = 500) -> list[Command]:
        ids = [m.id for m in CommandsModel.by_open_expiry.query(
            "1", range_key_condition=CommandsModel.expires < now, limit=limit)]
        return [c for c in _fetch(ids) if not c.final and c.expires < now]

    def results(self, device_ids: tuple[int, ...], *, time_from: float | None = None,
                time_to: float | None = None, count: int = 1000) -> list[Command]:
        lo = time_from if time_from is not None else 0
        hi = time_to if time_to is not None else 2**40
        # the index's keys are the order (finished = timestamp or queued, then id): pick the
        # first ``count`` from the keys, then read only those items (final: they no longer
        # change, so an eventually consistent read is as good as the index was)
        streams = [((m.finished, m.id) for m in CommandsModel.by_device_finished.query(
            d, range_key_condition=CommandsModel.finished.between(lo, hi)))
            for d in device_ids]
        keys = list(itertools.islice(heapq.merge(*streams), count))
        return _fetch([i for _, i in keys], consistent=False)


def _fetch(ids: list[int], *, consistent: bool = True) -> list[Command]:
    """The commands ``ids`` (an index's keys) read from the table, in the order given; those
    gone meanwhile (TTL) left out."""
    if not ids:
        return []
    found = {m.id: _cmd(m) for m in CommandsModel.batch_get(ids, consistent_read=consistent)}
    return [found[i] for i in ids if i in found]


def _rule(m: RulesModel) -> VideoRule:
    d = dict(m.data)
    d["channels"] = tuple(d["channels"])
    return VideoRule(**d)


class DynamoRuleStore:
    def add(self, rule: VideoRule) -> VideoRule:
        counter = DevicesModel(id=0)
        counter.update(actions=[DevicesModel.next_rule_id.add(1)])
        rule = VideoRule(**{**asdict(rule), "id": int(counter.next_rule_id)})
        RulesModel(id=rule.id, data=rule.as_json()).save(condition=RulesModel.id.does_not_exist())
        return rule

    def get(self, rule_id: int) -> VideoRule | None:
        try:
            return _rule(RulesModel.get(rule_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list(self) -> list[VideoRule]:
        return sorted((_rule(m) for m in RulesModel.scan()), key=lambda r: r.id)

    def update(self, rule: VideoRule) -> None:
        RulesModel(id=rule.id, data=rule.as_json()).save()

    def delete(self, rule_id: int) -> bool:
        try:
            RulesModel(id=rule_id).delete(condition=RulesModel.id.exists())
        except Exception as e:  # pynamodb.exceptions.DeleteError on a failed condition
            if "ConditionalCheckFailed" in str(e):
                return False
            raise
        return True


REQUEST_RETENTION = 3600
"""A closed or expired media request's item is left to DynamoDB's TTL this long after."""


def _req(m: MediaRequestsModel) -> MediaRequest:
    return MediaRequest.from_json(m.data)


def _req_model(req: MediaRequest) -> MediaRequestsModel:
    return MediaRequestsModel(key=f"{req.device_id}:{req.channel}", holder=req.holder or "-",
                              version=req.version, expires=req.expires, data=req.as_json(),
                              expires_at=_at(req.expires + REQUEST_RETENTION))


class DynamoMediaRequestStore:
    def open(self, req: MediaRequest) -> MediaRequest:
        req = req.with_changes(version=0)
        _req_model(req).save()
        return req

    def get(self, device_id: int, channel: int) -> MediaRequest | None:
        try:
            return _req(MediaRequestsModel.get(f"{device_id}:{channel}", consistent_read=True))
        except DoesNotExist:
            return None

    def swap(self, req: MediaRequest) -> MediaRequest | None:
        new = req.with_changes(version=req.version + 1)
        try:
            _req_model(new).save(condition=MediaRequestsModel.version == req.version)
        except PutError as e:
            if "ConditionalCheckFailed" in str(e):
                return None
            raise
        return new

    def close(self, device_id: int, channel: int, ref: str) -> bool:
        current = self.get(device_id, channel)
        if current is None or current.ref != ref:
            return False
        try:
            MediaRequestsModel(key=f"{device_id}:{channel}").delete(
                condition=MediaRequestsModel.version == current.version)
        except Exception as e:  # pynamodb DeleteError on a failed condition
            if "ConditionalCheckFailed" in str(e):
                return False
            raise
        return True

    def of_holder(self, gateway_id: str) -> list[MediaRequest]:
        return [_req(m) for m in MediaRequestsModel.by_holder.query(gateway_id)]

    def purge(self, before: float) -> int:
        return 0  # DynamoDB's TTL removes them; readers check ``expires`` themselves
