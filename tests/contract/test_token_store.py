"""TokenStore contract: SQLite and DynamoDB (moto's server) behave the same."""
from __future__ import annotations

from dataclasses import replace

from fleetcam.domain.access import TokenRecord, parse_acl, token_hash
from fleetcam.domain.shares import ShareLink
from fleetcam.ports import ShareStore, TokenStore
from tests.contract.conftest import Backend


def tokens(backend: Backend) -> TokenStore:
    if backend.name == "local":
        from fleetcam.adapters.local.tokens import SqliteTokenStore

        return SqliteTokenStore(backend.extras["db"])
    from fleetcam.adapters.aws.tokens import DynamoTokenStore

    return DynamoTokenStore()


def record(key: str, **kw: object) -> TokenRecord:
    base = dict(id=0, key_hash=token_hash(key), kind="acl", info="t", expire=2_000_000_000,
                created=1_700_000_000.0, accessed=1_700_000_000.0,
                acl=parse_acl([{"uri": "gw/devices", "ids": [1], "methods": ["GET"],
                                "submodules": [{"name": "media", "methods": ["GET"]}]}]))
    base.update(kw)
    return TokenRecord(**base)  # type: ignore[arg-type]


def test_add_get_by_hash_list(backend: Backend) -> None:
    store = tokens(backend)
    a = store.add(record("a" * 64))
    b = store.add(record("b" * 64, kind="master", acl=()))
    assert a.id > 0 and b.id > a.id
    assert store.get(a.id) == a
    assert store.by_hash(token_hash("a" * 64)) == a
    assert store.by_hash(token_hash("c" * 64)) is None
    assert store.get(999) is None
    assert [r.id for r in store.list()] == [a.id, b.id]


def test_update_touch_delete(backend: Backend) -> None:
    store = tokens(backend)
    a = store.add(record("a" * 64))
    changed = replace(a, info="changed", enabled=False, acl=())
    assert store.update(changed)
    assert store.get(a.id) == changed
    store.touch(a.id, 1_800_000_000.0)
    assert store.by_hash(a.key_hash).accessed == 1_800_000_000.0  # type: ignore[union-attr]
    assert store.delete(a.id)
    assert not store.delete(a.id)
    assert store.get(a.id) is None and store.by_hash(a.key_hash) is None
    assert not store.update(changed)
    store.touch(a.id, 1.0)  # a gone token: nothing happens
    assert store.list() == []


def test_only_the_hash_is_stored(backend: Backend) -> None:
    store = tokens(backend)
    key = "Zk" * 32
    a = store.add(record(key))
    assert key not in repr(a.to_row())
    assert a.key_hash == token_hash(key) != key


def shares(backend: Backend) -> ShareStore:
    if backend.name == "local":
        from fleetcam.adapters.local.tokens import SqliteShareStore

        return SqliteShareStore(backend.extras["db"])
    from fleetcam.adapters.aws.tokens import DynamoShareStore

    return DynamoShareStore()


def test_share_links(backend: Backend) -> None:
    store = shares(backend)
    a = ShareLink(id="a" * 32, uuid="f" * 32, device_id=1, expire=2_000_000_000,
                  created=1_700_000_000.0)
    b = replace(a, id="b" * 32, created=1_700_000_001.0)
    other = replace(a, id="c" * 32, uuid="e" * 32)
    for s in (a, b, other):
        store.add(s)
    assert store.get(a.id) == a and store.get("d" * 32) is None
    assert store.of_file("f" * 32) == [a, b]
    assert store.revoke(a.id) and not store.revoke(a.id) and not store.revoke("d" * 32)
    assert store.get(a.id) == replace(a, revoked=True)
    assert store.get(b.id) == b
