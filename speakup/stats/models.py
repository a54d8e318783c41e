"""Statistics tables (DESIGN §7). None has a foreign key to a case, and none holds a case
id, a timestamp of an event or free text written by a reporter."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from speakup.db import UTCDateTime, utcnow
from speakup.extensions import db


class FactInbox(db.Model):  # type: ignore[name-defined,misc]
    """A fact written by an event, sealed to the statistics inbox key until the shuffle job
    moves it. Random key and no timestamp; on SQLite the table has no rowid, so even the
    storage order is the random key's order."""

    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Fact(db.Model):  # type: ignore[name-defined,misc]
    """One coarse, unlinkable fact. Moved here in shuffled batches with fresh random keys."""

    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: submitted, triaged, closed, speak_up_again or detriment
    kind: Mapped[str] = mapped_column(String(16), index=True)
    #: financial-year quarter key, e.g. FY2026Q3 (no finer time is kept)
    period: Mapped[str] = mapped_column(String(8), index=True)
    organisation_id: Mapped[int] = mapped_column(Integer)
    system_id: Mapped[int] = mapped_column(Integer)
    route: Mapped[str | None] = mapped_column(String(16))
    disclosure_mode: Mapped[str | None] = mapped_column(String(16))
    #: bit i set = national element i (speakup.cases.categories.NATIONAL_ELEMENTS order)
    elements_mask: Mapped[int | None] = mapped_column(Integer)
    #: bit i set = race-equality code i (RACE_EQUALITY_CODES order)
    race_mask: Mapped[int | None] = mapped_column(Integer)
    #: closed facts: closed or withdrawn; time to close bucket; deadlines met
    outcome: Mapped[str | None] = mapped_column(String(16))
    ttc_bucket: Mapped[str | None] = mapped_column(String(16))
    ack_met: Mapped[bool | None] = mapped_column(Boolean)
    feedback_met: Mapped[bool | None] = mapped_column(Boolean)
    #: submitted facts only, and only if the reporter chose to say (Census code)
    ethnicity: Mapped[str | None] = mapped_column(String(40))
    staff_group: Mapped[str | None] = mapped_column(String(40))
    pay_band: Mapped[str | None] = mapped_column(String(40))
    #: speak_up_again facts: yes, no, maybe, dont_know
    answer: Mapped[str | None] = mapped_column(String(16))


class Workforce(db.Model):  # type: ignore[name-defined,misc]
    """Headcounts an administrator imported, per organisation and financial year."""

    __table_args__ = (UniqueConstraint("organisation_id", "year", name="org_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    #: the year the financial year starts in
    year: Mapped[int] = mapped_column(Integer)
    white: Mapped[int] = mapped_column(Integer)
    bme: Mapped[int] = mapped_column(Integer)
    not_stated: Mapped[int] = mapped_column(Integer, default=0)


class Release(db.Model):  # type: ignore[name-defined,misc]
    """A frozen, published quarter. Created once; never recomputed or changed."""

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(8), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the threshold in force when it was released
    k: Mapped[int] = mapped_column(Integer)
    #: how many cells the audit proved safe (for the record)
    audited_cells: Mapped[int] = mapped_column(Integer, default=0)

    tables: Mapped[list[ReleaseTable]] = relationship(back_populates="release")


class ReleaseTable(db.Model):  # type: ignore[name-defined,misc]
    """One published table of one scope: only published (rounded or suppressed) values."""

    __table_args__ = (
        UniqueConstraint("release_id", "scope_kind", "scope_id", "table_key", name="table"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"), index=True)
    #: region, system or organisation
    scope_kind: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[int] = mapped_column(Integer)
    table_key: Mapped[str] = mapped_column(String(48))
    #: {"title", "rows": [...], "columns": [...], "cells": [[published, ...]], "note", ...}
    payload: Mapped[dict] = mapped_column(JSON)
    #: the chart, rendered once at release time
    svg: Mapped[str] = mapped_column(Text, default="")

    release: Mapped[Release] = relationship(back_populates="tables")


class Action(db.Model):  # type: ignore[name-defined,misc]
    """ "You said, we did": what leaders did about a theme, published for all staff."""

    id: Mapped[int] = mapped_column(primary_key=True)
    scope_kind: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(8))
    #: a national element or race-equality code, or "other"
    theme: Mapped[str] = mapped_column(String(48))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    #: planned, in_progress, done or no_change
    status: Mapped[str] = mapped_column(String(16))
    #: required when status is no_change
    explanation: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReturnSignoff(db.Model):  # type: ignore[name-defined,misc]
    """A lead guardian's sign-off of an organisation's national quarterly return."""

    __table_args__ = (UniqueConstraint("organisation_id", "period", name="org_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    period: Mapped[str] = mapped_column(String(8))
    mapping_version: Mapped[str] = mapped_column(String(32))
    signed_by: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
