"""Retention: finished cases are crypto-shredded by the scheduled `jobs purge` once detriment
monitoring (12 months after closure) and the retention period (12 months by default, per
organisation if set) are over; the purge is audited without content."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from speakup.accounts.models import AuthSession, Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import (
    Attachment,
    Case,
    CaseKey,
    DisclosureMode,
    Exclusion,
    Message,
    PendingGrant,
    Status,
)
from speakup.cases.policy import add_months, policy_for
from speakup.cases.workflow import change_status
from speakup.extensions import db
from speakup.jobs.cli import jobs_cli
from speakup.reporting.attachments import SanitisedFile
from tests.conftest import actor_for, count

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
CANARY = "zq_retention_canary the locker room remarks about my hijab"
NEUTRAL = "We could not find a case with that receipt. Check it and try again."
CLOSING = (Status.ACKNOWLEDGED, Status.ASSESSING, Status.IN_PROGRESS, Status.FEEDBACK_GIVEN)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(T0, tick=True)
    return time_machine


def finish(app, case: Case, staff, target: Status = Status.CLOSED) -> None:
    """Take a case through the workflow to closed (or withdrawn) as one of its readers."""
    actor = actor_for(app, staff)
    policy = policy_for(case.organisation, app.config)
    path = [*CLOSING, Status.CLOSED] if target == Status.CLOSED else [Status.WITHDRAWN]
    for step in path:
        message = f"{CANARY} feedback" if step == Status.FEEDBACK_GIVEN else None
        change_status(case, actor, step, policy=policy, expected_version=None, message=message)
    db.session.commit()


def reopen(app, case: Case, staff) -> None:
    change_status(
        case,
        actor_for(app, staff),
        Status.REOPENED,
        policy=policy_for(case.organisation, app.config),
        expected_version=None,
    )
    db.session.commit()


def purged_ids() -> list[int]:
    return list(
        db.session.scalars(
            select(AuditEvent.case_id)
            .where(AuditEvent.action == "case.purged")
            .order_by(AuditEvent.seq)
        )
    )


def purge(cli) -> str:
    result = cli("jobs", "purge")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def org(make_org, tmp_path):
    return make_org("RRK", recovery_dir=tmp_path)


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org)


@pytest.fixture
def report(clock, org, guardian, make_staff, submit):
    """A confidential report with an attachment and an excluded colleague, at T0."""
    excluded = make_staff(Role.GUARDIAN, org)
    note = SanitisedFile("note.txt", "text/plain", f"{CANARY} attached".encode(), ())
    return submit(
        org,
        what_happened=CANARY,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name="Zq Retention Reporter",
        contact="07700 900777",
        excluded_guardian_ids=[excluded.user.id],
        attachments=[note],
    )


def test_a_closed_case_is_purged_only_after_monitoring_and_retention(
    app, clock, report, guardian, cli
):
    case = report.case
    case_id = case.id
    finish(app, case, guardian)
    assert case.closed_at - T0 < timedelta(minutes=1)
    assert case.purge_after == add_months(case.closed_at, 12 + 12)  # the defaults: 12 + 12
    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": report.receipt}).status_code == 302
    assert count(Message, case_id=case_id) and count(Attachment, case_id=case_id)
    assert count(CaseKey, case_id=case_id) == 6  # guardian, recovery, reporter × DEK, IDK

    clock.move_to(add_months(T0, 24) - timedelta(days=1))
    assert "purge: 0 case(s) crypto-shredded" in purge(cli)
    assert db.session.get(Case, case_id) is not None

    clock.move_to(add_months(T0, 24) + timedelta(minutes=1))
    assert "purge: 1 case(s) crypto-shredded" in purge(cli)
    assert db.session.get(Case, case_id) is None
    for model in (CaseKey, Message, Attachment, Exclusion, PendingGrant, AuthSession):
        assert count(model, case_id=case_id) == 0, model.__name__

    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "case.purged"))
    assert (event.case_id, event.actor_kind, event.actor_user_id) == (case_id, "system", None)
    assert event.detail == ""
    for detail in db.session.scalars(select(AuditEvent.detail)):
        assert CANARY not in detail
    # The earlier history of the case stays in the chain, and the chain is intact.
    assert count(AuditEvent, case_id=case_id) > 1
    verified = cli("audit", "verify")
    assert verified.exit_code == 0, verified.output

    # The reporter's signed-in session ended, and the receipt finds nothing now.
    follow = reporter.get("/follow-up/case")
    assert follow.status_code == 302 and follow.location.endswith("/follow-up")
    again = app.test_client().post("/follow-up", data={"receipt": report.receipt})
    assert again.status_code == 400 and NEUTRAL in again.get_data(as_text=True)
    assert "purge: 0 case(s)" in purge(cli)


def test_a_withdrawn_case_is_purged_on_the_same_terms(app, clock, org, guardian, submit, cli):
    case = submit(org, what_happened=CANARY).case
    finish(app, case, guardian, Status.WITHDRAWN)
    assert case.purge_after == add_months(case.closed_at, 24)
    clock.move_to(add_months(T0, 24) + timedelta(minutes=1))
    assert "purge: 1 case(s)" in purge(cli)


def test_the_retention_period_is_set_per_organisation(
    app, clock, make_org, make_staff, submit, cli
):
    short, default = make_org("SHORT"), make_org("DEFAULT")
    short.retention_months = 3
    db.session.commit()
    cases = {}
    for org in (short, default):
        staff = make_staff(Role.GUARDIAN, org)
        cases[org.code] = submit(org, what_happened=CANARY).case
        finish(app, cases[org.code], staff)
    assert cases["SHORT"].purge_after == add_months(cases["SHORT"].closed_at, 12 + 3)
    assert cases["DEFAULT"].purge_after == add_months(cases["DEFAULT"].closed_at, 12 + 12)

    clock.move_to(add_months(T0, 15) - timedelta(days=1))
    assert "purge: 0 case(s)" in purge(cli)
    clock.move_to(add_months(T0, 15) + timedelta(minutes=1))
    assert "purge: 1 case(s)" in purge(cli)
    assert purged_ids() == [cases["SHORT"].id]
    assert db.session.get(Case, cases["DEFAULT"].id) is not None
    clock.move_to(add_months(T0, 24) + timedelta(minutes=1))
    assert "purge: 1 case(s)" in purge(cli)
    assert purged_ids() == [cases["SHORT"].id, cases["DEFAULT"].id]


def test_open_and_reopened_cases_are_never_purged(app, clock, org, guardian, submit, cli):
    untouched = submit(org, what_happened=CANARY).case
    working = submit(org, what_happened=CANARY).case
    change_status(
        working,
        actor_for(app, guardian),
        Status.ACKNOWLEDGED,
        policy=policy_for(org, app.config),
        expected_version=None,
    )
    db.session.commit()
    reopened = submit(org, what_happened=CANARY).case
    finish(app, reopened, guardian)
    clock.move_to(T0 + timedelta(days=200))
    reopen(app, reopened, guardian)
    assert reopened.purge_after is None

    clock.move_to(T0.replace(year=T0.year + 50))
    assert "purge: 0 case(s)" in purge(cli)
    for case in (untouched, working, reopened):
        assert db.session.get(Case, case.id) is not None
    assert purged_ids() == []


def test_closing_again_after_a_reopening_restarts_the_clock(app, clock, org, guardian, submit, cli):
    case = submit(org, what_happened=CANARY).case
    finish(app, case, guardian)
    clock.move_to(add_months(T0, 6))
    reopen(app, case, guardian)
    actor = actor_for(app, guardian)
    policy = policy_for(org, app.config)
    for step in (Status.IN_PROGRESS, Status.FEEDBACK_GIVEN, Status.CLOSED):
        message = "Further feedback." if step == Status.FEEDBACK_GIVEN else None
        change_status(case, actor, step, policy=policy, expected_version=None, message=message)
    db.session.commit()
    second_closure = case.closed_at

    clock.move_to(add_months(T0, 24) + timedelta(days=1))
    assert "purge: 0 case(s)" in purge(cli)
    clock.move_to(add_months(second_closure, 24) + timedelta(minutes=1))
    assert "purge: 1 case(s)" in purge(cli)


def run_in_thread(app, start: threading.Barrier, outcomes: list) -> None:
    """Invoke the real `jobs purge` command in this thread's own app context."""
    command = jobs_cli.get_command(None, "purge")  # type: ignore[arg-type]
    with app.app_context():
        start.wait()
        try:
            command.main(args=[], prog_name="jobs purge", standalone_mode=False)
            outcomes.append(0)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            outcomes.append(exc)
        finally:
            db.session.remove()


def test_two_hosts_purging_at_once_purge_each_case_once(app, clock, org, guardian, submit, capsys):
    ids = []
    for _ in range(3):
        case = submit(org, what_happened=CANARY).case
        finish(app, case, guardian)
        ids.append(case.id)
    clock.move_to(add_months(T0, 24) + timedelta(minutes=1))
    db.session.commit()
    db.session.remove()
    start = threading.Barrier(2)
    outcomes: list = []
    threads = [threading.Thread(target=run_in_thread, args=(app, start, outcomes)) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [0, 0], outcomes
    assert sorted(purged_ids()) == ids
    assert count(Case) == 0 and count(CaseKey) == 0
    out = capsys.readouterr().out
    assert out.count("purge: 3 case(s) crypto-shredded") == 1, out


# What is left on disk --------------------------------------------------------------------------


def stored_secrets(case_id: int) -> list[bytes]:
    """Every sealed key copy and ciphertext of the case, as stored."""
    blobs = list(db.session.scalars(select(CaseKey.sealed).where(CaseKey.case_id == case_id)))
    case = db.session.get_one(Case, case_id)
    blobs += [case.report_ct, case.identity_ct, case.reporter_wrapped_private_key]
    blobs += list(db.session.scalars(select(Message.body_ct).where(Message.case_id == case_id)))
    blobs += list(
        db.session.scalars(select(Attachment.data_ct).where(Attachment.case_id == case_id))
    )
    return [blob for blob in blobs if blob]


def database_bytes() -> bytes:
    """The SQLite database file and its WAL, after a full checkpoint."""
    db.session.remove()
    with db.engine.connect() as conn:
        busy, _, _ = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        assert busy == 0
    path = Path(db.engine.url.database or "")
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_purged_keys_and_ciphertext_leave_no_trace_in_the_database(
    app, clock, report, guardian, submit, org, cli
):
    case_id = report.case.id
    kept = submit(org, what_happened=CANARY).case
    finish(app, report.case, guardian)
    secrets = stored_secrets(case_id)
    assert len(secrets) >= 10
    kept_keys = list(db.session.scalars(select(CaseKey.sealed).where(CaseKey.case_id == kept.id)))
    sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:
        before = database_bytes()
        assert all(blob in before for blob in secrets)  # the check below can see them

    clock.move_to(add_months(T0, 24) + timedelta(minutes=1))
    assert "purge: 1 case(s)" in purge(cli)

    if sqlite:
        # secure_delete overwrites the freed cells and pages: no copy of a sealed key or
        # ciphertext survives in the file, while the other case's keys are still there.
        after = database_bytes()
        assert [blob in after for blob in secrets] == [False] * len(secrets)
        assert all(blob in after for blob in kept_keys)
    else:
        stored = db.session.scalars(select(CaseKey.sealed)).all()
        assert not set(secrets) & set(stored) and set(kept_keys) <= set(stored)
