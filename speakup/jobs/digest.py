"""The guardian digest: a fixed schedule, fixed wording, no content and no counts.

Every active reader gets the same message each period whether or not they have cases, so
the email itself reveals nothing. Deliveries are recorded before sending and marked sent
only once the SMTP server accepted them; a failed send stays pending and is retried on the
next run, so nothing is lost while the mail server is down.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from speakup.accounts.models import READER_ROLES, User
from speakup.db import utcnow
from speakup.extensions import db
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
    """Create this period's delivery rows for every active reader (idempotent)."""
    period = period_key(now)
    already = set(
        db.session.scalars(select(DigestDelivery.user_id).where(DigestDelivery.period == period))
    )
    readers = db.session.scalars(
        select(User).where(User.disabled.is_(False), User.role.in_([r.value for r in READER_ROLES]))
    ).all()
    queued = 0
    for user in readers:
        if user.id not in already:
            db.session.add(DigestDelivery(user_id=user.id, period=period))
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


def send_pending(config: dict[str, Any], password: str | None = None) -> tuple[int, int]:
    """Try every unsent delivery (this period's and earlier ones); return (sent, failed)."""
    pending = db.session.execute(
        select(DigestDelivery, User)
        .join(User, User.id == DigestDelivery.user_id)
        .where(DigestDelivery.sent_at.is_(None), User.disabled.is_(False))
        .order_by(DigestDelivery.id)
    ).all()
    if not pending:
        return 0, 0
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
        for delivery, _user in pending:
            delivery.attempts += 1
        db.session.commit()
        return 0, len(pending)
    with smtp:
        if config.get("MAIL_USE_STARTTLS"):
            smtp.starttls()
        if config.get("MAIL_USERNAME") and password:
            smtp.login(config["MAIL_USERNAME"], password)
        for delivery, user in pending:
            delivery.attempts += 1
            try:
                smtp.send_message(build_message(user.email, config))
            except smtplib.SMTPException as exc:
                log.warning("digest not accepted (%s); will retry", type(exc).__name__)
                failed += 1
            else:
                delivery.sent_at = utcnow()
                sent += 1
            db.session.commit()
    return sent, failed


def run_digest(config: dict[str, Any], password: str | None = None) -> DigestResult:
    """Queue this period's digests and send everything pending."""
    queued = queue_digests(utcnow())
    sent, failed = send_pending(config, password)
    return DigestResult(queued, sent, failed)
