"""Location additional-information items (0x0200 extras) as flat flespi-style fields.

Each parser takes the item's value bytes and returns the fields it yields; a value of the wrong
length yields nothing (devices get lengths wrong, and one bad item must not cost the position).
Unknown ids are reported as ``jt808.extra.<id>`` with the value in hex.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Fields = dict[str, Any]


def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _sized(size: int, build: Callable[[bytes], Fields]) -> Callable[[bytes], Fields]:
    def parse(value: bytes) -> Fields:
        return build(value) if len(value) == size else {}
    return parse


def _overspeed(value: bytes) -> Fields:
    # JT/T 808-2019 table 28: type BYTE (0 = no specific area), area id DWORD unless type 0
    if not value:
        return {}
    out: Fields = {"overspeed.area.type": value[0]}
    if len(value) >= 5:
        out["overspeed.area.id"] = _uint(value[1:5])
    return out


def _area(value: bytes) -> Fields:
    # table 29: type BYTE, area/route id DWORD, direction BYTE (0 in, 1 out)
    return {"area.type": value[0], "area.id": _uint(value[1:5]), "area.direction": value[5]}


def _route_time(value: bytes) -> Fields:
    # table 30: section id DWORD, driving time WORD (s), result BYTE (0 too short, 1 too long)
    return {"route.section.id": _uint(value[:4]), "route.section.time": _uint(value[4:6]),
            "route.section.result": value[6]}


def _analog(value: bytes) -> Fields:
    # 0x2B: bits 0-15 AD0, bits 16-31 AD1
    raw = _uint(value)
    return {"analog.input.0": raw & 0xFFFF, "analog.input.1": raw >> 16}


def _abnormal_driving(value: bytes) -> Fields:
    # JT/T 1078-2016 table 14: type WORD (bit 0 fatigue, 1 phone, 2 smoking), fatigue level BYTE
    return {"abnormal.driving.type": _uint(value[:2]), "abnormal.driving.fatigue.level": value[2]}


def _signed16(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)


PARSERS: dict[int, Callable[[bytes], Fields]] = {
    0x01: _sized(4, lambda v: {"vehicle.mileage": _uint(v) / 10}),          # 1/10 km
    0x02: _sized(2, lambda v: {"fuel.level": _uint(v) / 10}),               # 1/10 L
    0x03: _sized(2, lambda v: {"tachograph.speed": _uint(v) / 10}),         # 1/10 km/h
    0x04: _sized(2, lambda v: {"alarm.event.id": _uint(v)}),
    0x06: _sized(2, lambda v: {"compartment.temperature": _signed16(v)}),  # 2019, degrees C
    0x11: _overspeed,
    0x12: _sized(6, _area),
    0x13: _sized(7, _route_time),
    0x14: _sized(4, lambda v: {"video.alarm": _uint(v)}),                   # JT/T 1078 table 13
    0x15: _sized(4, lambda v: {"video.signal.loss.channels": _uint(v)}),
    0x16: _sized(4, lambda v: {"video.blocked.channels": _uint(v)}),
    0x17: _sized(2, lambda v: {"storage.fault": _uint(v)}),
    0x18: _sized(3, _abnormal_driving),
    0x25: _sized(4, lambda v: {"vehicle.signal.status": _uint(v)}),
    0x2A: _sized(2, lambda v: {"io.status": _uint(v)}),
    0x2B: _sized(4, _analog),
    0x30: _sized(1, lambda v: {"gsm.signal.level": v[0]}),
    0x31: _sized(1, lambda v: {"position.satellites": v[0]}),
}


def _alarm(item: int) -> Callable[[bytes], Fields]:
    def parse(value: bytes) -> Fields:
        # imported here: subiao imports this package's bcd helpers, not this module
        from fleetcam.protocol.jt808.subiao import decode_alarm_item

        return decode_alarm_item(item, value)
    return parse


# the active-safety extension (T/JSATL12-2017): ADAS, DSM, TPMS and BSD alarms
for _item in (0x64, 0x65, 0x66, 0x67):
    PARSERS[_item] = _alarm(_item)


def parse_items(data: bytes) -> dict[int, bytes]:
    """Split the TLV area after the 28-byte basic block: ID BYTE, length BYTE, value.

    A last item whose length runs past the body keeps the bytes that are there (SmallChi's
    ``JT808_0x0200Test.Test8`` has such a device frame).  A repeated id keeps the last value.
    """
    items: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos + 2 <= end:
        item, size = data[pos], data[pos + 1]
        items[item] = data[pos + 2:pos + 2 + size]
        pos += 2 + size
    return items


def decode_items(items: dict[int, bytes]) -> Fields:
    """Flat fields for every item; unknown ids as ``jt808.extra.<id>`` hex strings."""
    out: Fields = {}
    for item, value in items.items():
        parser = PARSERS.get(item)
        if parser is None:
            out[f"jt808.extra.{item}"] = value.hex()
        else:
            out.update(parser(value))
    return out
