"""IngestService.handle: the object-created handler is idempotent and drops what it can't use."""
from __future__ import annotations

import io

import pytest

from fleetcam.domain.keys import media_key, parse_media_key, preview_key
from fleetcam.domain.models import Device, new_uuid
from fleetcam.errors import CorruptMedia, NotFound
from fleetcam.ports import MediaQuery, ObjectCreated
from fleetcam.runtime.container import Container
from fleetcam.services.media import upload_options
from mediagen import make_image
from tests.conftest import RecordingBus


@pytest.fixture
def cam(container: Container) -> Device:
    return container.devices.create([{"name": "cam", "ident": "ingest-cam"}])[0]


def _write(c: Container, device: Device, data: bytes, **options: object) -> ObjectCreated:
    """Store an object as an upload does, without handling its event."""
    return c.media.write_object(device, io.BytesIO(data), content_type="image/jpeg",
                                options=upload_options(options, "shot.jpg"))


def _uploaded(bus: RecordingBus) -> list[dict[str, object]]:
    return [p for t, p, _ in bus.messages if t.endswith("/media_file_uploaded")]


def test_handle_creates_one_file(container: Container, cam: Device, bus: RecordingBus) -> None:
    c = container
    event = _write(c, cam, make_image(64, 48), channel=2, created=1234, protected=True,
                   attributes={"plate": "AB123"})
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == []  # nothing until handled
    f = c.ingest.handle(event)
    assert f is not None
    _, uuid = parse_media_key(event.key) or (0, "")
    assert (f.uuid, f.device_id, f.key, f.size) == (uuid, cam.id, event.key, event.size)
    assert (f.name, f.mime, f.created, f.channel_id, f.protected) == (
        "shot.jpg", "image/jpeg", 1234.0, 2, True)
    assert f.attributes == {"plate": "AB123"}
    assert f.preview.meta == {"type": "image", "width": 64, "height": 48}
    assert f.preview.jpeg == ""  # not in the record: an object of its own, written first
    thumb = b"".join(c.store.read(preview_key(cam.id, uuid)))
    assert thumb[:2] == b"\xff\xd8" and c.media.preview(f) == thumb
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == [f]
    assert [p["uuid"] for p in _uploaded(bus)] == [uuid]


def test_the_same_event_twice_makes_one_file(container: Container, cam: Device,
                                             bus: RecordingBus) -> None:
    c = container
    event = _write(c, cam, make_image(32, 32))
    first = c.ingest.handle(event)
    second = c.ingest.handle(event)
    assert first is not None and second == first
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == [first]
    assert c.index.usage(cam.id) == (first.size, 0, 1)
    assert len(_uploaded(bus)) == 1
    assert len(c.logs.query((cam.id,), events=("media_file_uploaded",))) == 1


def test_an_event_for_a_vanished_object_is_ignored(container: Container, cam: Device,
                                                   bus: RecordingBus) -> None:
    c = container
    event = _write(c, cam, make_image(32, 32))
    c.store.delete(event.key)
    assert c.ingest.handle(event) is None
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == []
    assert bus.messages == []


def test_an_event_for_a_key_never_written_is_ignored(container: Container, cam: Device) -> None:
    key = media_key(cam.id, new_uuid(), "jpg")
    assert container.ingest.handle(ObjectCreated("local", key, 10)) is None
    assert container.index.query(MediaQuery(device_ids=(cam.id,))) == []


@pytest.mark.parametrize("key", ["other/thing.jpg", "media/1/not-a-uuid.jpg", "media/x/y",
                                 "media/1/" + "A" * 32, "previews/1/" + "a" * 32 + ".jpg"])
def test_a_non_media_key_is_ignored(container: Container, cam: Device, key: str,
                                    bus: RecordingBus) -> None:
    container.store.put(key, b"data", content_type="image/jpeg")
    assert container.ingest.handle(ObjectCreated("local", key, 4)) is None
    assert container.store.head(key).size == 4  # not ours to delete
    assert bus.messages == []


def test_a_device_deleted_before_the_record_leaves_no_object(
        container: Container, cam: Device, bus: RecordingBus,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview is stored before the record: a device deleted between the two (the
    record's write then fails) takes the content and the preview with it."""
    c = container
    event = _write(c, cam, make_image(32, 32))
    add = c.index.add

    def add_after_deletion(f: object) -> bool:
        c.device_repo.delete(cam.id)
        return add(f)  # type: ignore[arg-type]

    monkeypatch.setattr(c.index, "add", add_after_deletion)
    assert c.ingest.handle(event) is None
    _, uuid = parse_media_key(event.key) or (0, "")
    for key in (event.key, preview_key(cam.id, uuid)):
        with pytest.raises(NotFound):
            c.store.head(key)
    assert bus.messages == []


def test_a_device_deleted_in_between_loses_its_object(container: Container, cam: Device,
                                                      bus: RecordingBus) -> None:
    c = container
    event = _write(c, cam, make_image(32, 32))
    c.device_repo.delete(cam.id)
    assert c.ingest.handle(event) is None
    with pytest.raises(NotFound):
        c.store.head(event.key)
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == []
    assert bus.messages == []


@pytest.mark.parametrize("data", [b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 64,
                                  make_image(32, 32)[:40]])
def test_a_corrupt_image_is_rejected_and_removed(container: Container, cam: Device,
                                                 bus: RecordingBus, data: bytes) -> None:
    c = container
    event = _write(c, cam, data)
    with pytest.raises(CorruptMedia):
        c.ingest.handle(event)
    with pytest.raises(NotFound):
        c.store.head(event.key)
    assert c.index.query(MediaQuery(device_ids=(cam.id,))) == []
    logged = c.logs.query((cam.id,), events=("media_file_rejected",))
    assert len(logged) == 1
    assert logged[0].data["key"] == event.key and logged[0].data["reason"]
    assert [t.rsplit("/", 1)[1] for t in bus.topics()] == ["media_file_rejected"]
    assert c.ingest.handle(event) is None  # a redelivery finds the object gone
