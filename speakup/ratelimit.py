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
import logging
from datetime import UTC, datetime

from flask import Flask, current_app, request


def rate_limit_key() -> str:
    """Salted, daily-rotating, truncated token for the requesting client."""
    salt: bytes = current_app.config["RATELIMIT_SALT"]
    day = datetime.now(UTC).strftime("%Y-%m-%d").encode()
    address = (request.remote_addr or "").encode()  # privacy: hashed at once, never kept
    return hmac.new(salt, day + b"|" + address, hashlib.sha256).hexdigest()[:24]


# Redis down -----------------------------------------------------------------------------
#
# When the shared Redis storage cannot be reached, Flask-Limiter (with
# RATELIMIT_IN_MEMORY_FALLBACK_ENABLED) counts in this process's memory instead, so a
# reporter's Send still works rather than failing after she typed the whole form. Limits
# then hold per worker, not across hosts: weaker, never absent. Flask-Limiter notes the
# switch with one WARNING per outage; this filter raises it to one ERROR line of ours that
# says what it means, and notes the recovery.

_FELL_BACK = "falling back to in-memory storage"
_RECOVERED = "Rate limit storage recovered"
_limits_log = logging.getLogger("speakup.ratelimit")

#: short socket timeouts so a dead or black-holed Redis costs a request one second, not minutes
REDIS_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}


class _FallbackAlarm(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _FELL_BACK in message:
            _limits_log.error(
                "RATE LIMITS DEGRADED: the Redis rate-limit storage is unreachable; each "
                "worker now limits on its own, in memory, until Redis answers again"
            )
        elif _RECOVERED in message:
            _limits_log.warning("rate limits: the Redis storage answers again; shared limits back")
        return True


def init_rate_limit_fallback(app: Flask) -> None:
    """Per-process fallback when Redis is down, short Redis timeouts, and the loud log line."""
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    if str(app.config.get("RATELIMIT_STORAGE_URI", "")).startswith("redis"):
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", dict(REDIS_STORAGE_OPTIONS))
    limiter_log = logging.getLogger("flask-limiter")
    if not any(isinstance(f, _FallbackAlarm) for f in limiter_log.filters):
        limiter_log.addFilter(_FallbackAlarm())
