"""`flask jobs housekeeping`: expired sessions and old digest records go; live ones stay."""

from __future__ import annotations

import secrets
from datetime import timedelta

from speakup.accounts.lifecycle import disable_account
from speakup.accounts.models import AuthSession, Role
from speakup.db import utcnow
from speakup.extensions import db
from speakup.jobs.models import DigestDelivery
from tests.conftest import count


def session_row(*, user=None, created_ago: timedelta, seen_ago: timedelta) -> AuthSession:
    now = utcnow()
    row = AuthSession(
        token_hash=secrets.token_bytes(32),
        kind="staff" if user else "reporter",
        user_id=user.id if user else None,
        stage="active",
        wrapped_secret=b"sealed",
        created_at=now - created_ago,
        last_seen_at=now - seen_ago,
    )
    db.session.add(row)
    return row


def test_housekeeping_deletes_expired_sessions_and_keeps_live_ones(app, cli, make_staff):
    staff = make_staff(Role.PANEL_MEMBER)
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    live = session_row(user=staff.user, created_ago=hour, seen_ago=minute)
    live_reporter = session_row(created_ago=minute, seen_ago=minute)
    session_row(user=staff.user, created_ago=hour, seen_ago=31 * minute)  # idle too long
    session_row(created_ago=13 * hour, seen_ago=minute)  # past the absolute limit
    for _ in range(200):  # reporters who closed the browser after a load test
        session_row(created_ago=2 * hour, seen_ago=2 * hour)
    db.session.commit()
    kept = {live.id, live_reporter.id}

    result = cli("jobs", "housekeeping")
    assert result.exit_code == 0, result.output
    assert "housekeeping: 202 expired session(s), 0 old digest record(s) deleted" in result.output
    assert {row.id for row in db.session.query(AuthSession)} == kept
    again = cli("jobs", "housekeeping")
    assert "0 expired session(s)" in again.output


def test_housekeeping_deletes_old_digest_records_but_never_a_pending_one(app, cli, make_staff):
    active, gone = make_staff(Role.PANEL_MEMBER), make_staff(Role.PANEL_MEMBER)
    old, recent = utcnow() - timedelta(days=40), utcnow() - timedelta(days=2)

    def delivery(staff, created_at, sent: bool, period: str) -> None:
        db.session.add(
            DigestDelivery(
                user_id=staff.user.id,
                period=period,
                created_at=created_at,
                sent_at=created_at if sent else None,
            )
        )

    delivery(active, old, True, "old-sent")  # deleted
    delivery(active, old, False, "old-pending")  # kept: still owed to an active reader
    delivery(active, recent, True, "recent-sent")  # kept: recent history
    delivery(gone, old, False, "gone-pending")  # deleted: will never be sent
    disable_account(gone.user, by=None)
    db.session.commit()

    result = cli("jobs", "housekeeping")
    assert result.exit_code == 0, result.output
    assert "2 old digest record(s) deleted" in result.output
    periods = {d.period for d in db.session.query(DigestDelivery)}
    assert periods == {"old-pending", "recent-sent"}
    assert count(DigestDelivery) == 2
