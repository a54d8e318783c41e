"""The guardian's side of the loop: the inbox, opening a case, replying, downloading."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from speakup.accounts.models import User
from speakup.audit.services import record
from speakup.cases.content import (
    AttachmentView,
    CaseContent,
    add_message,
    read_attachment,
    read_case_content,
)
from speakup.cases.keys import open_case_key
from speakup.cases.models import Case, CaseKey, KeyType, RecipientKind
from speakup.crypto import PrivateKey
from speakup.errors import NotFoundError
from speakup.extensions import db
from speakup.reporting.attachments import SanitisedFile


@dataclass(frozen=True)
class InboxPage:
    """One page of a reader's cases (metadata only: nothing is decrypted for the list)."""

    cases: list[Case]
    page: int
    pages: int
    total: int


def list_inbox(user: User, page: int, page_size: int) -> InboxPage:
    """Cases sealed to ``user``, newest first. Two queries, no decryption."""
    mine = select(CaseKey.case_id).where(
        CaseKey.recipient_kind == str(RecipientKind.USER),
        CaseKey.user_id == user.id,
        CaseKey.key_type == str(KeyType.DEK),
    )
    total = db.session.scalar(select(func.count()).select_from(mine.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    cases = db.session.scalars(
        select(Case)
        .where(Case.id.in_(mine))
        .options(selectinload(Case.organisation))
        .order_by(Case.received_at.desc(), Case.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return InboxPage(list(cases), page, pages, total)


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


def open_case(reference: str, user: User, private_key: PrivateKey) -> tuple[Case, CaseContent]:
    """Decrypt a case for a reader; every open is audited."""
    case, dek, idk = get_case_for_reader(reference, user, private_key)
    content = read_case_content(case, dek, idk)
    record("case.opened", actor_kind="user", actor_user_id=user.id, case_id=case.id)
    return case, content


def reply_to_reporter(
    reference: str, user: User, private_key: PrivateKey, body: str, uploads: list[SanitisedFile]
) -> Case:
    """A reader writes to the reporter."""
    case, dek, _ = get_case_for_reader(reference, user, private_key)
    add_message(
        case, dek, author_kind="guardian", author_user_id=user.id, body=body, uploads=uploads
    )
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
