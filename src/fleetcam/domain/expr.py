"""flespi-style filter expressions: ``created>1701080000&&created<1701090000``.

The grammar is the cheap, useful part of flespi's expressions::

    expr  := conj ('||' conj)*
    conj  := atom ('&&' atom)*
    atom  := '(' expr ')' | '!' atom | field op value | field
    op    := '==' | '=' | '!=' | '>=' | '<=' | '>' | '<'

A value is a number, ``true``/``false``/``null``, a quoted string or a bare word; ``*`` in a
string compared with ``=``/``==`` is a wildcard (the only one: ``?`` and ``[`` are literal).
A bare ``field`` is true when the field is truthy.

Comparisons are typed, the same in Python and in SQL (``adapters/local/sqlfilter.py``):
booleans are the numbers 1 and 0; a number only equals or orders against a number, a string
against a string (``name==5`` is false, ``size>"a"`` is false); a missing field is null,
which equals only ``null`` and orders against nothing; ``!=`` is the negation of ``==`` and
``!`` the negation of its operand (two-valued logic: ``!(channel_id>1)`` matches files
without a channel). Parsing is pure; adapters turn the tree into SQL or evaluate it in Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Union

from fleetcam.errors import Invalid

MAX_EXPR_LEN = 4096
MAX_DEPTH = 64
"""Deepest nesting of ``(`` and ``!`` (hostile input must not exhaust the stack)."""


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # one of == != > >= < <= (the '=' alias is normalised to '==')
    value: Any


@dataclass(frozen=True)
class Truthy:
    field: str


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    nodes: tuple[Node, ...]


Node = Union[Cmp, Truthy, Not, And, Or]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|>=|<=|&&|\|\||[=<>!()])
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s=!<>&|()"']+)
    )""",
    re.VERBOSE,
)
_FIELD = re.compile(r"^[A-Za-z_][\w.\-]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Invalid(f"filter: unexpected character at {pos}: {text[pos:pos + 10]!r}",
                          field="filter")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):  # never nan; an overflowing exponent gives +-inf
        return float(raw)
    return raw


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise Invalid("filter: unexpected end of expression", field="filter")
        self.i += 1
        return tok

    def expr(self) -> Node:
        nodes = [self.conj()]
        while self.peek() == ("op", "||"):
            self.take()
            nodes.append(self.conj())
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def conj(self) -> Node:
        nodes = [self.atom()]
        while self.peek() == ("op", "&&"):
            self.take()
            nodes.append(self.atom())
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def atom(self) -> Node:
        kind, raw = self.take()
        if (kind, raw) in (("op", "("), ("op", "!")):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise Invalid(f"filter: nested deeper than {MAX_DEPTH} levels", field="filter")
            if raw == "!":
                node: Node = Not(self.atom())
            else:
                node = self.expr()
                if self.take() != ("op", ")"):
                    raise Invalid("filter: missing ')'", field="filter")
            self.depth -= 1
            return node
        if kind != "word" or not _FIELD.match(raw):
            raise Invalid(f"filter: expected a field name, got {raw!r}", field="filter")
        nxt = self.peek()
        if nxt is None or nxt[0] != "op" or nxt[1] in ("&&", "||", ")", "(", "!"):
            return Truthy(raw)
        op = self.take()[1]
        vkind, vraw = self.take()
        if vkind == "op":
            raise Invalid(f"filter: expected a value after {raw}{op}", field="filter")
        return Cmp(raw, "==" if op == "=" else op, _literal(vkind, vraw))


def parse(text: str) -> Node | None:
    """Parse a filter; an empty string gives None (match everything).

    Raises:
        Invalid: the text is not a well-formed expression (the reason says where).
    """
    if not text or not text.strip():
        return None
    if len(text) > MAX_EXPR_LEN:
        raise Invalid(f"filter: longer than {MAX_EXPR_LEN} characters", field="filter")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate, from a JSON "\ud800" escape
        raise Invalid("filter: not valid Unicode text", field="filter") from e
    parser = _Parser(_tokenize(text))
    node = parser.expr()
    if parser.peek() is not None:
        raise Invalid(f"filter: unexpected {parser.peek()[1]!r}", field="filter")  # type: ignore[index]
    return node


def has_wildcard(value: Any) -> bool:
    return isinstance(value, str) and "*" in value


@lru_cache(maxsize=256)
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """The regex a wildcard value matches with: ``*`` is any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def value_kind(value: Any) -> str:
    """The comparison type of a value: 'null', 'number' (booleans included), 'text' or
    'other' (a list or object, which compares with nothing)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return "number"
    return "text" if isinstance(value, str) else "other"


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("==", "!="):
        if has_wildcard(right):
            eq = isinstance(left, str) and wildcard_regex(right).fullmatch(left) is not None
        else:
            eq = value_kind(left) == value_kind(right) != "other" and bool(left == right)
        return eq if op == "==" else not eq
    if value_kind(left) != value_kind(right) or value_kind(left) not in ("number", "text"):
        return False
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def evaluate(node: Node | None, get: Callable[[str], Any]) -> bool:
    """Evaluate a parsed filter against a record, whose fields ``get`` returns."""
    if node is None:
        return True
    if isinstance(node, Cmp):
        return _compare(get(node.field), node.op, node.value)
    if isinstance(node, Truthy):
        return bool(get(node.field))
    if isinstance(node, Not):
        return not evaluate(node.node, get)
    if isinstance(node, And):
        return all(evaluate(n, get) for n in node.nodes)
    return any(evaluate(n, get) for n in node.nodes)


def fields(node: Node | None) -> list[str]:
    """The field names an expression reads, in order of first use."""
    out: dict[str, None] = {}

    def walk(n: Node | None) -> None:
        if isinstance(n, (Cmp, Truthy)):
            out.setdefault(n.field)
        elif isinstance(n, Not):
            walk(n.node)
        elif isinstance(n, (And, Or)):
            for child in n.nodes:
                walk(child)

    walk(node)
    return list(out)
