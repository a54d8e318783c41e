"""Hybrid keypairs: storable parts, derived public halves, key ids, no leaks in repr."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakup.crypto.errors import DecryptionError
from speakup.crypto.keys import (
    MLKEM_PUBLIC_BYTES,
    MLKEM_SEED_BYTES,
    PRIVATE_KEY_BYTES,
    X25519_BYTES,
    PrivateKey,
    PublicKey,
    generate_keypair,
)

raw_private_keys = st.binary(min_size=PRIVATE_KEY_BYTES, max_size=PRIVATE_KEY_BYTES)


def test_sizes() -> None:
    key = generate_keypair()
    assert PRIVATE_KEY_BYTES == 96
    assert len(key.mlkem_seed) == MLKEM_SEED_BYTES == 64
    assert len(key.x25519) == X25519_BYTES == 32
    assert len(key.to_bytes()) == PRIVATE_KEY_BYTES
    public = key.public_key()
    assert len(public.mlkem) == MLKEM_PUBLIC_BYTES == 1184
    assert len(public.x25519) == X25519_BYTES


def test_generated_round_trip() -> None:
    key = generate_keypair()
    raw = key.to_bytes()
    assert raw == key.mlkem_seed + key.x25519
    rebuilt = PrivateKey.from_bytes(raw)
    assert rebuilt == key
    assert rebuilt.to_bytes() == raw


@settings(max_examples=50)
@given(raw=raw_private_keys)
def test_arbitrary_bytes_round_trip(raw: bytes) -> None:
    key = PrivateKey.from_bytes(raw)
    assert key.to_bytes() == raw
    assert key.mlkem_seed == raw[:MLKEM_SEED_BYTES]
    assert key.x25519 == raw[MLKEM_SEED_BYTES:]
    # Any 96 bytes are a usable key and give the same public half every time.
    assert key.public_key() == PrivateKey.from_bytes(raw).public_key()


def test_generated_keys_are_distinct() -> None:
    raws = {generate_keypair().to_bytes() for _ in range(20)}
    assert len(raws) == 20


def test_public_key_is_deterministic() -> None:
    key = generate_keypair()
    first = key.public_key()
    assert key.public_key() == first
    assert PrivateKey.from_bytes(key.to_bytes()).public_key() == first
    assert PrivateKey(key.mlkem_seed, key.x25519).public_key() == first


def test_public_key_depends_on_both_parts() -> None:
    key = generate_keypair()
    other = generate_keypair()
    public = key.public_key()
    mixed_ml = PrivateKey(other.mlkem_seed, key.x25519).public_key()
    mixed_x = PrivateKey(key.mlkem_seed, other.x25519).public_key()
    assert mixed_ml.mlkem != public.mlkem and mixed_ml.x25519 == public.x25519
    assert mixed_x.x25519 != public.x25519 and mixed_x.mlkem == public.mlkem
    assert len({public.key_id, mixed_ml.key_id, mixed_x.key_id}) == 3


def test_public_key_rebuilds_for_hpke() -> None:
    key = generate_keypair()
    # Round trips through the cryptography objects without error.
    key.to_hpke()
    key.public_key().to_hpke()


def test_key_id_is_stable() -> None:
    key = generate_keypair()
    key_id = key.public_key().key_id
    assert len(key_id) == 32
    assert all(c in "0123456789abcdef" for c in key_id)
    assert key.public_key().key_id == key_id
    assert PrivateKey.from_bytes(key.to_bytes()).public_key().key_id == key_id
    public = key.public_key()
    assert PublicKey(public.mlkem, public.x25519).key_id == key_id


def test_key_id_differs_between_keys() -> None:
    ids = {generate_keypair().public_key().key_id for _ in range(20)}
    assert len(ids) == 20


def test_private_key_repr_shows_no_key_material() -> None:
    key = generate_keypair()
    for text in (repr(key), str(key), f"{key!r}", f"{key}"):
        assert "PrivateKey" in text
        for secret in (key.mlkem_seed, key.x25519, key.to_bytes()):
            assert repr(secret) not in text
            assert secret.hex() not in text
            # Not even a fragment of the key in any common rendering.
            assert secret[:8].hex() not in text
            assert repr(secret[:8])[2:-1] not in text


@pytest.mark.parametrize("length", [0, 1, 32, 64, 95, 97, 128])
def test_from_bytes_rejects_wrong_length(length: int) -> None:
    with pytest.raises(DecryptionError):
        PrivateKey.from_bytes(b"\x01" * length)


@pytest.mark.parametrize(
    ("seed_len", "x_len"), [(0, 32), (63, 32), (65, 32), (64, 0), (64, 31), (64, 33), (32, 64)]
)
def test_private_key_rejects_malformed_parts(seed_len: int, x_len: int) -> None:
    with pytest.raises(ValueError):
        PrivateKey(b"\x01" * seed_len, b"\x02" * x_len)


@pytest.mark.parametrize(
    ("ml_len", "x_len"),
    [(0, 32), (1183, 32), (1185, 32), (1184, 0), (1184, 31), (1184, 33), (1216, 0)],
)
def test_public_key_rejects_malformed_parts(ml_len: int, x_len: int) -> None:
    with pytest.raises(ValueError):
        PublicKey(b"\x01" * ml_len, b"\x02" * x_len)


def test_keys_are_immutable() -> None:
    key = generate_keypair()
    with pytest.raises(AttributeError):
        key.x25519 = b"\x00" * 32  # type: ignore[misc]
    public = key.public_key()
    with pytest.raises(AttributeError):
        public.mlkem = b"\x00" * MLKEM_PUBLIC_BYTES  # type: ignore[misc]
