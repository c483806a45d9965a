"""Device media storage: upload, ingest (the object-created handler), search, edit, delete."""
from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from fleetcam.domain import expr, keys
from fleetcam.domain.models import MEDIA_RESERVED, Device, MediaFile, Preview, new_uuid
from fleetcam.domain.retention import check_upload
from fleetcam.errors import CorruptMedia, FleetcamError, Invalid, NotFound, TooLarge
from fleetcam.ports import (Clock, DeviceRepo, MediaIndex, MediaQuery, ObjectCreated,
                            ObjectStore)
from fleetcam.services.journal import Journal
from fleetcam.services.render import media_json

log = logging.getLogger(__name__)

META_KEY = "fleetcam-meta"
"""The one user-metadata entry (ASCII JSON) that carries a file's upload options."""
MAX_META_BYTES = 1800  # S3 allows 2 KB of user metadata in all
MAX_IMAGE_BYTES = 64 * 1024 * 1024
VIDEO_MIMES = ("video/mp4",)

Prober = Callable[[BinaryIO | bytes], Any]


def storage_full(reason: str) -> str:
    """The reason a command gets when its photo or clip does not fit the device's storage."""
    return f"device storage full: {reason}"


def rejection_reason(error: FleetcamError) -> str:
    """Why a file a command asked for was not kept, as the command's result says it."""
    if isinstance(error, TooLarge):
        return storage_full(error.reason)
    return f"the file was rejected: {error.reason}"


def upload_options(data: Any, filename: str | None) -> dict[str, Any]:
    """Validate the ``data`` part of an upload: flespi's ``{"type", "meta": {...}}`` plus
    fleetcam's top-level ``channel``/``created``/``protected``/``shared``/``attributes``.

    Raises:
        Invalid: naming the field.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("data must be a JSON object", field="data")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise Invalid("data.meta must be an object", field="data.meta")
    merged = {**meta, **{k: v for k, v in data.items() if k not in ("meta", "type")}}
    out: dict[str, Any] = {"name": merged.get("name") or filename or "file"}
    if not isinstance(out["name"], str) or len(out["name"]) > 255:
        raise Invalid("name must be a string of at most 255 characters", field="name")
    out["name"] = os.path.basename(out["name"]) or "file"
    channel = merged.get("channel", merged.get("channel_id"))
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int)
                                or not 0 <= channel <= 255):
        raise Invalid("channel must be an integer from 0 to 255", field="channel")
    out["channel"] = channel
    created = merged.get("created")
    if created is not None and (isinstance(created, bool)
                                or not isinstance(created, (int, float)) or created < 0):
        raise Invalid("created must be a unix time in seconds", field="created")
    out["created"] = created
    for flag in ("protected", "shared"):
        v = merged.get(flag, False)
        if not isinstance(v, bool):
            raise Invalid(f"{flag} must be a boolean", field=flag)
        if flag in merged:  # an absent ``shared`` takes the device's or deployment's default
            out[flag] = v
    out.setdefault("protected", False)
    attrs = merged.get("attributes", {})
    if not isinstance(attrs, dict):
        raise Invalid("attributes must be an object", field="attributes")
    bad = set(attrs) & MEDIA_RESERVED
    if bad:
        raise Invalid(f"attribute names reserved: {', '.join(sorted(bad))}", field="attributes")
    out["attributes"] = attrs
    if len(json.dumps(out, ensure_ascii=True)) > MAX_META_BYTES:
        raise Invalid(f"upload options exceed {MAX_META_BYTES} bytes", field="data")
    return out


class MediaService:
    """The use cases of a device's media storage."""

    def __init__(self, store: ObjectStore, index: MediaIndex, devices: DeviceRepo,
                 journal: Journal, clock: Clock, base_url: str, probe_image: Prober,
                 probe_video: Callable[[str], tuple[Any, bytes]] | None = None) -> None:
        self.store = store
        self.index = index
        self.devices = devices
        self.journal = journal
        self.clock = clock
        self.base_url = base_url
        self.probe_image = probe_image
        self.probe_video = probe_video
        self.default_shared = True
        """``shared`` of a new file whose upload and device (``metadata.media_shared``) do
        not say: the product promises token-free links."""
        self.created_listeners: list[Callable[[MediaFile], None]] = []
        self.rejected_listeners: list[Callable[[int, int, FleetcamError], None]] = []
        """Called with (device id, command id, error) when a file a command asked for is
        rejected (the command then fails with the reason)."""
        """Called after a new media file is recorded (device messages, command results)."""

    def render(self, f: MediaFile, **kw: Any) -> dict[str, Any]:
        return media_json(f, self.base_url, **kw)

    def _record(self, event: str, f: MediaFile) -> None:
        """Publish and log the file's JSON (its thumbnail is a link: ``preview.url``)."""
        self.journal.record(f.device_id, event, self.render(f))

    def preview(self, f: MediaFile) -> bytes:
        """The file's JPEG thumbnail: its own object (``keys.preview_key``), or the base64
        that records made before previews left the index still carry.

        Raises:
            NotFound: the file has no thumbnail.
        """
        try:
            return b"".join(self.store.read(keys.preview_key(f.device_id, f.uuid)))
        except NotFound:
            if f.preview.jpeg:
                return base64.b64decode(f.preview.jpeg)
            raise NotFound(f"media file {f.uuid} has no preview") from None

    def _delete_content(self, key: str) -> None:
        """Delete a file's content and its thumbnail (both idempotent)."""
        self.store.delete(key)
        thumb = keys.preview_key_of(key)
        if thumb is not None:
            self.store.delete(thumb)

    # -- writing -----------------------------------------------------------------------
    def write_object(self, device: Device, data: BinaryIO, *, content_type: str,
                     options: dict[str, Any], size_hint: int | None = None) -> ObjectCreated:
        """Store raw content under a new uuid; the store then notifies the ingest handler."""
        if size_hint is not None:
            total, protected, _ = self.index.usage(device.id)
            check_upload(device, size_hint, total, protected)
        ext = {"image/jpeg": "jpg", "image/png": "png", "video/mp4": "mp4"}.get(content_type, "")
        key = keys.media_key(device.id, new_uuid(), ext)
        info = self.store.put(key, data, content_type=content_type,
                              metadata={META_KEY: json.dumps(options, ensure_ascii=True)})
        return ObjectCreated(bucket=self.store.bucket, key=key, size=info.size)

    def upload(self, device_id: int, data: BinaryIO, *, filename: str | None, content_type: str,
               raw_options: Any, size_hint: int | None = None) -> MediaFile:
        """The REST upload: write the object, then run the same handler the queue runs.

        Raises:
            Invalid, TooLarge, CorruptMedia: nothing is kept.
        """
        device = self.devices.get(device_id)
        options = upload_options(raw_options, filename)
        event = self.write_object(device, data, content_type=content_type, options=options,
                                  size_hint=size_hint)
        f = self.ingest(event)
        if f is None:  # the device vanished between the two steps
            raise NotFound(f"device {device_id} not found")
        return f

    def upload_ticket(self, device_id: int, raw: Any, *, expires: int) -> dict[str, Any]:
        """How to upload a file larger than the API takes in one request: with S3, a
        pre-signed POST of the object (ingested on arrival like any object under media/);
        where the store has no such links (locally), the API's own upload, which streams.

        Args:
            raw: ``{"name", "mime", "size", "data": {upload options}}``.

        Raises:
            Invalid, TooLarge, NotFound.
        """
        if not isinstance(raw, dict):
            raise Invalid("body must be a JSON object", field="body")
        mime, size = raw.get("mime"), raw.get("size")
        ext = {"image/jpeg": "jpg", "image/png": "png", "video/mp4": "mp4"}.get(str(mime))
        if ext is None:
            raise Invalid("mime must be image/jpeg, image/png or video/mp4", field="mime")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise Invalid("size must be the file's size in bytes", field="size")
        device = self.devices.get(device_id)
        options = upload_options(raw.get("data"), raw.get("name"))
        total, protected, _ = self.index.usage(device.id)
        check_upload(device, size, total, protected)
        post = getattr(self.store, "presigned_post", None)
        if post is None:
            return {"uuid": None, "method": "POST", "expires": None,
                    "url": f"{self.base_url}/gw/devices/{device.id}/media",
                    "fields": {"data": json.dumps(options, ensure_ascii=True)}}
        uuid = new_uuid()
        form = post(keys.media_key(device.id, uuid, ext), content_type=str(mime),
                    metadata={META_KEY: json.dumps(options, ensure_ascii=True)},
                    max_size=size, expires=expires)
        return {"uuid": uuid, "method": "POST", "expires": expires, **form}

    # -- the object-created handler ---------------------------------------------------
    def ingest(self, event: ObjectCreated) -> MediaFile | None:
        """Turn a stored object into a media file; idempotent per key.

        Returns the media file, or None when there is nothing to do (not a media key, the
        object or device is gone). Raises CorruptMedia/TooLarge after removing the object
        and logging the rejection; any other exception means "retry".
        """
        parsed = keys.parse_media_key(event.key)
        if parsed is None:
            log.info("ingest: ignoring non-media key %s", event.key)
            return None
        device_id, uuid = parsed
        existing = self.index.get(uuid)
        if existing is not None:
            return existing
        if self.index.deletion_pending(event.key):
            log.info("ingest: %s was deleted; ignoring a late event", event.key)
            return None
        try:
            info = self.store.head(event.key)
        except NotFound:
            log.warning("ingest: object %s is already gone", event.key)
            return None
        try:
            device = self.devices.get(device_id)
        except NotFound:
            log.warning("ingest: device %s of %s no longer exists", device_id, event.key)
            self.store.delete(event.key)
            return None
        try:
            f, jpeg = self._build(device, uuid, event.key, info.size, info.content_type,
                                  info.metadata.get(META_KEY, "{}"))
        except (CorruptMedia, TooLarge, Invalid) as e:
            self.store.delete(event.key)
            payload = {"key": event.key, "uuid": uuid, "size": info.size, "reason": e.reason}
            self.journal.record(device_id, "media_file_rejected", payload)
            self._rejected(device_id, info.metadata.get(META_KEY, "{}"), e)
            raise
        if jpeg:  # before the record: a crash in between leaves an object the retry rewrites
            self.store.put(keys.preview_key(device_id, uuid), jpeg, content_type="image/jpeg")
        try:
            added = self.index.add(f)
        except NotFound:  # the device was deleted meanwhile: its objects go too
            log.warning("ingest: device %s of %s was deleted meanwhile", device_id, event.key)
            self._delete_content(event.key)
            return None
        if not added:
            return self.index.get(uuid)
        self._record("media_file_uploaded", f)
        for listener in self.created_listeners:
            try:
                listener(f)
            except Exception:  # the file exists; a follow-up failing must not undo that
                log.exception("media-created listener failed for %s", f.uuid)
        return f

    def _rejected(self, device_id: int, raw_meta: str, error: FleetcamError) -> None:
        try:
            cmd_id = json.loads(raw_meta).get("command_id")
        except (ValueError, AttributeError):
            return
        if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
            return
        for listener in self.rejected_listeners:
            try:
                listener(device_id, cmd_id, error)
            except Exception:
                log.exception("media-rejected listener failed for command %s", cmd_id)

    def _build(self, device: Device, uuid: str, key: str, size: int, content_type: str,
               raw_meta: str) -> tuple[MediaFile, bytes]:
        """The file's record and its JPEG thumbnail (stored apart from the record)."""
        try:
            options = json.loads(raw_meta)
        except ValueError as e:
            raise Invalid(f"bad object metadata: {e}") from e
        total, protected, _ = self.index.usage(device.id)
        check_upload(device, size, total, protected)
        if content_type in VIDEO_MIMES and self.probe_video is not None:
            mime, meta, jpeg = self._probe_video(key)
        elif content_type.startswith("image/") and size <= MAX_IMAGE_BYTES:
            probed = self.probe_image(b"".join(self.store.read(key)))
            mime, meta, jpeg = probed.mime, probed.meta, base64.b64decode(probed.jpeg or "")
        else:
            raise CorruptMedia(f"unsupported media type {content_type!r}; JPEG and PNG images "
                               "and MP4 video are accepted")
        if options.get("command_id") is not None:
            meta = {**meta, "command_id": options["command_id"]}
        now = self.clock.now()
        created = options.get("created")
        return MediaFile(
            uuid=uuid, device_id=device.id, key=key, name=options.get("name") or uuid,
            size=size, mime=mime, created=float(created if created is not None else now),
            uploaded=now, modified=now, protected=bool(options.get("protected")),
            shared=self._shared(device, options), channel_id=options.get("channel"),
            preview=Preview(meta=meta), attributes=options.get("attributes") or {},
        ), jpeg

    def _shared(self, device: Any, options: dict[str, Any]) -> bool:
        if isinstance(options.get("shared"), bool):
            return bool(options["shared"])
        per_device = (getattr(device, "metadata", None) or {}).get("media_shared")
        return per_device if isinstance(per_device, bool) else self.default_shared

    def _probe_video(self, key: str) -> tuple[str, dict[str, Any], bytes]:
        """Spool the object to a temporary file (streamed) and probe it there."""
        assert self.probe_video is not None
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            for chunk in self.store.read(key):
                tmp.write(chunk)
            tmp.flush()
            info, jpeg = self.probe_video(tmp.name)
        meta = {"type": "video", "width": info.width, "height": info.height,
                "duration": round(info.duration, 3), "codec": info.codec,
                "fps": round(info.fps, 3), "has_audio": info.has_audio}
        return "video/mp4", meta, jpeg

    # -- reading -----------------------------------------------------------------------
    def search(self, q: MediaQuery) -> list[MediaFile]:
        return self.index.query(q)

    def get(self, uuid: str) -> MediaFile:
        f = self.index.get(uuid)
        if f is None:
            raise NotFound(f"media file {uuid} not found")
        return f

    # -- editing -----------------------------------------------------------------------
    def update(self, device_ids: Iterable[int], items: list[Any]) -> list[MediaFile]:
        """flespi's PUT: each item names a ``uuid`` and the attributes to set (None unsets).

        Raises:
            Invalid: a malformed item; NotFound: a uuid not among these devices' files.
        """
        allowed = set(device_ids)
        plans = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("uuid"), str):
                raise Invalid("each item needs a string uuid", field="uuid")
            f = self.index.get(item["uuid"])
            if f is None or f.device_id not in allowed:
                raise NotFound(f"media file {item['uuid']} not found")
            plans.append((f, self._changes(f, item)))
        now = self.clock.now()
        out = []
        for f, changes in plans:
            new = f.with_changes(modified=now, **changes)
            self.index.update(new)
            self._record("media_file_updated", new)
            out.append(new)
        return out

    @staticmethod
    def _changes(f: MediaFile, item: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        attrs = dict(f.attributes)
        for k, v in item.items():
            if k == "uuid":
                continue
            if k in ("protected", "shared"):
                if not isinstance(v, bool):
                    raise Invalid(f"{k} must be a boolean", field=k)
                changes[k] = v
            elif k == "name":
                if not isinstance(v, str) or not v or len(v) > 255:
                    raise Invalid("name must be a non-empty string", field="name")
                changes["name"] = v
            elif k in MEDIA_RESERVED:
                raise Invalid(f"{k} cannot be changed", field=k)
            elif v is None:
                attrs.pop(k, None)
            else:
                attrs[k] = v
        if len(json.dumps(attrs)) > 64 * 1024:
            raise Invalid("attributes exceed 64 KiB", field="attributes")
        changes["attributes"] = attrs
        return changes

    def delete(self, device_ids: Iterable[int], uuids: list[str] | None) -> list[MediaFile]:
        """Remove the named files of these devices, or all their files when ``uuids`` is None."""
        allowed = tuple(device_ids)
        if uuids is None:
            removed: list[MediaFile] = []
            while batch := self.index.query(MediaQuery(device_ids=allowed, count=1000)):
                removed += self.remove(batch, "media_file_deleted")
            return removed
        files = []
        for uuid in uuids:
            f = self.index.get(uuid)
            if f is None or f.device_id not in allowed:
                raise NotFound(f"media file {uuid} not found")
            files.append(f)
        return self.remove(files, "media_file_deleted")

    def delete_all(self, device_ids: Iterable[int], *,
                   force: bool = False) -> tuple[list[MediaFile], int]:
        """A bulk delete: every unprotected file of these devices (protected ones too with
        ``force``). Returns (the removed files, how many protected files were kept)."""
        allowed = tuple(device_ids)
        if force:
            return self.delete(allowed, None), 0
        unprotected = expr.Cmp("protected", "==", False)
        removed: list[MediaFile] = []
        while batch := self.index.query(MediaQuery(device_ids=allowed, filter=unprotected,
                                                   count=1000)):
            gone = self.remove(batch, "media_file_deleted")
            removed += gone
            if not gone:
                break  # others removed them meanwhile; the next query finds the rest
        kept, cursor = 0, None
        protected = expr.Cmp("protected", "==", True)
        while page := self.index.query(MediaQuery(device_ids=allowed, filter=protected,
                                                  count=1000, cursor=cursor)):
            kept += len(page)
            cursor = (page[-1].created, page[-1].uuid)
        return removed, kept

    def remove(self, files: list[MediaFile], event: str) -> list[MediaFile]:
        """Delete records (first) and objects (then), logging ``event`` for each file."""
        removed = self.index.remove(files)
        for f in removed:
            self._delete_content(f.key)
        self.index.deletion_done(f.key for f in removed)
        for f in removed:
            self._record(event, f)
        return removed

    def reap(self, f: MediaFile, count_off: Callable[[MediaFile], object]) -> bool:
        """The index dropped ``f``'s record by itself (DynamoDB TTL): ``count_off`` takes it
        off the device's usage (it must be a no-op when repeated while the object exists),
        then ``media_file_expired`` is logged and the object deleted.

        Returns False, doing nothing, when the object is gone already: a repeated call (a
        redelivered stream record) neither counts the file off twice nor logs it twice.
        """
        try:
            self.store.head(f.key)
        except NotFound:
            return False
        count_off(f)
        self._record("media_file_expired", f)
        self._delete_content(f.key)
        self.index.deletion_done([f.key])
        return True

    def finish_deletions(self) -> int:
        """Delete objects whose records went away before a crash; returns how many."""
        done = 0
        while batch := self.index.pending_deletions():
            for key in batch:
                self._delete_content(key)
            self.index.deletion_done(batch)
            done += len(batch)
        return done


__all__ = ["MediaService", "upload_options", "FleetcamError"]
