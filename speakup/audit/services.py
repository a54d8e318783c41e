"""Appending to and verifying the hash-chained audit log.

Each event's hash is an HMAC-SHA256, under the audit key (``SPEAKUP_AUDIT_KEY`` or
``instance/audit_key``, kept outside the database like the other secrets), of the previous
hash and the event's content. Someone who can write to the database but does not hold the
key cannot rewrite the chain consistently (issue 10, finding 7). Someone who holds the key as
well (the application server itself) is caught by checkpoints: ``flask audit checkpoint``
prints the head, the operator ships it off the host, and ``flask audit verify --checkpoint
FILE`` checks the chain still contains every head written there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
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
    key: bytes | str = current_app.config["AUDIT_KEY"]
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, prev_hash + body, hashlib.sha256).digest()


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


@dataclass(frozen=True)
class Checkpoint:
    """A head of the chain as it stood once: its position and hash."""

    seq: int
    hash: bytes

    def line(self) -> str:
        return f"audit-checkpoint {self.seq} {self.hash.hex()}"


_CHECKPOINT_LINE = re.compile(r"^audit-checkpoint (\d{1,18}) ([0-9a-f]{64})$")


def current_checkpoint() -> Checkpoint:
    """The chain's head now (seq 0 and the genesis hash when nothing was recorded)."""
    head = db.session.get(AuditHead, _HEAD_ID)
    if head is None:
        return Checkpoint(0, GENESIS)
    return Checkpoint(head.last_seq, head.last_hash)


def parse_checkpoints(lines: Iterable[str]) -> list[Checkpoint]:
    """Checkpoint lines as ``current_checkpoint().line()`` wrote them; blank lines and
    ``#`` comments are skipped, anything else is refused."""
    found = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = _CHECKPOINT_LINE.match(text)
        if match is None:
            raise ValueError(f"line {number} is not an audit checkpoint")
        found.append(Checkpoint(int(match.group(1)), bytes.fromhex(match.group(2))))
    return found


def missing_checkpoints(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """The checkpoints the chain no longer contains: the event at that position is gone or
    has another hash, so history up to it was rewritten or cut."""
    missing = []
    for checkpoint in checkpoints:
        if checkpoint.seq == 0:
            continue
        stored = db.session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.seq))
        if stored is None or not hmac.compare_digest(stored, checkpoint.hash):
            missing.append(checkpoint)
    return missing
