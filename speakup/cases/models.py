"""Cases and everything sealed inside them. Apart from routing and SLA metadata, every
column that carries what a reporter or guardian wrote is ciphertext (DESIGN §5)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from speakup.accounts.models import User
from speakup.crypto import PublicKey
from speakup.db import UTCDateTime, utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation


class Route(enum.StrEnum):
    """Who the reporter chose to receive the case."""

    ORGANISATION = "organisation"
    POOL = "pool"
    PANEL = "panel"


class DisclosureMode(enum.StrEnum):
    """National FTSU ways of speaking up."""

    ANONYMOUS = "anonymous"
    CONFIDENTIAL = "confidential"
    OPEN = "open"


class Status(enum.StrEnum):
    """Case states (DESIGN §6). The workflow table lives in the workflow issue."""

    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSESSING = "assessing"
    IN_PROGRESS = "in_progress"
    ESCALATED = "escalated"
    REFERRED = "referred"
    SIGNPOSTED = "signposted"
    FEEDBACK_GIVEN = "feedback_given"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    REOPENED = "reopened"


class KeyType(enum.StrEnum):
    """Which case key a sealed copy holds."""

    DEK = "dek"  # data key: report, messages, attachments
    IDK = "idk"  # identity key: name and contact details


class RecipientKind(enum.StrEnum):
    """Who a sealed copy is for."""

    USER = "user"
    REPORTER = "reporter"
    RECOVERY = "recovery"


class Case(db.Model):  # type: ignore[name-defined,misc]
    """A concern. Plaintext columns are routing and deadlines only."""

    __tablename__ = "concern_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: random public reference, not guessable and not sequential
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    route: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    #: the pool guardian the reporter chose (route "pool")
    chosen_guardian_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    status: Mapped[str] = mapped_column(String(32), default=Status.RECEIVED)
    disclosure_mode: Mapped[str] = mapped_column(String(16))
    escalation_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    #: separate consent: may the panel also learn who the reporter is, if escalated
    identity_escalation_consent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    #: "If your concern is passed to another guardian, may they see who you are?"
    identity_later_consent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    #: low, normal, high or urgent (set at triage; plaintext so inboxes can sort by it)
    priority: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    #: the guardian who has claimed or been assigned the case (one of its readers)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledge_by: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledge_ceiling: Mapped[datetime] = mapped_column(UTCDateTime)
    feedback_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_update_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: progress update due to the reporter (every 4 weeks by default)
    next_update_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: next detriment check-in (3/6/9/12 months after closure); NULL when none is left
    next_checkin_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when feedback was first given (for the "feedback within 3 months" statistic)
    feedback_given_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: which one-off statistics facts this case has already produced (never which fact)
    counted_triage: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    counted_closure: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    counted_answer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    counted_detriment: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: crypto-shred after this (set at closure: monitoring end + retention period)
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: optimistic locking (SQLAlchemy version counter)
    version: Mapped[int] = mapped_column(Integer, default=1)

    #: HMAC(pepper, normalised receipt): the only form of the receipt stored
    receipt_index: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    #: reporter keypair: private half only under Argon2id(receipt, reporter_kdf_salt)
    reporter_public_mlkem: Mapped[bytes] = mapped_column(LargeBinary)
    reporter_public_x25519: Mapped[bytes] = mapped_column(LargeBinary)
    reporter_wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    reporter_kdf_salt: Mapped[bytes] = mapped_column(LargeBinary)
    reporter_kdf_time_cost: Mapped[int] = mapped_column(Integer)
    reporter_kdf_memory_kib: Mapped[int] = mapped_column(Integer)
    reporter_kdf_parallelism: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the form's one-time submission token: a re-posted form is not a new case
    submission_token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)

    #: AES-GCM under the DEK: JSON of what happened, when, categories, wishes
    report_ct: Mapped[bytes] = mapped_column(LargeBinary)
    #: AES-GCM under the IDK: JSON of name and contact; NULL for anonymous reports
    identity_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: AES-GCM under the DEK: the guardian's triage (elements, codes, about, flags)
    triage_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: AES-GCM under the DEK: the reporter's "would you speak up again?" answer
    speak_up_again_ct: Mapped[bytes | None] = mapped_column(LargeBinary)

    organisation: Mapped[Organisation] = relationship()
    chosen_guardian: Mapped[User | None] = relationship(foreign_keys=[chosen_guardian_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_user_id])

    __mapper_args__ = {"version_id_col": version}

    @property
    def reporter_public_key(self) -> PublicKey:
        """The reporter's public key, to seal case keys to."""
        return PublicKey(self.reporter_public_mlkem, self.reporter_public_x25519)

    def __repr__(self) -> str:
        return f"<Case {self.id} {self.status}>"


class CaseKey(db.Model):  # type: ignore[name-defined,misc]
    """One sealed copy of a case key for one recipient (HPKE, bound to case and recipient)."""

    __table_args__ = (
        UniqueConstraint("case_id", "recipient_kind", "user_id", "key_type", name="recipient"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("concern_case.id", ondelete="CASCADE"), index=True
    )
    recipient_kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    key_type: Mapped[str] = mapped_column(String(8))
    #: which public key this was sealed to (detects a stale copy after a key reset)
    recipient_key_id: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<CaseKey case={self.case_id} {self.recipient_kind} {self.key_type}>"


class Exclusion(db.Model):  # type: ignore[name-defined,misc]
    """A guardian the reporter named as involved: never sealed any key of this case."""

    __table_args__ = (UniqueConstraint("case_id", "user_id", name="pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("concern_case.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))


#: message authors (Message.author_kind); a detriment report is the reporter's too, marked so
#: the inbox can flag it from metadata alone
REPORTER_AUTHOR = "reporter"
DETRIMENT_AUTHOR = "detriment"
GUARDIAN_AUTHOR = "guardian"
REPORTER_AUTHORS = (REPORTER_AUTHOR, DETRIMENT_AUTHOR)


class Message(db.Model):  # type: ignore[name-defined,misc]
    """One message in a case thread, encrypted under the DEK."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("concern_case.id", ondelete="CASCADE"), index=True
    )
    #: "reporter", "detriment" (a reporter's detriment report), "guardian" or "service"
    author_kind: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)

    author: Mapped[User | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    """A file, metadata-stripped then encrypted under the DEK; its name and type too."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("concern_case.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: AES-GCM JSON {filename, content_type, removed}
    meta_ct: Mapped[bytes] = mapped_column(LargeBinary)
    #: the file itself, up to 10 MiB: deferred, so listing a case's files (its page) reads
    #: only the small ``meta_ct``; the bytes are read when one file is downloaded
    data_ct: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    message: Mapped[Message | None] = relationship(back_populates="attachments")


class PendingGrant(db.Model):  # type: ignore[name-defined,misc]
    """A reader whose key was reset and who must be given this case's key again — by the
    next reader of the case who signs in, or by the recovery custodian."""

    __table_args__ = (UniqueConstraint("case_id", "user_id", "key_type", name="grant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("concern_case.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    key_type: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
