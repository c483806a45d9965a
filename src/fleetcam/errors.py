"""The domain's error hierarchy; translated to HTTP only in api/errors.py."""
from __future__ import annotations


class FleetcamError(Exception):
    """Base of every error the core raises on purpose."""

    code = 1  # flespi's generic error code

    def __init__(self, reason: str, *, field: str | None = None,
                 ids: list[int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.ids = ids
        """The ids the error is about (ids a selector named that do not exist)."""


class NotFound(FleetcamError):
    """The device, file or object does not exist."""


class Invalid(FleetcamError):
    """A parameter is malformed or out of range."""


class Conflict(FleetcamError):
    """The request collides with existing state (a duplicate ident, say)."""


class TooLarge(FleetcamError):
    """The upload would exceed the device's storage cap."""


class Unauthorized(FleetcamError):
    """No or a wrong token."""


class Forbidden(FleetcamError):
    """A valid token outside its scope."""


class Gone(FleetcamError):
    """A link that expired or was revoked."""


class CorruptMedia(FleetcamError):
    """A media object cannot be decoded; retrying will not help."""
