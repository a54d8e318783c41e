"""DESIGN §3 promise 7: every access to case content is audited in an append-only,
hash-chained log that records who, what, which case and when — and never content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, text, update

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent, AuditHead
from speakup.audit.services import verify_chain
from speakup.cases.models import Attachment, DisclosureMode
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.attachments import sanitise_attachment
from speakup.reporting.services import Submission
from tests.conftest import Staff
from tests.security.support import dump_database, find_leaks, new_canary


@dataclass
class Audited:
    case_id: int
    reference: str
    guardian_id: int
    canaries: dict[str, str]


@pytest.fixture
def audited(
    app: Flask,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> Audited:
    """A case opened twice, one attachment downloaded and one reply sent by its guardian."""
    canaries = {label: new_canary(label) for label in ("what", "name", "file", "reply")}
    org = make_org()
    guardian = make_staff(Role.GUARDIAN, org)
    upload = sanitise_attachment("notes.txt", canaries["file"].encode(), max_bytes=1024)
    submission = submit(
        org,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        what_happened=canaries["what"],
        name=canaries["name"],
        contact="ward 3",
        attachments=[upload],
    )
    case_id, reference = submission.case.id, submission.case.reference
    attachment_id = db.session.scalars(select(Attachment.id)).one()
    client = staff_client(guardian)
    assert canaries["what"] in client.get(f"/staff/cases/{reference}").get_data(as_text=True)
    download = client.get(f"/staff/cases/{reference}/attachments/{attachment_id}")
    assert canaries["file"].encode() in download.data
    reply = client.post(f"/staff/cases/{reference}/messages", data={"body": canaries["reply"]})
    assert reply.status_code == 302
    assert client.get(f"/staff/cases/{reference}").status_code == 200
    return Audited(case_id, reference, guardian.user.id, canaries)


def _events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
    )


def test_every_open_and_download_is_recorded_without_content(app: Flask, audited: Audited) -> None:
    opened = _events("case.opened")
    downloaded = _events("case.attachment_downloaded")
    assert len(opened) == 2
    assert len(downloaded) == 1
    for event in opened + downloaded:
        assert event.actor_kind == "user"
        assert event.actor_user_id == audited.guardian_id
        assert event.case_id == audited.case_id
        assert event.created_at is not None
    attachment_id = db.session.scalars(select(Attachment.id)).one()
    assert downloaded[0].detail == f"attachment={attachment_id}"
    assert _events("case.message_sent")[0].case_id == audited.case_id

    every_event = db.session.scalars(select(AuditEvent)).all()
    blob = "\n".join(
        f"{e.action}|{e.actor_kind}|{e.actor_user_id}|{e.case_id}|{e.detail}" for e in every_event
    ).encode()
    assert find_leaks(blob, audited.canaries, "the audit log") == []
    assert find_leaks(dump_database(), audited.canaries, "the database") == []


def test_a_refused_open_is_not_recorded_as_an_open(
    app: Flask,
    audited: Audited,
    make_staff: Callable[..., Staff],
    make_org: Callable[..., Organisation],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    outsider = make_staff(Role.GUARDIAN, make_org())
    before = len(_events("case.opened"))
    assert staff_client(outsider).get(f"/staff/cases/{audited.reference}").status_code == 404
    assert len(_events("case.opened")) == before


def _cli(app: Flask) -> Any:
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_intact_chain_verifies(app: Flask, audited: Audited) -> None:
    report = verify_chain()
    total = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert report.ok and report.events == total and total >= 6
    result = _cli(app)
    assert result.exit_code == 0, result.output
    assert f"{total} events" in result.output
    # Verification in small batches walks the same chain.
    assert verify_chain(batch_size=2).ok


def _middle_open_seq() -> int:
    opened = _events("case.opened")
    last = db.session.scalar(select(func.max(AuditEvent.seq)))
    seq = opened[0].seq
    assert 1 < seq < last
    return seq


def _assert_broken_at(app: Flask, seqs: set[int]) -> None:
    db.session.expire_all()
    report = verify_chain()
    assert not report.ok
    assert report.first_broken_seq in seqs
    result = _cli(app)
    assert result.exit_code == 1, result.output
    assert f"#{report.first_broken_seq}" in result.output


def test_tampered_detail_is_found_by_raw_sql_and_cli(app: Flask, audited: Audited) -> None:
    seq = _middle_open_seq()
    db.session.execute(
        text("UPDATE audit_event SET detail = :d WHERE seq = :s"), {"d": "nothing here", "s": seq}
    )
    db.session.commit()
    _assert_broken_at(app, {seq})


@pytest.mark.parametrize(
    "change",
    [
        {"action": "case.acknowledged"},
        {"actor_user_id": 999},
        {"actor_kind": "system"},
        {"case_id": 424242},
        {"prev_hash": b"\x01" * 32},
        {"hash": b"\x02" * 32},
    ],
    ids=lambda change: next(iter(change)),
)
def test_tampering_with_any_column_breaks_the_chain_there(
    app: Flask, audited: Audited, change: dict[str, Any]
) -> None:
    seq = _middle_open_seq()
    db.session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(**change))
    db.session.commit()
    # A rewritten hash is noticed by the next event, whose link no longer matches.
    _assert_broken_at(app, {seq, seq + 1} if "hash" in change else {seq})


def test_tampered_timestamp_breaks_the_chain(app: Flask, audited: Audited) -> None:
    seq = _middle_open_seq()
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.seq == seq)).one()
    moved = event.created_at - timedelta(days=1)
    db.session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(created_at=moved))
    db.session.commit()
    _assert_broken_at(app, {seq})


def test_deleting_the_last_event_is_detected(app: Flask, audited: Audited) -> None:
    last = db.session.scalar(select(func.max(AuditEvent.seq)))
    db.session.execute(delete(AuditEvent).where(AuditEvent.seq == last))
    db.session.commit()
    _assert_broken_at(app, {last})


def test_deleting_a_middle_event_is_detected(app: Flask, audited: Audited) -> None:
    seq = _middle_open_seq()
    db.session.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": seq})
    db.session.commit()
    _assert_broken_at(app, {seq, seq + 1})


# --- a keyed, anchored chain (issue 10, finding 7) ------------------------------------------


def _plain_sha256(prev_hash: bytes, event: AuditEvent) -> bytes:
    """The chain's old, unkeyed hash: anyone who can write to the database can compute it."""
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


def _rewrite_from(seq: int, digest: Callable[[bytes, AuditEvent], bytes]) -> None:
    """A database writer's forgery: change one event's detail, then recompute every hash
    from there on with ``digest`` and move the head, so every link is consistent."""
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
    ).all()
    prev = events[0].prev_hash
    events[0].detail = "nothing happened"
    for event in events:
        event.prev_hash = prev
        event.hash = digest(prev, event)
        prev = event.hash
    head = db.session.get_one(AuditHead, 1)
    head.last_hash = prev
    db.session.commit()


def test_a_rewrite_with_recomputed_plain_hashes_is_detected(app: Flask, audited: Audited) -> None:
    seq = _middle_open_seq()
    _rewrite_from(seq, _plain_sha256)
    _assert_broken_at(app, {seq})


def test_the_key_comes_from_outside_the_database(app: Flask, audited: Audited) -> None:
    """The same chain verified under another key is broken from its first event."""
    assert verify_chain().ok
    app.config["AUDIT_KEY"] = bytes(32)
    report = verify_chain()
    assert not report.ok and report.first_broken_seq == 1


def test_a_checkpoint_shipped_off_host_catches_a_rewrite_by_a_key_holder(
    app: Flask, audited: Audited, tmp_path: Path
) -> None:
    runner = app.test_cli_runner()
    printed = runner.invoke(args=["audit", "checkpoint"])
    assert printed.exit_code == 0, printed.output
    head = db.session.get_one(AuditHead, 1)
    assert printed.output.strip() == f"audit-checkpoint {head.last_seq} {head.last_hash.hex()}"
    shipped = tmp_path / "checkpoints.txt"
    shipped.write_text("# shipped nightly\n" + printed.output)

    verified = runner.invoke(args=["audit", "verify", "--checkpoint", str(shipped)])
    assert verified.exit_code == 0, verified.output
    assert "all 1 checkpoints found" in verified.output

    # Someone holding the audit key too (the server itself) rewrites history consistently:
    # the chain alone verifies, the checkpoint does not.
    from speakup.audit.services import _digest

    _rewrite_from(_middle_open_seq(), _digest)
    db.session.expire_all()
    assert verify_chain().ok
    caught = runner.invoke(args=["audit", "verify", "--checkpoint", str(shipped)])
    db.session.rollback()
    assert caught.exit_code == 1
    assert f"does not contain checkpoint #{head.last_seq}" in caught.output


def test_a_malformed_checkpoint_file_is_refused(
    app: Flask, audited: Audited, tmp_path: Path
) -> None:
    bad = tmp_path / "checkpoints.txt"
    bad.write_text("audit-checkpoint twelve deadbeef\n")
    result = app.test_cli_runner().invoke(args=["audit", "verify", "--checkpoint", str(bad)])
    assert result.exit_code == 1
    assert "line 1 is not an audit checkpoint" in result.output
