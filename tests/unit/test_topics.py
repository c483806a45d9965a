"""Topic rules: comma lists, validation, matching and who may read what."""
from __future__ import annotations

import pytest

from fleetcam.domain import topics as t
from tests.broker import FakePrincipal

P = "fleetcam"
MEDIA_7_8 = FakePrincipal(2, "acl", frozenset({7, 8}), frozenset({"media"}))
MASTER = FakePrincipal(1, "master")


def test_comma_lists_expand() -> None:
    assert t.expand("flespi/log/gw/devices/7/media_file_uploaded,media_file_updated") == [
        "flespi/log/gw/devices/7/media_file_uploaded",
        "flespi/log/gw/devices/7/media_file_updated"]
    assert t.expand("a/1,2/x,y") == ["a/1/x", "a/1/y", "a/2/x", "a/2/y"]
    assert t.expand("a/b,b/+") == ["a/b/+"]
    assert t.expand("a/#") == ["a/#"]


@pytest.mark.parametrize("bad", ["", "a/b#", "a/#/b", "a/+x", "a/+,b", "a/,b", "a/b,#",
                                 "/".join(["a"] * 17), "a/" + "x" * 600, "$share/g/a",
                                 "a/" + ",".join(str(i) for i in range(65))])
def test_invalid_filters(bad: str) -> None:
    with pytest.raises(t.FilterError):
        t.expand(bad)


@pytest.mark.parametrize("f, topic, ok", [
    ("a/+/c", "a/b/c", True), ("a/#", "a", True), ("a/#", "a/b/c", True), ("+", "a", True),
    ("a/+", "a/b/c", False), ("#", "$SYS/x", False), ("a/b", "a/b/c", False)])
def test_matching(f: str, topic: str, ok: bool) -> None:
    assert t.matches(f, topic) is ok
    tree = t.TopicTree()
    tree.add(f, "v")
    seen: list[object] = []
    tree.match(topic, seen.append)
    assert bool(seen) is ok
    tree.remove(f, "v")
    assert not tree.children


@pytest.mark.parametrize("f, ok", [
    ("fleetcam/log/gw/devices/7/media_file_uploaded", True),
    ("fleetcam/log/gw/devices/8/media_file_deleted", True),
    ("fleetcam/log/gw/devices/+/media_file_uploaded", True),
    ("fleetcam/log/gw/devices/7/+", True),  # delivery narrows it to media events
    ("fleetcam/log/gw/devices/9/media_file_uploaded", False),  # not its device
    ("fleetcam/log/gw/devices/7/commands-queue/+/sent", False),  # not its submodule
    ("fleetcam/state/gw/devices/7/commands-queue/+", False),
    ("fleetcam/message/gw/devices/7", False),
    ("fleetcam/#", False), ("#", False), ("fleetcam/+/gw/devices/7/+", False),
    ("fleetcam/log/+/devices/7/+", False), ("fleetcam/log/gw/devices/#", False),
    ("other/topic", False), ("fleetcam/log/gw/devices/x/media_file_uploaded", False),
])
def test_acl_token_subscriptions(f: str, ok: bool) -> None:
    assert t.may_subscribe(MEDIA_7_8, P, f) is ok
    assert t.may_subscribe(MASTER, P, f) is True


def test_delivery_checks_each_topic() -> None:
    assert t.may_read(MEDIA_7_8, P, "fleetcam/log/gw/devices/7/media_file_uploaded")
    assert not t.may_read(MEDIA_7_8, P, "fleetcam/log/gw/devices/9/media_file_uploaded")
    assert not t.may_read(MEDIA_7_8, P, "fleetcam/log/gw/devices/7/connections/connected")
    assert not t.may_read(MEDIA_7_8, P, "fleetcam/state/gw/devices/7/commands-queue/3")
    assert t.may_read(MEDIA_7_8, P, "fleetcam/log/gw/devices/7/mediastream/1")
    msgs = FakePrincipal(4, "acl", frozenset({7}), frozenset({"messages"}))
    assert t.may_read(msgs, P, "fleetcam/gw/devices/7/messages")
    assert t.may_read(msgs, P, "fleetcam/message/gw/devices/7")
    assert not t.may_read(msgs, P, "fleetcam/message/gw/devices/8")


def test_nobody_publishes_under_the_prefix() -> None:
    assert not t.may_publish(MASTER, P, "fleetcam/log/gw/devices/7/media_file_uploaded")
    assert not t.may_publish(MASTER, P, "$SYS/x")
    assert t.may_publish(MASTER, P, "chat/room")
    assert not t.may_publish(MEDIA_7_8, P, "chat/room")


@pytest.mark.parametrize("f", ["a/+/c", "a/#", "#", "+", "+/+", "a/b", "a/b/c", "+/b/#", "$SYS/#",
                               "a/+", "+/#", "a/b/c/#"])
def test_filters_find_the_same_stored_topics_as_matching(f: str) -> None:
    stored = ["a", "a/b", "a/b/c", "a/x/c", "b/b/d", "$SYS/load", "a/b/c/d"]
    tree = t.TopicTree()
    for topic in stored:
        tree.add(topic, topic)
    found: list[object] = []
    tree.match_filter(f, found.append)
    assert sorted(found) == sorted(x for x in stored if t.matches(f, x))  # type: ignore
