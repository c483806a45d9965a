"""domain.identity: codes, their stored form, and the registration rules (issue 10)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from fleetcam.domain.identity import (ALREADY_REGISTERED, ISSUE, ISSUED, PROVISIONED, REREGISTER,
                                      Identity, check_code, hash_code, new_code,
                                      registration_decision, terminal_of, verify_code)
from fleetcam.errors import Invalid

T1 = terminal_of("T1", "ACME", "X1")


def test_codes_are_128_random_bits_and_stored_salted() -> None:
    a, b = new_code(), new_code()
    assert len(a) == 32 and int(a, 16) >= 0 and a != b
    h1, h2 = hash_code(a), hash_code(a)
    assert h1 != h2  # salted
    assert verify_code(a, h1) and verify_code(a, h2) and not verify_code(b, h1)
    assert not verify_code(a, "garbage") and not verify_code(a, "sha256$zz$00")
    assert a not in h1


def test_stored_form_round_trips_and_hides_the_code() -> None:
    code = new_code()
    ident = Identity().with_code(code, ISSUED, 12.5, T1)
    stored = ident.to_stored()
    assert code not in stored and Identity.from_stored(stored) == ident
    assert Identity.from_stored(stored).verify(code)
    assert Identity().to_stored() == "" and Identity.from_stored("") == Identity()
    legacy = Identity.from_stored("abcdef0123456789")  # a clear code of an older fleetcam
    assert legacy.legacy_code == "abcdef0123456789" and legacy.verify("abcdef0123456789")
    assert legacy.to_stored() == "abcdef0123456789"
    conf = ident.as_configuration()
    assert conf == {"auth_code_state": "issued", "auth_code_issued": 12.5,
                    "registration": dict(T1), "reregister_at_boot": False}
    assert code not in str(conf) and "sha256" not in str(conf)


def test_admin_codes_are_checked() -> None:
    assert check_code("x" * 16) == "x" * 16
    for bad in ("x" * 15, "x" * 65, "has a space 12345", 1234567890123456789, None, "é" * 20):
        with pytest.raises(Invalid):
            check_code(bad)


@pytest.mark.parametrize("identity, terminal, online, expected", [
    (Identity(), T1, False, ISSUE),
    (Identity(), T1, True, ISSUE),
    (Identity().with_code("c" * 32, ISSUED, 1, T1), T1, False, ALREADY_REGISTERED),
    (replace(Identity().with_code("c" * 32, ISSUED, 1, T1), reregister_at_boot=True), T1,
     False, REREGISTER),
    (replace(Identity().with_code("c" * 32, ISSUED, 1, T1), reregister_at_boot=True), T1,
     True, ALREADY_REGISTERED),
    (replace(Identity().with_code("c" * 32, ISSUED, 1, T1), reregister_at_boot=True),
     terminal_of("T2", "ACME", "X1"), False, ALREADY_REGISTERED),
    (replace(Identity().with_code("c" * 32, ISSUED, 1, T1), reregister_at_boot=True),
     terminal_of("T1", "OTHER", "X1"), False, ALREADY_REGISTERED),
    (replace(Identity().with_code("c" * 32, ISSUED, 1, T1), reregister_at_boot=True),
     terminal_of("T1", "ACME", "X2"), False, ALREADY_REGISTERED),
    (replace(Identity().with_code("p" * 20, PROVISIONED, 1, {}), reregister_at_boot=True), T1,
     False, ALREADY_REGISTERED),
    (Identity().with_code("c" * 32, ISSUED, 1, T1).reset(), T1, False, ISSUE),
])
def test_registration_decision(identity: Identity, terminal: dict[str, str], online: bool,
                               expected: str) -> None:
    decision, why = registration_decision(identity, terminal, online)
    assert decision == expected and why
