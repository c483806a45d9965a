"""EventBus over MQTT with aiomqtt; fleetcam's embedded broker for the all-in-one server."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import aiomqtt

from fleetcam.adapters.payload import encode

log = logging.getLogger(__name__)
QUEUE_MAX = 10_000


class MqttEventBus:
    """Thread-safe publisher: ``publish`` queues; an asyncio task sends with aiomqtt.

    Publishing never blocks a request: when the broker is away, messages wait in a bounded
    queue (the oldest are dropped past QUEUE_MAX, with a warning) and the task reconnects.
    """

    def __init__(self, url: str, client_id: str = "fleetcam") -> None:
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (8883 if u.scheme == "mqtts" else 1883)
        self.username = u.username
        self.password = u.password
        self.tls = u.scheme == "mqtts"
        self.client_id = client_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, bytes, bool]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.on_publish: Callable[[str, bytes], None] | None = None

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            log.debug("mqtt bus not started; dropping %s", topic)
            return
        item = (topic, encode(payload), retain)

        def put() -> None:
            if queue.full():
                queue.get_nowait()
                log.warning("mqtt queue full; dropped the oldest message")
            queue.put_nowait(item)

        if _running_loop() is loop:
            put()
        else:
            loop.call_soon_threadsafe(put)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(QUEUE_MAX)
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def _run(self) -> None:
        assert self._queue is not None
        pending: tuple[str, bytes, bool] | None = None
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          username=self.username, password=self.password,
                                          tls_params=aiomqtt.TLSParameters() if self.tls else None
                                          ) as client:
                    self.connected.set()
                    while True:
                        if pending is None:
                            pending = await self._queue.get()
                        topic, body, retain = pending
                        await client.publish(topic, body, qos=1, retain=retain)
                        pending = None
                        if self.on_publish:
                            self.on_publish(topic, body)
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttError as e:
                self.connected.clear()
                log.warning("mqtt: %s; reconnecting in 1 s", e)
                await asyncio.sleep(1)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far was handed to the broker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue is not None and not self._queue.empty() and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.flush(2.0)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class EmbeddedBroker:
    """fleetcam's MQTT broker (fleetcam.broker): MQTT 5 and 3.1.1 on a TCP port and over
    WebSocket at ``/mqtt`` on the API (mount ``websocket_route()``); clients authenticate with
    their token, the server's own publisher with ``internal_password``."""

    def __init__(self, host: str, port: int, *, prefix: str, access: Any,
                 internal_password: str, max_sessions: int = 1000) -> None:
        from fleetcam.broker.server import Broker, Limits
        from fleetcam.broker.transports import TcpListener

        self.broker = Broker(prefix, access.authenticate, access.token_json,
                             recheck=getattr(access, "recheck", None),
                             internal_password=internal_password,
                             limits=Limits(max_sessions=max_sessions))
        self.tcp = TcpListener(self.broker, host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        on_revoke = getattr(access, "on_revoke", None)
        self._unlisten = on_revoke(self._revoked) if on_revoke else None

    def websocket_route(self) -> Any:
        from fleetcam.broker.transports import websocket_endpoint

        return websocket_endpoint(self.broker)

    def _revoked(self, token_id: object) -> None:
        """A token was deleted, disabled or changed (maybe from an API thread): look its
        sessions up again now rather than at the next periodic pass."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def schedule() -> None:
            task = loop.create_task(self.broker.revalidate(token_id))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

        loop.call_soon_threadsafe(schedule)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.broker.start()
        await self.tcp.start()

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        await self.broker.stop()
        await self.tcp.stop()
