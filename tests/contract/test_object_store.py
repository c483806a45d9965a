"""ObjectStore contract: put/head/read (byte ranges)/delete, the same on every backend."""
from __future__ import annotations

import io

import pytest

from fleetcam.errors import NotFound
from tests.contract.conftest import Backend

DATA = bytes(range(256)) * 4  # 1 KiB, every byte value


def _read(b: Backend, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(b.store.read(key, start, end))


def test_put_then_head(backend: Backend) -> None:
    info = backend.store.put("blobs/a/one.bin", DATA, content_type="application/octet-stream",
                             metadata={"fleetcam-meta": '{"name": "x"}'})
    assert (info.key, info.size, info.content_type) == ("blobs/a/one.bin", len(DATA),
                                                        "application/octet-stream")
    assert info.metadata == {"fleetcam-meta": '{"name": "x"}'}
    head = backend.store.head("blobs/a/one.bin")
    assert head == info
    assert isinstance(backend.store.bucket, str) and backend.store.bucket


def test_put_without_metadata(backend: Backend) -> None:
    backend.store.put("blobs/empty", b"", content_type="text/plain")
    head = backend.store.head("blobs/empty")
    assert (head.size, head.content_type, head.metadata) == (0, "text/plain", {})
    assert _read(backend, "blobs/empty") == b""


def test_put_a_stream_larger_than_a_chunk(backend: Backend) -> None:
    big = DATA * 700  # 700 KiB
    info = backend.store.put("blobs/big", io.BytesIO(big), content_type="video/mp4")
    assert info.size == len(big) == backend.store.head("blobs/big").size
    assert _read(backend, "blobs/big") == big
    assert _read(backend, "blobs/big", 300_000, 600_000) == big[300_000:600_001]


@pytest.mark.parametrize("start, end", [
    (0, None), (0, 0), (5, 9), (1023, 1023), (1000, None), (0, 1023), (0, 5000), (512, 99999),
])
def test_read_ranges_are_inclusive(backend: Backend, start: int, end: int | None) -> None:
    backend.store.put("blobs/r", DATA, content_type="application/octet-stream")
    expected = DATA[start:] if end is None else DATA[start:end + 1]
    assert _read(backend, "blobs/r", start, end) == expected


def test_overwrite_replaces_content(backend: Backend) -> None:
    backend.store.put("blobs/o", DATA, content_type="a/b", metadata={"k": "1"})
    backend.store.put("blobs/o", b"xyz", content_type="c/d")
    assert _read(backend, "blobs/o") == b"xyz"
    head = backend.store.head("blobs/o")
    assert (head.size, head.content_type, head.metadata) == (3, "c/d", {})


def test_missing_objects_raise_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.head("blobs/never")
    with pytest.raises(NotFound):
        _read(backend, "blobs/never")
    with pytest.raises(NotFound):
        _read(backend, "blobs/never", 0, 10)


def test_delete_is_idempotent(backend: Backend) -> None:
    backend.store.put("blobs/d", DATA, content_type="a/b")
    backend.store.put("blobs/keep", DATA, content_type="a/b")
    backend.store.delete("blobs/d")
    with pytest.raises(NotFound):
        backend.store.head("blobs/d")
    with pytest.raises(NotFound):
        _read(backend, "blobs/d")
    backend.store.delete("blobs/d")
    backend.store.delete("blobs/never-was")
    assert _read(backend, "blobs/keep") == DATA


def test_media_keys_behave_like_any_other(backend: Backend) -> None:
    key = "media/1/" + "ab" * 16 + ".jpg"
    backend.store.put(key, b"\xff\xd8\xff", content_type="image/jpeg")
    assert backend.store.head(key).size == 3
    assert _read(backend, key) == b"\xff\xd8\xff"
    backend.store.delete(key)
    with pytest.raises(NotFound):
        backend.store.head(key)
