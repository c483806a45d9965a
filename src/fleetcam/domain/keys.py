"""The object-storage key layout and the public link layout, written down once."""
from __future__ import annotations

import re

MEDIA_PREFIX = "media/"
_MEDIA_KEY = re.compile(r"^media/(?P<device_id>\d+)/(?P<uuid>[0-9a-f]{32})(?:\.(?P<ext>[A-Za-z0-9]{1,8}))?$")


def media_key(device_id: int, uuid: str, ext: str = "") -> str:
    """Key of a media file's content: ``media/{device_id}/{uuid}.{ext}``."""
    return f"{MEDIA_PREFIX}{device_id}/{uuid}" + (f".{ext}" if ext else "")


RAW_PREFIX = "raw/"
_RAW_KEY = re.compile(r"^raw/(?P<device_id>\d+)/(?P<uuid>[0-9a-f]{32})\.fcraw$")


def raw_key(device_id: int, uuid: str) -> str:
    """Key of a raw clip the gateway recorded: ``raw/{device_id}/{uuid}.fcraw``; packaging
    writes the playable file at ``media_key(device_id, uuid, "mp4")`` (the same uuid)."""
    return f"{RAW_PREFIX}{device_id}/{uuid}.fcraw"


def parse_raw_key(key: str) -> tuple[int, str] | None:
    m = _RAW_KEY.match(key)
    return (int(m["device_id"]), m["uuid"]) if m else None


_RAW_FILE_KEY = re.compile(r"^raw/(?P<device_id>\d+)/(?P<uuid>[0-9a-f]{32})\.fcfile$")


def raw_file_key(device_id: int, uuid: str) -> str:
    """Key of a video file a device uploaded by itself (an alarm attachment: MP4, AVI or a
    bare H.264/H.265 stream): ``raw/{device_id}/{uuid}.fcfile``; packaging writes the MP4 at
    ``media_key(device_id, uuid, "mp4")``."""
    return f"{RAW_PREFIX}{device_id}/{uuid}.fcfile"


def parse_raw_file_key(key: str) -> tuple[int, str] | None:
    m = _RAW_FILE_KEY.match(key)
    return (int(m["device_id"]), m["uuid"]) if m else None


def parse_media_key(key: str) -> tuple[int, str] | None:
    """Return (device_id, uuid) for a media content key, None for any other key."""
    m = _MEDIA_KEY.match(key)
    if not m:
        return None
    return int(m["device_id"]), m["uuid"]


PREVIEW_PREFIX = "previews/"


def preview_key(device_id: int, uuid: str) -> str:
    """Key of a media file's JPEG thumbnail: ``previews/{device_id}/{uuid}.jpg``. Written
    before the file's record and deleted with its content; outside ``media/``, so storing it
    triggers no ingest."""
    return f"{PREVIEW_PREFIX}{device_id}/{uuid}.jpg"


def preview_key_of(media_key: str) -> str | None:
    """The thumbnail key that goes with a media content key (None for any other key)."""
    parsed = parse_media_key(media_key)
    return None if parsed is None else preview_key(*parsed)


def file_link(base_url: str, uuid: str) -> str:
    """A media file's link, as flespi's ``https://media.flespi.io/{uuid}``: the content
    (GET/HEAD, byte ranges); ``?preview=jpeg`` gives its thumbnail, ``?preview=json`` its JSON."""
    return f"{base_url}/media/{uuid}"


def media_topic(prefix: str, device_id: int, event: str) -> str:
    """flespi's layout: ``{prefix}/log/gw/devices/{id}/{event}``."""
    return f"{prefix}/log/gw/devices/{device_id}/{event}"
