"""Reading and writing the encrypted content of a case, for whichever reader holds its keys.

Callers pass the opened data key (DEK) and, when allowed, the identity key (IDK); nothing
here looks at who the caller is — that is checked before a key is opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from speakup.cases.models import Attachment, Case, Message
from speakup.crypto import decrypt_field, encrypt_field
from speakup.db import utcnow
from speakup.errors import NotFoundError
from speakup.extensions import db
from speakup.reporting.attachments import SanitisedFile, cleaning_notice


@dataclass(frozen=True)
class AttachmentView:
    """An attachment's decrypted description (not its bytes)."""

    id: int
    filename: str
    content_type: str
    size: int
    removed: tuple[str, ...]

    @property
    def notice(self) -> str:
        """What cleaning did to the file, in the reporter's words."""
        return cleaning_notice(self.removed)


@dataclass(frozen=True)
class MessageView:
    """One decrypted message."""

    id: int
    author_kind: str
    author_name: str | None
    created_at: datetime
    body: str
    attachments: list[AttachmentView] = field(default_factory=list)


@dataclass(frozen=True)
class CaseContent:
    """Everything a reader sees of a case."""

    report: dict[str, Any]
    identity: dict[str, str] | None
    attachments: list[AttachmentView]
    messages: list[MessageView]


def encrypt_json(key: bytes, value: Any, *, table: str, row_id: int, field: str) -> bytes:
    """JSON-encode and encrypt one field."""
    return encrypt_field(key, json.dumps(value).encode(), table=table, row_id=row_id, field=field)


def decrypt_json(key: bytes, blob: bytes, *, table: str, row_id: int, field: str) -> Any:
    """Decrypt and JSON-decode one field."""
    return json.loads(decrypt_field(key, blob, table=table, row_id=row_id, field=field))


def store_attachment(
    case: Case, dek: bytes, upload: SanitisedFile, message: Message | None = None
) -> Attachment:
    """Encrypt a sanitised file and its description under the case's DEK."""
    attachment = Attachment(case_id=case.id, message=message, meta_ct=b"", data_ct=b"")
    db.session.add(attachment)
    db.session.flush()
    meta = {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": len(upload.data),
        "removed": list(upload.removed),
    }
    attachment.meta_ct = encrypt_json(
        dek, meta, table="attachment", row_id=attachment.id, field="meta"
    )
    attachment.data_ct = encrypt_field(
        dek, upload.data, table="attachment", row_id=attachment.id, field="data"
    )
    return attachment


def add_message(
    case: Case,
    dek: bytes,
    *,
    author_kind: str,
    body: str,
    author_user_id: int | None = None,
    uploads: list[SanitisedFile] | None = None,
) -> Message:
    """Append an encrypted message (and its attachments) to the thread."""
    message = Message(
        case_id=case.id, author_kind=author_kind, author_user_id=author_user_id, body_ct=b""
    )
    db.session.add(message)
    db.session.flush()
    message.body_ct = encrypt_field(
        dek, body.encode(), table="message", row_id=message.id, field="body"
    )
    for upload in uploads or []:
        store_attachment(case, dek, upload, message)
    write_unversioned(case, {"last_update_at": utcnow()})
    return message


def write_unversioned(case: Case, values: dict[str, Any], *where: ColumnElement[bool]) -> bool:
    """Write clock columns (or a one-way flag) of ``case`` with one UPDATE that neither
    checks nor moves its optimistic-lock version; returns whether the row matched ``where``.

    Appending to the thread is not a state change, so it must not collide with another
    append (issue 10, finding 4: the reporter and two guardians writing at once lost
    messages to ``StaleDataError``). This is safe for the clock columns and one-way flags
    only: each clock value is "now" or derived from it, so of two concurrent writers the
    later one is right, and a flag that only turns on cannot be undone by a race; a value
    that depends on the case's state is guarded by ``where``, which the database
    evaluates against the row as committed (PostgreSQL re-checks it after waiting for a
    concurrent writer's row lock; SQLite has one writer at a time). State changes still
    go through the ORM and the version check, and they set these clocks themselves.
    """
    result = db.session.execute(
        update(Case)
        .where(Case.id == case.id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    for key, value in values.items():
        # the loaded object now agrees with the row, without a pending change to flush
        set_committed_value(case, key, value)
    return True


def _attachment_view(dek: bytes, attachment: Attachment) -> AttachmentView:
    meta = decrypt_json(
        dek, attachment.meta_ct, table="attachment", row_id=attachment.id, field="meta"
    )
    return AttachmentView(
        attachment.id, meta["filename"], meta["content_type"], meta["size"], tuple(meta["removed"])
    )


def read_case_content(case: Case, dek: bytes, idk: bytes | None) -> CaseContent:
    """Decrypt the report, identity (if ``idk``), attachments and thread in two queries."""
    report = decrypt_json(dek, case.report_ct, table="concern_case", row_id=case.id, field="report")
    identity = None
    if idk is not None and case.identity_ct is not None:
        identity = decrypt_json(
            idk, case.identity_ct, table="concern_case", row_id=case.id, field="identity"
        )
    report_attachments = db.session.scalars(
        select(Attachment)
        .where(Attachment.case_id == case.id, Attachment.message_id.is_(None))
        .order_by(Attachment.id)
    ).all()
    messages = db.session.scalars(
        select(Message)
        .where(Message.case_id == case.id)
        .options(selectinload(Message.attachments), selectinload(Message.author))
        .order_by(Message.created_at, Message.id)
    ).all()
    return CaseContent(
        report=report,
        identity=identity,
        attachments=[_attachment_view(dek, a) for a in report_attachments],
        messages=[
            MessageView(
                id=m.id,
                author_kind=m.author_kind,
                author_name=m.author.display_name if m.author else None,
                created_at=m.created_at,
                body=decrypt_field(
                    dek, m.body_ct, table="message", row_id=m.id, field="body"
                ).decode(),
                attachments=[_attachment_view(dek, a) for a in m.attachments],
            )
            for m in messages
        ],
    )


def read_attachment(case: Case, dek: bytes, attachment_id: int) -> tuple[AttachmentView, bytes]:
    """Decrypt one attachment of this case; another case's id is simply not found."""
    attachment = db.session.scalar(
        select(Attachment).where(Attachment.id == attachment_id, Attachment.case_id == case.id)
    )
    if attachment is None:
        raise NotFoundError
    view = _attachment_view(dek, attachment)
    data = decrypt_field(
        dek, attachment.data_ct, table="attachment", row_id=attachment.id, field="data"
    )
    return view, data
