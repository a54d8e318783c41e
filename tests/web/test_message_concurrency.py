"""The reporter and guardians writing to one case at the same moment: every message is kept
(issue 10, finding 4). Appending to the thread is not a state change, so it never meets the
optimistic lock; state changes still do (tests/web/test_workflow_concurrency.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from speakup.accounts.models import Role
from speakup.audit.services import verify_chain
from speakup.cases.models import REPORTER_AUTHORS, Case, Message, Status
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from tests.conftest import Staff, actor_for, move

ROUNDS = 4
CLOSING = (
    Status.ACKNOWLEDGED,
    Status.ASSESSING,
    Status.IN_PROGRESS,
    Status.FEEDBACK_GIVEN,
    Status.CLOSED,
)


@pytest.fixture
def org(make_org: Callable[..., Organisation], tmp_path: Path) -> Organisation:
    return make_org("TALK", recovery_dir=tmp_path / "recovery")


def _messages(case_id: int, kind: str) -> int:
    # A detriment report is the reporter's too (marked "detriment" for the inbox flag).
    kinds = REPORTER_AUTHORS if kind == "reporter" else (kind,)
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.case_id == case_id, Message.author_kind.in_(kinds))
        )
        or 0
    )


def _race(writers: list[tuple[str, str, FlaskClient]]) -> list[int]:
    """Each writer posts ROUNDS times from its own thread, all of them at once each round."""
    barrier = threading.Barrier(len(writers), timeout=30)
    statuses: list[int] = []
    failures: list[BaseException] = []

    def write(index: int) -> None:
        path, field, client = writers[index]
        try:
            for round_ in range(ROUNDS):
                barrier.wait()
                response = client.post(path, data={field: f"writer {index} round {round_}"})
                statuses.append(response.status_code)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert not failures, failures
    return statuses


@pytest.mark.parametrize("reporter_writes", ["message", "detriment report"])
def test_reporter_and_two_guardians_writing_at_once_lose_no_message(
    app: Flask,
    org: Organisation,
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
    reporter_writes: str,
) -> None:
    guardians = [make_staff(Role.GUARDIAN, org, name=f"Guardian {i}") for i in range(2)]
    submission = submit(org)
    reference, case_id = submission.case.reference, submission.case.id
    if reporter_writes == "message":
        reporter_path, field = "/follow-up/case/messages", "body"
    else:  # a closed case whose check-in is due: the first report reopens it
        case = submission.case
        move(app, case, actor_for(app, guardians[0]), *CLOSING)
        reporter_path, field = "/follow-up/case/detriment", "text"
    before = db.session.get_one(Case, case_id)
    messages_before = {k: _messages(case_id, k) for k in ("reporter", "guardian")}
    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": submission.receipt}).status_code == 302
    writers: list[tuple[str, str, FlaskClient]] = [
        (reporter_path, field, reporter),
        *((f"/staff/cases/{reference}/messages", "body", staff_client(g)) for g in guardians),
    ]
    version_before = before.version
    db.session.commit()
    db.session.close()  # hold no transaction or connection during the race

    statuses = _race(writers)

    assert statuses == [302] * (ROUNDS * len(writers)), statuses
    assert _messages(case_id, "reporter") == messages_before["reporter"] + ROUNDS
    assert _messages(case_id, "guardian") == messages_before["guardian"] + ROUNDS * 2
    case = db.session.get_one(Case, case_id)
    if reporter_writes == "message":
        assert case.version == version_before  # appending is not a state change
        assert case.next_update_by is not None  # and the guardian replies restarted the clock
    else:
        assert case.status == Status.REOPENED  # the one state change, made once
        assert case.counted_detriment
    assert verify_chain().ok


def test_a_state_change_still_meets_the_lock_after_messages_were_appended(
    app: Flask,
    org: Organisation,
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """A message does not move the version, so a guardian's form is still current after
    the reporter writes; a real state change moves it and the stale form gets the 409."""
    guardian, other = (make_staff(Role.GUARDIAN, org, name=n) for n in ("Ann", "Bea"))
    submission = submit(org)
    reference = submission.case.reference
    version = db.session.get_one(Case, submission.case.id).version
    reporter = app.test_client()
    reporter.post("/follow-up", data={"receipt": submission.receipt})
    assert reporter.post("/follow-up/case/messages", data={"body": "More."}).status_code == 302
    first, second = staff_client(guardian), staff_client(other)
    replied = first.post(f"/staff/cases/{reference}/messages", data={"body": "Thanks."})
    assert replied.status_code == 302

    won = first.post(
        f"/staff/cases/{reference}/status", data={"target": "acknowledged", "version": version}
    )
    assert won.status_code == 302
    lost = second.post(
        f"/staff/cases/{reference}/status", data={"target": "withdrawn", "version": version}
    )
    assert lost.status_code == 409
    db.session.expire_all()
    assert db.session.get_one(Case, submission.case.id).status == Status.ACKNOWLEDGED
