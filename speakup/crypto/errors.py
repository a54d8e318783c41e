"""Domain exceptions raised by the crypto module."""


class CryptoError(Exception):
    """Base class for every failure in :mod:`speakup.crypto`."""


class DecryptionError(CryptoError):
    """Ciphertext did not authenticate: wrong key, wrong binding or tampered bytes.

    Deliberately carries no detail: callers must not learn which part failed.
    """
