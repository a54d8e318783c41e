"""State for scheduled jobs: leases (one host at a time) and the digest outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from speakup.db import UTCDateTime, utcnow
from speakup.extensions import db


class JobLease(db.Model):  # type: ignore[name-defined,misc]
    """Who is running a scheduled job until when. Taking a lease is one conditional UPDATE,
    so two hosts starting the same job at once cannot both run it."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestDelivery(db.Model):  # type: ignore[name-defined,misc]
    """One digest email owed to one account for one period. Rows are created first and
    marked sent only after the SMTP server accepted the message, so a failure is retried.
    A sender first claims the row with one conditional UPDATE, so two hosts running at once
    never both send it."""

    __table_args__ = (UniqueConstraint("user_id", "period", name="user_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    #: e.g. "2026-11-26" for a daily digest
    period: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: the run sending it now (lease holder token), and until when (database clock) its claim
    #: holds; a run that died mid-send leaves a claim that simply runs out
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
