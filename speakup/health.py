"""Health endpoints for the load balancer and the operator, and the startup check.

``/healthz`` says only that this process answers (no database, so a database outage does not
make every host look dead at once). ``/readyz`` checks what a request needs: the database
and, when rate limits are kept in Redis, Redis. Both answer in plain text with no detail an
outsider could use — which dependency is down, never a hostname, address or error text; the
detail goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import text

from speakup.extensions import db
from speakup.security import public_endpoint

log = logging.getLogger("speakup.health")

bp = Blueprint("health", __name__)

#: seconds a readiness or startup probe waits for Redis before calling it down
REDIS_PROBE_TIMEOUT = 1.0


def redis_uri(config: dict[str, Any]) -> str | None:
    """The Redis URI of the rate-limit storage, if rate limits are kept in Redis."""
    uri = str(config.get("RATELIMIT_STORAGE_URI") or "")
    return uri if uri.startswith(("redis://", "rediss://", "redis+unix://")) else None


def redis_reachable(uri: str) -> bool:
    """One PING with a short timeout; the failure's type (never its text) is logged."""
    client = redis.Redis.from_url(
        uri, socket_connect_timeout=REDIS_PROBE_TIMEOUT, socket_timeout=REDIS_PROBE_TIMEOUT
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError) as exc:
        log.warning("redis probe failed (%s)", type(exc).__name__)
        return False
    finally:
        client.close()


def database_reachable() -> bool:
    """``SELECT 1`` on a pooled connection; the failure's type is logged."""
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception as exc:  # any driver error means "not ready", whatever its class
        log.warning("database probe failed (%s)", type(exc).__name__)
        db.session.rollback()
        return False
    return True


def _plain(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")


@bp.route("/healthz")
@public_endpoint
def healthz() -> Response:
    """Liveness: the process answers. Touches nothing else."""
    return _plain("ok", 200)


@bp.route("/readyz")
@public_endpoint
def readyz() -> Response:
    """Readiness: 200 when the database (and Redis, if configured) answer, else 503."""
    down = []
    if not database_reachable():
        down.append("database")
    uri = redis_uri(current_app.config)
    if uri and not redis_reachable(uri):
        down.append("redis")
    if down:
        return _plain("unavailable: " + ", ".join(down), 503)
    return _plain("ready", 200)


def check_dependencies_at_startup(app: Flask) -> None:
    """Warn loudly (not fail: the reporter's Send must keep working) when Redis is down."""
    uri = redis_uri(app.config)
    if uri and not redis_reachable(uri):
        log.error(
            "STARTUP: the Redis rate-limit storage is unreachable. Rate limits fall back to "
            "per-process memory (each worker counts on its own) until it comes back. "
            "Check SPEAKUP_RATELIMIT_STORAGE_URI and the Redis service; /readyz answers 503."
        )
