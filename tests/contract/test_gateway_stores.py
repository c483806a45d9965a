"""MessageStore, ConnectionRegistry and CommandStore contracts, for every backend."""
from __future__ import annotations

from typing import Any

from fleetcam.domain.gateway import Command, Connection
from tests.contract.conftest import Backend

T0 = 1_700_000_000.0


def _msg(device_id: int, ts: float, **extra: Any) -> dict[str, Any]:
    return {"timestamp": ts, "device.id": device_id, "ident": f"0139{device_id:08d}",
            "position.latitude": 52.5 + ts % 7 / 100, "position.valid": True, **extra}


# -- MessageStore ---------------------------------------------------------------------------
def test_messages_append_and_query_in_time_order(backend: Backend) -> None:
    s = backend.messages
    late = [_msg(1, T0 + 10), _msg(1, T0 + 11, **{"alarm.overspeed": True})]
    early = [_msg(1, T0 + i) for i in range(5)]
    s.append(1, late)
    s.append(1, early)  # a batch of older points arrives after newer ones
    s.append(1, [])
    everything = early + late
    assert s.query((1,)) == everything
    assert s.query((1,))[-1]["alarm.overspeed"] is True
    assert s.query((1,), reverse=True) == everything[::-1]
    assert s.query((1,), count=2) == everything[:2]
    assert s.query((1,), count=2, reverse=True) == everything[::-1][:2]
    assert s.query((2,)) == [] and s.query(()) == []


def test_messages_time_range_is_inclusive(backend: Backend) -> None:
    s = backend.messages
    msgs = [_msg(1, T0 + i) for i in range(10)]
    s.append(1, msgs)
    assert s.query((1,), time_from=T0 + 3, time_to=T0 + 6) == msgs[3:7]
    assert s.query((1,), time_from=T0 + 8) == msgs[8:]
    assert s.query((1,), time_to=T0 + 1) == msgs[:2]
    assert s.query((1,), time_from=T0 + 3, time_to=T0 + 6, reverse=True, count=2) == [
        msgs[6], msgs[5]]
    assert s.query((1,), time_from=T0 + 100) == []


def test_messages_of_several_devices_are_merged_by_time(backend: Backend) -> None:
    s = backend.messages
    a = [_msg(1, T0 + 2 * i) for i in range(5)]
    b = [_msg(2, T0 + 2 * i + 1) for i in range(5)]
    s.append(1, a)
    s.append(2, b)
    s.append(3, [_msg(3, T0 + 1.5)])
    merged = sorted(a + b, key=lambda m: m["timestamp"])
    assert s.query((1, 2)) == merged
    assert s.query((2, 1), reverse=True, count=3) == merged[::-1][:3]
    assert s.query((1, 2), time_from=T0 + 3, time_to=T0 + 6) == merged[3:7]


def test_messages_nearest(backend: Backend) -> None:
    s = backend.messages
    s.append(1, [_msg(1, T0), _msg(1, T0 + 10), _msg(1, T0 + 30)])
    s.append(2, [_msg(2, T0 + 4)])
    assert s.nearest(1, T0 + 4, 60)["timestamp"] == T0
    assert s.nearest(1, T0 + 7, 60)["timestamp"] == T0 + 10
    assert s.nearest(1, T0 + 26, 5)["timestamp"] == T0 + 30
    assert s.nearest(1, T0 + 20, 5) is None
    assert s.nearest(3, T0, 1000) is None


# -- ConnectionRegistry -----------------------------------------------------------------------
def _conn(conn_id: int, device_id: int, gateway: str = "gw-a", **kw: Any) -> Connection:
    return Connection(id=conn_id, device_id=device_id, ident=f"0139{device_id:08d}",
                      established=T0 + conn_id % 1000,
                      source=f"10.0.0.{device_id}:{40000 + conn_id % 100}", gateway_id=gateway,
                      **kw)


def _ids(conns: list[Connection]) -> list[int]:
    return sorted(c.id for c in conns)


def test_registry_open_get_close(backend: Backend) -> None:
    r = backend.registry
    big = 2**52 - 1  # connection ids are 52-bit random numbers
    c = _conn(big, 1, meta={"protocol": "jt808", "version": 2019})
    r.open(c)
    assert r.get(big) == c
    assert r.get(big).meta == {"protocol": "jt808", "version": 2019}
    media = _conn(7, 1, secondary=True, meta={"protocol": "jt1078", "channel": 2})
    r.open(media)
    assert r.get(7) == media and r.get(7).secondary is True
    again = _conn(7, 1, secondary=True, meta={"protocol": "jt1078", "channel": 3})
    r.open(again)  # re-opening an id replaces it
    assert r.get(7) == again
    assert r.close(big) == c
    assert r.get(big) is None
    assert r.close(big) is None
    assert r.close(123456) is None
    assert r.list() == [again]


def test_registry_list_and_of_gateway(backend: Backend) -> None:
    r = backend.registry
    conns = [_conn(11, 1), _conn(12, 1, "gw-b"), _conn(21, 2, "gw-b"), _conn(31, 3)]
    for c in conns:
        r.open(c)
    assert _ids(r.list()) == [11, 12, 21, 31]
    assert _ids(r.list((1,))) == [11, 12]
    assert _ids(r.list((1, 2))) == [11, 12, 21]
    assert r.list((9,)) == [] and r.list(()) == []
    assert _ids(r.of_gateway("gw-a")) == [11, 31]
    assert _ids(r.of_gateway("gw-b")) == [12, 21]
    assert r.of_gateway("gw-x") == []
    assert {c.id: c for c in r.of_gateway("gw-b")} == {12: conns[1], 21: conns[2]}


def test_registry_drop_gateway(backend: Backend) -> None:
    r = backend.registry
    for c in (_conn(11, 1), _conn(12, 1, "gw-b"), _conn(21, 2, "gw-b")):
        r.open(c)
    dropped = r.drop_gateway("gw-b")
    assert _ids(dropped) == [12, 21]
    assert r.of_gateway("gw-b") == [] and r.get(12) is None
    assert _ids(r.list()) == [11]
    assert r.drop_gateway("gw-b") == []


# -- CommandStore ---------------------------------------------------------------------------
def _cmd(device_id: int, name: str = "take_photo", *, queued: float = T0, ttl: float = 60,
         gateway: str = "", **kw: Any) -> Command:
    return Command(id=0, device_id=device_id, name=name, properties={"channel": 1},
                   queued=queued, expires=queued + ttl, gateway_id=gateway, **kw)


def test_commands_add_get_update(backend: Backend) -> None:
    s = backend.commands
    a = s.add(_cmd(1))
    b = s.add(_cmd(1, "custom"))
    c = s.add(_cmd(2))
    assert 0 < a.id < b.id < c.id
    assert s.get(a.id) == a and a.status == "queued" and a.properties == {"channel": 1}
    assert s.get(999_999) is None

    sent = a.with_changes(status="sent", serial=17, sent=T0 + 1, gateway_id="gw-a")
    assert s.update(sent, expect_status="queued") is True
    assert s.get(a.id) == sent
    # a second copy that still believes it is queued loses
    assert s.update(a.with_changes(status="sent", serial=99), expect_status="queued") is False
    assert s.get(a.id).serial == 17
    done = sent.with_changes(status="processed", executed=True, timestamp=T0 + 2,
                             response=[{"begin": 1, "end": 2, "channel": 1}])
    assert s.update(done, expect_status="sent") is True
    assert s.update(sent.with_changes(status="canceled"), expect_status="sent") is False
    assert s.get(a.id) == done
    assert s.update(b.with_changes(gateway_id="gw-b")) is True  # unconditional
    assert s.get(b.id).gateway_id == "gw-b"


def test_commands_pending_and_assigned(backend: Backend) -> None:
    s = backend.commands
    a = s.add(_cmd(1, gateway="gw-a"))
    b = s.add(_cmd(1, gateway="gw-b"))
    c = s.add(_cmd(1, gateway="gw-a"))
    d = s.add(_cmd(2, gateway="gw-a"))
    assert s.update(b.with_changes(status="sent", serial=1), expect_status="queued")
    assert s.update(c.with_changes(status="canceled", timestamp=T0 + 1), expect_status="queued")
    assert [x.id for x in s.pending(1)] == [a.id, b.id]  # queued or sent, oldest first
    assert [x.status for x in s.pending(1)] == ["queued", "sent"]
    assert [x.id for x in s.pending(2)] == [d.id]
    assert s.pending(3) == []
    assert [x.id for x in s.assigned("gw-a")] == [a.id, d.id]  # queued only
    assert s.assigned("gw-b") == []  # b is already sent
    assert s.update(a.with_changes(gateway_id="gw-b"), expect_status="queued")  # a claim
    assert [x.id for x in s.assigned("gw-b")] == [a.id]
    assert [x.id for x in s.assigned("gw-a")] == [d.id]


def test_commands_expiring(backend: Backend) -> None:
    s = backend.commands
    a = s.add(_cmd(1, ttl=30))
    b = s.add(_cmd(2, ttl=10))
    c = s.add(_cmd(1, ttl=20))
    s.add(_cmd(1, ttl=100))
    assert s.update(c.with_changes(status="sent", serial=3), expect_status="queued")
    assert s.expiring(T0 + 5) == []
    assert [x.id for x in s.expiring(T0 + 25)] == [b.id, c.id]  # by expiry
    assert [x.id for x in s.expiring(T0 + 50)] == [b.id, c.id, a.id]
    assert [x.id for x in s.expiring(T0 + 50, limit=2)] == [b.id, c.id]
    assert s.update(b.with_changes(status="expired", timestamp=T0 + 50), expect_status="queued")
    assert [x.id for x in s.expiring(T0 + 50)] == [c.id, a.id]  # final ones never again


def test_commands_results(backend: Backend) -> None:
    s = backend.commands
    cmds = [s.add(_cmd(1 + i % 2, queued=T0 + i)) for i in range(6)]
    finish = {0: ("processed", 50), 1: ("canceled", 20), 2: ("expired", 40), 4: ("processed", 30)}
    for i, (status, at) in finish.items():
        assert s.update(cmds[i].with_changes(status=status, timestamp=T0 + at,
                                             executed=status == "processed", response={"i": i}))
    assert s.update(cmds[3].with_changes(status="sent", serial=4))  # not final: no result
    got = s.results((1, 2))
    assert [x.id for x in got] == [cmds[i].id for i in (1, 4, 2, 0)]  # by finish time
    assert got[-1].response == {"i": 0} and got[-1].executed is True
    assert [x.id for x in s.results((1,))] == [cmds[i].id for i in (4, 2, 0)]
    assert [x.id for x in s.results((2,))] == [cmds[1].id]
    assert [x.id for x in s.results((1, 2), time_from=T0 + 30, time_to=T0 + 40)] == [
        cmds[4].id, cmds[2].id]
    assert [x.id for x in s.results((1, 2), time_from=T0 + 41)] == [cmds[0].id]
    assert [x.id for x in s.results((1, 2), count=2)] == [cmds[1].id, cmds[4].id]
    assert s.results((3,)) == [] and s.results(()) == []


def test_registry_leases_renewed_and_expired(backend: Backend, clock: Any) -> None:
    """A copy's connections are live while its lease is; an expired lease hides them from
    every read, until a live copy drops them; a copy that never leased (yet) is trusted."""
    r = backend.registry
    now = clock.now()
    r.heartbeat("gw-a", now + 45)
    r.heartbeat("gw-b", now + 45)
    for c in (_conn(11, 1), _conn(12, 1, "gw-b"), _conn(21, 2, "gw-b"), _conn(31, 3, "gw-c")):
        r.open(c)
    assert _ids(r.list()) == [11, 12, 21, 31]
    clock.advance(30)
    r.heartbeat("gw-a", clock.now() + 45)  # gw-a renews, gw-b died
    assert r.expired_gateways(clock.now()) == []
    clock.advance(20)
    if backend.name == "aws":
        import time as _time
        _time.sleep(2.1)  # past the adapter's lease cache
    assert r.expired_gateways(clock.now()) == ["gw-b"]
    assert _ids(r.list()) == [11, 31] and _ids(r.list((1,))) == [11]
    assert r.get(12) is None and r.get(11) is not None
    assert r.of_gateway("gw-b") == [] and _ids(r.of_gateway("gw-a")) == [11]
    assert _ids(r.drop_gateway("gw-b")) == [12, 21]
    assert r.expired_gateways(clock.now()) == []
    assert _ids(r.list()) == [11, 31]
    clock.advance(3600)  # a healthy copy that keeps renewing is never dropped
    r.heartbeat("gw-a", clock.now() + 45)
    assert r.get(11) is not None
