"""Leases so a scheduled job runs on one host at a time (cron on several hosts is safe)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from speakup.db import utcnow
from speakup.extensions import db
from speakup.jobs.models import JobLease


def _holder() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def acquire(name: str, seconds: int) -> str | None:
    """Take the named lease if it is free or expired; return the holder token or None."""
    now = utcnow()
    holder = _holder()
    if db.session.scalar(select(JobLease.name).where(JobLease.name == name)) is None:
        try:
            with db.session.begin_nested():
                db.session.add(JobLease(name=name, holder="", lease_until=now))
        except IntegrityError:
            pass  # another host created it first
    result = db.session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.lease_until <= now)
        .values(holder=holder, lease_until=now + timedelta(seconds=seconds))
    )
    taken = getattr(result, "rowcount", 0)
    db.session.commit()
    return holder if taken == 1 else None


def release(name: str, holder: str) -> None:
    """Give the lease back (only if we still hold it)."""
    db.session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(lease_until=utcnow())
    )
    db.session.commit()


@contextmanager
def lease(name: str, seconds: int = 600) -> Iterator[bool]:
    """``with lease("digest") as mine: if mine: …`` — False when another host holds it."""
    holder = acquire(name, seconds)
    try:
        yield holder is not None
    finally:
        if holder is not None:
            release(name, holder)
