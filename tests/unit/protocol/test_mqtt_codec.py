"""The broker's MQTT codec against two libraries: mqtt5 (Rust, MQTT 5) writes what clients
send and reads what the broker answers; paho-mqtt's own packet writer covers 3.1.1. Hostile
bytes end in MqttError only, never another exception."""
from __future__ import annotations

import mqtt5
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcam.protocol.mqtt import codec as c


def read_all(data: bytes, level: int = 0, max_packet: int = 65536) -> list[c.Packet]:
    r = c.Reader(max_packet)
    r.level = level
    r.receive_data(data)
    out = []
    while (p := r.next_packet()) is not None:
        out.append(p)
    return out


def test_connect_v5_from_mqtt5() -> None:
    raw = mqtt5.ConnectPacket("cam-ui", username="FlespiToken abc", password=b"abc",
                              keep_alive=30, clean_start=True, receive_max=10,
                              max_packet_size=4096, session_expiry_interval=60,
                              user_properties=[("k", "v")],
                              will=mqtt5.Will("x/y", payload=b"bye")).write()
    [p] = read_all(raw)
    assert isinstance(p, c.Connect)
    assert (p.protocol_level, p.client_id, p.username, p.password, p.keep_alive,
            p.clean_start) == (5, "cam-ui", "FlespiToken abc", b"abc", 30, True)
    assert p.properties["receive_maximum"] == 10
    assert p.properties["maximum_packet_size"] == 4096
    assert p.properties["user_property"] == [("k", "v")]
    assert p.will is not None and (p.will.topic, p.will.payload) == ("x/y", b"bye")


def test_connect_v311_bytes() -> None:
    # CONNECT, "MQTT" level 4, flags: username+password+clean, keep-alive 60, id "c1"
    body = b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"\x00\x02c1" + b"\x00\x01u" + b"\x00\x01p"
    [p] = read_all(bytes([0x10, len(body)]) + body)
    assert isinstance(p, c.Connect)
    assert (p.protocol_level, p.client_id, p.username, p.password) == (4, "c1", "u", b"p")


def test_subscribe_publish_puback_split_anywhere() -> None:
    stream = (mqtt5.ConnectPacket("a").write()
              + mqtt5.SubscribePacket(7, [mqtt5.TopicFilter("a/b,c/+",
                                                            max_qos=mqtt5.QoS.AT_LEAST_ONCE),
                                          mqtt5.TopicFilter("d/#")],
                                      subscription_id=42).write()
              + mqtt5.PublishPacket("t/1", b"x" * 300, qos=mqtt5.QoS.AT_LEAST_ONCE,
                                    packet_id=5, retain=True).write()
              + mqtt5.PubAckPacket(9).write() + mqtt5.PingReqPacket().write()
              + mqtt5.UnsubscribePacket(8, ["d/#"]).write() + mqtt5.DisconnectPacket().write())
    whole = read_all(stream)
    for cut in range(1, len(stream), 7):  # the same packets whatever the chunking
        r = c.Reader()
        got = []
        for part in (stream[:cut], stream[cut:]):
            r.receive_data(part)
            while (p := r.next_packet()) is not None:
                got.append(p)
        assert got == whole
    _, sub, pub, ack, ping, unsub, disc = whole
    assert isinstance(sub, c.Subscribe) and sub.subscription_id == 42
    assert [(s.topic_filter, s.qos) for s in sub.subscriptions] == [("a/b,c/+", 1), ("d/#", 2)]
    assert isinstance(pub, c.Publish) and (pub.topic, pub.qos, pub.packet_id, pub.retain) == (
        "t/1", 1, 5, True) and pub.payload == b"x" * 300
    assert ack == c.PubAck(9) and isinstance(ping, c.PingReq)
    assert unsub == c.Unsubscribe(8, ["d/#"]) and isinstance(disc, c.Disconnect)


def test_encoded_packets_read_back_with_mqtt5() -> None:
    p, n = mqtt5.read(memoryview(c.connack(5, 0, properties={
        "user_property": [("token", '{"id":1}')], "maximum_qos": 1, "retain_available": 1,
        "assigned_client_identifier": "x", "server_keep_alive": 60})))
    assert isinstance(p, mqtt5.ConnAckPacket)
    assert p.user_properties == [("token", '{"id":1}')] and p.max_qos == 1
    assert p.assigned_client_id == "x" and p.server_keep_alive == 60
    p, _ = mqtt5.read(memoryview(c.publish(5, b"a/b", b"pay", 1, True, 7, (1, 300, 2**20))))
    assert isinstance(p, mqtt5.PublishPacket)
    assert (p.topic, p.payload, p.qos, p.retain, p.packet_id, p.subscription_ids) == (
        "a/b", b"pay", 1, True, 7, [1, 300, 2**20])
    p, _ = mqtt5.read(memoryview(c.publish(5, b"a/b", b"x" * 200_000, 0)))
    assert len(p.payload) == 200_000 and p.subscription_ids == []
    p, _ = mqtt5.read(memoryview(c.suback(5, 3, [0, 1, 0x87, 0x8F], "refused")))
    assert [int(x) for x in p.reason_codes] == [0, 1, 0x87, 0x8F] and p.reason_str == "refused"
    p, _ = mqtt5.read(memoryview(c.puback(5, 3, 0x87, "no")))
    assert (p.packet_id, int(p.reason_code), p.reason_str) == (3, 0x87, "no")
    p, _ = mqtt5.read(memoryview(c.disconnect(5, 0x87, "revoked")))
    assert (int(p.reason_code), p.reason_str) == (0x87, "revoked")
    p, _ = mqtt5.read(memoryview(c.unsuback(5, 4, [0, 0x11])))
    assert [int(x) for x in p.reason_codes] == [0, 0x11]


def test_v311_answers() -> None:
    assert c.connack(4, c.BAD_USER_NAME_OR_PASSWORD) == b"\x20\x02\x00\x04"
    assert c.connack(4, c.NOT_AUTHORIZED) == b"\x20\x02\x00\x05"
    assert c.connack(4, 0) == b"\x20\x02\x00\x00"
    assert c.suback(4, 1, [1, 0x87]) == b"\x90\x04\x00\x01\x01\x80"
    assert c.unsuback(4, 2, [0]) == b"\xb0\x02\x00\x02"
    assert c.publish(4, b"a", b"p", 1, False, 9) == b"\x32\x06\x00\x01a\x00\x09p"
    assert c.disconnect(4, 0x87) == b""


def test_paho_311_packets() -> None:
    from paho.mqtt.client import MQTTv311, Client, CallbackAPIVersion

    sent: list[bytes] = []

    class Sock:
        def send(self, data: bytes) -> int:
            sent.append(bytes(data))
            return len(data)

        def close(self) -> None:
            pass

    client = Client(CallbackAPIVersion.VERSION2, client_id="p", protocol=MQTTv311)
    client.username_pw_set("FlespiToken tok", "tok")
    client._sock = Sock()  # type: ignore[assignment]
    client._send_connect(30)
    client._send_subscribe(False, [(b"a/+/c", 1)])
    client._packet_write()
    [conn, sub] = read_all(b"".join(sent))
    assert isinstance(conn, c.Connect) and (conn.protocol_level, conn.username, conn.password,
                                            conn.keep_alive) == (4, "FlespiToken tok",
                                                                 b"tok", 30)
    assert isinstance(sub, c.Subscribe)
    assert [(s.topic_filter, s.qos) for s in sub.subscriptions] == [("a/+/c", 1)]


def test_too_large_is_refused_from_the_fixed_header() -> None:
    r = c.Reader(max_packet=1000)
    r.receive_data(mqtt5.ConnectPacket("a").write())
    assert isinstance(r.next_packet(), c.Connect)
    r.receive_data(b"\x30\xff\xff\x03")  # claims ~64 KB, nothing of it sent yet
    with pytest.raises(c.PacketTooLarge):
        r.next_packet()


@pytest.mark.parametrize("data, why", [
    (b"\x30\x02\x00\x01", "PUBLISH before CONNECT"),
    (b"\x10\x0a\x00\x04MQIs\x03\x02\x00\x3c", "MQTT 3.1"),
    (b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00", "level 6"),
    (b"\x10\xff\xff\xff\xff\x7f", "5-byte remaining length"),
])
def test_refused_first_packets(data: bytes, why: str) -> None:
    with pytest.raises(c.MqttError):
        read_all(data)


def test_invalid_utf8_filter_is_refused_per_filter() -> None:
    body = b"\x00\x07\x00" + b"\x00\x02\xff\xfe\x01" + b"\x00\x03a/b\x01"
    [_, sub] = read_all(mqtt5.ConnectPacket("a").write() + bytes([0x82, len(body)]) + body)
    assert isinstance(sub, c.Subscribe)
    assert [s.error for s in sub.subscriptions] == [c.TOPIC_FILTER_INVALID, None]
    assert sub.subscriptions[1].topic_filter == "a/b"


SEEDS = [mqtt5.ConnectPacket("cid", username="FlespiToken x", password=b"pw", keep_alive=30,
                             user_properties=[("a", "b")]).write(),
         mqtt5.PublishPacket("a/b", b"xyz", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=3).write(),
         mqtt5.SubscribePacket(1, [mqtt5.TopicFilter("a/b,c"), mqtt5.TopicFilter("c/#")],
                               subscription_id=5).write(),
         mqtt5.UnsubscribePacket(2, ["a/b"]).write(), mqtt5.PubAckPacket(7).write()]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(SEEDS))), st.lists(st.tuples(st.integers(0, 400),
                                                              st.integers(0, 255)), max_size=4),
       st.binary(max_size=40))
def test_mutated_packets_raise_only_mqtt_errors(seed: int, flips: list[tuple[int, int]],
                                                tail: bytes) -> None:
    data = bytearray(SEEDS[0] + SEEDS[seed] + tail)
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        read_all(bytes(data))
    except c.MqttError:
        pass
