"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from speakup.audit.models import AuditEvent, AuditHead
from speakup.db import utcnow
from speakup.extensions import db

GENESIS = b"\x00" * 32
_HEAD_ID = 1


def _digest(prev_hash: bytes, event: AuditEvent) -> bytes:
    body = json.dumps(
        [
            event.seq,
            event.created_at.isoformat(),
            event.actor_kind,
            event.actor_user_id,
            event.action,
            event.case_id,
            event.detail,
        ],
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(prev_hash + body).digest()


def _locked_head() -> AuditHead:
    # PostgreSQL locks the row with FOR UPDATE; SQLite ignores that, so a no-op UPDATE
    # first takes SQLite's write lock: the head read next is the latest, and no other
    # request can append until this transaction ends.
    db.session.execute(
        update(AuditHead).where(AuditHead.id == _HEAD_ID).values(last_seq=AuditHead.last_seq)
    )
    head = db.session.execute(
        select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=_HEAD_ID, last_seq=0, last_hash=GENESIS)
        db.session.add(head)
        db.session.flush()
    return head


def record(
    action: str,
    *,
    actor_kind: str,
    actor_user_id: int | None = None,
    case_id: int | None = None,
    detail: str = "",
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction. Never pass content in ``detail``."""
    head = _locked_head()
    when = (at or utcnow()).replace(microsecond=0)
    if actor_kind == "reporter":
        # A reporter's action is kept to the day only: a time to the minute, beside a door
        # or network log, could say who she is.
        when = when.replace(hour=0, minute=0, second=0)
    event = AuditEvent(
        seq=head.last_seq + 1,
        created_at=when,
        actor_kind=actor_kind,
        actor_user_id=actor_user_id,
        action=action,
        case_id=case_id,
        detail=detail[:200],
        prev_hash=head.last_hash,
    )
    event.hash = _digest(head.last_hash, event)
    head.last_seq = event.seq
    head.last_hash = event.hash
    db.session.add(event)
    db.session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`verify_chain`."""

    events: int
    first_broken_seq: int | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def verify_chain(batch_size: int = 1000) -> ChainReport:
    """Walk the chain in order; report the first event whose link or hash is wrong."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    last_seq = 0
    while True:
        rows = (
            db.session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq > last_seq)
                .order_by(AuditEvent.seq)
                .limit(batch_size)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for event in rows:
            if (
                event.seq != expected_seq
                or event.prev_hash != prev
                or event.hash != _digest(prev, event)
            ):
                return ChainReport(count, event.seq)
            prev = event.hash
            expected_seq += 1
            count += 1
            last_seq = event.seq
    head = db.session.get(AuditHead, _HEAD_ID)
    if head is not None and (head.last_seq != count or head.last_hash != prev):
        # events were deleted from the end of the chain
        return ChainReport(count, count + 1)
    return ChainReport(count, None)
