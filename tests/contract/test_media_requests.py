"""MediaRequestStore contract (outstanding media requests, shared by gateway copies), for
every backend, with the admission service over it."""
from __future__ import annotations

from fleetcam.adapters.local.clock import ManualClock
from fleetcam.domain.admission import BINDING_LEASE, MediaRequest
from fleetcam.services.admission import MediaAdmission
from tests.contract.conftest import Backend

T0 = 1_700_000_000.0


def _req(device_id: int = 1, channel: int = 2, ref: str = "cmd:7", holder: str = "gw-a",
         **kw: object) -> MediaRequest:
    return MediaRequest(device_id=device_id, channel=channel, kind="clip", ref=ref,
                        holder=holder, source_ip="10.0.0.1", opened=T0, expires=T0 + 600,
                        command_id=7, **kw)  # type: ignore[arg-type]


def test_open_get_replace_and_close(backend: Backend) -> None:
    s = backend.media_requests
    assert s.get(1, 2) is None
    stored = s.open(_req(progress={"last_ts": 5}))
    assert stored.version == 0 and s.get(1, 2) == stored
    assert s.get(1, 3) is None and s.get(2, 2) is None
    newer = s.open(_req(ref="cmd:8"))  # a newer request for the channel replaces it
    assert s.get(1, 2) == newer
    assert not s.close(1, 2, "cmd:7")  # the old one's owner cannot close the new one
    assert s.close(1, 2, "cmd:8") and s.get(1, 2) is None
    assert not s.close(1, 2, "cmd:8")


def test_swap_is_compare_and_swap(backend: Backend) -> None:
    s = backend.media_requests
    r = s.open(_req())
    a = s.swap(r.with_changes(bound_conn=11))
    assert a is not None and a.version == 1 and s.get(1, 2) == a
    assert s.swap(r.with_changes(bound_conn=12)) is None  # stale version: refused
    assert s.get(1, 2).bound_conn == 11  # type: ignore[union-attr]
    s.close(1, 2, "cmd:7")
    assert s.swap(a) is None  # gone


def test_of_holder_and_purge(backend: Backend) -> None:
    s = backend.media_requests
    s.open(_req(1, 1, holder="gw-a"))
    s.open(_req(2, 1, holder="gw-b"))
    s.open(_req(3, 1, holder="gw-a", ref="cmd:9"))
    assert sorted(r.device_id for r in s.of_holder("gw-a")) == [1, 3]
    assert [r.device_id for r in s.of_holder("gw-b")] == [2]
    s.purge(T0 + 601)
    if backend.name == "local":  # DynamoDB leaves it to the table's TTL
        assert s.get(1, 1) is None


def test_the_first_connection_binds_and_others_are_refused(backend: Backend,
                                                           clock: ManualClock) -> None:
    clock.set(T0)
    adm = MediaAdmission(backend.media_requests, clock)
    adm.request(kind="live", device_id=1, channel=1, ref="u1", holder="gw-a",
                source="10.0.0.1:4000", expires=T0 + 600)
    first, ok = adm.admit(1, 1, conn_id=100, source="10.0.0.1:5000", gateway_id="gw-b",
                          same_address=True)
    assert ok.admit and first is not None and first.bound_conn == 100
    assert first.bound_gateway == "gw-b"
    other, no = adm.admit(1, 1, conn_id=101, source="10.0.0.1:5001", gateway_id="gw-a",
                          same_address=True)
    assert other is None and "bound to another connection" in no.reason
    stranger, no = adm.admit(1, 1, conn_id=102, source="10.9.9.9:1", gateway_id="gw-a",
                             same_address=True)
    assert stranger is None and "not the device's signalling address" in no.reason
    assert adm.admit(1, 2, conn_id=103, source="10.0.0.1:1", gateway_id="gw-a",
                     same_address=True)[1].reason.startswith("nothing outstanding")
    # renewed while it lives; a dead copy's binding lapses after the lease
    clock.set(T0 + BINDING_LEASE - 1)
    assert adm.renew(first, 100, "gw-b") is not None
    clock.set(T0 + 2 * BINDING_LEASE - 2)
    assert adm.admit(1, 1, conn_id=104, source="10.0.0.1:2", gateway_id="gw-a",
                     same_address=True)[0] is None
    clock.set(T0 + 2 * BINDING_LEASE)
    taken, ok = adm.admit(1, 1, conn_id=104, source="10.0.0.1:2", gateway_id="gw-a",
                          same_address=True)
    assert taken is not None and taken.bound_conn == 104
    # released at once when its connection closes: the device's next one may take it
    assert adm.release(taken, 104) is not None
    again, ok = adm.admit(1, 1, conn_id=105, source="10.0.0.1:3", gateway_id="gw-b",
                          same_address=True)
    assert again is not None and again.bound_conn == 105
    # progress and completion are shared; a closed request admits nobody
    assert adm.progress(again, last_ts=123) is not None
    done = adm.finish(again, stored=True)
    assert done is not None and done.state == "done" and done.progress == {
        "last_ts": 123, "stored": True}
    assert adm.admit(1, 1, conn_id=105, source="10.0.0.1:3", gateway_id="gw-b",
                     same_address=True)[0] is None
