"""Reporter receipts: 80 random bits as 16 Crockford base32 characters.

Shown as four groups of four (``7K3M-Q9TX-...``) so it is easy to copy or read aloud.
Input is tolerant of case, spaces, hyphens and the look-alikes Crockford defines
(O→0, I/L→1). The server only stores an HMAC of the normalised receipt (a blind index) keyed
with a pepper kept outside the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16  # 16 × 5 bits = 80 bits
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.]+")


def generate_receipt() -> str:
    """A new receipt in its display form."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return format_receipt(raw)


def format_receipt(normalised: str) -> str:
    """Group a normalised receipt in fours with hyphens."""
    return "-".join(normalised[i : i + 4] for i in range(0, len(normalised), 4))


def normalise_receipt(text: str) -> str | None:
    """Canonical form of a typed receipt, or ``None`` if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    candidate = _SEPARATORS.sub("", text).upper().translate(_LOOKALIKES)
    if len(candidate) != LENGTH or any(ch not in ALPHABET for ch in candidate):
        return None
    return candidate


def blind_index(pepper: bytes, normalised: str) -> bytes:
    """HMAC-SHA256 of a normalised receipt: the only form of it the database holds."""
    if len(pepper) < 32:
        raise ValueError("receipt pepper must be at least 32 bytes")
    return hmac.new(pepper, normalised.encode("ascii"), hashlib.sha256).digest()
