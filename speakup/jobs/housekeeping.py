"""Housekeeping: delete rows whose time is up, so nothing stale piles up between visits.

Sessions are otherwise deleted only when their cookie comes back after the timeout; a
reporter who closes the browser never returns it, so without this job their (locked) session
rows would stay. Sent digest records are kept only long enough to show recent history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select

from speakup.accounts.models import AuthSession, User
from speakup.extensions import db
from speakup.jobs.models import DigestDelivery


@dataclass(frozen=True)
class HousekeepingResult:
    """How many rows of each kind one run deleted."""

    sessions: int
    digests: int


def delete_expired_sessions(now: datetime, config: dict[str, Any]) -> int:
    """Sessions past the idle or the absolute timeout (the same rule sign-in applies)."""
    idle = timedelta(seconds=int(config["AUTH_IDLE_TIMEOUT_SECONDS"]))
    absolute = timedelta(seconds=int(config["AUTH_ABSOLUTE_TIMEOUT_SECONDS"]))
    result = db.session.execute(
        delete(AuthSession).where(
            or_(AuthSession.last_seen_at < now - idle, AuthSession.created_at < now - absolute)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delete_old_digest_records(now: datetime, keep_days: int) -> int:
    """Digest records older than ``keep_days``: sent ones, and unsent ones of accounts
    since disabled (which will never be sent). Unsent ones of active readers stay queued."""
    cutoff = now - timedelta(days=keep_days)
    disabled = select(User.id).where(User.disabled.is_(True))
    result = db.session.execute(
        delete(DigestDelivery).where(
            DigestDelivery.created_at < cutoff,
            or_(DigestDelivery.sent_at.is_not(None), DigestDelivery.user_id.in_(disabled)),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def run_housekeeping(now: datetime, config: dict[str, Any]) -> HousekeepingResult:
    """Delete everything whose time is up, in one transaction."""
    sessions = delete_expired_sessions(now, config)
    digests = delete_old_digest_records(now, int(config["JOBS_DIGEST_KEEP_DAYS"]))
    db.session.commit()
    return HousekeepingResult(sessions, digests)
