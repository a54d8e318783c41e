"""The guardian digest: a fixed schedule, fixed wording, no content and no counts.

Every active reader gets the same message each period whether or not they have cases, so
the email itself reveals nothing. Deliveries are recorded before sending and marked sent
only once the SMTP server accepted them; a failed send stays pending and is retried on the
next run, so nothing is lost while the mail server is down. Each delivery is claimed by one
run before it is sent, so two hosts running at once never send the same message twice.
(A host killed between the server's acceptance and the "sent" mark leaves a claim that runs
out; that one message may then go again. SMTP offers nothing better than at-least-once.)
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from speakup.accounts.models import READER_ROLES, User
from speakup.db import utcnow
from speakup.extensions import db
from speakup.jobs.leases import Lease, db_now
from speakup.jobs.models import DigestDelivery

log = logging.getLogger("speakup.jobs.digest")

BODY = (
    "Hello,\n\n"
    "This is your regular reminder from Speakup. Please sign in to check your cases:\n"
    "{url}\n\n"
    "This message is sent to every guardian and panel member on the same schedule. It never "
    "says whether you have new cases.\n"
)


@dataclass(frozen=True)
class DigestResult:
    """What one run did."""

    queued: int
    sent: int
    failed: int


def period_key(now: datetime) -> str:
    """Digest period: one per calendar day (UTC)."""
    return now.strftime("%Y-%m-%d")


def queue_digests(now: datetime) -> int:
    """Create this period's delivery rows for every active reader (idempotent, and safe
    while another host queues the same rows: a row it inserted first is skipped)."""
    period = period_key(now)
    already = set(
        db.session.scalars(select(DigestDelivery.user_id).where(DigestDelivery.period == period))
    )
    readers = db.session.scalars(
        select(User).where(User.disabled.is_(False), User.role.in_([r.value for r in READER_ROLES]))
    ).all()
    queued = 0
    for user in readers:
        if user.id in already:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(DigestDelivery(user_id=user.id, period=period))
        except IntegrityError:
            continue  # another host queued it a moment ago
        queued += 1
    db.session.commit()
    return queued


def build_message(to: str, config: dict[str, Any]) -> EmailMessage:
    """The one fixed message."""
    message = EmailMessage()
    message["From"] = config["MAIL_SENDER"]
    message["To"] = to
    message["Subject"] = config["MAIL_SUBJECT"]
    url = str(config["MAIL_BASE_URL"]).rstrip("/") + "/staff/sign-in"
    message.set_content(BODY.format(url=url))
    return message


def _claim(delivery_id: int, claimant: str, seconds: int) -> bool:
    """Claim one unsent delivery for this run: one conditional UPDATE, committed at once, so
    of two hosts trying the same row exactly one gets it. An expired claim (a run that died)
    can be taken over."""
    result = db.session.execute(
        update(DigestDelivery)
        .where(
            DigestDelivery.id == delivery_id,
            DigestDelivery.sent_at.is_(None),
            or_(DigestDelivery.claimed_until.is_(None), DigestDelivery.claimed_until <= db_now()),
        )
        .values(
            claimed_by=claimant,
            claimed_until=db_now(seconds),
            attempts=DigestDelivery.attempts + 1,
        )
    )
    db.session.commit()
    return getattr(result, "rowcount", 0) == 1


def _settle(delivery_id: int, claimant: str, *, sent: bool) -> None:
    """Mark our claimed row sent, or give the claim back so the next run retries it."""
    values: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
    if sent:
        values["sent_at"] = utcnow()
    db.session.execute(
        update(DigestDelivery)
        .where(DigestDelivery.id == delivery_id, DigestDelivery.claimed_by == claimant)
        .values(**values)
    )
    db.session.commit()


def send_pending(
    config: dict[str, Any], password: str | None = None, held: Lease | None = None
) -> tuple[int, int]:
    """Try every unsent delivery (this period's and earlier ones); return (sent, failed).

    Each row is claimed before it is sent, so no message goes twice even if two hosts run
    at once; ``held`` (the job's lease) is renewed before every message, and a run that lost
    its lease stops (:class:`LeaseLostError`).
    """
    pending = db.session.execute(
        select(DigestDelivery.id, User.email)
        .join(User, User.id == DigestDelivery.user_id)
        .where(DigestDelivery.sent_at.is_(None), User.disabled.is_(False))
        .order_by(DigestDelivery.id)
    ).all()
    db.session.commit()
    if not pending:
        return 0, 0
    claimant = held.holder if held is not None else f"unleased:{secrets.token_hex(8)}"
    # A claim outlives the slowest single send the SMTP timeout allows.
    claim_seconds = max(60, 3 * int(config["MAIL_TIMEOUT_SECONDS"]))
    sent = failed = 0
    try:
        smtp = smtplib.SMTP(
            config["MAIL_HOST"],
            int(config["MAIL_PORT"]),
            timeout=int(config["MAIL_TIMEOUT_SECONDS"]),
        )
    except OSError as exc:
        log.warning(
            "mail server unreachable (%s); %d digests stay queued", type(exc).__name__, len(pending)
        )
        db.session.execute(
            update(DigestDelivery)
            .where(
                DigestDelivery.id.in_([row.id for row in pending]),
                DigestDelivery.sent_at.is_(None),
            )
            .values(attempts=DigestDelivery.attempts + 1)
        )
        db.session.commit()
        return 0, len(pending)
    with smtp:
        if config.get("MAIL_USE_STARTTLS"):
            smtp.starttls()
        if config.get("MAIL_USERNAME") and password:
            smtp.login(config["MAIL_USERNAME"], password)
        for delivery_id, address in pending:
            if held is not None:
                held.renew()
            if not _claim(delivery_id, claimant, claim_seconds):
                continue  # sent or being sent by another run
            try:
                smtp.send_message(build_message(address, config))
            except smtplib.SMTPException as exc:
                log.warning("digest not accepted (%s); will retry", type(exc).__name__)
                _settle(delivery_id, claimant, sent=False)
                failed += 1
            else:
                _settle(delivery_id, claimant, sent=True)
                sent += 1
    return sent, failed


def run_digest(
    config: dict[str, Any], password: str | None = None, held: Lease | None = None
) -> DigestResult:
    """Queue this period's digests and send everything pending."""
    queued = queue_digests(utcnow())
    sent, failed = send_pending(config, password, held)
    return DigestResult(queued, sent, failed)
