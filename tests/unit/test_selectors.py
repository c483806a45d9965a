"""Device selectors: ``all``, id lists, expressions and ``{...}`` braces."""
from __future__ import annotations

import pytest

from fleetcam.domain.expr import And, Cmp, Truthy
from fleetcam.domain.models import Device
from fleetcam.domain.selectors import Selector, device_field, parse_selector
from fleetcam.errors import Invalid

CAM = Device(id=7, name="cam-7", ident="013912345678", media_ttl=3600,
             metadata={"fleet": "north", "n": 3}, enabled=True)
OTHER = Device(id=8, name="truck", ident="999", metadata={}, enabled=False)


@pytest.mark.parametrize("text", ["all", " all ", "\tall\n"])
def test_all(text: str) -> None:
    sel = parse_selector(text)
    assert sel == Selector(all=True)
    assert sel.single_id is None
    assert sel.matches(CAM) and sel.matches(OTHER)


@pytest.mark.parametrize("text, ids", [
    ("7", (7,)), (" 7 ", (7,)), ("1,2,3", (1, 2, 3)), ("1, 2 ,3", (1, 2, 3)),
    ("3,1,3,2,1", (3, 1, 2)), ("007", (7,)),
])
def test_ids(text: str, ids: tuple[int, ...]) -> None:
    sel = parse_selector(text)
    assert sel.ids == ids and not sel.all and sel.filter is None
    assert sel.single_id == (ids[0] if len(ids) == 1 else None)
    assert sel.matches(CAM) is (7 in ids)


@pytest.mark.parametrize("text, node", [
    ("name=cam*", Cmp("name", "==", "cam*")),
    ("{name=cam*}", Cmp("name", "==", "cam*")),
    (" {enabled && id>5} ", And((Truthy("enabled"), Cmp("id", ">", 5)))),
    ("configuration.ident=013912345678", Cmp("configuration.ident", "==", 13912345678)),
    ('{configuration.ident="013912345678"}', Cmp("configuration.ident", "==", "013912345678")),
])
def test_expressions(text: str, node: object) -> None:
    sel = parse_selector(text)
    assert sel.filter == node and not sel.all and sel.ids == ()
    assert sel.single_id is None


@pytest.mark.parametrize("text, cam, other", [
    ("name=cam*", True, False),
    ("{name=cam*}", True, False),
    ("{enabled}", True, False),
    ("!enabled", False, True),
    ("id>7", False, True),
    ("id>=7&&id<8", True, False),
    ('configuration.ident="013912345678"', True, False),
    ('ident="999"', False, True),
    ("metadata.fleet=north", True, False),
    ("metadata.n>2", True, False),
    ("metadata.missing", False, False),
    ("media_ttl>0", True, False),
    ("configuration.other", False, False),
    ("{name=cam*||name=truck}", True, True),
])
def test_expression_matching(text: str, cam: bool, other: bool) -> None:
    sel = parse_selector(text)
    assert (sel.matches(CAM), sel.matches(OTHER)) == (cam, other)


def test_device_field() -> None:
    assert device_field(CAM, "ident") == device_field(CAM, "configuration.ident") == CAM.ident
    assert device_field(CAM, "metadata.fleet") == "north"
    assert device_field(CAM, "configuration.x") is None
    assert device_field(CAM, "nope") is None


def test_bare_words_are_expressions() -> None:
    """A typo such as ``al`` is a (truthiness) expression, matching devices with that field."""
    assert parse_selector("al") == Selector(filter=Truthy("al"))
    assert not parse_selector("al").matches(CAM)


@pytest.mark.parametrize("text", [
    "", "  ", "{}", "{", "}", "{ }", "1,", ",1", "1,,2", "1 2", "-1", "all,1", "{name=}",
    "name=", "(", "{(name=a}", "{name=a", "a b", "é", "{{name=a}}", "1;2",
])
def test_bad_selectors_raise_invalid(text: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_selector(text)
    assert err.value.field == "selector"
