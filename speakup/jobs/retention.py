"""Retention: crypto-shred closed cases once their retention period has passed (DESIGN §4).

Shredding deletes every sealed copy of the case keys and then the case with everything in
it (messages, attachments, exclusions and reporter sessions cascade), in one transaction.
SQLite runs with ``secure_delete`` so freed pages are overwritten. The audit log records
the purge without content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from speakup.audit.services import record
from speakup.cases.custody import shred_case_keys
from speakup.cases.models import Case, Status
from speakup.extensions import db

FINISHED = (Status.CLOSED.value, Status.WITHDRAWN.value)


def purge_case(case: Case) -> None:
    """Crypto-shred one case: keys first, then the rows (attachments, messages, sessions
    cascade)."""
    case_id = case.id
    shred_case_keys(case_id)
    db.session.flush()
    db.session.delete(case)
    record("case.purged", actor_kind="system", case_id=case_id)


def purge_due_cases(now: datetime, batch_size: int = 100) -> int:
    """Purge every finished case whose ``purge_after`` has passed; returns how many."""
    purged = 0
    while True:
        due = db.session.scalars(
            select(Case)
            .where(
                Case.status.in_(FINISHED), Case.purge_after.is_not(None), Case.purge_after <= now
            )
            .order_by(Case.id)
            .limit(batch_size)
        ).all()
        if not due:
            return purged
        for case in due:
            purge_case(case)
            purged += 1
        db.session.commit()
