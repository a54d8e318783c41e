"""Who is named as involved in an organisation's concerns, asked without reading any case.

The statistics feature reads no case (its facts cannot be linked to one), so the national
return asks this module instead of joining ``concern_case`` itself: the answer is one
yes/no, never a count or a reference.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select

from speakup.accounts.models import Role, User
from speakup.cases.models import Case, Exclusion, Route
from speakup.extensions import db


def _named(organisation_id: int, start: datetime, end: datetime) -> Select[int]:
    # Only the organisation's own route: a concern sent to the regional pool or panel is
    # invisible to the trust (DESIGN §3.11), and its own return does not count it either.
    return (
        select(Exclusion.id)
        .join(Case, Case.id == Exclusion.case_id)
        .where(
            Case.organisation_id == organisation_id,
            Case.route == Route.ORGANISATION,
            Case.received_at >= start,
            Case.received_at < end,
        )
    )


def is_named_in_period(user_id: int, organisation_id: int, start: datetime, end: datetime) -> bool:
    """Whether ``user_id`` is named as involved in a concern of the organisation received in
    ``[start, end)`` (organisation route only)."""
    query = _named(organisation_id, start, end).where(Exclusion.user_id == user_id)
    return bool(db.session.scalar(select(query.exists())))


def lead_named_in_period(organisation_id: int, start: datetime, end: datetime) -> bool:
    """Whether a lead guardian of the organisation is named in such a concern."""
    query = _named(organisation_id, start, end).where(
        Exclusion.user_id.in_(
            select(User.id).where(
                User.organisation_id == organisation_id, User.role == Role.LEAD_GUARDIAN
            )
        )
    )
    return bool(db.session.scalar(select(query.exists())))
