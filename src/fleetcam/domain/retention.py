"""TTL, rotation and the storage cap as pure functions."""
from __future__ import annotations

from collections.abc import Iterable
from fleetcam.domain.models import DEVICE_STORAGE_CAP, Device
from fleetcam.errors import TooLarge


def ttl_cutoff(device: Device, now: float) -> float | None:
    """Files uploaded before this instant have outlived the device's media_ttl (None: no TTL)."""
    return now - device.media_ttl if device.media_ttl > 0 else None


def check_upload(device: Device, size: int, total: int, protected_total: int) -> None:
    """Refuse an upload the device's storage can never hold.

    Args:
        size: bytes of the new file.
        total: bytes the device already stores.
        protected_total: of those, bytes that rotation may not delete.

    Raises:
        TooLarge: with the reason.
    """
    limit = device.storage_limit()
    if size > limit:
        raise TooLarge(f"file of {size} bytes exceeds the device's storage limit of {limit} bytes")
    if device.media_rotate > 0:
        if protected_total + size > limit:
            raise TooLarge(
                f"protected files ({protected_total} bytes) plus this file ({size} bytes) exceed "
                f"the device's storage limit of {limit} bytes")
    elif total + size > DEVICE_STORAGE_CAP:
        raise TooLarge(
            f"device storage would reach {total + size} bytes, over the cap of "
            f"{DEVICE_STORAGE_CAP} bytes; set media_rotate or delete files")


def upload_room(device: Device, total: int, protected_total: int) -> int:
    """The largest file ``check_upload`` lets in now (the same rules, solved for ``size``)."""
    limit = device.storage_limit()
    if device.media_rotate > 0:
        return max(0, limit - protected_total)
    return max(0, min(limit, DEVICE_STORAGE_CAP - total))


def rotation_victims(total: int, limit: int, oldest_first: Iterable[tuple[str, int]]) -> list[str]:
    """Pick the oldest unprotected files to delete until ``total`` fits in ``limit``.

    Args:
        oldest_first: (uuid, size) of unprotected files, oldest first; read lazily.
    """
    victims: list[str] = []
    for uuid, size in oldest_first:
        if total <= limit:
            break
        victims.append(uuid)
        total -= size
    return victims


def file_expiry(uploaded: float, protected: bool, media_ttl: int) -> float | None:
    """When a file outlives its device's ``media_ttl`` (None: never; protected files and a
    ttl of 0 keep files until rotation or deletion). A change of ``media_ttl`` moves every
    existing file's expiry with it: the rule is always today's ttl, never the upload's."""
    if protected or media_ttl <= 0:
        return None
    return uploaded + media_ttl
