"""The pure retention rules: TTL cutoff, the upload check and rotation victims."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetcam.domain.models import DEVICE_STORAGE_CAP, GiB, Device
from fleetcam.domain.retention import check_upload, rotation_victims, ttl_cutoff
from fleetcam.errors import TooLarge

PLAIN = Device(id=1, name="cam", ident="1")
ROTATING = Device(id=2, name="cam", ident="2", media_rotate=1000)


def test_storage_limit() -> None:
    assert PLAIN.storage_limit() == DEVICE_STORAGE_CAP == 10 * GiB
    assert ROTATING.storage_limit() == 1000
    assert PLAIN.with_changes(media_rotate=DEVICE_STORAGE_CAP).storage_limit() == 10 * GiB
    assert PLAIN.with_changes(media_rotate=20 * GiB).storage_limit() == 10 * GiB


def test_ttl_cutoff() -> None:
    assert ttl_cutoff(PLAIN, 1000.0) is None
    assert ttl_cutoff(PLAIN.with_changes(media_ttl=60), 1000.0) == 940.0


@pytest.mark.parametrize("device, size, total, protected", [
    (PLAIN, 1, 0, 0),
    (PLAIN, 0, 0, 0),
    (PLAIN, GiB, 9 * GiB, 9 * GiB),               # exactly at the cap
    (PLAIN, 10 * GiB, 0, 0),                      # one file as large as the cap
    (ROTATING, 1000, 0, 0),                       # one file as large as the limit
    (ROTATING, 500, 10_000, 0),                   # rotation will make room
    (ROTATING, 500, 900, 500),                    # protected 500 + 500 == limit
    (ROTATING.with_changes(media_rotate=20 * GiB), GiB, 50 * GiB, 9 * GiB),
])
def test_check_upload_accepts(device: Device, size: int, total: int, protected: int) -> None:
    check_upload(device, size, total, protected)


@pytest.mark.parametrize("device, size, total, protected, words", [
    (PLAIN, 10 * GiB + 1, 0, 0, "exceeds the device's storage limit"),
    (PLAIN, 1, 10 * GiB, 0, "over the cap"),         # rotation off: the cap is hard
    (PLAIN, GiB, 9 * GiB + 1, 0, "set media_rotate"),
    (ROTATING, 1001, 0, 0, "exceeds the device's storage limit"),
    (ROTATING, 501, 600, 500, "protected files (500 bytes)"),
    (ROTATING, 1, 1000, 1000, "protected files"),
    (ROTATING.with_changes(media_rotate=20 * GiB), GiB, GiB, 10 * GiB - 1, "protected"),
])
def test_check_upload_refuses(device: Device, size: int, total: int, protected: int,
                              words: str) -> None:
    with pytest.raises(TooLarge) as err:
        check_upload(device, size, total, protected)
    assert words in err.value.reason


def test_rotation_victims_oldest_first_until_it_fits() -> None:
    files = [("a", 300), ("b", 300), ("c", 300), ("d", 300)]
    assert rotation_victims(1200, 1000, files) == ["a"]
    assert rotation_victims(1200, 600, files) == ["a", "b"]
    assert rotation_victims(1200, 599, files) == ["a", "b", "c"]
    assert rotation_victims(1000, 1000, files) == []
    assert rotation_victims(1200, 0, files) == ["a", "b", "c", "d"]


def test_rotation_victims_when_unprotected_files_do_not_suffice() -> None:
    assert rotation_victims(5000, 1000, [("a", 100), ("b", 100)]) == ["a", "b"]
    assert rotation_victims(5000, 1000, []) == []


def test_rotation_victims_reads_lazily() -> None:
    read: list[str] = []

    def stream() -> Iterator[tuple[str, int]]:
        for i in range(1_000_000):
            read.append(str(i))
            yield str(i), 10

    assert rotation_victims(1030, 1000, stream()) == ["0", "1", "2"]
    assert len(read) <= 4
