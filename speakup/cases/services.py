"""The guardian's side of the loop: the inbox, opening a case, replying, downloading."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import selectinload

from speakup.accounts.models import Role, User
from speakup.audit.services import record
from speakup.cases.content import (
    AttachmentView,
    CaseContent,
    add_message,
    read_attachment,
    read_case_content,
)
from speakup.cases.custody import (
    excluded_user_ids,
    open_case_key,
    pending_readers,
    reader_ids,
)
from speakup.cases.inbox_flags import FLAG_FILTERS, CaseFlags, flag_filter, flags_for
from speakup.cases.models import Case, CaseKey, Exclusion, KeyType, RecipientKind, Route, Status
from speakup.cases.policy import policy_for
from speakup.cases.triage import Triage, read_triage
from speakup.cases.workflow import FINISHED, note_update_to_reporter
from speakup.crypto import PrivateKey
from speakup.db import utcnow
from speakup.errors import NotFoundError
from speakup.extensions import db
from speakup.reporting.attachments import SanitisedFile

INBOX_FILTERS = {
    "all": "All cases",
    "open": "Open cases",
    "overdue": "Overdue",
    "due_soon": "Due soon",
    "checkin": "Detriment check-in due",
    **FLAG_FILTERS,
}
INBOX_SORTS = {
    "received": "Newest first",
    "due": "Next deadline first",
    "priority": "Highest priority first",
}
_FINISHED_VALUES = [s.value for s in FINISHED]


@dataclass(frozen=True)
class InboxPage:
    """One page of a reader's cases (metadata only: nothing is decrypted for the list)."""

    cases: list[Case]
    page: int
    pages: int
    total: int
    filter: str = "all"
    sort: str = "received"
    #: case id → what changed (reporter wrote, detriment reported), from metadata only
    flags: dict[int, CaseFlags] = field(default_factory=dict)


def _next_deadline():  # type: ignore[no-untyped-def]
    """The earliest clock still running on a case, as a SQL expression."""
    return sql_case(
        (Case.acknowledged_at.is_(None), Case.acknowledge_by),
        (Case.status.in_(_FINISHED_VALUES), Case.next_checkin_at),
        else_=func.coalesce(Case.next_update_by, Case.feedback_by),
    )


def deadline_filter(name: str, now: datetime, due_soon_days: int):  # type: ignore[no-untyped-def]
    """SQL condition for an inbox filter."""
    running = Case.status.not_in(_FINISHED_VALUES)
    unacknowledged = and_(running, Case.acknowledged_at.is_(None))
    awaiting_feedback = and_(running, Case.status != Status.FEEDBACK_GIVEN.value)
    # Every branch is a definite true/false (no NULL), so "not overdue" is sound below.
    overdue = or_(
        and_(unacknowledged, Case.acknowledge_by < now),
        and_(running, Case.next_update_by.is_not(None), Case.next_update_by < now),
        and_(awaiting_feedback, Case.feedback_by.is_not(None), Case.feedback_by < now),
    )
    if name == "open":
        return running
    if name == "overdue":
        return overdue
    if name == "due_soon":
        soon = now + timedelta(days=due_soon_days)
        return and_(
            ~overdue,
            or_(
                and_(unacknowledged, Case.acknowledge_by <= soon),
                and_(running, Case.next_update_by <= soon),
                and_(awaiting_feedback, Case.feedback_by <= soon),
            ),
        )
    if name == "checkin":
        return and_(Case.status == Status.CLOSED.value, Case.next_checkin_at <= now)
    return None


def _sealed_to(user: User) -> Select[int]:
    return select(CaseKey.case_id).where(
        CaseKey.recipient_kind == str(RecipientKind.USER),
        CaseKey.user_id == user.id,
        CaseKey.key_type == str(KeyType.DEK),
    )


def list_inbox(
    user: User,
    page: int,
    page_size: int,
    *,
    filter_name: str = "all",
    sort: str = "received",
    due_soon_days: int = 3,
    now: datetime | None = None,
) -> InboxPage:
    """Cases sealed to ``user``, filtered and sorted. Two queries, no decryption."""
    now = now or utcnow()
    filter_name = filter_name if filter_name in INBOX_FILTERS else "all"
    sort = sort if sort in INBOX_SORTS else "received"
    conditions: list[ColumnElement[bool]] = [Case.id.in_(_sealed_to(user))]
    extra = flag_filter(filter_name)
    if extra is None:
        extra = deadline_filter(filter_name, now, due_soon_days)
    if extra is not None:
        conditions.append(extra)
    total = db.session.scalar(select(func.count(Case.id)).where(*conditions)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    if sort == "due":
        order = [_next_deadline().asc().nulls_last(), Case.id.desc()]
    elif sort == "priority":
        rank = sql_case(
            {"urgent": 0, "high": 1, "normal": 2, "low": 3}, value=Case.priority, else_=4
        )
        order = [rank, Case.received_at.desc(), Case.id.desc()]
    else:
        order = [Case.received_at.desc(), Case.id.desc()]
    cases = db.session.scalars(
        select(Case)
        .where(*conditions)
        .options(selectinload(Case.organisation), selectinload(Case.owner))
        .order_by(*order)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return InboxPage(
        list(cases), page, pages, total, filter_name, sort, flags_for([c.id for c in cases])
    )


def get_case_for_reader(
    reference: str, user: User, private_key: PrivateKey
) -> tuple[Case, bytes, bytes | None]:
    """The case and its opened keys, or 404 — the same answer whether the case does not
    exist or exists but is not sealed to this user, so references cannot be probed."""
    case = db.session.scalar(select(Case).where(Case.reference == reference))
    if case is None:
        raise NotFoundError
    dek = open_case_key(case, private_key, KeyType.DEK, user_id=user.id)
    if dek is None:
        raise NotFoundError
    idk = open_case_key(case, private_key, KeyType.IDK, user_id=user.id)
    return case, dek, idk


@dataclass(frozen=True)
class CaseView:
    """Everything the guardian's case page shows."""

    case: Case
    content: CaseContent
    triage: Triage | None
    #: only whether the reporter answered: the answer is sealed to her alone
    speak_up_again_answered: bool
    readers: list[User]
    identity_readers: set[int]
    excluded: set[int]
    #: readers whose access waits to be restored after an account reset
    pending: list[User]


def open_case(reference: str, user: User, private_key: PrivateKey) -> CaseView:
    """Decrypt a case for a reader; every open is audited."""
    case, dek, idk = get_case_for_reader(reference, user, private_key)
    content = read_case_content(case, dek, idk)
    ids = [uid for uid in reader_ids(case) if uid is not None]
    readers = list(
        db.session.scalars(select(User).where(User.id.in_(ids)).order_by(User.display_name))
    )
    record("case.opened", actor_kind="user", actor_user_id=user.id, case_id=case.id)
    return CaseView(
        case=case,
        content=content,
        triage=read_triage(case, dek),
        speak_up_again_answered=case.speak_up_again_ct is not None,
        readers=readers,
        identity_readers=set(reader_ids(case, KeyType.IDK)),
        excluded=excluded_user_ids(case),
        pending=pending_readers(case),
    )


def reply_to_reporter(
    reference: str,
    user: User,
    private_key: PrivateKey,
    body: str,
    uploads: list[SanitisedFile],
    config: Mapping[str, Any],
) -> Case:
    """A reader writes to the reporter; it restarts the update clock."""
    case, dek, _ = get_case_for_reader(reference, user, private_key)
    policy = policy_for(case.organisation, config)
    add_message(
        case, dek, author_kind="guardian", author_user_id=user.id, body=body, uploads=uploads
    )
    note_update_to_reporter(case, policy, utcnow())
    record("case.message_sent", actor_kind="user", actor_user_id=user.id, case_id=case.id)
    return case


def download_attachment(
    reference: str, attachment_id: int, user: User, private_key: PrivateKey
) -> tuple[AttachmentView, bytes]:
    """Decrypt one attachment for a reader; audited."""
    case, dek, _ = get_case_for_reader(reference, user, private_key)
    view, data = read_attachment(case, dek, attachment_id)
    record(
        "case.attachment_downloaded",
        actor_kind="user",
        actor_user_id=user.id,
        case_id=case.id,
        detail=f"attachment={attachment_id}",
    )
    return view, data


def organisation_overview(lead: User, now: datetime) -> list[Case]:
    """A lead guardian's view of their organisation's open cases: metadata only, and never
    a case the reporter named them in (even its existence would tell them something)."""
    excluded = select(Exclusion.case_id).where(Exclusion.user_id == lead.id)
    # A concern sent to the regional pool or panel exists to avoid the trust: it appears
    # here only for a lead who is one of its readers.
    independent_unless_reader = or_(
        Case.route == Route.ORGANISATION.value, Case.id.in_(_sealed_to(lead))
    )
    return list(
        db.session.scalars(
            select(Case)
            .where(
                Case.organisation_id == lead.organisation_id,
                Case.status.not_in(_FINISHED_VALUES),
                Case.id.not_in(excluded),
                independent_unless_reader,
            )
            .options(selectinload(Case.owner))
            .order_by(_next_deadline().asc().nulls_last(), Case.id)
        )
    )


def assignable_guardians(case: Case) -> list[User]:
    """Guardians of the case's organisation who are not excluded from it."""
    excluded = excluded_user_ids(case)
    return [
        user
        for user in db.session.scalars(
            select(User)
            .where(
                User.organisation_id == case.organisation_id,
                User.role.in_([Role.GUARDIAN.value, Role.LEAD_GUARDIAN.value]),
                User.disabled.is_(False),
                User.enrolment_pending.is_(False),
            )
            .order_by(User.display_name)
        )
        if user.id not in excluded
    ]


def pool_guardians(case: Case) -> list[User]:
    """Regional pool guardians who are not excluded from the case."""
    excluded = excluded_user_ids(case)
    return [
        user
        for user in db.session.scalars(
            select(User)
            .where(
                User.in_pool.is_(True),
                User.disabled.is_(False),
                User.enrolment_pending.is_(False),
            )
            .options(selectinload(User.organisation))
            .order_by(User.display_name)
        )
        if user.id not in excluded
    ]
