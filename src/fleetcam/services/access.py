"""Tokens: authentication, flespi's token CRUD, revocation that reaches every holder.

Every process keeps a small cache of recent look-ups (``cache_seconds``, 2 s by default) so a
REST request or an MQTT re-check costs no store read most of the time; a revocation made in
this process is effective at once (cache dropped, listeners told), one made in another
process (another Lambda, the gateway) within ``cache_seconds``.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from fleetcam.domain import expr
from fleetcam.domain.access import (Principal, TokenRecord, parse_kind, parse_presented,
                                    principal_json, token_hash)
from fleetcam.domain.selectors import parse_selector
from fleetcam.errors import Forbidden, Invalid, NotFound
from fleetcam.ports import Clock, TokenStore

log = logging.getLogger(__name__)
ALPHABET = string.ascii_letters + string.digits
MAX_TTL = 10 * 365 * 86400
MAX_INFO = 1024
ADMIN = Principal(token_id=None, kind="master", info="admin")
RevocationListener = Callable[[int], None]


def new_key() -> str:
    """64 random alphanumerics, like a flespi token."""
    return "".join(secrets.choice(ALPHABET) for _ in range(64))


class AccessService:
    """Authenticates tokens and manages them (``/platform/customer/tokens``)."""

    def __init__(self, store: TokenStore, clock: Clock, *, admin_hash: str | None = None,
                 cache_seconds: float = 2.0, cache_size: int = 10_000) -> None:
        self.store = store
        self.clock = clock
        self.admin_hash = admin_hash
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, TokenRecord | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._listeners: list[RevocationListener] = []

    # -- authentication -------------------------------------------------------------------
    def authenticate(self, raw: str | None) -> Principal | None:
        """The principal of ``FlespiToken X``, ``Bearer X`` or ``X``; None for a malformed,
        unknown, disabled, expired or revoked token. Never raises."""
        try:
            key = parse_presented(raw)
            if key is None:
                return None
            h = token_hash(key)
            if self.admin_hash and hmac.compare_digest(h, self.admin_hash):
                return ADMIN
            record = self._lookup(h)
            if record is None:
                return None
            now = self.clock.now()
            p = record.principal()
            if not p.valid_at(now):
                return None
            if p.ttl and now - p.accessed > min(60.0, p.ttl / 10):
                self._touch(h, record, now)
                p = replace(p, accessed=now)
            return p
        except Exception:  # a store outage must read as "not authenticated", not as a 500
            log.exception("token look-up failed")
            return None

    def recheck(self, principal: Principal) -> Principal | None:
        """The same token as it stands now (scope changes included), or None once revoked,
        disabled or expired. Cheap: answered from the cache when fresh. For long-lived
        sessions (MQTT, live links) to call every few seconds."""
        try:
            if principal.token_id is None:
                return principal if principal.kind == "master" else None
            record = self._lookup_id(principal.token_id)
            if record is None:
                return None
            p = record.principal()
            return p if p.valid_at(self.clock.now()) else None
        except Exception:
            log.exception("token re-check failed")
            return None

    def on_revoke(self, listener: RevocationListener) -> Callable[[], None]:
        """Call ``listener(token_id)`` when a token of this process is deleted, disabled or
        changed; returns a function that removes the listener. Other processes' changes
        reach :meth:`recheck` within ``cache_seconds``."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def token_json(self, principal: Principal) -> dict[str, Any]:
        """flespi's token object (``GET /platform/customer/tokens`` shows it so)."""
        return principal_json(principal)

    # -- management ------------------------------------------------------------------------
    def create(self, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create tokens from flespi's request objects; answers each with its ``key``
        (shown this once: only its hash is kept)."""
        now = self.clock.now()
        records = [self._record_from(item, now, n) for n, item in enumerate(items)]
        out = []
        for rec in records:
            key = new_key()
            stored = self.store.add(replace(rec, key_hash=token_hash(key)))
            out.append({**principal_json(stored.principal()), "key": key,
                        "metadata": stored.metadata})
        return out

    def mint(self, kind: str = "master", info: str = "", ttl: int = 0,
             expire: int = 0) -> str:
        """A new token's key, for the command line (``fleetcam token``)."""
        return self.create([{"info": info, "ttl": ttl, "expire": expire or
                             (0 if ttl else int(self.clock.now()) + MAX_TTL),
                             "access": {"type": {"standard": 0, "master": 1}[kind]}}])[0]["key"]

    def select(self, sel: str) -> list[TokenRecord]:
        """Tokens named by ``all``, ``1,2,3`` or an expression over their fields."""
        s = parse_selector(sel)
        records = self.store.list() if s.all or s.filter is not None else [
            r for r in (self.store.get(i) for i in s.ids) if r is not None]
        if s.filter is not None:
            records = [r for r in records if expr.evaluate(
                s.filter, lambda name, r=r: _field(principal_json(r.principal()), name))]
        if s.single_id is not None and not records:
            raise NotFound(f"token {s.single_id} not found")
        return records

    def list_json(self, sel: str) -> list[dict[str, Any]]:
        return [{**principal_json(r.principal()), "metadata": r.metadata}
                for r in self.select(sel)]

    def update(self, sel: str, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(changes, Mapping):
            raise Invalid("body: an object of the fields to change", field="body")
        out = []
        for rec in self.select(sel):
            new = self._record_from({**_request_of(rec), **changes}, rec.created, 0,
                                    creating=False)
            new = replace(new, id=rec.id, key_hash=rec.key_hash, accessed=rec.accessed)
            if not self.store.update(new):
                continue
            self._changed(rec)
            out.append({**principal_json(new.principal()), "metadata": new.metadata})
        return out

    def delete(self, sel: str) -> list[dict[str, Any]]:
        out = []
        for rec in self.select(sel):
            if self.store.delete(rec.id):
                self._changed(rec)
                out.append({"id": rec.id})
        return out

    # -- internals -------------------------------------------------------------------------
    def _record_from(self, item: Mapping[str, Any], now: float, n: int, *,
                     creating: bool = True) -> TokenRecord:
        where = f"[{n}]" if creating else "body"
        if not isinstance(item, Mapping):
            raise Invalid(f"{where}: a token object", field=where)
        unknown = set(item) - {"info", "ttl", "expire", "access", "enabled", "metadata",
                               "id", "key", "created", "accessed", "ips", "cid"}
        if unknown:
            raise Invalid(f"unknown token field {sorted(unknown)[0]!r}",
                          field=sorted(unknown)[0])
        info = item.get("info", "")
        if not isinstance(info, str) or len(info) > MAX_INFO:
            raise Invalid(f"info: a text of at most {MAX_INFO} characters", field="info")
        ttl, expire = item.get("ttl", 0) or 0, item.get("expire", 0) or 0
        for name, v in (("ttl", ttl), ("expire", expire)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 2**40:
                raise Invalid(f"{name}: a non-negative integer", field=name)
        if ttl > MAX_TTL:
            raise Invalid(f"ttl: at most {MAX_TTL} seconds", field="ttl")
        if not ttl and not expire:
            raise Invalid("a token needs ttl or expire (it must expire some day)", field="ttl")
        if creating and expire and not ttl and expire <= now:
            raise Invalid("expire: in the past", field="expire")
        kind, acl = parse_kind(item.get("access"))
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise Invalid("enabled: true or false", field="enabled")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise Invalid("metadata: an object", field="metadata")
        return TokenRecord(id=0, key_hash="", kind=kind, acl=acl, info=info, expire=expire,
                           ttl=ttl, created=now, accessed=now, enabled=enabled,
                           metadata=dict(metadata))

    def _lookup(self, h: str) -> TokenRecord | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
            if hit is not None and now - hit[0] < self.cache_seconds:
                return hit[1]
        record = self.store.by_hash(h)
        with self._lock:
            self._cache[h] = (now, record)
            self._cache.move_to_end(h)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return record

    def _lookup_id(self, token_id: int) -> TokenRecord | None:
        with self._lock:
            hit = next((v for v in self._cache.values()
                        if v[1] is not None and v[1].id == token_id), None) \
                if len(self._cache) < 256 else None
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        record = self.store.get(token_id)
        if record is not None:
            with self._lock:
                self._cache[record.key_hash] = (time.monotonic(), record)
        return record

    def _touch(self, h: str, record: TokenRecord, now: float) -> None:
        self.store.touch(record.id, now)
        with self._lock:
            self._cache[h] = (time.monotonic(), replace(record, accessed=now))

    def _changed(self, record: TokenRecord) -> None:
        with self._lock:
            self._cache.pop(record.key_hash, None)
        for listener in list(self._listeners):
            try:
                listener(record.id)
            except Exception:
                log.exception("revocation listener failed")


def _request_of(rec: TokenRecord) -> dict[str, Any]:
    j = principal_json(rec.principal())
    return {"info": j["info"], "ttl": j["ttl"], "expire": j["expire"], "access": j["access"],
            "enabled": j["enabled"], "metadata": rec.metadata}


def _field(obj: Mapping[str, Any], name: str) -> Any:
    cur: Any = obj
    for part in name.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def require(principal: Principal, uri: str, method: str, device_id: int | None = None,
            submodule: str | None = None) -> None:
    """Raise Forbidden, with the reason, unless ``principal`` may do this."""
    if not principal.allows(uri, method, device_id, submodule):
        what = f"{method} {uri}" + (f"/{device_id}" if device_id is not None else "") + (
            f"/{submodule}" if submodule else "")
        raise Forbidden(f"token {principal.token_id or 'admin'} may not {what}")
