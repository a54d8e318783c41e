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
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix


def salted_key(*parts: bytes) -> str:
    """A salted, daily-rotating, truncated token for ``parts``: all the limiter ever keeps."""
    salt: bytes = current_app.config["RATELIMIT_SALT"]
    day = datetime.now(UTC).strftime("%Y-%m-%d").encode()
    return hmac.new(salt, b"|".join((day, *parts)), hashlib.sha256).hexdigest()[:24]


def rate_limit_key() -> str:
    """Salted, daily-rotating, truncated token for the requesting client."""
    address = (request.remote_addr or "").encode()  # privacy: hashed at once, never kept
    return salted_key(b"address", address)


# Trusted proxies --------------------------------------------------------------------------


def init_proxy_hops(app: Flask) -> None:
    """Believe the last ``WEB_PROXY_HOPS`` X-Forwarded-For/-Proto entries (0: none).

    Behind the TLS proxy of the deployment notes every request comes from 127.0.0.1, so
    without this all reporters of the region share one allowance. Set it to the number of
    proxies in front of gunicorn that set those headers, and to no more: a client can put
    any X-Forwarded-For it likes, and only the entries the trusted proxies added count.
    """
    hops = int(app.config.get("WEB_PROXY_HOPS", 0))
    if hops < 0:
        raise ValueError("WEB_PROXY_HOPS must be 0 or more")
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops
        )


# Form tokens ------------------------------------------------------------------------------
#
# A shared address (a hospital's Wi-Fi, a mobile network) is shared by honest reporters
# and by whoever floods it, so the limit that matters for Send is per form: each report
# form carries a token issued and signed here, good for a few tries. A flood replaying one
# form, or forging tokens, spends only its own allowance; the per-address limits stay as a
# coarse outer guard with generous numbers.

_FORM_PURPOSE = b"speakup-form-token"


def _form_signature(nonce: str) -> str:
    key: bytes = current_app.config["SECRET_KEY"]
    if isinstance(key, str):
        key = key.encode()
    mac = hmac.new(key, _FORM_PURPOSE + b"|" + nonce.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def issue_form_token() -> str:
    """A fresh form token: a random nonce and its signature."""
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_form_signature(nonce)}"


def form_token_is_ours(token: str) -> bool:
    """Whether this server issued ``token`` (any other string is forged or stale)."""
    nonce, _, signature = token.partition(".")
    if not nonce or len(token) > 200:
        return False
    return hmac.compare_digest(signature, _form_signature(nonce))


def form_token_key(field: str) -> Callable[[], str]:
    """A limiter key per form token in ``field``. Tokens not issued here all share one
    key per address, so forging fresh tokens buys nothing."""

    def key() -> str:
        token = request.form.get(field, "")
        if form_token_is_ours(token):
            return salted_key(b"form", token.encode())
        return salted_key(b"unsigned-form", (request.remote_addr or "").encode())

    return key


def not_refused(response: object) -> bool:
    """Count a request against a coarse limit unless a limit refused it: the requests a
    per-form limit turned away do not use up the allowance of everyone at that address."""
    return getattr(response, "status_code", 0) != 429


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
