"""Principal.allows / device_ids: flespi's token kinds and ACL semantics."""
from __future__ import annotations

import pytest

from fleetcam.domain.access import (Principal, parse_acl, parse_kind, parse_presented,
                                    principal_json)
from fleetcam.errors import Invalid

T = "a" * 64


def acl(*entries: dict) -> Principal:
    return Principal(token_id=7, kind="acl", acl=parse_acl(list(entries)), expire=2_000_000_000)


READER = acl({"uri": "gw/devices", "ids": [1, 2], "methods": ["GET"],
              "submodules": [{"name": "media", "methods": ["GET"]},
                             {"name": "logs", "methods": ["GET"]}]})
WRITER = acl({"uri": "gw/devices", "ids": [3], "methods": ["GET"],
              "submodules": [{"name": "media", "methods": ["GET", "PUT", "POST", "DELETE"]}]})


@pytest.mark.parametrize("raw,expect", [
    (f"FlespiToken {T}", T), (f"Bearer {T}", T), (T, T), (f"  flespitoken   {T} ", T),
    (None, None), ("", None), ("FlespiToken ", None), (f"Basic {T}", None),
    ("FlespiToken " + "é" * 64, None), ("x" * 5, None), ("a b" * 30, None),
    ("FlespiToken " + "\x00" * 64, None), (T * 10, None)])
def test_presented_token_forms(raw: str | None, expect: str | None) -> None:
    assert parse_presented(raw) == expect


def test_master_and_standard() -> None:
    master = Principal(token_id=None, kind="master")
    std = Principal(token_id=2, kind="standard", expire=1)
    assert master.allows("platform/customer/tokens", "POST")
    assert master.device_ids("gw/devices") is None
    assert std.allows("gw/devices", "DELETE", 5, "media")
    assert not std.allows("platform/customer/tokens", "GET")
    assert std.device_ids("platform/customer/tokens") == set()


def test_acl_items_methods_and_submodules() -> None:
    assert READER.allows("gw/devices", "GET", 1)
    assert READER.allows("gw/devices", "get", 2, "media")
    assert not READER.allows("gw/devices", "GET", 3)
    assert not READER.allows("gw/devices", "PUT", 1)
    assert not READER.allows("gw/devices", "PUT", 1, "media")
    assert not READER.allows("gw/devices", "GET", 1, "commands")  # not listed: forbidden
    assert READER.allows("gw/devices", "GET")  # a listing, narrowed by device_ids
    assert READER.device_ids("gw/devices") == {1, 2}
    assert READER.device_ids("gw/devices", "GET", "media") == {1, 2}
    assert READER.device_ids("gw/devices", "GET", "commands") == set()
    assert READER.device_ids("gw/video-rules") == set()
    assert not READER.allows("platform/customer/tokens", "GET")
    assert WRITER.allows("gw/devices", "POST", 3, "media")
    assert not WRITER.allows("gw/devices", "POST")  # creating devices: not granted
    assert not WRITER.allows("gw/devices", "DELETE", 3)


def test_acl_all_ids_allows_collection_writes() -> None:
    p = acl({"uri": "gw/devices", "ids": "all", "methods": ["GET", "POST"]})
    assert p.allows("gw/devices", "POST")
    assert p.device_ids("gw/devices") is None
    assert not p.allows("gw/devices", "DELETE", 1)


def test_validity_expire_and_ttl() -> None:
    assert Principal(None, "master").valid_at(10**12)
    assert not Principal(1, "standard").valid_at(0)  # a stored token always expires
    p = Principal(1, "acl", expire=100)
    assert p.valid_at(99) and not p.valid_at(100)
    q = Principal(1, "acl", ttl=60, created=1000, accessed=1500)
    assert q.valid_at(1559) and not q.valid_at(1560)
    assert not Principal(1, "acl", expire=100, enabled=False).valid_at(0)


@pytest.mark.parametrize("bad", [
    "x", [1], [{"uri": 5}], [{"uri": "gw/devices", "ids": [0]}],
    [{"uri": "gw/devices", "ids": [2**64]}], [{"uri": "gw/devices", "ids": "some"}],
    [{"uri": "gw/devices", "methods": ["PATCH"]}], [{"uri": "platform/customer/tokens"}],
    [{"uri": "gw/devices", "submodules": [{"methods": ["GET"]}]}],
    [{"uri": "mqtt", "topic": ""}], [{"uri": "mqtt", "topic": "a", "actions": ["x"]}],
    [{"uri": "gw/../x"}], [{"uri": "gw/devices"}] * 101])
def test_bad_acl_is_invalid(bad: object) -> None:
    with pytest.raises(Invalid):
        parse_acl(bad)


def test_json_round_trip() -> None:
    kind, entries = parse_kind({"type": 2, "acl": [
        {"uri": "gw/devices", "ids": [2, 1], "methods": ["GET"],
         "submodules": [{"name": "media", "methods": ["PUT", "GET"]}]},
        {"uri": "mqtt", "topic": "flespi/state/#", "actions": ["subscribe"]}]})
    p = Principal(5, kind, entries, expire=9, info="i")
    j = principal_json(p)
    assert j["access"] == {"type": 2, "acl": [
        {"uri": "gw/devices", "ids": [1, 2], "methods": ["GET"],
         "submodules": [{"name": "media", "methods": ["GET", "PUT"]}]},
        {"uri": "mqtt", "topic": "flespi/state/#", "actions": ["subscribe"]}]}
    assert parse_kind(j["access"]) == (kind, entries)
    assert p.mqtt_entries()[0].topic == "flespi/state/#"
