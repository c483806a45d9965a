"""The embedded broker with paho-mqtt, the real client: MQTT 5 over WebSocket (as flespi's web
clients use it) and 3.1.1 over TCP; tokens decide who connects and what it may read."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from fleetcam.broker.server import Limits
from tests.broker import (MASTER, OTHER, READER, FakeAccess, FakePrincipal, Paho,
                          running_broker, server_publisher, sub_ids)
from tests.e2e_local import run

LOG = "fleetcam/log/gw/devices"


def test_flespi_web_client_session() -> None:
    """MQTT 5 over WebSocket, username "FlespiToken <token>" and no password: the CONNACK
    carries the token's JSON, comma lists are expanded, every PUBLISH names its
    subscription identifiers, and refused filters leave the session up."""
    async def scenario() -> None:
        async with running_broker() as r:
            def client_side() -> None:
                ui = Paho(r.http_port, READER)
                rc, props = ui.connect()
                assert rc == 0
                token = dict(props.UserProperty)["token"]
                assert json.loads(token) == {"id": 2, "access": {"type": 2}}
                assert ui.subscribe([(f"{LOG}/7/media_file_uploaded,media_file_updated", 1)],
                                    sub_id=11) == [1]
                assert ui.subscribe([(f"{LOG}/+/media_file_deleted", 0)], sub_id=12) == [0]
                assert ui.subscribe([(f"{LOG}/9/media_file_uploaded", 1),  # not its device
                                     ("fleetcam/#", 0),  # wildcard above the device
                                     ("fleetcam/state/gw/devices/7/commands-queue/+", 1),  # not its submodule
                                     ("/".join(["a"] * 20), 0),  # too deep
                                     ("a/" + "x" * 600, 0),  # too long
                                     (f"{LOG}/#", 0)]) == [135, 135, 135, 143, 143, 135]
                pub = server_publisher(r)
                assert pub.connect()[0] == 0
                for topic in (f"{LOG}/7/media_file_uploaded", f"{LOG}/7/media_file_deleted",
                              f"{LOG}/7/media_file_updated", f"{LOG}/9/media_file_uploaded",
                              f"{LOG}/8/media_file_deleted", f"{LOG}/9/media_file_deleted",
                              f"{LOG}/7/commands-queue/x/sent"):
                    pub.client.publish(topic, json.dumps({"t": topic}), qos=1)
                got = ui.collect(4)
                assert [(m.topic, sub_ids(m)) for m in got] == [
                    (f"{LOG}/7/media_file_uploaded", [11]),
                    (f"{LOG}/7/media_file_deleted", [12]),
                    (f"{LOG}/7/media_file_updated", [11]),
                    (f"{LOG}/8/media_file_deleted", [12])]
                assert json.loads(got[0].payload) == {"t": f"{LOG}/7/media_file_uploaded"}
                assert ui.quiet() == []  # device 9's and the command's never arrive
                assert ui.client.is_connected()
                pub.close()
                ui.close()
            await asyncio.to_thread(client_side)

    run(scenario())


def test_strangers_are_refused() -> None:
    async def scenario() -> None:
        async with running_broker() as r:
            def client_side() -> None:
                assert Paho(r.http_port, None).connect()[0] == 135  # anonymous
                assert Paho(r.http_port, "x" * 64).connect()[0] == 134  # unknown token
                assert Paho(r.http_port, READER, password="wrong").connect()[0] == 134
                # 3.1.1 return codes 5 and 4 (paho reports them as MQTT 5's 135 and 134)
                assert Paho(r.tcp_port, None, ws=False, v5=False).connect()[0] == 135
                assert Paho(r.tcp_port, "nope", ws=False, v5=False).connect()[0] == 134
                assert Paho(r.tcp_port, None, ws=False, username="fleetcam-server",
                            password="guess").connect()[0] == 134
                # the token as username and password, bare: accepted
                ok = Paho(r.tcp_port, None, ws=False, v5=False, username=READER,
                          password=READER)
                assert ok.connect()[0] == 0
                ok.close()
            await asyncio.to_thread(client_side)
            assert r.broker.stats["refused"] == 6

    run(scenario())


def test_clients_cannot_publish_under_the_prefix() -> None:
    async def scenario() -> None:
        async with running_broker() as r:
            def client_side() -> None:
                admin = Paho(r.http_port, MASTER)
                assert admin.connect()[0] == 0
                assert admin.subscribe([("#", 1)]) == [1]
                forger = Paho(r.tcp_port, MASTER, ws=False)
                assert forger.connect()[0] == 0
                info = forger.client.publish(f"{LOG}/7/media_file_deleted", b"{}", qos=1)
                info.wait_for_publish(5)
                forger.client.publish("fleetcam/state/gw/devices/7/commands-queue/1", b"",
                                      qos=0, retain=True)
                forger.client.publish("chat/room", b"hello", qos=1).wait_for_publish(5)
                got = admin.collect(1)
                assert [m.topic for m in got] == ["chat/room"]
                assert admin.quiet() == []
                limited = Paho(r.tcp_port, READER, ws=False)
                assert limited.connect()[0] == 0
                limited.client.publish("chat/room", b"no", qos=1).wait_for_publish(5)
                assert admin.quiet() == []
                for c in (admin, forger, limited):
                    c.close()
            await asyncio.to_thread(client_side)

    run(scenario())


def test_retained_state_is_served_and_emptied() -> None:
    async def scenario() -> None:
        async with running_broker() as r:
            def client_side() -> None:
                pub = server_publisher(r)
                assert pub.connect()[0] == 0
                state = "fleetcam/state/gw/devices/7/commands-queue/5"
                pub.client.publish(state, b'{"id":5}', qos=1, retain=True).wait_for_publish(5)
                queue_reader = FakePrincipal(5, "acl", frozenset({7}),
                                             frozenset({"commands-queue"}))
                r.access.tokens["Q" * 64] = queue_reader
                ui = Paho(r.http_port, "Q" * 64)
                assert ui.connect()[0] == 0
                assert ui.subscribe([("fleetcam/state/gw/devices/7/commands-queue/+", 1)],
                                    sub_id=3) == [1]
                [m] = ui.collect(1)
                assert (m.topic, m.payload, m.retain, sub_ids(m)) == (state, b'{"id":5}',
                                                                      True, [3])
                pub.client.publish(state, b"", qos=1, retain=True).wait_for_publish(5)
                [gone] = ui.collect(1)
                assert gone.payload == b""
                later = Paho(r.http_port, "Q" * 64)
                assert later.connect()[0] == 0
                assert later.subscribe([("fleetcam/state/gw/devices/7/commands-queue/+", 1)]) \
                    == [1]
                assert later.quiet() == []  # nothing retained any more
                for c in (pub, ui, later):
                    c.close()
            await asyncio.to_thread(client_side)
            assert r.broker.retained == {}

    run(scenario())


def test_revoked_token_session_ends_within_seconds() -> None:
    async def scenario() -> None:
        async with running_broker(limits=Limits(revalidate_interval=0.5)) as r:
            ui = Paho(r.http_port, OTHER)
            assert (await asyncio.to_thread(ui.connect))[0] == 0
            revoked = time.monotonic()
            del r.access.tokens[OTHER]
            ended = await asyncio.to_thread(ui.disconnected.wait, 5)
            assert ended and time.monotonic() - revoked < 5
            assert ui.disconnect_reason is not None and int(ui.disconnect_reason.value) == 135
            ui.client.loop_stop()
            # the broker sends DISCONNECT, then closes and forgets the session: wait for that
            for _ in range(50):
                if not r.broker.sessions:
                    break
                await asyncio.sleep(0.05)
            assert not r.broker.sessions

    run(scenario())


def test_slow_subscriber_is_bounded() -> None:
    """A subscriber that stops reading costs at most max_queued messages; the others go on."""
    limits = Limits(max_queued=50, max_inflight=5)

    async def scenario() -> None:
        async with running_broker(limits=limits) as r:
            stuck = Paho(r.tcp_port, MASTER, ws=False)
            assert (await asyncio.to_thread(stuck.connect))[0] == 0
            assert await asyncio.to_thread(stuck.subscribe, [("load/#", 1)]) == [1]
            stuck.client.loop_stop()  # stops reading and acking: its window fills
            fast = Paho(r.tcp_port, MASTER, ws=False)
            assert (await asyncio.to_thread(fast.connect))[0] == 0
            assert await asyncio.to_thread(fast.subscribe, [("load/#", 0)]) == [0]
            for i in range(500):
                r.broker.publish(f"load/{i}", b"x" * 100, qos=1)
                if i % 10 == 9:  # a pace the reading subscriber keeps up with
                    await asyncio.sleep(0.02)
            got = await asyncio.to_thread(fast.collect, 500)
            assert len(got) == 500
            [slow] = [s for s in r.broker.sessions.values() if s.client_id ==
                      stuck.client._client_id.decode()]
            assert len(slow.queue) <= 50 and len(slow.inflight) <= 5
            assert slow.dropped >= 500 - 50 - 5 - 1  # one more waits for a window slot
            fast.close()
            stuck.client.disconnect()

    run(scenario())


def test_max_sessions_and_connect_timeout() -> None:
    async def scenario() -> None:
        async with running_broker(limits=Limits(max_sessions=2, connect_timeout=0.5)) as r:
            a, b, c = (Paho(r.tcp_port, MASTER, ws=False) for _ in range(3))
            assert (await asyncio.to_thread(a.connect))[0] == 0
            assert (await asyncio.to_thread(b.connect))[0] == 0
            assert (await asyncio.to_thread(c.connect))[0] == 137  # server busy
            # a TCP connection that never sends CONNECT is closed after connect_timeout
            reader, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            assert await asyncio.wait_for(reader.read(10), 3) == b""
            writer.close()
            for x in (a, b):
                x.close()

    run(scenario())


def test_mediabox_subscriptions() -> None:
    """The filters flespi's MediaBox subscribes with (src/stores/media.js), prefix "flespi",
    for a token that reads device 7's media, commands queue and connections."""
    cmds = "request_video,take_photo,start_videostream,video_timeline,playback_video," \
           "request_tachograph_file"
    topics = {
        "pinned": ("xflespifront/pinned/devices", 1),
        "connections": ("flespi/state/gw/devices/7/connections/+", 2),
        "commandslog": (f"flespi/log/gw/devices/7/commands-queue/{cmds}/"
                        "queued,sent,processed,canceled,expired", 3),
        "commandsqueue": ("flespi/state/gw/devices/7/commands-queue/+", 4),
        "uploads": ("flespi/log/gw/devices/7/media_file_uploaded,media_file_updated", 5),
    }
    access = FakeAccess({"V" * 64: FakePrincipal(
        9, "acl", frozenset({7}), frozenset({"media", "commands-queue", "connections"}))})

    async def scenario() -> None:
        async with running_broker(access, prefix="flespi") as r:
            r.broker.publish("flespi/state/gw/devices/7/connections/3", b'{"id":3}', 1, True)

            def client_side() -> None:
                ui = Paho(r.http_port, "V" * 64)
                assert ui.connect()[0] == 0
                codes = {name: ui.subscribe([(f, 1)], sub_id=i)
                         for name, (f, i) in topics.items()}
                assert codes == {"pinned": [135], "connections": [1], "commandslog": [1],
                                 "commandsqueue": [1], "uploads": [1]}
                [retained] = ui.collect(1)
                assert (retained.topic, retained.retain, sub_ids(retained)) == (
                    "flespi/state/gw/devices/7/connections/3", True, [2])
                pub = server_publisher(r)
                assert pub.connect()[0] == 0
                for t in ("flespi/log/gw/devices/7/commands-queue/take_photo/processed",
                          "flespi/state/gw/devices/7/commands-queue/12",
                          "flespi/log/gw/devices/7/media_file_uploaded",
                          "flespi/log/gw/devices/7/commands-queue/custom/processed",
                          "flespi/state/gw/devices/8/commands-queue/1"):
                    pub.client.publish(t, b"{}", qos=1)
                got = ui.collect(3)
                assert [(m.topic, sub_ids(m)) for m in got] == [
                    ("flespi/log/gw/devices/7/commands-queue/take_photo/processed", [3]),
                    ("flespi/state/gw/devices/7/commands-queue/12", [4]),
                    ("flespi/log/gw/devices/7/media_file_uploaded", [5])]
                assert ui.quiet() == []
                pub.close()
                ui.close()
            await asyncio.to_thread(client_side)

    run(scenario())


def test_all_queues_together_are_bounded() -> None:
    limits = Limits(max_total_queued_bytes=20_000, max_inflight=1)

    async def scenario() -> None:
        async with running_broker(limits=limits) as r:
            stuck = [Paho(r.tcp_port, MASTER, ws=False) for _ in range(3)]
            for c in stuck:
                assert (await asyncio.to_thread(c.connect))[0] == 0
                assert await asyncio.to_thread(c.subscribe, [("load/#", 1)]) == [1]
                c.client.loop_stop()  # none of them reads any more
            for i in range(200):
                r.broker.publish(f"load/{i}", b"x" * 500, qos=1)
            assert 0 < r.broker.queued_bytes <= 20_000
            assert sum(s.dropped for s in r.broker.sessions.values()) > 0
            for c in stuck:
                c.client.disconnect()
        assert r.broker.queued_bytes == 0  # every session's share given back

    run(scenario())


def test_silent_connections_from_one_address_are_bounded() -> None:
    """A stranger opening connections and never sending CONNECT holds at most
    max_pending_per_host of them; the rest are closed at once, and the slots come back."""
    limits = Limits(max_pending_per_host=4, connect_timeout=30)

    async def scenario() -> None:
        async with running_broker(limits=limits) as r:
            conns = [await asyncio.open_connection("127.0.0.1", r.tcp_port) for _ in range(6)]
            await asyncio.sleep(0.3)
            assert r.broker.pending == {"127.0.0.1": 4}
            closed = []
            for reader, _ in conns:
                try:
                    closed.append(await asyncio.wait_for(reader.read(1), 0.5) == b"")
                except asyncio.TimeoutError:
                    closed.append(False)
            assert closed.count(True) == 2 and closed.count(False) == 4
            for _, writer in conns:
                writer.close()
            await asyncio.sleep(0.3)
            assert r.broker.pending == {}
            ok = Paho(r.tcp_port, MASTER, ws=False)
            assert (await asyncio.to_thread(ok.connect))[0] == 0
            ok.close()

    run(scenario())


def test_garbage_after_connect_closes_only_that_session(
        caplog: pytest.LogCaptureFixture) -> None:
    """Random bytes (and mutated real packets) after a good CONNECT: each bad session ends
    with a rate-limited warning, never an unexpected exception; the broker keeps serving."""
    import logging
    import random

    import mqtt5

    from fleetcam.broker.server import THROTTLED

    seeds = [mqtt5.SubscribePacket(1, [mqtt5.TopicFilter("a/b,c")], subscription_id=5).write(),
             mqtt5.PublishPacket("chat/x", b"p", qos=mqtt5.QoS.AT_LEAST_ONCE,
                                 packet_id=2).write(),
             mqtt5.UnsubscribePacket(3, ["a/b,c"]).write(), mqtt5.PingReqPacket().write()]
    connect = mqtt5.ConnectPacket("fuzz", username=f"FlespiToken {MASTER}").write()
    rng = random.Random(11)

    async def scenario() -> None:
        async with running_broker() as r:
            for i in range(60):
                data = bytearray(rng.choice(seeds) * rng.randint(1, 3))
                for _ in range(rng.randint(0, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if i % 4 == 0:
                    data = bytearray(rng.randbytes(rng.randint(1, 200)))
                reader, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
                writer.write(connect + bytes(data))
                await writer.drain()
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    while await asyncio.wait_for(reader.read(65536), 0.2):
                        pass
                writer.close()
            await asyncio.sleep(0.2)
            assert not r.broker.sessions
            ok = Paho(r.tcp_port, MASTER, ws=False)
            assert (await asyncio.to_thread(ok.connect))[0] == 0
            ok.close()

    THROTTLED.last.clear()
    with caplog.at_level(logging.WARNING, logger="fleetcam.broker.server"):
        run(scenario())
    assert not [rec for rec in caplog.records if rec.exc_info], "an unexpected exception"
