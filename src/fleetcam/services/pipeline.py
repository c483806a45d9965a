"""The media pipeline after storage: packaging raw clips, and what a new media file triggers."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from fleetcam.domain import keys
from fleetcam.domain.gateway import Command
from fleetcam.domain.models import MediaFile
from fleetcam.errors import CorruptMedia, FleetcamError, NotFound
from fleetcam.ports import CommandStore, MessageStore, ObjectCreated, ObjectStore
from fleetcam.services.gateway import CommandService, MessageService
from fleetcam.services.journal import Journal
from fleetcam.services.media import META_KEY, rejection_reason

log = logging.getLogger(__name__)
Packager = Callable[[BinaryIO, str], Any]
"""package_raw(src, dst_path) -> VideoInfo (fleetcam.media.package)."""
ENRICH_FIELDS = ("position.latitude", "position.longitude", "position.altitude",
                 "position.speed", "position.direction", "position.valid",
                 "engine.ignition.status")
ENRICH_WITHIN = 60.0


class PackagingService:
    """raw/{device}/{uuid}.fcraw → media/{device}/{uuid}.mp4 (the media ingest takes it from
    there). Idempotent: the output key is derived from the input key."""

    def __init__(self, store: ObjectStore, journal: Journal, commands: CommandService,
                 package: Packager, package_file: Packager | None = None) -> None:
        self.store = store
        self.journal = journal
        self.commands = commands
        self.package = package
        self.package_file = package_file
        """Packages a device's own video file (raw/{device}/{uuid}.fcfile: alarm attachments)."""
        self.archive: Callable[[int, str, BinaryIO], Any] | None = None
        """Folds a packaged raw clip into its channel's cloud-DVR archive (set by attach_dvr)."""

    def handle(self, event: ObjectCreated) -> str | None:
        """Package one raw clip; returns the media key written (None: nothing to do).

        Raises:
            CorruptMedia: after failing the command and logging the rejection (raw kept).
        """
        parsed = keys.parse_raw_key(event.key)
        package = self.package
        if parsed is None and self.package_file is not None:
            parsed = keys.parse_raw_file_key(event.key)
            package = self.package_file
        if parsed is None:
            return None
        device_id, uuid = parsed
        out_key = keys.media_key(device_id, uuid, "mp4")
        try:
            self.store.head(out_key)
            return out_key  # packaged already (a repeated event)
        except NotFound:
            pass
        try:
            info = self.store.head(event.key)
        except NotFound:
            log.warning("packaging: raw clip %s is gone", event.key)
            return None
        options = json.loads(info.metadata.get(META_KEY, "{}") or "{}")
        fd, out_path = tempfile.mkstemp(suffix=".mp4")
        os.close(fd)
        try:
            with tempfile.TemporaryFile() as raw:
                for chunk in self.store.read(event.key):
                    raw.write(chunk)
                raw.seek(0)
                try:
                    video = package(raw, out_path)
                except CorruptMedia as e:
                    self._failed(device_id, uuid, event.key, options, e.reason)
                    raise
                if self.archive is not None and package is self.package:
                    raw.seek(0)
                    try:  # best effort: the clip itself is delivered either way
                        self.archive(device_id, uuid, raw)
                    except Exception:
                        log.exception("packaging: clip %s not folded into the DVR archive",
                                      event.key)
            options.setdefault("name", f"video-{uuid}.mp4")
            options["transcoded_from"] = getattr(video, "source_codec", None)
            with open(out_path, "rb") as f:
                self.store.put(out_key, f, content_type="video/mp4",
                               metadata={META_KEY: json.dumps(options, ensure_ascii=True)})
        finally:
            os.unlink(out_path)
        self.store.delete(event.key)  # packaged: the raw clip has served (failures keep it)
        return out_key

    def _failed(self, device_id: int, uuid: str, key: str, options: dict[str, Any],
                reason: str) -> None:
        self.journal.record(device_id, "media_file_rejected",
                            {"key": key, "uuid": uuid, "reason": reason,
                             "command_id": options.get("command_id")})
        cmd_id = options.get("command_id")
        cmd = self.commands.store.get(int(cmd_id)) if cmd_id is not None else None
        if cmd is not None and not cmd.final:
            self.commands.finish(cmd, False, {"reason": f"the clip could not be packaged: "
                                                        f"{reason}"})


class MediaMessages:
    """A new media file becomes a device message at its recording time (flespi's
    ``media=true`` and ``media.video.{channel}`` / ``media.image.{channel}``), enriched with
    the nearest telemetry; a file a command asked for finishes that command."""

    def __init__(self, messages: MessageService, store: MessageStore, commands: CommandService,
                 render: Callable[[MediaFile], dict[str, Any]], enrich: bool = True) -> None:
        self.messages = messages
        self.store = store
        self.commands = commands
        self.render = render
        self.enrich = enrich

    def __call__(self, f: MediaFile) -> None:
        doc = self.render(f)
        meta = dict(doc.get("meta") or {})
        kind = meta.get("type", "image")
        channel = f.channel_id if f.channel_id is not None else 0
        entry = {"url": doc["url"], "uuid": f.uuid, "name": f.name, "size": f.size,
                 "mime": f.mime, **{k: v for k, v in meta.items() if k != "type"}}
        message: dict[str, Any] = {"timestamp": f.created, "device.id": f.device_id,
                                   "media": True, f"media.{kind}.{channel}": entry}
        if self.enrich:
            near = self._telemetry(f.device_id, f.created)
            if near is not None:
                for name in ENRICH_FIELDS:
                    if name in near:
                        message[name] = near[name]
                if "ident" in near:
                    message["ident"] = near["ident"]
        self.messages.register(f.device_id, [message])
        cmd_id = meta.get("command_id")
        if cmd_id is not None:
            cmd = self.commands.store.get(int(cmd_id))
            if cmd is not None and not cmd.final:
                self._answer(cmd, f, doc, meta)

    def _answer(self, cmd: Command, f: MediaFile, doc: dict[str, Any],
                meta: dict[str, Any]) -> None:
        """The command that asked for ``f`` gets the file (and what the gateway reported)."""
        details = self.commands.running_details(cmd)
        stored = {"uuid": f.uuid, "url": doc["url"], "meta": meta, "created": f.created}
        if cmd.name != "take_photo":
            self.commands.finish(cmd, True, {**details, **stored})
            return
        # take_photo: one file per media id the device announced; done when all are in
        files = [x for x in details.get("files", []) if x.get("uuid") != f.uuid] + [stored]
        expected = details.get("media_ids") or []
        if len(files) >= len(expected):
            self.commands.finish(cmd, True, {**details, "files": files})
        else:
            self.commands.progress(cmd, {"files": files,
                                         "progress": {"photos": len(files),
                                                      "of": len(expected)}})

    def rejected(self, device_id: int, command_id: int, error: FleetcamError) -> None:
        """A file a command asked for was not kept: the command fails with the reason."""
        cmd = self.commands.store.get(command_id)
        if cmd is not None and not cmd.final and cmd.device_id == device_id:
            self.commands.finish(cmd, False, {**self.commands.running_details(cmd),
                                              "reason": rejection_reason(error)})

    def _telemetry(self, device_id: int, when: float) -> dict[str, Any] | None:
        """The device's nearest message within ENRICH_WITHIN that is not itself a media
        message (one of those may sit at the very same time, without telemetry)."""
        near = self.store.nearest(device_id, when, ENRICH_WITHIN)
        if near is None or not near.get("media"):
            return near
        rows = self.store.query((device_id,), time_from=when - ENRICH_WITHIN,
                                time_to=when + ENRICH_WITHIN)
        return min((r for r in rows if not r.get("media")), default=None,
                   key=lambda r: abs(float(r.get("timestamp", when)) - when))


__all__ = ["PackagingService", "MediaMessages", "CommandStore"]
