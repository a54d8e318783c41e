"""The one place that touches a client address, and why it is safe.

DESIGN §3.2 allows exactly one derivative of the network address: a transient, salted,
in-memory rate-limit key. The address is read here, immediately HMAC'd with a secret salt
(kept outside the database) and today's date, and truncated; only that token reaches the
limiter's storage (process memory, or Redis with expiry in production). It is never logged,
never written to the database, and changes every day, so it cannot be joined to anything.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from flask import current_app, request


def rate_limit_key() -> str:
    """Salted, daily-rotating, truncated token for the requesting client."""
    salt: bytes = current_app.config["RATELIMIT_SALT"]
    day = datetime.now(UTC).strftime("%Y-%m-%d").encode()
    address = (request.remote_addr or "").encode()  # privacy: hashed at once, never kept
    return hmac.new(salt, day + b"|" + address, hashlib.sha256).hexdigest()[:24]
