"""Filter expressions: parsing, evaluation, hostile input, and SQL that agrees with Python."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcam.adapters.local.db import Database
from fleetcam.adapters.local.repos import SqliteMediaIndex
from fleetcam.domain import expr
from fleetcam.domain.expr import And, Cmp, Not, Or, Truthy, evaluate, parse
from fleetcam.domain.models import MediaFile, Preview
from fleetcam.errors import Invalid
from fleetcam.ports import MediaQuery

# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, node", [
    ("created>1&&created<2", And((Cmp("created", ">", 1), Cmp("created", "<", 2)))),
    ("created > 1 && created < 2", And((Cmp("created", ">", 1), Cmp("created", "<", 2)))),
    ("a=1||b=2", Or((Cmp("a", "==", 1), Cmp("b", "==", 2)))),
    ("a=1||b=2&&c=3", Or((Cmp("a", "==", 1), And((Cmp("b", "==", 2), Cmp("c", "==", 3)))))),
    ("(a=1||b=2)&&c=3", And((Or((Cmp("a", "==", 1), Cmp("b", "==", 2))), Cmp("c", "==", 3)))),
    ("!protected", Not(Truthy("protected"))),
    ("!(a>=1)", Not(Cmp("a", ">=", 1))),
    ("!!a", Not(Not(Truthy("a")))),
    ("a!=1", Cmp("a", "!=", 1)),
    ("a<=-1.5", Cmp("a", "<=", -1.5)),
    ("a>1e3", Cmp("a", ">", 1000.0)),
    ('name=="a b"', Cmp("name", "==", "a b")),
    (r'name="say \"hi\""', Cmp("name", "==", 'say "hi"')),
    (r"name='a\'b'", Cmp("name", "==", "a'b")),
    ("name=cam*", Cmp("name", "==", "cam*")),
    ('name="*.jpg"', Cmp("name", "==", "*.jpg")),
    ("protected=true", Cmp("protected", "==", True)),
    ("protected==FALSE", Cmp("protected", "==", False)),
    ("channel_id=null", Cmp("channel_id", "==", None)),
    ('name="123"', Cmp("name", "==", "123")),
    ("name=nan", Cmp("name", "==", "nan")),
    ("name=inf", Cmp("name", "==", "inf")),
    ("name=1_000", Cmp("name", "==", "1_000")),
    ("size=+5", Cmp("size", "==", 5)),
    ("size=.5", Cmp("size", "==", 0.5)),
    ("meta.width>100", Cmp("meta.width", ">", 100)),
    ("x-y.z", Truthy("x-y.z")),
    ("", None),
    ("   ", None),
])
def test_parse(text: str, node: expr.Node | None) -> None:
    assert parse(text) == node


@pytest.mark.parametrize("text", [
    "(", ")", "a=", "=1", "a==", "a=(", "a=)", "&&", "a&&", "||a", "a||", "(a", "a)", "!",
    "a b", "a=1 b", "1=a", "'a'=1", "a=1=2", "a<>1", "a=\"open", "a='open", "a&b", "a|b",
    "()", "!()", "a(", "a!", "a=1&&", "a==1||(b", "a&&&&b", "a = && b", "é=1", ".a=1",
    "-a=1", "a=\"x\"\"y\"", "name=='it''s'", "a" * 5000, "x=\ud800",
])
def test_malformed_raises_invalid(text: str) -> None:
    with pytest.raises(Invalid) as err:
        parse(text)
    assert err.value.field == "filter"


@pytest.mark.parametrize("text", ["(" * 5000 + "a" + ")" * 5000, "!" * 4000 + "a",
                                  "(" * 65 + "a" + ")" * 65, "!" * 65 + "a"])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(Invalid):
        parse(text)


def test_nesting_within_the_limit_parses() -> None:
    assert parse("(" * expr.MAX_DEPTH + "a" + ")" * expr.MAX_DEPTH) == Truthy("a")
    assert parse("!" * 64 + "a") is not None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_invalid(text: str) -> None:
    try:
        node = parse(text)
    except Invalid:
        return
    evaluate(node, lambda name: None)  # whatever parsed can be evaluated


_ALPHABET = "()!&|=<>\"'\\ ab1.*-"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_near_miss_text_parses_or_raises_invalid(text: str) -> None:
    try:
        parse(text)
    except Invalid:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["(", ")", "!", "&&", "||", "==", "!=", ">", "<=", "a", "b",
                                 "1", "'s'", "null", "true", "*"]), max_size=30))
def test_random_token_streams_parse_or_raise_invalid(tokens: list[str]) -> None:
    try:
        parse(" ".join(tokens))
    except Invalid:
        pass


# -- evaluation ----------------------------------------------------------------------------

RECORD: dict[str, Any] = {"size": 10, "name": "cam-1.jpg", "protected": True, "shared": False,
                          "channel_id": None, "tag": "", "zero": 0, "num_text": "5",
                          "created": 1700000000.5, "items": [], "flag": True}


@pytest.mark.parametrize("text, expected", [
    ("size>5", True), ("size>=10", True), ("size<10", False), ("size<=10", True),
    ("size==10", True), ("size=10.0", True), ("size!=10", False),
    ("created>1&&created<2", False), ("created>1700000000&&created<1700000001", True),
    ("size<5||name=cam*", True), ("!(size<5||name=cam*)", False),
    ("name==cam*", True), ("name==*.jpg", True), ("name==*.png", False),
    ("name!=*.png", True), ('name=="cam-?.jpg"', False), ("name==cam-1.jpg", True),
    ("protected", True), ("shared", False), ("!shared", True), ("tag", False),
    ("zero", False), ("missing", False), ("!missing", True), ("items", False),
    ("protected=true", True), ("protected=1", True), ("protected>0", True),
    ("shared=false", True), ("shared=0", True), ("flag=true", True),
    # typed comparisons: a number never equals or orders against a string
    ("num_text=5", False), ('num_text="5"', True), ("size>\"a\"", False), ("name>5", False),
    ("size=true", False), ("name=true", False),
    # null equals only null; ordering with null is false; != is the negation of ==
    ("channel_id=null", True), ("channel_id!=null", False), ("channel_id>0", False),
    ("channel_id<0", False), ("!(channel_id>0)", True), ("channel_id!=1", True),
    ("missing=null", True), ("size=null", False), ("size>null", False),
])
def test_evaluate(text: str, expected: bool) -> None:
    assert evaluate(parse(text), RECORD.get) is expected


def test_evaluate_none_matches_everything() -> None:
    assert evaluate(None, RECORD.get) is True


# -- the SQL translation agrees with the evaluator ------------------------------------------

NAMES = ["", "0", "5", "10", "a", "abc", "ABC", "a*c", "a?c", "abbc", "[x]", "été", "x y",
         "cam-1.jpg", "a'b", 'q"q']
SIZES = [0, 1, 5, 10, 1000, 2**40]
CREATED = [0.0, 1.0, 1.5, 5.0, 10.0, 1700000000.0, 1700000000.25]
CHANNELS = [None, 0, 1, 5, 255]
_MISSING = object()
TAGS: list[Any] = [_MISSING, None, 0, 1, 5, 1.5, -3, "", "0", "5", "abc", "a*c", "ABC", True,
                   False, [], [1], {}, {"k": 1}, 2**40]


def _files() -> list[MediaFile]:
    out = []
    for i in range(120):
        tag = TAGS[i % len(TAGS)]
        out.append(MediaFile(
            uuid=f"{i:032x}", device_id=1 + i % 2, key=f"media/{1 + i % 2}/{i:032x}.jpg",
            name=NAMES[(i * 7) % len(NAMES)], size=SIZES[(i * 5) % len(SIZES)],
            mime="image/jpeg", created=CREATED[(i * 3) % len(CREATED)], uploaded=float(i),
            modified=float(i), protected=i % 3 == 0, shared=i % 4 == 0,
            channel_id=CHANNELS[(i * 11) % len(CHANNELS)],
            preview=Preview(meta={"type": "image", "width": 10 * (i % 4)} if i % 5 else {}),
            attributes={} if tag is _MISSING else {"tag": tag, "n.x": i % 3}))
    return out


@pytest.fixture(scope="module")
def media_index(tmp_path_factory: pytest.TempPathFactory) -> SqliteMediaIndex:
    db = Database(Path(tmp_path_factory.mktemp("expr")) / "expr.sqlite3")
    index = SqliteMediaIndex(db)
    index.add_many(_files())
    return index


def _stored(index: SqliteMediaIndex) -> list[MediaFile]:
    return index.query(MediaQuery(device_ids=(1, 2), count=10_000))


def _check_agreement(index: SqliteMediaIndex, node: expr.Node | None) -> None:
    files = _stored(index)
    expected = {f.uuid for f in files if evaluate(node, f.field_value)}
    got = {f.uuid for f in index.query(MediaQuery(device_ids=(1, 2), filter=node, count=10_000))}
    assert got == expected


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


FIELDS = ["created", "size", "name", "channel_id", "channel", "protected", "shared", "tag",
          "missing", "n.x", "type", "meta.width", "uuid"]
OPS = ["==", "=", "!=", ">", ">=", "<", "<="]
_numbers = st.one_of(
    st.integers(-5, 1100).map(str),
    st.sampled_from(["0", "1", "5", "10", "1.5", "-3", "1e3", ".5", "+5", "1700000000",
                     "1700000000.25", str(2**40), str(10**20), "1e999", "-1e999"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
)
_words = st.sampled_from(NAMES[1:8] + ["true", "false", "null", "TRUE", "abc*", "*c", "*",
                                       "a*", "*.jpg", "image", "nan", "inf"])
_strings = st.one_of(st.sampled_from(NAMES + ["*", "a*", "*c", "a**c", "a?c*", "[*", "*]"]),
                     st.text(alphabet="abc*?[]0 5é'\"\\", max_size=6)).map(_quote)
_cmp = st.builds(lambda f, o, v: f"{f}{o}{v}", st.sampled_from(FIELDS), st.sampled_from(OPS),
                 st.one_of(_numbers, _words, _strings))
_atom = st.one_of(_cmp, st.sampled_from(FIELDS))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=4).map("&&".join),
        st.lists(children, min_size=2, max_size=4).map("||".join),
        children.map(lambda c: f"!({c})"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"!{c}"),
    )


_exprs = st.recursive(_atom, _extend, max_leaves=8)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_exprs)
def test_sql_selects_what_python_accepts(media_index: SqliteMediaIndex, text: str) -> None:
    try:
        node = parse(text)
    except Invalid:  # e.g. "!!!...": deeper than MAX_DEPTH is refused
        return
    _check_agreement(media_index, node)


@pytest.mark.parametrize("text", [
    "name=5", 'name="5"', "name>5", "name=*", "name==a?c", "name==a*c", "name==[x]",
    'name=="[*"', "size=*", "size>\"a\"", "size=true", "protected=true", "protected=2",
    "shared=false", "channel_id=null", "channel_id!=null", "!(channel_id>1)", "channel_id!=1",
    "channel=5", "tag", "!tag", "tag=true", "tag=1", "tag=abc", "tag=a*", "tag>1", "tag<\"b\"",
    "tag=null", "tag!=null", "!(tag>0)", "n.x=1", "type=image", "meta.width>=10",
    "size>1e999", "size<-1e999", f"size={10**20}", f"size<{10**20}", "created=1.5",
    "x-y", "missing!=1",
])
def test_sql_agrees_on_documented_cases(media_index: SqliteMediaIndex, text: str) -> None:
    _check_agreement(media_index, parse(text))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=_ALPHABET + "é\x00\ud800", max_size=40))
def test_whatever_parses_also_runs_as_sql(media_index: SqliteMediaIndex, text: str) -> None:
    try:
        node = parse(text)
    except Invalid:
        return
    _check_agreement(media_index, node)


def test_long_and_or_chains_stay_within_sqlite_depth(media_index: SqliteMediaIndex) -> None:
    files = _stored(media_index)
    by_uuid = Or(tuple(Cmp("uuid", "==", f"{i:032x}") for i in range(0, 3000, 3)))
    got = media_index.query(MediaQuery(device_ids=(1, 2), filter=by_uuid, count=10_000))
    assert {f.uuid for f in got} == {f.uuid for f in files if int(f.uuid, 16) % 3 == 0}
    chain = parse("||".join(itertools.repeat("a", 1300)) + "||size>=0")  # 1301 terms
    assert len(media_index.query(MediaQuery(device_ids=(1, 2), filter=chain))) == len(files)
    chain = parse("&&".join(itertools.repeat("!a", 1000)))
    assert len(media_index.query(MediaQuery(device_ids=(1, 2), filter=chain))) == len(files)


def test_empty_and_or(media_index: SqliteMediaIndex) -> None:
    for node in (And(()), Or(())):
        _check_agreement(media_index, node)
    assert media_index.query(MediaQuery(device_ids=(1, 2), filter=Or(()))) == []
