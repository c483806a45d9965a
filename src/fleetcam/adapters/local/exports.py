"""DVR exports to local files: written beside the destination, then linked into place, so the
file appears whole or not at all and an existing file is never overwritten."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from fleetcam.errors import Conflict, Invalid
from fleetcam.services.dvrexport import Target


class FileSink:
    def __init__(self, target: Target) -> None:
        self.path = Path(target.path)
        if self.path.exists() or self.path.is_symlink():
            raise Conflict(f"{target.path} exists already: exports never overwrite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".export-",
                                            suffix=".part")
        except OSError as e:
            raise Invalid(f"cannot write to {self.path.parent}: {e.strerror}",
                          field="path") from None
        self.f = os.fdopen(fd, "wb", buffering=1 << 20)

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        try:
            os.link(self.tmp, self.path)  # fails if the name exists: no overwrite, no race
        except FileExistsError:
            raise Conflict(f"{self.path} appeared during the export: not overwritten") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
