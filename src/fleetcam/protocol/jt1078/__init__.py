"""JT/T 1078 media stream: packets, a sans-IO stream decoder, frame reassembly, NAL units."""
from __future__ import annotations

from fleetcam.protocol.jt1078.nal import is_keyframe, nal_type, packetize, split_annexb
from fleetcam.protocol.jt1078.packet import (
    MAGIC,
    MAX_PAYLOAD,
    DataType,
    Packet,
    PayloadType,
    Subpackage,
    encode_packet,
    parse_packet,
    sim_key,
)
from fleetcam.protocol.jt1078.reassembly import FrameAssembler, FrameDropped, MediaFrame
from fleetcam.protocol.jt1078.stream import NEED_DATA, Jt1078Decoder, PacketError

__all__ = [
    "MAGIC",
    "MAX_PAYLOAD",
    "NEED_DATA",
    "DataType",
    "FrameAssembler",
    "FrameDropped",
    "Jt1078Decoder",
    "MediaFrame",
    "Packet",
    "PacketError",
    "PayloadType",
    "Subpackage",
    "encode_packet",
    "is_keyframe",
    "nal_type",
    "packetize",
    "parse_packet",
    "sim_key",
    "split_annexb",
]
