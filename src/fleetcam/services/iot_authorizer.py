"""AWS IoT Core custom authorizer: a fleetcam token as the MQTT username becomes an IoT policy
that allows exactly the topics the token may read (the rules of domain/topics.py, written as
IoT policy resources).

IoT Core is the broker there, so some of the embedded broker's behaviour cannot be had:
- a '+' device level is allowed only to tokens that read every device (a policy allows a
  subscription by its filter's text; it cannot narrow delivery per message);
- comma lists are not expanded, and the CONNACK carries no token JSON;
- revocation takes effect at the next policy refresh (``REFRESH_SECONDS``, IoT's minimum).
"""
from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from fleetcam.domain import topics

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300  # IoT Core's minimum (and the time a revocation may take here)
MAX_SESSION_SECONDS = 86400  # IoT Core's maximum disconnectAfterInSeconds
MAX_POLICY_CHARS = 2048  # IoT Core's limit per policy document
MAX_POLICIES = 10
_QUERY = re.compile(r"\?x-amz-customauthorizer-.*$", re.S)
_DENY = {"isAuthenticated": False}

# what each readable submodule of device {d} opens, under {p} (IoT policy wildcards: '*')
_PATTERNS: dict[str | None, tuple[str, ...]] = {
    None: ("{p}/state/gw/devices/{d}",),
    "logs": ("{p}/log/gw/devices/{d}/*",),
    "media": ("{p}/log/gw/devices/{d}/media_file_*",),
    "connections": ("{p}/log/gw/devices/{d}/connections/*",
                    "{p}/log/gw/devices/{d}/mediastream/*",
                    "{p}/state/gw/devices/{d}/connections/*"),
    "commands-queue": ("{p}/log/gw/devices/{d}/commands-queue/*",
                       "{p}/state/gw/devices/{d}/commands-queue/*"),
    "commands": ("{p}/log/gw/devices/{d}/commands-queue/*",
                 "{p}/state/gw/devices/{d}/commands-queue/*"),
    "messages": ("{p}/message/gw/devices/{d}", "{p}/gw/devices/{d}/messages"),
}


def presented_token(event: dict[str, Any]) -> str | None:
    """The token in the MQTT username (``FlespiToken X`` or ``X``, without the
    ``?x-amz-customauthorizer-name=...`` IoT routing suffix), else the ``token`` IoT took from
    the WebSocket request. A password, when given, must be the same token."""
    mqtt = (event.get("protocolData") or {}).get("mqtt") or {}
    username = _QUERY.sub("", str(mqtt.get("username") or "")).strip()
    token = username or str(event.get("token") or "").strip()
    if not token:
        return None
    password = mqtt.get("password")
    if password:
        try:
            secret = base64.b64decode(password, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        if secret.strip() and secret.strip() not in (token, token.split(" ", 1)[-1].strip()):
            return None
    return token


def _iot_pattern(topic_filter: str) -> str:
    """An MQTT filter from a token's mqtt ACL entry as an IoT policy pattern."""
    return "/".join("*" if level in ("+", "#") else level for level in topic_filter.split("/"))


def _read_patterns(principal: Any, prefix: str) -> list[str] | None:
    """Topic patterns the principal may read; None = everything."""
    if principal.kind in ("master", "standard"):
        return None
    out: list[str] = []
    for sub, templates in _PATTERNS.items():
        ids = principal.device_ids(topics.URI, "GET", sub) if sub else \
            principal.device_ids(topics.URI, "GET")
        devices = ["*"] if ids is None else [str(i) for i in sorted(ids)]
        for d in devices:
            out.extend(t.format(p=prefix, d=d) for t in templates)
    for entry in getattr(principal, "acl", ()) or ():
        if getattr(entry, "uri", None) == "mqtt" and "subscribe" in (entry.actions or ()):
            out.append(_iot_pattern(entry.topic))
    # drop what a broader pattern already covers ("a/7/*" covers "a/7/media_file_*")
    broad = sorted({p[:-1] for p in out if p.endswith("*")}, key=len)
    kept: list[str] = []
    for p in dict.fromkeys(out):
        if not any(p != b + "*" and p.startswith(b) for b in broad):
            kept.append(p)
    return kept


def _chunks(statements: list[dict[str, Any]]) -> list[str] | None:
    """Policy documents of at most MAX_POLICY_CHARS each; None when they need more than
    MAX_POLICIES documents."""
    docs: list[str] = []
    current: list[dict[str, Any]] = []

    def render(stmts: list[dict[str, Any]]) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": stmts}, separators=(",", ":"))

    for stmt in statements:
        resources = stmt["Resource"]
        for res in resources:
            one = dict(stmt, Resource=[res])
            if current and len(render(_merge(current + [one]))) > MAX_POLICY_CHARS:
                docs.append(render(_merge(current)))
                current = []
            current.append(one)
    if current:
        docs.append(render(_merge(current)))
    return docs if len(docs) <= MAX_POLICIES else None


def _merge(stmts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements with the same effect and actions share one Resource list."""
    merged: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for s in stmts:
        key = (s["Effect"], tuple(s["Action"]))
        if key in merged:
            merged[key]["Resource"] = merged[key]["Resource"] + s["Resource"]
        else:
            merged[key] = {"Effect": s["Effect"], "Action": list(s["Action"]),
                           "Resource": list(s["Resource"])}
    return list(merged.values())


def policy_statements(principal: Any, prefix: str, arn: str) -> list[dict[str, Any]]:
    """IoT policy statements for ``principal``; ``arn`` is ``arn:{partition}:iot:{region}:
    {account}``."""
    stmts: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [f"{arn}:client/*"]}]
    patterns = _read_patterns(principal, prefix)
    if patterns is None:
        stmts += [
            {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": [f"{arn}:topicfilter/*"]},
            {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": [f"{arn}:topic/*"]},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"],
             "Resource": [f"{arn}:topic/*"]},
            # only fleetcam publishes under its prefix (and IoT's reserved topics stay shut)
            {"Effect": "Deny", "Action": ["iot:Publish", "iot:RetainPublish"],
             "Resource": [f"{arn}:topic/{prefix}/*", f"{arn}:topic/$aws/*"]}]
        return stmts
    if patterns:
        stmts.append({"Effect": "Allow", "Action": ["iot:Subscribe"],
                      "Resource": [f"{arn}:topicfilter/{p}" for p in patterns]})
        stmts.append({"Effect": "Allow", "Action": ["iot:Receive"],
                      "Resource": [f"{arn}:topic/{p}" for p in patterns]})
    publish = [_iot_pattern(e.topic) for e in getattr(principal, "acl", ()) or ()
               if getattr(e, "uri", None) == "mqtt" and "publish" in (e.actions or ())]
    if publish:
        stmts.append({"Effect": "Allow", "Action": ["iot:Publish"],
                      "Resource": [f"{arn}:topic/{p}" for p in publish]})
        stmts.append({"Effect": "Deny", "Action": ["iot:Publish", "iot:RetainPublish"],
                      "Resource": [f"{arn}:topic/{prefix}/*", f"{arn}:topic/$aws/*"]})
    return stmts


def authorize(event: dict[str, Any], authenticate: Callable[[str], Any | None], *,
              prefix: str, arn: str, now: float) -> dict[str, Any]:
    """The authorizer's answer to one IoT Core connection request."""
    token = presented_token(event)
    principal = authenticate(token) if token else None
    if principal is None:
        log.info("iot authorizer: refused %s", "anonymous" if not token else "a token")
        return dict(_DENY)
    docs = _chunks(policy_statements(principal, prefix, arn))
    if docs is None:
        log.warning("iot authorizer: token %s reads too many topics for an IoT policy",
                    principal.token_id)
        return dict(_DENY)
    expire = int(getattr(principal, "expire", 0) or 0)
    if expire and expire <= now:
        return dict(_DENY)
    # IoT keeps a session at least REFRESH_SECONDS: a token expiring sooner outlives by that
    lifetime = int(expire - now) if expire else MAX_SESSION_SECONDS
    tid = principal.token_id
    return {
        "isAuthenticated": True,
        "principalId": f"token{tid}" if tid is not None else "admin",
        "disconnectAfterInSeconds": max(REFRESH_SECONDS, min(MAX_SESSION_SECONDS, lifetime)),
        "refreshAfterInSeconds": REFRESH_SECONDS,
        "policyDocuments": docs,
    }
