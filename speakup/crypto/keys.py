"""Hybrid post-quantum keypairs (ML-KEM-768 + X25519) and their storable parts.

The hybrid key has no serialiser of its own, so we store its parts: the 64-byte ML-KEM seed
and the 32-byte X25519 private key; the public half is 1,184 + 32 bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from speakup.crypto.errors import DecryptionError

MLKEM_SEED_BYTES = 64
X25519_BYTES = 32
MLKEM_PUBLIC_BYTES = 1184
PRIVATE_KEY_BYTES = MLKEM_SEED_BYTES + X25519_BYTES


@dataclass(frozen=True)
class PublicKey:
    """The public half of a hybrid keypair."""

    mlkem: bytes
    x25519: bytes

    def __post_init__(self) -> None:
        if len(self.mlkem) != MLKEM_PUBLIC_BYTES or len(self.x25519) != X25519_BYTES:
            raise ValueError("malformed hybrid public key")

    @property
    def key_id(self) -> str:
        """A stable identifier: the first 128 bits of SHA-256 over both public parts."""
        return hashlib.sha256(self.mlkem + self.x25519).hexdigest()[:32]

    def to_hpke(self) -> hpke.MLKEM768X25519PublicKey:
        """Rebuild the ``cryptography`` public key object."""
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.mlkem),
            x25519.X25519PublicKey.from_public_bytes(self.x25519),
        )


@dataclass(frozen=True)
class PrivateKey:
    """The private half; ``repr`` never shows key material."""

    mlkem_seed: bytes = field(repr=False)
    x25519: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.mlkem_seed) != MLKEM_SEED_BYTES or len(self.x25519) != X25519_BYTES:
            raise ValueError("malformed hybrid private key")

    def to_bytes(self) -> bytes:
        """96 bytes: ML-KEM seed then X25519 key. Only ever stored encrypted."""
        return self.mlkem_seed + self.x25519

    @classmethod
    def from_bytes(cls, raw: bytes) -> PrivateKey:
        """Inverse of :meth:`to_bytes`; a wrong length is treated as a decryption failure."""
        if len(raw) != PRIVATE_KEY_BYTES:
            raise DecryptionError("malformed private key")
        return cls(raw[:MLKEM_SEED_BYTES], raw[MLKEM_SEED_BYTES:])

    def to_hpke(self) -> hpke.MLKEM768X25519PrivateKey:
        """Rebuild the ``cryptography`` private key object."""
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed),
            x25519.X25519PrivateKey.from_private_bytes(self.x25519),
        )

    def public_key(self) -> PublicKey:
        """Derive the public half."""
        ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed).public_key()
        xk = x25519.X25519PrivateKey.from_private_bytes(self.x25519).public_key()
        return PublicKey(ml.public_bytes_raw(), xk.public_bytes_raw())


def generate_keypair() -> PrivateKey:
    """A new hybrid keypair from the operating system's CSPRNG."""
    ml = mlkem.MLKEM768PrivateKey.generate()
    xk = x25519.X25519PrivateKey.generate()
    return PrivateKey(ml.private_bytes_raw(), xk.private_bytes_raw())
