"""Which media connection may feed which outstanding request: every case, table-driven."""
from __future__ import annotations

import pytest

from fleetcam.domain.admission import MediaRequest, admit, bind, host_of, release

NOW = 1_700_000_000.0
REQ = MediaRequest(device_id=1, channel=1, kind="clip", ref="cmd:1", holder="gw-a",
                   source_ip="10.0.0.1", opened=NOW - 5, expires=NOW + 60)

CASES = [
    ("nothing asked", None, 7, "10.0.0.1:1", True, "nothing outstanding"),
    ("asked, same address", REQ, 7, "10.0.0.1:9", True, ""),
    ("other address", REQ, 7, "10.0.0.2:9", True, "not the device's signalling address"),
    ("other address, check off", REQ, 7, "10.0.0.2:9", False, ""),
    ("expired", REQ.with_changes(expires=NOW), 7, "10.0.0.1:9", True, "closed"),
    ("done", REQ.with_changes(state="done"), 7, "10.0.0.1:9", True, "closed"),
    ("unknown kind", REQ.with_changes(kind="nope"), 7, "10.0.0.1:9", True, "unknown"),
    ("bound to another", bind(REQ, conn_id=8, gateway_id="gw-b", now=NOW), 7, "10.0.0.1:9",
     True, "bound to another connection"),
    ("bound to itself", bind(REQ, conn_id=7, gateway_id="gw-b", now=NOW), 7, "10.0.0.1:9",
     True, ""),
    ("binding lapsed", bind(REQ, conn_id=8, gateway_id="gw-b", now=NOW - 31), 7,
     "10.0.0.1:9", True, ""),
    ("no known address", REQ.with_changes(source_ip=""), 7, "10.0.0.2:9", True, ""),
    ("IPv6", REQ.with_changes(source_ip="::1"), 7, "[::1]:9", True, ""),
]


@pytest.mark.parametrize("name,req,conn,source,same,reason", CASES, ids=[c[0] for c in CASES])
def test_admission(name: str, req: MediaRequest | None, conn: int, source: str, same: bool,
                   reason: str) -> None:
    d = admit(req, conn_id=conn, source=source, now=NOW, same_address=same)
    assert d.admit == (reason == "")
    assert reason in d.reason


def test_release_only_by_the_bound_connection() -> None:
    bound = bind(REQ, conn_id=8, gateway_id="gw-b", now=NOW)
    assert release(bound, 9) is None
    freed = release(bound, 8)
    assert freed is not None and freed.bound_conn is None and freed.bound_until == 0.0
    assert host_of("1.2.3.4:5") == "1.2.3.4" and host_of("[::1]:5") == "::1"
