"""Hybrid HPKE sealing of case keys to one person, bound to purpose, case and recipient."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from speakup.crypto.errors import DecryptionError
from speakup.crypto.keys import PrivateKey, generate_keypair
from speakup.crypto.sealing import SUITE, open_sealed, seal, seal_info

SEALED_32_BYTES = 1168

ALICE = generate_keypair()
BOB = generate_keypair()
SECRET = bytes(range(32))

purposes = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s)
case_ids = st.integers(min_value=-(2**63), max_value=2**63)


@settings(max_examples=50)
@given(secret=st.binary(max_size=256), purpose=purposes, case_id=case_ids)
def test_round_trip(secret: bytes, purpose: str, case_id: int) -> None:
    sealed = seal(ALICE.public_key(), secret, purpose=purpose, case_id=case_id)
    assert open_sealed(ALICE, sealed, purpose=purpose, case_id=case_id) == secret


def test_round_trip_through_stored_key_bytes() -> None:
    # The private key is stored as bytes and rebuilt; the rebuilt key must open old seals.
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    rebuilt = PrivateKey.from_bytes(ALICE.to_bytes())
    assert open_sealed(rebuilt, sealed, purpose="dek", case_id=1) == SECRET


def test_output_length_for_a_32_byte_key() -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    assert len(sealed) == SEALED_32_BYTES


def test_sealing_is_randomised() -> None:
    seals = {seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1) for _ in range(20)}
    assert len(seals) == 20
    assert all(SECRET not in s for s in seals)


def test_other_recipient_cannot_open() -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    with pytest.raises(DecryptionError):
        open_sealed(BOB, sealed, purpose="dek", case_id=1)
    # ...and a freshly generated stranger cannot either.
    with pytest.raises(DecryptionError):
        open_sealed(generate_keypair(), sealed, purpose="dek", case_id=1)


def test_recipient_key_id_is_bound_into_info() -> None:
    # With Alice's own private key but the info naming Bob as recipient, opening must fail:
    # the binding to the recipient is in the info, not only in the KEM.
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    good = seal_info("dek", 1, ALICE.public_key().key_id)
    assert SUITE.decrypt(sealed, ALICE.to_hpke(), info=good) == SECRET
    wrong = seal_info("dek", 1, BOB.public_key().key_id)
    with pytest.raises(InvalidTag):
        SUITE.decrypt(sealed, ALICE.to_hpke(), info=wrong)


@settings(max_examples=50)
@given(case_id=case_ids, other=case_ids)
def test_replay_onto_another_case_fails(case_id: int, other: int) -> None:
    assume(case_id != other)
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=case_id)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, sealed, purpose="dek", case_id=other)


@settings(max_examples=50)
@given(purpose=purposes, other=purposes)
def test_other_purpose_fails(purpose: str, other: str) -> None:
    assume(purpose != other)
    sealed = seal(ALICE.public_key(), SECRET, purpose=purpose, case_id=1)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, sealed, purpose=other, case_id=1)


def test_dek_and_idk_are_not_interchangeable() -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, sealed, purpose="idk", case_id=1)


def test_every_flipped_byte_fails() -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            open_sealed(ALICE, bytes(tampered), purpose="dek", case_id=1)


@settings(max_examples=50)
@given(data=st.data(), mask=st.integers(min_value=1, max_value=255))
def test_flipped_byte_fails(data: st.DataObject, mask: int) -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    index = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1), label="index")
    tampered = bytearray(sealed)
    tampered[index] ^= mask
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, bytes(tampered), purpose="dek", case_id=1)


@pytest.mark.parametrize("cut", [0, 1, 32, 1088, 1120, 1121, 1151, 1152, 1167])
def test_truncated_fails(cut: int) -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, sealed[:cut], purpose="dek", case_id=1)


def test_appended_bytes_fail() -> None:
    sealed = seal(ALICE.public_key(), SECRET, purpose="dek", case_id=1)
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, sealed + b"\x00", purpose="dek", case_id=1)


@pytest.mark.parametrize("purpose", ["", "dek/case=2", "/"])
def test_bad_purpose_rejected(purpose: str) -> None:
    with pytest.raises(ValueError):
        seal(ALICE.public_key(), SECRET, purpose=purpose, case_id=1)
    with pytest.raises(ValueError):
        seal_info(purpose, 1, "00")


@given(
    a=st.tuples(purposes, case_ids, st.sampled_from(["a" * 32, "b" * 32])),
    b=st.tuples(purposes, case_ids, st.sampled_from(["a" * 32, "b" * 32])),
)
def test_seal_info_is_injective(a: tuple[str, int, str], b: tuple[str, int, str]) -> None:
    assert (seal_info(*a) == seal_info(*b)) == (a == b)
