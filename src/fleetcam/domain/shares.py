"""Expiring, revocable share links to one media file or live stream (pure)."""
from __future__ import annotations

import re
from dataclasses import dataclass

SHARE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_SHARE_SECONDS = 366 * 86400
"""A share link lives at most a year (S3 links are re-signed at each access, so the 7-day
limit of SigV4 pre-signed URLs does not apply)."""
REVOKED_KEPT = 86400
"""A revoked or expired link is remembered this long after its expiry, to answer 410."""


@dataclass(frozen=True)
class ShareLink:
    """``id`` is 128 random bits: the capability the link carries."""

    id: str
    uuid: str
    device_id: int
    expire: int
    created: float
    revoked: bool = False

    def state(self, now: float) -> str:
        """``valid``, ``revoked`` or ``expired``."""
        if self.revoked:
            return "revoked"
        return "valid" if now < self.expire else "expired"
