"""Leases so a scheduled job runs on one host at a time (cron on several hosts is safe).

Expiry is reckoned by the database's clock, never a host's: two hosts whose clocks disagree
by minutes still agree on whether a lease has run out. A running job renews its lease as it
goes (:meth:`Lease.renew`), so a slow run is not mistaken for a dead one and taken over; a job
that finds it has lost its lease stops. The lease is an optimisation, not the guarantee: work
that must happen once (a digest message) is also claimed row by row (see ``digest.py``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, literal, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from speakup.db import UTCDateTime
from speakup.extensions import db
from speakup.jobs.models import JobLease

log = logging.getLogger("speakup.jobs.leases")

#: how long a lease lasts unless renewed
DEFAULT_SECONDS = 600


class LeaseLostError(RuntimeError):
    """Another host took this job's lease (ours had run out); this run must stop."""


def db_now(plus_seconds: float = 0) -> ColumnElement[Any]:
    """The database server's current time (plus an offset), as a SQL expression.

    PostgreSQL: ``statement_timestamp()`` rather than ``now()``, which is frozen at the start
    of the transaction. SQLite: UTC text in the same layout SQLAlchemy stores, to the
    microsecond, so it compares correctly with stored values.
    """
    if db.engine.dialect.name == "sqlite":
        modifier = f"{plus_seconds:+f} seconds"
        text_now = func.strftime("%Y-%m-%d %H:%M:%f", "now", modifier).op("||")("000")
        return type_coerce(text_now, UTCDateTime)
    when: ColumnElement[Any] = func.statement_timestamp()
    if plus_seconds:
        when = when + literal(timedelta(seconds=plus_seconds))
    return type_coerce(when, UTCDateTime)


def _holder() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Lease:
    """A held lease. Truthy, so ``with lease(...) as mine: if not mine`` reads naturally."""

    name: str
    holder: str
    seconds: int

    def renew(self) -> None:
        """Push expiry ``seconds`` past the database's now; raise if we no longer hold it."""
        result = db.session.execute(
            update(JobLease)
            .where(JobLease.name == self.name, JobLease.holder == self.holder)
            .values(lease_until=db_now(self.seconds))
        )
        db.session.commit()
        if getattr(result, "rowcount", 0) != 1:
            log.error("lease %s lost to another host; stopping this run", self.name)
            raise LeaseLostError(f"{self.name}: another host took over the job; this run stopped")


def acquire(name: str, seconds: int = DEFAULT_SECONDS) -> Lease | None:
    """Take the named lease if it is free or expired (by the database clock), or None."""
    holder = _holder()
    if db.session.scalar(select(JobLease.name).where(JobLease.name == name)) is None:
        try:
            with db.session.begin_nested():
                db.session.add(JobLease(name=name, holder="", lease_until=db_now()))
        except IntegrityError:
            pass  # another host created it first
    result = db.session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.lease_until <= db_now())
        .values(holder=holder, lease_until=db_now(seconds))
    )
    taken = getattr(result, "rowcount", 0)
    db.session.commit()
    return Lease(name, holder, seconds) if taken == 1 else None


def release(held: Lease) -> None:
    """Give the lease back (only if we still hold it)."""
    db.session.rollback()  # a failed run may have left its transaction open
    db.session.execute(
        update(JobLease)
        .where(JobLease.name == held.name, JobLease.holder == held.holder)
        .values(lease_until=db_now())
    )
    db.session.commit()


@contextmanager
def lease(name: str, seconds: int = DEFAULT_SECONDS) -> Iterator[Lease | None]:
    """``with lease("digest") as mine: if mine: …`` — None when another host holds it."""
    held = acquire(name, seconds)
    try:
        yield held
    finally:
        if held is not None:
            release(held)
