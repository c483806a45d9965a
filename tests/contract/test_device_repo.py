"""DeviceRepo contract: create/get/find_by_ident/list/update/delete, Conflict and NotFound."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fleetcam.domain.identity import ISSUED, PROVISIONED, Identity, new_code, terminal_of
from fleetcam.domain.models import Device
from fleetcam.errors import Conflict, NotFound
from tests.contract.conftest import Backend


def test_create_and_get(backend: Backend) -> None:
    d = backend.devices.create({"name": "cam", "ident": "0139", "media_ttl": 60,
                                "media_rotate": 1000, "metadata": {"fleet": "n", "k": [1]}})
    assert isinstance(d.id, int) and d.id > 0
    assert (d.name, d.ident, d.media_ttl, d.media_rotate) == ("cam", "0139", 60, 1000)
    assert d.metadata == {"fleet": "n", "k": [1]}
    assert backend.devices.get(d.id) == d


def test_create_applies_defaults(backend: Backend) -> None:
    d = backend.devices.create({"name": "cam", "ident": "x"})
    assert d == Device(id=d.id, name="cam", ident="x")
    assert backend.devices.get(d.id) == d


def test_ids_are_unique(backend: Backend) -> None:
    ids = [backend.devices.create({"name": "c", "ident": f"i{n}"}).id for n in range(5)]
    assert len(set(ids)) == 5


def test_duplicate_ident_conflicts(backend: Backend) -> None:
    first = backend.devices.create({"name": "a", "ident": "same"})
    with pytest.raises(Conflict) as err:
        backend.devices.create({"name": "b", "ident": "same"})
    assert err.value.field == "ident"
    assert [d.id for d in backend.devices.list()] == [first.id]


def test_find_by_ident(backend: Backend) -> None:
    d = backend.devices.create({"name": "a", "ident": "abc"})
    assert backend.devices.find_by_ident("abc") == d
    assert backend.devices.find_by_ident("ABC") is None
    assert backend.devices.find_by_ident("nope") is None


def test_list(backend: Backend) -> None:
    assert backend.devices.list() == []
    made = [backend.devices.create({"name": f"c{n}", "ident": f"i{n}"}) for n in range(3)]
    assert sorted(backend.devices.list(), key=lambda d: d.id) == made


def test_update(backend: Backend) -> None:
    d = backend.devices.create({"name": "a", "ident": "1"})
    new = d.with_changes(name="b", ident="2", media_ttl=5, media_rotate=7, enabled=False,
                         metadata={"x": 1})
    assert backend.devices.update(new) == new
    assert backend.devices.get(d.id) == new
    assert backend.devices.find_by_ident("2") == new
    assert backend.devices.find_by_ident("1") is None


def test_update_to_a_taken_ident_conflicts(backend: Backend) -> None:
    a = backend.devices.create({"name": "a", "ident": "1"})
    b = backend.devices.create({"name": "b", "ident": "2"})
    with pytest.raises(Conflict):
        backend.devices.update(b.with_changes(ident="1"))
    assert backend.devices.get(b.id) == b
    assert backend.devices.find_by_ident("1") == a


def test_update_missing_raises_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.devices.update(Device(id=999_999, name="x", ident="x"))
    assert backend.devices.find_by_ident("x") is None


def test_delete(backend: Backend) -> None:
    d = backend.devices.create({"name": "a", "ident": "1"})
    keep = backend.devices.create({"name": "b", "ident": "2"})
    backend.devices.delete(d.id)
    with pytest.raises(NotFound):
        backend.devices.get(d.id)
    assert backend.devices.find_by_ident("1") is None
    assert backend.devices.list() == [keep]
    backend.devices.delete(d.id)  # idempotent
    again = backend.devices.create({"name": "a2", "ident": "1"})  # the ident is free again
    assert again.id != keep.id


def test_get_missing_raises_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.devices.get(424242)


def test_identity_is_stored_hashed_and_swapped_only_from_what_was_read(backend: Backend) -> None:
    """Issue 10: the code is stored as a salted hash; ``swap_identity`` is a compare-and-set
    (two registrations racing never both get a code), and ``update`` leaves it alone."""
    d = backend.devices.create({"name": "a", "ident": "013800000001"})
    assert d.identity == Identity()
    code = new_code()
    issued = Identity().with_code(code, ISSUED, 1000.0, terminal_of("T1", "M", "X"))
    assert backend.devices.swap_identity(d.id, Identity(), issued)
    stored = backend.devices.get(d.id).identity
    assert stored == issued and stored.verify(code) and not stored.verify(new_code())
    assert code not in stored.to_stored()  # only the hash is kept
    assert backend.devices.find_by_ident("013800000001").identity == issued  # type: ignore[union-attr]

    rival = Identity().with_code(new_code(), ISSUED, 1001.0)
    assert not backend.devices.swap_identity(d.id, Identity(), rival)  # lost the race
    assert backend.devices.get(d.id).identity == issued

    # a general update (name, enabled...) never writes the identity, even a stale one
    backend.devices.update(d.with_changes(name="renamed"))
    assert backend.devices.get(d.id).identity == issued
    assert backend.devices.get(d.id).name == "renamed"

    flagged = replace(issued, reregister_at_boot=True)
    assert backend.devices.swap_identity(d.id, issued, flagged)
    assert backend.devices.swap_identity(d.id, flagged, flagged.reset())
    assert not backend.devices.get(d.id).identity.has_code
    assert backend.devices.get(d.id).identity.reregister_at_boot
    assert not backend.devices.swap_identity(999_999, Identity(), issued)


def test_identity_given_at_creation(backend: Backend) -> None:
    ident = Identity().with_code("provisioned-code-0001", PROVISIONED, 5.0)
    d = backend.devices.create({"name": "a", "ident": "p1", "identity": ident})
    assert backend.devices.get(d.id).identity == ident
    assert backend.devices.get(d.id).identity.verify("provisioned-code-0001")


def test_a_legacy_clear_code_is_read_and_can_be_replaced(backend: Backend) -> None:
    legacy = Identity(legacy_code="0123456789abcdef")
    d = backend.devices.create({"name": "a", "ident": "old", "identity": legacy})
    got = backend.devices.get(d.id).identity
    assert got == legacy and got.verify("0123456789abcdef")
    upgraded = got.with_code("0123456789abcdef", ISSUED, 7.0)
    assert backend.devices.swap_identity(d.id, got, upgraded)
    assert backend.devices.get(d.id).identity.legacy_code == ""
