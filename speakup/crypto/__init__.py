"""Speakup's cryptography: small, typed, no Flask imports (DESIGN §4).

Everything here is built from ``cryptography`` and ``argon2-cffi``; nothing is home-made.
"""

from speakup.crypto.aead import (
    FORMAT_VERSION,
    decrypt,
    decrypt_field,
    encrypt,
    encrypt_field,
    field_aad,
    new_data_key,
)
from speakup.crypto.errors import CryptoError, DecryptionError
from speakup.crypto.kdf import Argon2Params, derive_key, new_salt
from speakup.crypto.keys import PrivateKey, PublicKey, generate_keypair
from speakup.crypto.sealing import open_sealed, seal
from speakup.crypto.wrapped import unwrap_private_key, wrap_private_key

__all__ = [
    "FORMAT_VERSION",
    "Argon2Params",
    "CryptoError",
    "DecryptionError",
    "PrivateKey",
    "PublicKey",
    "decrypt",
    "decrypt_field",
    "derive_key",
    "encrypt",
    "encrypt_field",
    "field_aad",
    "generate_keypair",
    "new_data_key",
    "new_salt",
    "open_sealed",
    "seal",
    "unwrap_private_key",
    "wrap_private_key",
]
