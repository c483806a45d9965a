"""Tokens and what they allow, as flespi defines them: pure rules, no I/O.

A token is one of three kinds (flespi's ``access.type``): 0 ``standard`` (everything but the
platform API), 1 ``master`` (everything) and 2 ``acl`` (only what its access control list
grants: "what's not allowed is forbidden"). An ACL entry names a ``uri`` (``gw/devices``), the
item ``ids`` it covers (a list or ``"all"``), the ``methods`` allowed on the items themselves,
and ``submodules`` (``media``, ``commands``...) each with its own methods. A submodule is only
reachable through an entry that lists it. ``mqtt`` entries (``topic``, ``actions``) are kept
for the broker.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetcam.errors import Invalid

Kind = Literal["standard", "master", "acl"]
KIND_BY_TYPE: dict[int, Kind] = {0: "standard", 1: "master", 2: "acl"}
TYPE_BY_KIND: dict[Kind, int] = {v: k for k, v in KIND_BY_TYPE.items()}
METHODS = ("GET", "POST", "PUT", "DELETE")
MQTT_ACTIONS = ("subscribe", "publish")
MAX_ACL_ENTRIES = 100
MAX_IDS = 10_000
MAX_ID = 2**63 - 1
# Flespi's tokens are 64 alphanumerics; fleetcam accepts 16..256 printable ASCII characters
# without spaces for tokens chosen by an operator (FLEETCAM_ADMIN_TOKEN).
TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,256}$")
READABLE_BY_ANY = frozenset({"gw/channel-protocols"})
"""Reference data every valid token may GET (protocols and device types, no customer data)."""
_URI_RE = re.compile(r"^[a-z0-9_\-]+(/[a-z0-9_\-]+)*$")


def token_hash(raw: str) -> str:
    """The stored form of a token: SHA-256, hex.

    Tokens are 64 random alphanumerics (~381 bits), so a fast hash is safe: nothing to brute
    force, and a lookup by hash is one index read."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def parse_presented(raw: str | None) -> str | None:
    """The token in ``FlespiToken X``, ``Bearer X`` or bare ``X``; None when malformed."""
    if not raw or not isinstance(raw, str) or len(raw) > 300:
        return None
    text = raw.strip()
    scheme, sep, rest = text.partition(" ")
    if sep and scheme.lower() in ("flespitoken", "bearer"):
        text = rest.strip()
    return text if TOKEN_RE.match(text) else None


@dataclass(frozen=True)
class Submodule:
    name: str
    methods: frozenset[str]


@dataclass(frozen=True)
class AclEntry:
    """One line of a token's access control list."""

    uri: str
    ids: frozenset[int] | None = None  # None = "all"
    methods: frozenset[str] = frozenset()
    submodules: tuple[Submodule, ...] = ()
    topic: str | None = None  # uri == "mqtt" only
    actions: frozenset[str] = frozenset()

    def covers(self, device_id: int | None) -> bool:
        return self.ids is None or device_id is None or device_id in self.ids

    def submodule(self, name: str) -> Submodule | None:
        return next((s for s in self.submodules if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        if self.uri == "mqtt":
            return {"uri": "mqtt", "topic": self.topic, "actions": sorted(self.actions)}
        out: dict[str, Any] = {"uri": self.uri,
                               "ids": "all" if self.ids is None else sorted(self.ids),
                               "methods": [m for m in METHODS if m in self.methods]}
        if self.submodules:
            out["submodules"] = [{"name": s.name,
                                  "methods": [m for m in METHODS if m in s.methods]}
                                 for s in self.submodules]
        return out


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated token, or the deployment's admin token.

    ``token_id`` is None for the admin token configured or generated at start-up."""

    token_id: int | None
    kind: Kind
    acl: tuple[AclEntry, ...] = ()
    expire: int = 0
    info: str = ""
    ttl: int = 0
    created: float = 0.0
    accessed: float = 0.0
    enabled: bool = True

    @property
    def is_admin(self) -> bool:
        return self.kind == "master"

    def allows(self, uri: str, method: str, device_id: int | None = None,
               submodule: str | None = None) -> bool:
        """May this token call ``method`` on ``uri`` (one item when ``device_id`` is given,
        the collection otherwise), or on that item's ``submodule``?

        On a collection, an entry restricted to some ids allows GET (the answer is then
        narrowed with ``device_ids``) but not POST, PUT or DELETE: those would reach items
        outside the list."""
        method = method.upper()
        uri = uri.strip("/")
        if self.kind == "master":
            return True
        if self.kind == "standard":
            return not uri.startswith("platform")
        if uri.startswith("platform"):
            return False  # flespi: no ACL token reaches the platform API
        if uri in READABLE_BY_ANY and method == "GET":
            return True
        for entry in self.acl:
            if entry.uri != uri or not entry.covers(device_id):
                continue
            if device_id is None and entry.ids is not None and method != "GET":
                continue
            if submodule is None:
                if method in entry.methods:
                    return True
            else:
                sub = entry.submodule(submodule)
                if sub is not None and method in sub.methods:
                    return True
        return False

    def device_ids(self, uri: str, method: str = "GET",
                   submodule: str | None = None) -> set[int] | None:
        """The item ids of ``uri`` this token may reach with ``method`` (on ``submodule``);
        None means all of them, an empty set none."""
        uri = uri.strip("/")
        if self.kind == "master" or (self.kind == "standard" and not uri.startswith("platform")):
            return None
        if self.kind == "standard" or uri.startswith("platform"):
            return set()
        method = method.upper()
        if uri in READABLE_BY_ANY and method == "GET":
            return None
        ids: set[int] = set()
        for entry in self.acl:
            if entry.uri != uri:
                continue
            methods = entry.methods if submodule is None else (
                entry.submodule(submodule).methods if entry.submodule(submodule) else frozenset())
            if method not in methods:
                continue
            if entry.ids is None:
                return None
            ids |= entry.ids
        return ids

    def mqtt_entries(self) -> tuple[AclEntry, ...]:
        return tuple(e for e in self.acl if e.uri == "mqtt")

    def valid_at(self, now: float) -> bool:
        """flespi: valid while ``expire`` is in the future or ``accessed + ttl`` is; the
        admin token (no expire, no ttl) never expires."""
        if not self.enabled:
            return False
        if not self.expire and not self.ttl:
            return self.token_id is None
        if self.expire and now < self.expire:
            return True
        return bool(self.ttl) and now < max(self.accessed, self.created) + self.ttl


def _methods(raw: Any, where: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise Invalid(f"{where}.methods: a list of method names", field=f"{where}.methods")
    out = frozenset(m.upper() for m in raw)
    bad = out - set(METHODS)
    if bad:
        raise Invalid(f"{where}.methods: unknown {sorted(bad)[0]!r}", field=f"{where}.methods")
    return out


def _ids(raw: Any, where: str) -> frozenset[int] | None:
    if raw is None or raw == "all":
        return None
    if not isinstance(raw, list) or len(raw) > MAX_IDS or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in raw):
        raise Invalid(f"{where}.ids: \"all\" or a list of at most {MAX_IDS} positive ids",
                      field=f"{where}.ids")
    return frozenset(raw)


def parse_acl(raw: Any) -> tuple[AclEntry, ...]:
    """Validate flespi's ``access.acl`` list.

    Raises:
        Invalid: naming the faulty field."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ACL_ENTRIES:
        raise Invalid(f"access.acl: a list of at most {MAX_ACL_ENTRIES} entries",
                      field="access.acl")
    out = []
    for n, item in enumerate(raw):
        where = f"access.acl[{n}]"
        if not isinstance(item, Mapping):
            raise Invalid(f"{where}: an object", field=where)
        uri = item.get("uri")
        if not isinstance(uri, str) or not _URI_RE.match(uri.strip("/")):
            raise Invalid(f"{where}.uri: a path such as gw/devices", field=f"{where}.uri")
        uri = uri.strip("/")
        if uri.startswith("platform"):
            raise Invalid(f"{where}.uri: ACL tokens cannot reach the platform API",
                          field=f"{where}.uri")
        if uri == "mqtt":
            topic, actions = item.get("topic"), item.get("actions", list(MQTT_ACTIONS))
            if not isinstance(topic, str) or not 0 < len(topic) <= 512:
                raise Invalid(f"{where}.topic: a topic filter", field=f"{where}.topic")
            if not isinstance(actions, list) or not set(actions) <= set(MQTT_ACTIONS):
                raise Invalid(f"{where}.actions: subscribe and/or publish",
                              field=f"{where}.actions")
            out.append(AclEntry(uri="mqtt", topic=topic, actions=frozenset(actions)))
            continue
        subs_raw = item.get("submodules") or []
        if not isinstance(subs_raw, list) or len(subs_raw) > 50:
            raise Invalid(f"{where}.submodules: a list", field=f"{where}.submodules")
        subs = []
        for k, s in enumerate(subs_raw):
            sw = f"{where}.submodules[{k}]"
            if not isinstance(s, Mapping) or not isinstance(s.get("name"), str) \
                    or not _URI_RE.match(s["name"]):
                raise Invalid(f"{sw}: an object with a name", field=sw)
            subs.append(Submodule(s["name"], _methods(s.get("methods"), sw)))
        out.append(AclEntry(uri=uri, ids=_ids(item.get("ids", "all"), where),
                            methods=_methods(item.get("methods"), where),
                            submodules=tuple(subs)))
    return tuple(out)


@dataclass(frozen=True)
class TokenRecord:
    """A stored token: never its key, only the key's hash."""

    id: int
    key_hash: str
    kind: Kind
    acl: tuple[AclEntry, ...] = ()
    info: str = ""
    expire: int = 0
    ttl: int = 0
    created: float = 0.0
    accessed: float = 0.0
    enabled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def principal(self) -> Principal:
        return Principal(token_id=self.id, kind=self.kind, acl=self.acl, expire=self.expire,
                         info=self.info, ttl=self.ttl, created=self.created,
                         accessed=self.accessed, enabled=self.enabled)

    def to_row(self) -> dict[str, Any]:
        """A JSON-friendly dict (what the adapters store)."""
        return {"id": self.id, "key_hash": self.key_hash, "kind": self.kind,
                "acl": [e.to_json() for e in self.acl], "info": self.info,
                "expire": self.expire, "ttl": self.ttl, "created": self.created,
                "accessed": self.accessed, "enabled": self.enabled, "metadata": self.metadata}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TokenRecord:
        return cls(id=int(row["id"]), key_hash=str(row["key_hash"]), kind=row["kind"],
                   acl=parse_acl(row.get("acl") or []), info=str(row.get("info", "")),
                   expire=int(row.get("expire", 0)), ttl=int(row.get("ttl", 0)),
                   created=float(row.get("created", 0)),
                   accessed=float(row.get("accessed", 0)),
                   enabled=bool(row.get("enabled", True)),
                   metadata=dict(row.get("metadata") or {}))


def principal_json(p: Principal) -> dict[str, Any]:
    """flespi's token object (as ``GET /platform/customer/tokens`` shows it), without key."""
    out: dict[str, Any] = {
        "id": p.token_id if p.token_id is not None else 0,
        "info": p.info, "expire": p.expire, "ttl": p.ttl, "created": int(p.created),
        "accessed": int(p.accessed), "enabled": p.enabled,
        "access": {"type": TYPE_BY_KIND[p.kind]}}
    if p.kind == "acl":
        out["access"]["acl"] = [e.to_json() for e in p.acl]
    return out


def parse_kind(access: Any) -> tuple[Kind, tuple[AclEntry, ...]]:
    """``access`` of a token request: ``{"type": 0|1|2, "acl": [...]}``."""
    if access is None:
        return "standard", ()
    if not isinstance(access, Mapping):
        raise Invalid("access: an object with type (0, 1 or 2) and acl", field="access")
    t = access.get("type", 0)
    if not isinstance(t, int) or isinstance(t, bool) or t not in KIND_BY_TYPE:
        raise Invalid("access.type: 0 (standard), 1 (master) or 2 (acl)", field="access.type")
    kind = KIND_BY_TYPE[t]
    acl = parse_acl(access.get("acl")) if kind == "acl" else ()
    return kind, acl


def ids_in(values: Iterable[int], allowed: set[int] | None) -> list[int]:
    """``values`` narrowed to ``allowed`` (None = all)."""
    return [v for v in values if allowed is None or v in allowed]
