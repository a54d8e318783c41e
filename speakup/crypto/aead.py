"""AES-256-GCM with associated data that binds every ciphertext to its place.

Blob layout: ``version (1 byte) || nonce (12 bytes) || ciphertext+tag``. The version byte is
also part of the associated data, so a blob cannot be reinterpreted under another format.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from speakup.crypto.errors import DecryptionError

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER = bytes([FORMAT_VERSION])


def new_data_key() -> bytes:
    """A fresh 256-bit key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def field_aad(table: str, row_id: int, field: str) -> bytes:
    """Associated data binding a ciphertext to (format version, table, row id, field name)."""
    for part in (table, field):
        if not part or "|" in part:
            raise ValueError("table and field names must be non-empty and contain no '|'")
    return f"speakup|v{FORMAT_VERSION}|{table}|{int(row_id)}|{field}".encode()


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt under ``key`` with a fresh random 96-bit nonce."""
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = secrets.token_bytes(NONCE_BYTES)
    return _HEADER + nonce + AESGCM(key).encrypt(nonce, plaintext, _HEADER + aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`encrypt`; any mismatch raises :class:`DecryptionError`."""
    if len(key) != KEY_BYTES or len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _HEADER:
        raise DecryptionError("ciphertext did not authenticate")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, _HEADER + aad)
    except InvalidTag as exc:
        raise DecryptionError("ciphertext did not authenticate") from exc


def encrypt_field(key: bytes, plaintext: bytes, *, table: str, row_id: int, field: str) -> bytes:
    """Encrypt one column value of one row."""
    return encrypt(key, plaintext, field_aad(table, row_id, field))


def decrypt_field(key: bytes, blob: bytes, *, table: str, row_id: int, field: str) -> bytes:
    """Decrypt one column value; fails if the blob was moved to another row or field."""
    return decrypt(key, blob, field_aad(table, row_id, field))
