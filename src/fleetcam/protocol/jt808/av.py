"""JT/T 1078 signalling bodies (carried in JT/T 808 frames), PROTOCOLS.md §2.1.

Times are unix seconds (UTC); on the wire they are BCD[6] in GMT+8, 0 = all zeros.
Alarm flags are 64 bits: JT/T 808 alarm bits low, JT/T 1078 video alarm bits high.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetcam.protocol.bcd import Reader, Writer
from fleetcam.protocol.jt808.ids import MsgId


@dataclass(frozen=True)
class AvAttributes:
    """0x1003: codecs use JT/T 1078 table 12 (98 H.264, 99 H.265); rates 0 8k, 1 22.05k..."""

    audio_codec: int
    audio_channels: int
    audio_sample_rate: int
    audio_sample_bits: int
    audio_frame_length: int
    audio_output: int
    video_codec: int
    max_audio_channels: int
    max_video_channels: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> AvAttributes:
        return cls(r.u8(), r.u8(), r.u8(), r.u8(), r.u16(), r.u8(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.audio_codec).u8(self.audio_channels).u8(self.audio_sample_rate)
        w.u8(self.audio_sample_bits).u16(self.audio_frame_length).u8(self.audio_output)
        w.u8(self.video_codec).u8(self.max_audio_channels).u8(self.max_video_channels)


@dataclass(frozen=True)
class RealtimeRequest:
    """0x9101: stream ``channel`` to ip:port; data type 0 AV, 1 video, 2 talk, 3 listen...;
    stream type 0 main, 1 sub."""

    ip: str
    tcp_port: int
    udp_port: int
    channel: int
    data_type: int = 0
    stream_type: int = 0

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> RealtimeRequest:
        return cls(r.text8(), r.u16(), r.u16(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text8(self.ip).u16(self.tcp_port).u16(self.udp_port)
        w.u8(self.channel).u8(self.data_type).u8(self.stream_type)


@dataclass(frozen=True)
class RealtimeControl:
    """0x9102: command 0 close, 1 switch stream, 2 pause, 3 resume, 4 close talk;
    close type 0 AV, 1 audio, 2 video."""

    channel: int
    command: int
    close_type: int = 0
    stream_type: int = 0

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> RealtimeControl:
        return cls(r.u8(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.channel).u8(self.command).u8(self.close_type).u8(self.stream_type)


@dataclass(frozen=True)
class ResourceListQuery:
    """0x9205: channel 0 = all; media 0 AV, 1 audio, 2 video, 3 video or AV; stream 0 all,
    1 main, 2 sub; storage 0 all, 1 main, 2 backup."""

    channel: int
    start: int
    end: int
    alarm: int = 0
    media_type: int = 0
    stream_type: int = 0
    storage_type: int = 0

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> ResourceListQuery:
        return cls(r.u8(), r.time(), r.time(), r.u64(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.channel).time(self.start).time(self.end).u64(self.alarm)
        w.u8(self.media_type).u8(self.stream_type).u8(self.storage_type)


@dataclass(frozen=True)
class ResourceItem:
    """One 28-byte 0x1205 entry; stream type comes before storage type; size in bytes."""

    channel: int
    start: int
    end: int
    alarm: int
    media_type: int
    stream_type: int
    storage_type: int
    size: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> ResourceItem:
        return cls(r.u8(), r.time(), r.time(), r.u64(), r.u8(), r.u8(), r.u8(), r.u32())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.channel).time(self.start).time(self.end).u64(self.alarm)
        w.u8(self.media_type).u8(self.stream_type).u8(self.storage_type).u32(self.size)


@dataclass(frozen=True)
class ResourceList:
    """0x1205: reply serial (of the 0x9205), DWORD count, then the items."""

    reply_serial: int
    items: tuple[ResourceItem, ...]

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> ResourceList:
        serial, count = r.u16(), r.u32()
        if count * 28 > r.remaining:  # check first: the count is untrusted
            r.take(count * 28)
        return cls(serial, tuple(ResourceItem.decode(r, v2019) for _ in range(count)))

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u32(len(self.items))
        for item in self.items:
            item.encode(w, v2019)


@dataclass(frozen=True)
class PlaybackRequest:
    """0x9201: mode 0 normal, 1 fast-forward, 2 key-frame rewind, 3 key-frame, 4 single frame;
    speed 0 invalid, 1 1x, 2 2x, 3 4x, 4 8x, 5 16x."""

    ip: str
    tcp_port: int
    udp_port: int
    channel: int
    media_type: int
    stream_type: int
    storage_type: int
    mode: int
    speed: int
    start: int
    end: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> PlaybackRequest:
        return cls(r.text8(), r.u16(), r.u16(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8(), r.u8(),
                   r.time(), r.time())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text8(self.ip).u16(self.tcp_port).u16(self.udp_port)
        for value in (self.channel, self.media_type, self.stream_type, self.storage_type,
                      self.mode, self.speed):
            w.u8(value)
        w.time(self.start).time(self.end)


@dataclass(frozen=True)
class PlaybackControl:
    """0x9202: control 0 play, 1 pause, 2 stop, 3 fast-forward, 4 rewind, 5 seek, 6 key-frame;
    ``position`` (seek target) is used with control 5."""

    channel: int
    control: int
    speed: int = 0
    position: int = 0

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> PlaybackControl:
        return cls(r.u8(), r.u8(), r.u8(), r.time())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u8(self.channel).u8(self.control).u8(self.speed).time(self.position)


@dataclass(frozen=True)
class FileUpload:
    """0x9206: upload recordings to an FTP server; conditions bit 0 Wi-Fi, 1 LAN, 2 3G/4G."""

    ip: str
    port: int
    user: str
    password: str
    path: str
    channel: int
    start: int
    end: int
    alarm: int = 0
    media_type: int = 0
    stream_type: int = 0
    storage_type: int = 0
    conditions: int = 0

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> FileUpload:
        return cls(r.text8(), r.u16(), r.text8(), r.text8(), r.text8(), r.u8(), r.time(),
                   r.time(), r.u64(), r.u8(), r.u8(), r.u8(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.text8(self.ip).u16(self.port).text8(self.user).text8(self.password).text8(self.path)
        w.u8(self.channel).time(self.start).time(self.end).u64(self.alarm)
        for value in (self.media_type, self.stream_type, self.storage_type, self.conditions):
            w.u8(value)


@dataclass(frozen=True)
class FileUploadDone:
    """0x1206: reply serial (of the 0x9206); result 0 success, 1 failure."""

    reply_serial: int
    result: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> FileUploadDone:
        return cls(r.u16(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u8(self.result)


@dataclass(frozen=True)
class FileUploadControl:
    """0x9207: reply serial (of the 0x9206); control 0 pause, 1 resume, 2 cancel."""

    reply_serial: int
    control: int

    @classmethod
    def decode(cls, r: Reader, v2019: bool) -> FileUploadControl:
        return cls(r.u16(), r.u8())

    def encode(self, w: Writer, v2019: bool) -> None:
        w.u16(self.reply_serial).u8(self.control)


AV_MESSAGES: dict[int, Any] = {
    MsgId.AV_ATTRIBUTES: AvAttributes,
    MsgId.REALTIME_REQUEST: RealtimeRequest,
    MsgId.REALTIME_CONTROL: RealtimeControl,
    MsgId.RESOURCE_LIST_QUERY: ResourceListQuery,
    MsgId.RESOURCE_LIST: ResourceList,
    MsgId.PLAYBACK_REQUEST: PlaybackRequest,
    MsgId.PLAYBACK_CONTROL: PlaybackControl,
    MsgId.FILE_UPLOAD: FileUpload,
    MsgId.FILE_UPLOAD_DONE: FileUploadDone,
    MsgId.FILE_UPLOAD_CONTROL: FileUploadControl,
}
