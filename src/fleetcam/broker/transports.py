"""The broker's listeners: MQTT over TCP (asyncio) and MQTT over WebSocket (an ASGI route, so
it shares the API's origin, e.g. ``/mqtt`` on uvicorn, and whatever TLS front serves it)."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fleetcam.broker.server import Broker

READ_CHUNK = 65536
SUBPROTOCOLS = ("mqtt", "mqttv3.1")


class TcpTransport:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def recv(self) -> bytes:
        return await self.reader.read(READ_CHUNK)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


class TcpListener:
    """``mqtt://host:port``: one task per connection, counted against the broker's limits."""

    def __init__(self, broker: Broker, host: str, port: int) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, self.host, self.port,
                                                 limit=READ_CHUNK)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.broker.connecting >= self.broker.limits.max_sessions:
            writer.close()  # a flood of half-open CONNECTs: refuse before reading anything
            return
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.broker.handle(TcpTransport(reader, writer))
        finally:
            self.tasks.discard(task)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class WebSocketTransport:
    """MQTT packets in binary WebSocket messages (a packet may span messages, and a message
    may hold several packets, as MQTT over WebSocket allows)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        client = ws.client  # behind a local TLS front: the forwarded address (uvicorn)
        self.host = client.host if client else ""
        self.peer = f"ws {client.host}:{client.port}" if client else "ws ?"

    async def recv(self) -> bytes:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return b""
            if message["type"] == "websocket.disconnect":
                return b""
            data = message.get("bytes")
            if data is None:  # MQTT over WebSocket is binary; a text frame ends the session
                return b""
            if data:  # an empty message carries nothing: wait for the next
                return bytes(data)

    async def send(self, data: bytes) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            raise ConnectionError("websocket closed")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close()


def websocket_endpoint(broker: Broker) -> Any:
    """An ASGI WebSocket route serving MQTT (mount it at ``/mqtt``)."""

    async def mqtt_over_websocket(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        chosen = next((p for p in offered if p in SUBPROTOCOLS), None)
        if offered and chosen is None:
            await websocket.close(code=1002)  # a WebSocket for something else
            return
        if len(broker.sessions) + broker.connecting >= broker.limits.max_sessions:
            await websocket.close(code=1013)  # try again later
            return
        await websocket.accept(subprotocol=chosen)
        await broker.handle(WebSocketTransport(websocket))

    return mqtt_over_websocket
