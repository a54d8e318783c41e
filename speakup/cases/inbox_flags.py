"""What changed on a case, for the inbox: "the reporter wrote" and "detriment reported".

Both come from message metadata only (who wrote, and when): nothing is decrypted, so the
inbox still opens no case key. One grouped query serves a whole page of cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select, type_coerce
from sqlalchemy import case as sql_case

from speakup.cases.models import (
    DETRIMENT_AUTHOR,
    GUARDIAN_AUTHOR,
    REPORTER_AUTHORS,
    Case,
    Message,
)
from speakup.db import UTCDateTime
from speakup.extensions import db

#: inbox filters these flags add (value → label)
FLAG_FILTERS = {
    "reporter_wrote": "Reporter wrote",
    "detriment": "Detriment reported",
}


@dataclass(frozen=True)
class CaseFlags:
    """What a guardian should notice about one case without opening it."""

    #: the reporter's latest message is newer than the last guardian message (or there is none)
    reporter_wrote_at: datetime | None = None
    #: when the reporter first told us of detriment (None if never)
    detriment_since: datetime | None = None


def _last_guardian_message() -> ColumnElement[datetime]:
    return (
        select(func.max(Message.created_at))
        .where(Message.case_id == Case.id, Message.author_kind == GUARDIAN_AUTHOR)
        .correlate(Case)
        .scalar_subquery()
    )


def flag_filter(name: str) -> ColumnElement[bool] | None:
    """SQL condition on ``Case`` for a flag filter, or None if ``name`` is not one."""
    if name == "reporter_wrote":
        last = _last_guardian_message()
        return exists().where(
            Message.case_id == Case.id,
            Message.author_kind.in_(REPORTER_AUTHORS),
            or_(last.is_(None), Message.created_at > last),
        )
    if name == "detriment":
        return exists().where(Message.case_id == Case.id, Message.author_kind == DETRIMENT_AUTHOR)
    return None


def flags_for(case_ids: Sequence[int]) -> dict[int, CaseFlags]:
    """The flags of these cases, in one grouped query over message metadata."""
    if not case_ids:
        return {}
    # type_coerce keeps the UTC column type through the aggregate (SQLite returns text).
    reporter_at = type_coerce(
        func.max(sql_case((Message.author_kind.in_(REPORTER_AUTHORS), Message.created_at))),
        UTCDateTime(),
    )
    guardian_at = type_coerce(
        func.max(sql_case((Message.author_kind == GUARDIAN_AUTHOR, Message.created_at))),
        UTCDateTime(),
    )
    detriment_at = type_coerce(
        func.min(sql_case((Message.author_kind == DETRIMENT_AUTHOR, Message.created_at))),
        UTCDateTime(),
    )
    rows = db.session.execute(
        select(Message.case_id, reporter_at, guardian_at, detriment_at)
        .where(Message.case_id.in_(case_ids))
        .group_by(Message.case_id)
    ).all()
    flags: dict[int, CaseFlags] = {}
    for case_id, reporter, guardian, detriment in rows:
        wrote = reporter if reporter and (guardian is None or reporter > guardian) else None
        flags[case_id] = CaseFlags(wrote, detriment)
    return flags
