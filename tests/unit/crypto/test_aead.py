"""AES-256-GCM field encryption: round trips, binding to (table, row, field), tampering."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from speakup.crypto import aead
from speakup.crypto.aead import (
    FORMAT_VERSION,
    KEY_BYTES,
    NONCE_BYTES,
    decrypt,
    decrypt_field,
    encrypt,
    encrypt_field,
    field_aad,
    new_data_key,
)
from speakup.crypto.errors import CryptoError, DecryptionError

TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

names = st.text(min_size=1, max_size=40).filter(lambda s: "|" not in s)
row_ids = st.integers(min_value=-(2**63), max_value=2**63)
places = st.tuples(names, row_ids, names)
keys = st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES)
plaintexts = st.binary(max_size=2048)


def _place(p: tuple[str, int, str]) -> dict[str, object]:
    table, row_id, field = p
    return {"table": table, "row_id": row_id, "field": field}


# --- round trips --------------------------------------------------------------------------


@given(key=keys, plaintext=plaintexts, place=places)
def test_field_round_trip(key: bytes, plaintext: bytes, place: tuple[str, int, str]) -> None:
    blob = encrypt_field(key, plaintext, **_place(place))
    assert decrypt_field(key, blob, **_place(place)) == plaintext


@given(key=keys, plaintext=plaintexts, aad=st.binary(max_size=256))
def test_raw_round_trip(key: bytes, plaintext: bytes, aad: bytes) -> None:
    assert decrypt(key, encrypt(key, plaintext, aad), aad) == plaintext


@given(plaintext=plaintexts)
def test_blob_layout(plaintext: bytes) -> None:
    blob = encrypt(KEY, plaintext, b"aad")
    assert len(blob) == len(plaintext) + OVERHEAD
    assert blob[0] == FORMAT_VERSION
    # The plaintext must not appear in the clear (for anything long enough to be meaningful).
    if len(plaintext) >= 8:
        assert plaintext not in blob


def test_empty_plaintext_round_trip() -> None:
    blob = encrypt_field(KEY, b"", table="cases", row_id=1, field="body")
    assert len(blob) == OVERHEAD
    assert decrypt_field(KEY, blob, table="cases", row_id=1, field="body") == b""


# --- tampering ----------------------------------------------------------------------------


@given(
    plaintext=plaintexts,
    data=st.data(),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_fails(plaintext: bytes, data: st.DataObject, mask: int) -> None:
    blob = encrypt_field(KEY, plaintext, table="cases", row_id=7, field="body")
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    tampered = bytearray(blob)
    tampered[index] ^= mask
    with pytest.raises(DecryptionError):
        decrypt_field(KEY, bytes(tampered), table="cases", row_id=7, field="body")


def test_every_single_bit_flip_fails() -> None:
    blob = encrypt_field(KEY, b"the concern text", table="cases", row_id=7, field="body")
    for index in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << bit
            with pytest.raises(DecryptionError):
                decrypt_field(KEY, bytes(tampered), table="cases", row_id=7, field="body")


@given(plaintext=plaintexts, data=st.data())
def test_truncated_blob_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = encrypt(KEY, plaintext, b"aad")
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="cut")
    with pytest.raises(DecryptionError):
        decrypt(KEY, blob[:cut], b"aad")


def test_every_truncation_fails() -> None:
    blob = encrypt(KEY, b"short", b"aad")
    for cut in range(len(blob)):
        with pytest.raises(DecryptionError):
            decrypt(KEY, blob[:cut], b"aad")
        # Dropping bytes from the front is no better.
        with pytest.raises(DecryptionError):
            decrypt(KEY, blob[len(blob) - cut :], b"aad")


@given(extra=st.binary(min_size=1, max_size=32))
def test_appended_bytes_fail(extra: bytes) -> None:
    blob = encrypt(KEY, b"payload", b"aad")
    with pytest.raises(DecryptionError):
        decrypt(KEY, blob + extra, b"aad")


def test_other_format_version_fails_even_if_rest_is_valid() -> None:
    # Build a blob exactly as encrypt() does but under another version byte: the header check
    # and the AAD both reject it.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b"\x00" * NONCE_BYTES
    for version in (0, 2, 255):
        header = bytes([version])
        blob = header + nonce + AESGCM(KEY).encrypt(nonce, b"x", header + b"aad")
        with pytest.raises(DecryptionError):
            decrypt(KEY, blob, b"aad")


# --- binding ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(plaintext=plaintexts, a=places, b=places)
def test_other_place_fails(
    plaintext: bytes, a: tuple[str, int, str], b: tuple[str, int, str]
) -> None:
    assume(a != b)
    blob = encrypt_field(KEY, plaintext, **_place(a))
    with pytest.raises(DecryptionError):
        decrypt_field(KEY, blob, **_place(b))


@pytest.mark.parametrize(
    "other",
    [
        {"table": "reports", "row_id": 1, "field": "body"},
        {"table": "cases", "row_id": 2, "field": "body"},
        {"table": "cases", "row_id": -1, "field": "body"},
        {"table": "cases", "row_id": 1, "field": "title"},
        {"table": "Cases", "row_id": 1, "field": "body"},
        {"table": "cases", "row_id": 1, "field": "body "},
    ],
)
def test_each_binding_component_matters(other: dict[str, object]) -> None:
    blob = encrypt_field(KEY, b"secret", table="cases", row_id=1, field="body")
    with pytest.raises(DecryptionError):
        decrypt_field(KEY, blob, **other)


@given(plaintext=plaintexts, aad=st.binary(max_size=64), other=st.binary(max_size=64))
def test_other_aad_fails(plaintext: bytes, aad: bytes, other: bytes) -> None:
    assume(aad != other)
    blob = encrypt(KEY, plaintext, aad)
    with pytest.raises(DecryptionError):
        decrypt(KEY, blob, other)


@given(plaintext=plaintexts, key=keys, wrong=keys, place=places)
def test_wrong_key_fails(
    plaintext: bytes, key: bytes, wrong: bytes, place: tuple[str, int, str]
) -> None:
    assume(key != wrong)
    blob = encrypt_field(key, plaintext, **_place(place))
    with pytest.raises(DecryptionError):
        decrypt_field(wrong, blob, **_place(place))


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33, 64])
def test_wrong_key_length(length: int) -> None:
    with pytest.raises(ValueError):
        encrypt(b"k" * length, b"x", b"aad")
    blob = encrypt(KEY, b"x", b"aad")
    with pytest.raises(DecryptionError):
        decrypt(b"k" * length, blob, b"aad")


def test_decryption_error_is_a_crypto_error_with_no_detail() -> None:
    blob = encrypt(KEY, b"x", b"aad")
    with pytest.raises(CryptoError) as excinfo:
        decrypt(OTHER_KEY, blob, b"aad")
    assert isinstance(excinfo.value, DecryptionError)
    message = str(excinfo.value)
    # The same message for every failure mode, so callers cannot tell which part failed.
    for bad_call in (
        lambda: decrypt(KEY, blob, b"other"),
        lambda: decrypt(KEY, blob[:5], b"aad"),
        lambda: decrypt(KEY, b"\x02" + blob[1:], b"aad"),
    ):
        with pytest.raises(DecryptionError) as other:
            bad_call()
        assert str(other.value) == message


# --- nonces and keys ----------------------------------------------------------------------


def test_no_nonce_reuse() -> None:
    count = 2000
    blobs: list[bytes] = []
    for _ in range(count):
        blobs.append(encrypt_field(KEY, b"same plaintext", table="t", row_id=1, field="f"))
    nonces = {blob[1 : 1 + NONCE_BYTES] for blob in blobs}
    assert len(nonces) == count
    assert len(set(blobs)) == count
    # ...and every one of them still decrypts.
    assert all(
        decrypt_field(KEY, b, table="t", row_id=1, field="f") == b"same plaintext" for b in blobs
    )


def test_nonce_comes_from_the_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_token_bytes(n: int) -> bytes:
        calls.append(n)
        return bytes([len(calls)]) * n

    monkeypatch.setattr(aead.secrets, "token_bytes", fake_token_bytes)
    first = encrypt(KEY, b"x", b"aad")
    second = encrypt(KEY, b"x", b"aad")
    assert calls == [NONCE_BYTES, NONCE_BYTES]
    assert first[1 : 1 + NONCE_BYTES] == b"\x01" * NONCE_BYTES
    assert second[1 : 1 + NONCE_BYTES] == b"\x02" * NONCE_BYTES


def test_new_data_key() -> None:
    data_keys = {new_data_key() for _ in range(500)}
    assert len(data_keys) == 500
    assert all(len(k) == KEY_BYTES for k in data_keys)


# --- field_aad ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "field"),
    [("", "body"), ("cases", ""), ("", ""), ("ca|ses", "body"), ("cases", "bo|dy"), ("|", "x")],
)
def test_field_aad_rejects_bad_names(table: str, field: str) -> None:
    with pytest.raises(ValueError):
        field_aad(table, 1, field)
    with pytest.raises(ValueError):
        encrypt_field(KEY, b"x", table=table, row_id=1, field=field)
    with pytest.raises(ValueError):
        decrypt_field(KEY, b"\x01" + b"\x00" * 40, table=table, row_id=1, field=field)


@given(a=places, b=places)
def test_field_aad_is_injective(a: tuple[str, int, str], b: tuple[str, int, str]) -> None:
    assert (field_aad(*a) == field_aad(*b)) == (a == b)


def test_field_aad_binds_format_version() -> None:
    assert f"v{FORMAT_VERSION}".encode() in field_aad("cases", 1, "body")
