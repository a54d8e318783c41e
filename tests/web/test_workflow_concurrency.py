"""Two guardians acting on one case at once: exactly one wins, the other is told the case
changed and sees its new state (DESIGN §6, "Concurrency").

Three levels: the version each form carries (the optimistic-locking check in the services),
the version column SQLAlchemy checks on every UPDATE (two sessions that both loaded the
same row), and a real race of several workers, each with its own session, claiming one
case at the same moment — on SQLite (WAL, busy timeout) and PostgreSQL alike.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password
from speakup.audit.models import AuditEvent
from speakup.audit.services import verify_chain
from speakup.cases.access import claim_case
from speakup.cases.models import Case, Status
from speakup.cases.workflow import Actor
from speakup.crypto import PrivateKey
from speakup.errors import ConflictError, ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from tests.conftest import PASSWORD, TEST_ARGON2, Staff

WORKERS = 6
CHANGED = "This case was changed by someone else. Here is its latest state."
VERSION = re.compile(r'name="version" value="(\d+)"')


@pytest.fixture
def org(make_org: Callable[..., Organisation], tmp_path: Path) -> Organisation:
    return make_org("RACE", recovery_dir=tmp_path / "recovery")


@pytest.fixture
def guardians(make_staff: Callable[..., Staff], org: Organisation) -> list[Staff]:
    """Six guardians of one organisation: every case there is sealed to all of them."""
    return [make_staff(Role.GUARDIAN, org, name=f"Guardian {i}") for i in range(WORKERS)]


def seen_version(client: FlaskClient, reference: str) -> int:
    """The version the case page's forms carry."""
    response = client.get(f"/staff/cases/{reference}")
    assert response.status_code == 200
    versions = set(VERSION.findall(response.get_data(as_text=True)))
    assert len(versions) == 1
    return int(versions.pop())


def audit_count(case_id: int, action: str) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.case_id == case_id, AuditEvent.action == action)
        )
        or 0
    )


# --- (a) the version a form carries ----------------------------------------------------------


LOSING_ACTIONS = {
    "another status change": ("status", {"target": "withdrawn", "message": ""}),
    "the same status change": ("status", {"target": "acknowledged", "message": ""}),
    "a claim": ("claim", {}),
    "a triage": ("triage", {"priority": "high", "about": ["manager"]}),
}


@pytest.mark.parametrize("losing", list(LOSING_ACTIONS), ids=list(LOSING_ACTIONS))
def test_two_guardians_on_one_version_exactly_one_wins_and_the_other_sees_the_new_state(
    org: Organisation,
    guardians: list[Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
    losing: str,
) -> None:
    case = submit(org).case
    first, second = staff_client(guardians[0]), staff_client(guardians[1])
    version = seen_version(first, case.reference)
    assert seen_version(second, case.reference) == version

    won = first.post(
        f"/staff/cases/{case.reference}/status",
        data={"target": "acknowledged", "version": version, "message": "Thank you."},
    )
    assert won.status_code == 302

    path, fields = LOSING_ACTIONS[losing]
    lost = second.post(f"/staff/cases/{case.reference}/{path}", data={**fields, "version": version})
    assert lost.status_code == 409
    page = lost.get_data(as_text=True)
    assert CHANGED in page
    assert "Acknowledged – a guardian has it" in page  # the state it is in now
    assert "Thank you." in page  # and what the winner wrote
    assert seen_version(second, case.reference) > version  # its forms now carry the new one

    db.session.expire_all()
    case = db.session.get_one(Case, case.id)
    assert case.status == Status.ACKNOWLEDGED
    assert case.owner_user_id is None
    assert case.triage_ct is None
    assert audit_count(case.id, "case.status_changed") == 1


# --- (b) the version column ------------------------------------------------------------------


def test_a_second_session_writing_a_row_it_loaded_before_the_first_committed_is_refused(
    org: Organisation, guardians: list[Staff], submit: Callable[..., Submission]
) -> None:
    """No version passed by anyone: SQLAlchemy's version column alone refuses the write
    of a session whose copy of the row is out of date."""
    case_id = submit(org).case.id
    db.session.commit()
    with Session(db.engine) as first, Session(db.engine) as second:
        mine = first.get_one(Case, case_id)
        theirs = second.get_one(Case, case_id)
        assert mine.version == theirs.version
        mine.status = str(Status.ACKNOWLEDGED)
        theirs.status = str(Status.WITHDRAWN)
        first.commit()
        with pytest.raises(StaleDataError):
            second.commit()
        second.rollback()
    db.session.expire_all()
    assert db.session.get_one(Case, case_id).status == Status.ACKNOWLEDGED


# --- (c) a race ------------------------------------------------------------------------------


@dataclass
class Claimant:
    user_id: int
    key: PrivateKey


def race_to_claim(app: Flask, case_id: int, claimants: list[Claimant]) -> dict[int, str]:
    """Every claimant loads the case in its own thread, app context and session, waits for
    the others, then claims and commits. Returns each user's outcome."""
    barrier = threading.Barrier(len(claimants), timeout=30)
    outcomes: dict[int, str] = {}
    failures: list[BaseException] = []

    def work(claimant: Claimant) -> None:
        with app.app_context():
            try:
                user = db.session.get_one(User, claimant.user_id)
                case = db.session.get_one(Case, case_id)
                version = case.version
                barrier.wait()
                claim_case(case, Actor(user, claimant.key), expected_version=version)
                db.session.commit()
                outcomes[claimant.user_id] = "won"
            except (ConflictError, ValidationError, StaleDataError, OperationalError) as exc:
                # A lock timeout would also be a loss, as long as exactly one wins.
                db.session.rollback()
                outcomes[claimant.user_id] = type(exc).__name__
            except BaseException as exc:  # anything else fails the test
                db.session.rollback()
                failures.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(c,)) for c in claimants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a claimant hung"
    assert not failures, failures
    return outcomes


@pytest.mark.parametrize("round_", range(3))
def test_several_guardians_claiming_one_case_at_once_exactly_one_wins(
    app: Flask,
    org: Organisation,
    guardians: list[Staff],
    submit: Callable[..., Submission],
    round_: int,
) -> None:
    claimants = [
        Claimant(
            staff.user.id,
            check_password(staff.user, PASSWORD, TEST_ARGON2, app.config).private_key,
        )
        for staff in guardians
    ]
    case_id = submit(org).case.id
    db.session.commit()
    db.session.close()  # hold no transaction or connection during the race

    outcomes = race_to_claim(app, case_id, claimants)

    assert len(outcomes) == WORKERS
    winners = [user_id for user_id, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    case = db.session.get_one(Case, case_id)
    assert case.owner_user_id == winners[0]
    claims = db.session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == "case.claimed")
    ).all()
    assert [event.actor_user_id for event in claims] == winners
    assert verify_chain().ok


def test_several_guardians_pressing_take_this_case_at_once_exactly_one_wins(
    app: Flask,
    org: Organisation,
    guardians: list[Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """The same race through the web: one redirect, and every other guardian gets the
    409 page showing the case as it now is."""
    case = submit(org).case
    reference, case_id = case.reference, case.id
    clients = [staff_client(staff) for staff in guardians]
    ids = [staff.user.id for staff in guardians]
    version = seen_version(clients[0], reference)
    db.session.commit()
    db.session.close()

    barrier = threading.Barrier(WORKERS, timeout=30)
    responses: dict[int, tuple[int, str]] = {}
    failures: list[BaseException] = []

    def press(index: int) -> None:
        try:
            barrier.wait()
            response = clients[index].post(
                f"/staff/cases/{reference}/claim", data={"version": version}
            )
            responses[index] = (response.status_code, response.get_data(as_text=True))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not failures, failures

    statuses = sorted(status for status, _ in responses.values())
    assert statuses == [302] + [409] * (WORKERS - 1), statuses
    winner = next(i for i, (status, _) in responses.items() if status == 302)
    for index, (status, page) in responses.items():
        if status == 409:
            assert CHANGED in page
            assert f"Guardian {winner}" in page, f"guardian {index} is not shown the owner"
    case = db.session.get_one(Case, case_id)
    assert case.owner_user_id == ids[winner]
    assert audit_count(case_id, "case.claimed") == 1
    assert verify_chain().ok


def test_guardians_opening_one_case_at_the_same_moment_are_each_audited(
    org: Organisation,
    guardians: list[Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """Every opening is audited (DESIGN §3.7), also when readers open a case together: each
    request appends its own event to the hash chain and none of them fails."""
    case = submit(org).case
    reference, case_id = case.reference, case.id
    clients = [staff_client(staff) for staff in guardians]
    db.session.commit()
    db.session.close()

    barrier = threading.Barrier(WORKERS, timeout=30)
    statuses: dict[int, int] = {}
    failures: list[BaseException] = []

    def open_page(index: int) -> None:
        try:
            barrier.wait()
            statuses[index] = clients[index].get(f"/staff/cases/{reference}").status_code
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_page, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not failures, failures
    assert sorted(statuses.values()) == [200] * WORKERS
    assert audit_count(case_id, "case.opened") == WORKERS
    assert verify_chain().ok
