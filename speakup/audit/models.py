"""The append-only, hash-chained audit log (DESIGN §3.7).

Rows are only ever inserted, through :func:`speakup.audit.services.record`; there is no
update or delete path in code. Each row's hash covers its content and the previous hash, so
any edit, deletion or reordering breaks the chain at that point.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from speakup.db import UTCDateTime, utcnow
from speakup.extensions import db


class AuditEvent(db.Model):  # type: ignore[name-defined,misc]
    """Who did what to which case, and when — never content."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: position in the chain (1, 2, 3 …), assigned under the head lock
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: "user", "reporter" or "system"
    actor_kind: Mapped[str] = mapped_column(String(16))
    #: no foreign key: the log must outlive purged users and cases
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: short, content-free detail (e.g. a state name or attachment id)
    detail: Mapped[str] = mapped_column(String(200), default="")
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.action}>"


class AuditHead(db.Model):  # type: ignore[name-defined,misc]
    """A single row holding the chain's latest hash; locking it serialises appends."""

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary)
