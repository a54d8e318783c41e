"""Sealing a small secret (a case key) to one person's public key with hybrid HPKE.

Suite: KEM ML-KEM-768+X25519, KDF HKDF-SHA256, AEAD AES-256-GCM (RFC 9180). The HPKE
``info`` binds purpose, case id and recipient key id, so a sealed key cannot be replayed onto
another case, another purpose or another recipient.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from speakup.crypto.errors import DecryptionError
from speakup.crypto.keys import PrivateKey, PublicKey

SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def seal_info(purpose: str, case_id: int, key_id: str) -> bytes:
    """The HPKE ``info`` string for one sealed copy."""
    if not purpose or "/" in purpose:
        raise ValueError("purpose must be a non-empty word")
    return f"speakup/v1/{purpose}/case={int(case_id)}/recipient={key_id}".encode()


def seal(recipient: PublicKey, secret: bytes, *, purpose: str, case_id: int) -> bytes:
    """Seal ``secret`` so that only ``recipient``'s private key opens it, for this case."""
    info = seal_info(purpose, case_id, recipient.key_id)
    return SUITE.encrypt(secret, recipient.to_hpke(), info=info)


def open_sealed(private: PrivateKey, sealed: bytes, *, purpose: str, case_id: int) -> bytes:
    """Open a sealed copy; any mismatch raises :class:`DecryptionError`."""
    info = seal_info(purpose, case_id, private.public_key().key_id)
    try:
        return SUITE.decrypt(sealed, private.to_hpke(), info=info)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError("sealed key did not open") from exc
