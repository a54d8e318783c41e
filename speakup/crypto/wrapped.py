"""A private key stored only encrypted under a key derived from a secret (a staff member's
password, a reporter's receipt): one helper for both, so the format cannot drift apart."""

from __future__ import annotations

from speakup.crypto.aead import decrypt_field, encrypt_field
from speakup.crypto.keys import PrivateKey


def wrap_private_key(
    private_key: PrivateKey, kek: bytes, *, table: str, row_id: int, field: str
) -> bytes:
    """AES-256-GCM of the private key under ``kek``, bound to its table, row and field."""
    return encrypt_field(kek, private_key.to_bytes(), table=table, row_id=row_id, field=field)


def unwrap_private_key(
    kek: bytes, blob: bytes, *, table: str, row_id: int, field: str
) -> PrivateKey:
    """The private key, or :class:`~speakup.crypto.errors.DecryptionError` when ``kek`` is
    wrong (a wrong password or receipt) or the blob was moved from another row or field."""
    return PrivateKey.from_bytes(decrypt_field(kek, blob, table=table, row_id=row_id, field=field))
