"""Who a JT/T 808 terminal is: its authentication code (stored as a salted hash), the terminal
that first registered with it, and the rules of (re-)registration. Pure: no I/O.

JT/T 808 sends the code in clear (0x8100 hands it out, 0x0102 sends it back), so the platform
only ever has to *compare* it: a salted SHA-256 is enough to verify and useless to whoever
copies the database. Codes fleetcam issues carry 128 random bits, so a slow key-derivation
function would buy nothing against guessing and would cost CPU on every reconnect storm.
The flip side: a stored code cannot be read back. The API shows whether a code is set,
where it came from and when; an admin who needs to know a device's code provisions one.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from fleetcam.errors import Invalid

CODE_BYTES = 16
"""Random bytes in an issued code (128 bits), sent as 32 hex digits."""
MIN_CODE_LEN, MAX_CODE_LEN = 16, 64
"""Bounds on a code an admin provisions (printable ASCII, no spaces)."""
ISSUED, PROVISIONED = "issued", "provisioned"
_SCHEME = "sha256"
TERMINAL_FIELDS = ("terminal_id", "manufacturer", "model")


def new_code() -> str:
    """A fresh authentication code: 128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(CODE_BYTES)


def hash_code(code: str, salt: str | None = None) -> str:
    """``sha256$<salt>$<digest>`` of ``code`` with a random 16-byte salt."""
    salt = salt if salt is not None else secrets.token_hex(16)
    digest = hashlib.sha256(bytes.fromhex(salt) + code.encode("utf-8", "surrogateescape"))
    return f"{_SCHEME}${salt}${digest.hexdigest()}"


def verify_code(code: str, stored: str) -> bool:
    """True when ``code`` is the one ``stored`` was made from (constant time)."""
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] != _SCHEME:
        return False
    try:
        expected = hash_code(code, parts[1])
    except ValueError:
        return False
    return secrets.compare_digest(expected.encode(), stored.encode())


def check_code(code: Any) -> str:
    """Validate a code an admin provisions.

    Raises:
        Invalid: not a string of 16 to 64 printable ASCII characters without spaces.
    """
    if not isinstance(code, str) or not MIN_CODE_LEN <= len(code) <= MAX_CODE_LEN or any(
            not 0x21 <= ord(ch) <= 0x7E for ch in code):
        raise Invalid(f"configuration.auth_code must be {MIN_CODE_LEN} to {MAX_CODE_LEN} "
                      "printable ASCII characters without spaces (or null to reset it)",
                      field="configuration.auth_code")
    return code


@dataclass(frozen=True)
class Identity:
    """A device's JT/T 808 identity, kept in one stored string (``to_stored``).

    Attributes:
        code_hash: ``hash_code`` of the current code; "" while the device has none (never
            registered, reset by the admin, or unregistered by the terminal).
        origin: ISSUED (by fleetcam at a registration) or PROVISIONED (set by the admin).
        issued: when the current code was issued or set (unix seconds).
        terminal: terminal_id, manufacturer and model of the registration that received the
            current code lineage (the first registration, or the first after a reset).
        reregister_at_boot: the admin allows a repeat registration (see ``may_reregister``).
        legacy_code: a code stored in clear by an older fleetcam; verified, then rehashed.
    """

    code_hash: str = ""
    origin: str = ""
    issued: float = 0.0
    terminal: dict[str, str] = field(default_factory=dict)
    reregister_at_boot: bool = False
    legacy_code: str = ""

    @property
    def has_code(self) -> bool:
        return bool(self.code_hash or self.legacy_code)

    def verify(self, code: str) -> bool:
        if self.code_hash:
            return verify_code(code, self.code_hash)
        if self.legacy_code:
            return secrets.compare_digest(self.legacy_code.encode(), code.encode())
        return False

    def with_code(self, code: str, origin: str, now: float,
                  terminal: dict[str, str] | None = None) -> Identity:
        """This identity with ``code`` (hashed) as its current code."""
        return replace(self, code_hash=hash_code(code), origin=origin, issued=now,
                       legacy_code="", terminal=dict(terminal) if terminal is not None
                       else self.terminal)

    def reset(self) -> Identity:
        """No code: the terminal's next registration gets a fresh one."""
        return replace(self, code_hash="", origin="", issued=0.0, legacy_code="")

    def to_stored(self) -> str:
        """The stored form: "" for a blank identity, a legacy code as it was, else JSON with
        sorted keys (so equal identities store equal strings: adapters compare them)."""
        if self == Identity():
            return ""
        if self.legacy_code and self == Identity(legacy_code=self.legacy_code):
            return self.legacy_code
        return json.dumps({"code_hash": self.code_hash, "origin": self.origin,
                           "issued": self.issued, "terminal": self.terminal,
                           "reregister_at_boot": self.reregister_at_boot},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_stored(cls, text: str | None) -> Identity:
        if not text:
            return cls()
        if not text.startswith("{"):
            return cls(legacy_code=text)
        raw = json.loads(text)
        return cls(code_hash=str(raw.get("code_hash", "")), origin=str(raw.get("origin", "")),
                   issued=float(raw.get("issued", 0.0)),
                   terminal={k: str(v) for k, v in (raw.get("terminal") or {}).items()},
                   reregister_at_boot=bool(raw.get("reregister_at_boot", False)))

    def as_configuration(self) -> dict[str, Any]:
        """What the API shows in a device's configuration (never the code or its hash)."""
        return {"auth_code_state": (self.origin or "legacy") if self.has_code else "none",
                "auth_code_issued": self.issued or None,
                "registration": dict(self.terminal) or None,
                "reregister_at_boot": self.reregister_at_boot}


def terminal_of(terminal_id: str, manufacturer: str, model: str) -> dict[str, str]:
    return {"terminal_id": terminal_id, "manufacturer": manufacturer, "model": model}


# -- registration rules -------------------------------------------------------------------
ISSUE = "issue"
"""Answer 0 with a fresh code."""
ALREADY_REGISTERED = "already registered"
REREGISTER = "reregister"
"""A repeat registration allowed by ``reregister_at_boot``: a fresh code, logged, published."""


def registration_decision(identity: Identity, terminal: dict[str, str], online: bool
                          ) -> tuple[str, str]:
    """What a registration (0x0100) of a known, enabled device gets, and why.

    A device without a code gets one (first registration, or after a reset). A device with a
    code gets "terminal already registered", unless its configuration allows re-registering
    at boot, it is offline, and the registration names the terminal that received the code
    lineage (terminal id, manufacturer and model all equal).
    """
    if not identity.has_code:
        return ISSUE, "no code yet"
    if not identity.reregister_at_boot:
        return ALREADY_REGISTERED, "the terminal has a code (re-registration not allowed)"
    if online:
        return ALREADY_REGISTERED, "re-registration refused: the device is online"
    if not identity.terminal:
        return ALREADY_REGISTERED, ("re-registration refused: no first registration is "
                                    "recorded to compare with (provisioned code)")
    differing = [k for k in TERMINAL_FIELDS if identity.terminal.get(k) != terminal.get(k)]
    if differing:
        return ALREADY_REGISTERED, ("re-registration refused: " + ", ".join(differing)
                                    + " differ from the first registration")
    return REREGISTER, "re-registration at boot"
