"""Protocol messages ↔ flespi-style device messages and commands (pure functions)."""
from __future__ import annotations

from typing import Any

from fleetcam.domain.gateway import Command
from fleetcam.protocol.jt808 import messages as m

# JT/T 808 table 24: alarm flag bits, named as flat flespi-style parameters
ALARM_BITS = {
    0: "alarm.emergency", 1: "alarm.overspeed", 2: "alarm.fatigue", 3: "alarm.danger",
    4: "alarm.gnss.fault", 5: "alarm.antenna.cut", 6: "alarm.antenna.short",
    7: "alarm.power.low", 8: "alarm.power.off", 9: "alarm.lcd.fault", 10: "alarm.tts.fault",
    11: "alarm.camera.fault", 12: "alarm.iccard.fault", 13: "alarm.overspeed.warning",
    14: "alarm.fatigue.warning", 18: "alarm.driving.time.exceeded",
    19: "alarm.parking.overtime", 20: "alarm.geofence", 21: "alarm.route",
    22: "alarm.route.time", 23: "alarm.route.deviation", 24: "alarm.vss.fault",
    25: "alarm.fuel.abnormal", 26: "alarm.theft", 27: "alarm.ignition.illegal",
    28: "alarm.displacement.illegal", 29: "alarm.collision", 30: "alarm.rollover",
    31: "alarm.door.illegal",
}


def location_message(loc: m.Location, device_id: int, ident: str, now: float) -> dict[str, Any]:
    """A 0x0200 location as a flat device message (flespi's parameter names)."""
    msg: dict[str, Any] = {"server.timestamp": now, "device.id": device_id, "ident": ident}
    msg.update(loc.flat())
    for bit, name in ALARM_BITS.items():
        if loc.alarm & (1 << bit):
            msg[name] = True
    return msg


def command_message(cmd: Command, media_host: str, media_port: int) -> m.Body:
    """The JT/T 808/1078 message that carries a protocol-neutral command."""
    p = cmd.properties
    if cmd.name == "take_photo":
        return m.Snapshot(channel=p["channel"], command=p.get("count", 1),
                          interval=p.get("interval", 0), save=0, resolution=p["resolution"])
    if cmd.name == "video_timeline":
        return m.ResourceListQuery(channel=p["channel"], start=p["from"], end=p["to"], alarm=0,
                                   media_type=p.get("media_type", 0), stream_type=0,
                                   storage_type=0)
    if cmd.name == "start_videostream":
        return m.RealtimeRequest(ip=media_host, tcp_port=media_port, udp_port=0,
                                 channel=p["channel"], data_type=p.get("data_type", 0),
                                 stream_type=0 if p["quality"] == "main" else 1)
    if cmd.name in ("playback_video", "request_video"):
        start = p["from"]
        end = p["to"] if "to" in p else start + p["duration"]
        return m.PlaybackRequest(ip=media_host, tcp_port=media_port, udp_port=0,
                                 channel=p["channel"], media_type=p.get("media_type", 0),
                                 stream_type=0, storage_type=0, mode=0, speed=0, start=start,
                                 end=end)
    return m.UnknownMessage(msg_id=p["msg_id"], body=bytes.fromhex(p.get("body", "")))


def answer_ids(cmd: Command) -> tuple[int, ...]:
    """Message ids whose reply serial finishes ``cmd`` (the first listed is final)."""
    return {"take_photo": (0x0805, 0x0001), "video_timeline": (0x1205, 0x0001),
            "playback_video": (0x1205, 0x0001), "request_video": (0x1205, 0x0001),
            }.get(cmd.name, (0x0001,))


def command_response(body: Any) -> tuple[bool, Any]:
    """(executed, response) of a device's answer to a command."""
    if isinstance(body, m.ResourceList):
        return True, [{"begin": it.start, "end": it.end, "channel": it.channel,
                       "size": it.size, "stream_type": it.stream_type} for it in body.items]
    if isinstance(body, m.SnapshotResponse):
        return body.result == 0, {"result": body.result, "media_ids": list(body.media_ids)}
    if isinstance(body, m.GeneralResponse):
        return body.result == 0, {"result": body.result}
    return True, {"message": type(body).__name__}
