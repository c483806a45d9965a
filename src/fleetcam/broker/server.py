"""fleetcam's embedded MQTT broker: MQTT 5 and 3.1.1 over TCP and WebSocket, token auth.

Who may do what:
- a client authenticates with a fleetcam token as its username (``FlespiToken X`` or ``X``);
  the password is empty or the same token; anonymous and unknown tokens are refused;
- it may subscribe to the topics its token may read (domain/topics.py maps fleetcam's topics
  onto the token's REST permissions); refusals are per filter, in the SUBACK;
- it may publish nothing under fleetcam's prefix; only the server does, authenticated with
  a per-process secret (``internal_username``/``internal_password``);
- every ``revalidate_interval`` seconds the tokens of open sessions are looked up again: a
  revoked or expired token's sessions are disconnected, a changed ACL applies at once.

flespi's web clients get what flespi's broker gives them: the CONNACK carries the token's JSON
in the user property ``token``, each PUBLISH carries the identifiers of the subscriptions it
matched, and a comma list at one level subscribes to each name.

Bounded: sessions (``max_sessions``), packet size, the CONNECT wait, idle time, subscriptions
per session, messages and bytes queued per subscriber (past that its messages are dropped and
counted), QoS 1 messages in flight, retained messages and their bytes, and the time a write
may take (a subscriber that stops reading is disconnected).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetcam.domain import topics
from fleetcam.protocol.mqtt import codec as c

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A byte stream to one client (TCP or WebSocket)."""

    peer: str
    host: str  # the client's address, for per-address limits

    async def recv(self) -> bytes: ...  # b"" at the end

    async def send(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    max_sessions: int = 1000
    max_packet: int = 65536
    """Largest packet a client may send (the server's own session gets max_internal_packet)."""
    max_internal_packet: int = 16 * 1024 * 1024
    max_outgoing_packet: int = 16 * 1024 * 1024
    connect_timeout: float = 10.0
    max_pending_per_host: int = 16
    """Connections from one address that have not completed CONNECT (a stranger cannot
    fill the server's slots from one address)."""
    max_keep_alive: int = 600
    """Sessions idle longer than this (or 1.5x their keep-alive) are closed."""
    max_subscriptions: int = 100
    max_queued: int = 1000
    max_queued_bytes: int = 8 * 1024 * 1024
    max_total_queued_bytes: int = 256 * 1024 * 1024
    """All sessions' queues together: past it, messages are dropped for whoever is behind."""
    max_inflight: int = 64
    max_retained: int = 100_000
    max_retained_bytes: int = 64 * 1024 * 1024
    write_timeout: float = 30.0
    revalidate_interval: float = 2.0


class _Internal:
    """The server's own principal: it may publish and read everything."""

    kind = "master"
    acl = ()

    def allows(self, uri: str, method: str, device_id: int | None = None,
               submodule: str | None = None) -> bool:
        return True


INTERNAL = _Internal()


class _Throttled:
    """At most one warning a ``period`` per key, with the count of those suppressed."""

    def __init__(self, period: float = 10.0) -> None:
        self.period = period
        self.last: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        last, skipped = self.last.get(key, (0.0, 0))
        if now - last < self.period:
            self.last[key] = (last, skipped + 1)
            return
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = (now, 0)
        log.warning(msg + (f" ({skipped} similar suppressed)" if skipped else ""), *args,
                    exc_info=exc_info)


THROTTLED = _Throttled()


@dataclass
class _Sub:
    key: str  # the filter as the client sent it (comma lists unexpanded)
    patterns: list[str]
    qos: int
    subscription_id: int | None
    no_local: bool
    retain_as_published: bool


@dataclass(eq=False)
class Session:
    broker: Broker
    transport: Transport
    level: int
    client_id: str
    token: str | None  # None for the server itself
    principal: Any
    receive_max: int
    max_packet: int | None
    subs: dict[str, _Sub] = field(default_factory=dict)
    queue: deque[tuple[bytes, bytes, int, bool, tuple[int, ...]]] = field(default_factory=deque)
    queued_bytes: int = 0
    dropped: int = 0
    inflight: set[int] = field(default_factory=set)
    next_id: int = 0
    closed: bool = False
    readable: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wake = asyncio.Event()
        self.window_open = asyncio.Event()
        self.send_lock = asyncio.Lock()

    # ------------------------------------------------------------ delivery
    def may_read(self, topic: str) -> bool:
        ok = self.readable.get(topic)
        if ok is None:
            ok = topics.may_read(self.principal, self.broker.prefix, topic)
            if len(self.readable) >= 4096:
                self.readable.clear()
            self.readable[topic] = ok
        return ok

    def offer(self, topic: str, topic_bytes: bytes, payload: bytes, qos: int, retain: bool,
              subs: list[_Sub], from_retained: bool = False) -> None:
        if self.closed or not self.may_read(topic):
            return
        granted = min(qos, max(s.qos for s in subs))
        ids = tuple(sorted({s.subscription_id for s in subs if s.subscription_id}))
        keep_retain = retain and (from_retained or any(s.retain_as_published for s in subs))
        size = len(payload) + len(topic_bytes)
        limits = self.broker.limits
        if len(self.queue) >= limits.max_queued or \
                self.queued_bytes + size > limits.max_queued_bytes or \
                self.broker.queued_bytes + size > limits.max_total_queued_bytes:
            self.dropped += 1
            THROTTLED.warn(f"drop:{self.client_id}", "mqtt: %s is not reading; dropped %d "
                           "messages so far", self.client_id, self.dropped)
            return
        self.queue.append((topic_bytes, payload, granted, keep_retain, ids))
        self.queued_bytes += size
        self.broker.queued_bytes += size
        self.wake.set()

    async def send(self, data: bytes) -> None:
        if not data:
            return
        async with self.send_lock:
            await asyncio.wait_for(self.transport.send(data), self.broker.limits.write_timeout)

    def _packet_id(self) -> int:
        for _ in range(65535):
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.inflight:
                return self.next_id
        raise RuntimeError("no free packet id")

    async def write_loop(self) -> None:
        """Send queued messages, several per write; QoS 1 ones only while the client's
        receive window has room."""
        try:
            while not self.closed:
                if not self.queue:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                chunks: list[bytes] = []
                while self.queue and len(chunks) < 64:
                    topic_bytes, payload, qos, retain, ids = self.queue[0]
                    packet_id = None
                    if qos:
                        if len(self.inflight) >= self.receive_max:
                            break
                        packet_id = self._packet_id()
                    self.queue.popleft()
                    self.queued_bytes -= len(payload) + len(topic_bytes)
                    self.broker.queued_bytes -= len(payload) + len(topic_bytes)
                    data = c.publish(self.level, topic_bytes, payload, qos, retain, packet_id,
                                     ids if self.level == 5 else ())
                    if self.max_packet is not None and len(data) > self.max_packet:
                        continue  # the client said it cannot take it: skip it
                    if packet_id is not None:
                        self.inflight.add(packet_id)
                    chunks.append(data)
                if chunks:
                    await self.send(b"".join(chunks))
                elif self.queue:  # the window is full: wait for a PUBACK
                    self.window_open.clear()
                    await self.window_open.wait()
        except (OSError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("mqtt: writing to %s failed: %r", self.client_id, e)
            await self.close()

    def acked(self, packet_id: int) -> None:
        if packet_id in self.inflight:
            self.inflight.discard(packet_id)
            self.window_open.set()

    async def kick(self, reason_code: int, reason: str) -> None:
        """Disconnect with a reason (MQTT 5 clients get a DISCONNECT packet)."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send(c.disconnect(self.level, reason_code, reason)), 2)
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        self.window_open.set()
        self.queue.clear()
        self.broker.queued_bytes -= self.queued_bytes
        self.queued_bytes = 0
        self.broker._forget(self)
        with contextlib.suppress(Exception):
            await self.transport.close()


class Broker:
    """Routes messages between sessions; ``handle(transport)`` serves one connection."""

    def __init__(self, prefix: str, authenticate: Callable[[str], Any | None],
                 token_json: Callable[[Any], dict[str, Any]], *,
                 recheck: Callable[[Any], Any | None] | None = None,
                 internal_username: str = "fleetcam-server", internal_password: str = "",
                 limits: Limits | None = None) -> None:
        """``authenticate(raw)`` answers a principal or None; ``recheck(principal)`` the
        same token as it stands now (cheaper; ``authenticate`` is used again without it)."""
        self.prefix = prefix
        self.authenticate = authenticate
        self.recheck = recheck
        self.token_json = token_json
        self.internal_username = internal_username
        self.internal_password = internal_password
        self.limits = limits or Limits()
        self.tree = topics.TopicTree()
        self.sessions: dict[tuple[str, str], Session] = {}
        self.retained: dict[str, tuple[bytes, int]] = {}
        self.retained_tree = topics.TopicTree()  # the retained topics, to match filters on
        self.retained_bytes = 0
        self.queued_bytes = 0  # all sessions' queues
        self.connecting = 0
        self.pending: dict[str, int] = {}  # connections without a session yet, by address
        self._revalidator: asyncio.Task[None] | None = None
        self.stats = {"connections": 0, "refused": 0, "published": 0, "delivered": 0}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._revalidator = asyncio.create_task(self._revalidate_loop(), name="mqtt-revalidate")

    async def stop(self) -> None:
        if self._revalidator is not None:
            self._revalidator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._revalidator
        for s in list(self.sessions.values()):
            await s.kick(c.SERVER_SHUTTING_DOWN, "server shutting down")

    # ------------------------------------------------------------ routing
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                origin: Session | None = None) -> int:
        """Deliver to every matching subscription; returns how many sessions got it."""
        if retain:
            self._retain(topic, payload, qos)
        hits: dict[Session, dict[str, _Sub]] = {}

        def visit(value: object) -> None:
            session, key = value  # type: ignore[misc]
            sub = session.subs.get(key)
            if sub is not None and not (sub.no_local and session is origin):
                hits.setdefault(session, {})[key] = sub

        self.tree.match(topic, visit)
        topic_bytes = topic.encode("utf-8")
        for session, subs in hits.items():
            session.offer(topic, topic_bytes, payload, qos, retain, list(subs.values()))
        self.stats["published"] += 1
        self.stats["delivered"] += len(hits)
        return len(hits)

    def _retain(self, topic: str, payload: bytes, qos: int) -> None:
        old = self.retained.pop(topic, None)
        if old is not None:
            self.retained_bytes -= len(old[0]) + len(topic)
            self.retained_tree.remove(topic, topic)
        if not payload:
            return
        size = len(payload) + len(topic)
        if len(self.retained) >= self.limits.max_retained or \
                self.retained_bytes + size > self.limits.max_retained_bytes:
            THROTTLED.warn("retained", "mqtt: retained store full; %s not retained", topic)
            return
        self.retained[topic] = (payload, qos)
        self.retained_tree.add(topic, topic)
        self.retained_bytes += size

    def _retained_for(self, patterns: list[str]) -> list[str]:
        found: dict[str, None] = {}
        for p in patterns:
            self.retained_tree.match_filter(p, lambda t: found.setdefault(t, None))  # type: ignore
        return list(found)

    def _forget(self, session: Session) -> None:
        for sub in session.subs.values():
            for p in sub.patterns:
                self.tree.remove(p, (session, sub.key))
        session.subs.clear()
        key = (session.token or "", session.client_id)
        if self.sessions.get(key) is session:
            del self.sessions[key]

    # ------------------------------------------------------------ connections
    async def handle(self, transport: Transport) -> None:
        """Serve one client connection until it ends."""
        self.stats["connections"] += 1
        reader = c.Reader(self.limits.max_packet)
        session: Session | None = None
        host = getattr(transport, "host", "")
        if self.pending.get(host, 0) >= self.limits.max_pending_per_host:
            THROTTLED.warn(f"pending:{host}", "mqtt: %s has %d connections without a session; "
                           "refused another", host, self.pending[host])
            with contextlib.suppress(Exception):
                await transport.close()
            return
        self.pending[host] = self.pending.get(host, 0) + 1
        try:
            try:
                self.connecting += 1
                try:
                    connect = await asyncio.wait_for(self._first_packet(transport, reader),
                                                     self.limits.connect_timeout)
                finally:
                    self.connecting -= 1
                if connect is None:
                    return
                session = await self._accept(transport, reader, connect)
            finally:
                self.pending[host] -= 1
                if not self.pending[host]:
                    del self.pending[host]
            if session is None:
                return
            await self._serve(session, reader, connect.keep_alive)
        except asyncio.TimeoutError:
            THROTTLED.warn("timeout", "mqtt: %s timed out", transport.peer)
        except c.MqttError as e:
            THROTTLED.warn("malformed", "mqtt: %s sent bad MQTT: %s", transport.peer, e)
            if session is not None:
                await session.kick(e.reason_code, str(e))
        except (OSError, ConnectionError):
            pass
        except Exception:  # a bug must cost one connection, not the listener
            THROTTLED.warn("bug", "mqtt: session with %s failed", transport.peer, exc_info=True)
        finally:
            if session is not None:
                await session.close()
            else:
                with contextlib.suppress(Exception):
                    await transport.close()

    async def _first_packet(self, transport: Transport, reader: c.Reader) -> c.Connect | None:
        while True:
            try:
                packet = reader.next_packet()
            except c.MqttError as e:
                if e.reason_code == c.UNSUPPORTED_PROTOCOL_VERSION:
                    await transport.send(c.connack(4, e.reason_code))
                raise
            if packet is not None:
                assert isinstance(packet, c.Connect)
                return packet
            data = await transport.recv()
            if not data:
                return None
            reader.receive_data(data)

    async def _linger(self, transport: Transport) -> None:
        """After a refusal, give the client up to a second to read it and close first (a
        browser client may drop a CONNACK that arrives together with the close); counted
        with the connections being set up, so it is bounded like them."""
        self.connecting += 1
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(transport.recv(), 1.0)
        finally:
            self.connecting -= 1

    def _credentials(self, connect: c.Connect) -> tuple[str | None, int]:
        """(token, 0) or (None, the CONNACK reason code)."""
        username = connect.username or ""
        password = connect.password or b""
        if self.internal_password and username == self.internal_username:
            ok = hmac.compare_digest(password, self.internal_password.encode())
            return ("", 0) if ok else (None, c.BAD_USER_NAME_OR_PASSWORD)
        if not username.strip():
            return None, c.NOT_AUTHORIZED
        if password and password.decode("utf-8", "replace") not in (
                username, username.split(" ", 1)[-1].strip()):
            return None, c.BAD_USER_NAME_OR_PASSWORD
        return username, 0

    async def _accept(self, transport: Transport, reader: c.Reader,
                      connect: c.Connect) -> Session | None:
        level = connect.protocol_level
        token, code = self._credentials(connect)
        principal: Any = None
        if token == "":
            principal = INTERNAL
        elif token is not None:
            principal = await asyncio.to_thread(self.authenticate, token)
            if principal is None:
                code = c.BAD_USER_NAME_OR_PASSWORD
        if principal is None:
            self.stats["refused"] += 1
            THROTTLED.warn("refused", "mqtt: refused %s from %s (reason 0x%02x)",
                           "anonymous" if not connect.username else "a token", transport.peer,
                           code)
            await transport.send(c.connack(level, code, properties={
                "reason_string": "a fleetcam token is required as the username"
                if code == c.NOT_AUTHORIZED else "unknown, expired or revoked token"}))
            await self._linger(transport)
            return None
        if len(self.sessions) >= self.limits.max_sessions and principal is not INTERNAL:
            await transport.send(c.connack(level, c.SERVER_BUSY))
            return None
        client_id = connect.client_id
        assigned = None
        if not client_id:
            if level == 4 and not connect.clean_start:
                await transport.send(c.connack(level, c.CLIENT_ID_NOT_VALID))
                return None
            client_id = assigned = f"fleetcam-{id(transport):x}-{time.monotonic_ns() % 10**9}"
        if connect.will is not None and not topics.may_publish(principal, self.prefix,
                                                               connect.will.topic):
            await transport.send(c.connack(level, c.NOT_AUTHORIZED, properties={
                "reason_string": "the will's topic may not be published to"}))
            return None
        receive_max = int(connect.properties.get("receive_maximum", 65535))  # type: ignore
        max_packet = connect.properties.get("maximum_packet_size")
        session = Session(self, transport, level, client_id, token or None, principal,
                          min(receive_max, self.limits.max_inflight),
                          int(max_packet) if max_packet else None)  # type: ignore[call-overload]
        if principal is INTERNAL:
            reader.max_packet = self.limits.max_internal_packet
        key = (token or "", client_id)
        old = self.sessions.get(key)
        if old is not None:  # the same token reconnecting with the same client id
            await old.kick(c.SESSION_TAKEN_OVER, "another connection took this client id")
        self.sessions[key] = session
        keep_alive = self._keep_alive(connect.keep_alive)
        props: dict[str, object] = {
            "maximum_qos": 1, "retain_available": 1, "topic_alias_maximum": 0,
            "wildcard_subscription_available": 1, "subscription_identifier_available": 1,
            "shared_subscription_available": 0, "receive_maximum": self.limits.max_inflight,
            "maximum_packet_size": reader.max_packet,
            "assigned_client_identifier": assigned,
        }
        if connect.properties.get("session_expiry_interval"):
            props["session_expiry_interval"] = 0  # sessions end with their connection
        if keep_alive != connect.keep_alive:
            props["server_keep_alive"] = keep_alive
        if principal is not INTERNAL:
            props["user_property"] = [("token", json.dumps(self.token_json(principal),
                                                           separators=(",", ":")))]
        await session.send(c.connack(level, c.SUCCESS, False, props))
        return session

    def _keep_alive(self, asked: int) -> int:
        cap = self.limits.max_keep_alive
        return cap if asked == 0 or asked > cap else asked

    async def _serve(self, session: Session, reader: c.Reader, asked_keep_alive: int) -> None:
        writer = asyncio.create_task(session.write_loop(), name=f"mqtt-write-{session.client_id}")
        idle = self._keep_alive(asked_keep_alive) * 1.5
        try:
            while not session.closed:
                while (packet := reader.next_packet()) is not None:
                    if not await self._on_packet(session, packet):
                        return
                data = await asyncio.wait_for(session.transport.recv(), idle)
                if not data:
                    return
                reader.receive_data(data)
        except asyncio.TimeoutError:
            await session.kick(c.KEEP_ALIVE_TIMEOUT, "keep-alive timeout")
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _on_packet(self, s: Session, p: c.Packet) -> bool:
        if isinstance(p, c.Publish):
            await self._on_publish(s, p)
        elif isinstance(p, c.PubAck):
            s.acked(p.packet_id)
        elif isinstance(p, c.Subscribe):
            await self._on_subscribe(s, p)
        elif isinstance(p, c.Unsubscribe):
            codes = []
            for key in p.topic_filters:
                sub = s.subs.pop(key, None)
                if sub is not None:
                    for pat in sub.patterns:
                        self.tree.remove(pat, (s, key))
                codes.append(c.SUCCESS if sub else c.NO_SUBSCRIPTION_EXISTED)
            await s.send(c.unsuback(s.level, p.packet_id, codes))
        elif isinstance(p, c.PingReq):
            await s.send(c.pingresp())
        elif isinstance(p, c.Disconnect):
            return False
        else:
            raise c.MqttError("QoS 2 and AUTH are not supported", c.PROTOCOL_ERROR)
        return True

    async def _on_publish(self, s: Session, p: c.Publish) -> None:
        if p.qos > 1:
            raise c.MqttError("QoS 2 is not supported (CONNACK said maximum QoS 1)",
                              c.QOS_NOT_SUPPORTED)
        if "topic_alias" in p.properties:
            raise c.MqttError("topic aliases are not supported", c.TOPIC_ALIAS_INVALID)
        if not topics.valid_topic(p.topic):
            raise c.MqttError("invalid topic name", c.TOPIC_NAME_INVALID)
        allowed = s.principal is INTERNAL or topics.may_publish(s.principal, self.prefix, p.topic)
        if allowed:
            self.publish(p.topic, p.payload, p.qos, p.retain, origin=s)
        else:
            THROTTLED.warn(f"pub:{s.client_id}", "mqtt: %s may not publish to %s",
                           s.client_id, p.topic)
        if p.qos and p.packet_id is not None:
            await s.send(c.puback(s.level, p.packet_id,
                                  c.SUCCESS if allowed else c.NOT_AUTHORIZED,
                                  None if allowed else "clients may not publish here"))

    async def _on_subscribe(self, s: Session, p: c.Subscribe) -> None:
        codes: list[int] = []
        new: list[_Sub] = []
        for sub in p.subscriptions:
            code = sub.error
            patterns: list[str] = []
            if code is None:
                try:
                    patterns = topics.expand(sub.topic_filter)
                except topics.FilterError:
                    code = c.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if sub.topic_filter.startswith(
                        "$share/") else c.TOPIC_FILTER_INVALID
            if code is None and sub.topic_filter not in s.subs and \
                    len(s.subs) >= self.limits.max_subscriptions:
                code = c.QUOTA_EXCEEDED
            if code is None and not all(topics.may_subscribe(s.principal, self.prefix, pat)
                                        for pat in patterns):
                code = c.NOT_AUTHORIZED
            if code is not None:
                codes.append(code)
                continue
            granted = min(sub.qos, 1)
            existed = sub.topic_filter in s.subs
            old = s.subs.pop(sub.topic_filter, None)
            if old is not None:
                for pat in old.patterns:
                    self.tree.remove(pat, (s, old.key))
            entry = _Sub(sub.topic_filter, patterns, granted, p.subscription_id, sub.no_local,
                         sub.retain_as_published)
            s.subs[entry.key] = entry
            for pat in patterns:
                self.tree.add(pat, (s, entry.key))
            codes.append(granted)
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and not existed):
                new.append(entry)
        await s.send(c.suback(s.level, p.packet_id, codes,
                              "some filters were refused" if any(x >= 0x80 for x in codes)
                              else None))
        for entry in new:
            for topic in self._retained_for(entry.patterns):
                payload, qos = self.retained[topic]
                s.offer(topic, topic.encode("utf-8"), payload, qos, True, [entry],
                        from_retained=True)

    # ------------------------------------------------------------ revocation
    async def _revalidate_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.revalidate_interval)
            try:
                await self.revalidate()
            except Exception:
                log.exception("mqtt: token revalidation failed")

    async def revalidate(self, token_id: object = None) -> None:
        """Look open sessions' tokens up again (only ``token_id``'s when given); end those
        no longer valid, and apply changed permissions at once."""
        by_token: dict[str, list[Session]] = {}
        for s in self.sessions.values():
            if s.token is not None and not s.closed and (
                    token_id is None or getattr(s.principal, "token_id", None) == token_id):
                by_token.setdefault(s.token, []).append(s)
        if not by_token:
            return

        def look_up() -> dict[str, Any]:
            if self.recheck is not None:
                return {t: self.recheck(ss[0].principal) for t, ss in by_token.items()}
            return {t: self.authenticate(t) for t in by_token}

        found = await asyncio.to_thread(look_up)
        for token, sessions in by_token.items():
            principal = found.get(token)
            for s in sessions:
                if principal is None:
                    await s.kick(c.NOT_AUTHORIZED, "token revoked or expired")
                elif principal != s.principal:
                    s.principal = principal
                    s.readable.clear()
