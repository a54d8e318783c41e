"""The service-level clocks of DESIGN §6, with time frozen.

Acknowledge-by is two working days (England's bank holidays respected) with a seven
calendar-day ceiling; feedback is due 91 days after acknowledgement; the reporter is updated
at least every 28 days, each guardian message restarting that clock; detriment check-ins
fall 3, 6, 9 and 12 months after closure, and the case is shredded 12 months after the last
one. Organisations' own settings win over the configured defaults. The inbox filters and the
reporter's check-in prompt follow these clocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import holidays
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from speakup.accounts.models import Role
from speakup.cases.deadlines import add_working_days, is_working_day
from speakup.cases.models import Case, Status
from speakup.cases.policy import add_months, checkin_dates, policy_for, purge_date
from speakup.cases.workflow import Actor
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission, send_reporter_message, unlock_reporter_key
from tests.conftest import Staff, actor_for, move
from tests.security.support import post_report, receipt_from, report_form

REFERENCE = re.compile(r"SU-[0-9A-Z]{4}-[0-9A-Z]{4}")
CHECKIN_DUE = "It is time for a check-in"
CHECKIN_ANY_TIME = "tell your guardian here at any time"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def frozen() -> Iterator[Callable[[datetime], None]]:
    """Freeze the clock at a moment; call again to move it (forwards) to another."""
    traveller = time_machine.travel(utc(2026, 1, 5, 9), tick=False)
    machine = traveller.start()
    yield machine.move_to
    traveller.stop()


@pytest.fixture
def org(make_org: Callable[..., Organisation], tmp_path: Path) -> Organisation:
    return make_org("CLOCKS", recovery_dir=tmp_path / "recovery")


@pytest.fixture
def guardian(make_staff: Callable[..., Staff], org: Organisation) -> Staff:
    return make_staff(Role.GUARDIAN, org, name="Clock Guardian")


TO_CLOSED = (
    Status.ACKNOWLEDGED,
    Status.ASSESSING,
    Status.IN_PROGRESS,
    Status.FEEDBACK_GIVEN,
    Status.CLOSED,
)


def references(client: FlaskClient, query: str) -> set[str]:
    response = client.get(f"/staff/cases/{query}")
    assert response.status_code == 200
    return set(REFERENCE.findall(response.get_data(as_text=True)))


# --- acknowledge-by ------------------------------------------------------------------------


def test_the_bank_holidays_used_are_englands() -> None:
    """The holidays package is the source: the dates the cases below rely on are holidays."""
    england = holidays.country_holidays("GB", subdiv="ENG", years=[2026, 2027])
    for day in (date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 4), date(2026, 12, 25)):
        assert day in england
        assert not is_working_day(day)
    assert date(2026, 12, 28) in england  # Boxing Day falls on a Saturday: Monday instead
    assert date(2027, 1, 1) in england
    assert not is_working_day(date(2026, 3, 7))  # a Saturday
    assert is_working_day(date(2026, 3, 9))


@pytest.mark.parametrize(
    ("received", "acknowledge_by"),
    [
        # Friday afternoon: the weekend does not count → Tuesday, same time
        (utc(2026, 3, 6, 16), utc(2026, 3, 10, 16)),
        # received on a Saturday: Monday and Tuesday
        (utc(2026, 3, 7, 11, 30), utc(2026, 3, 10, 11, 30)),
        # the Friday before the May Day bank holiday (Mon 4 May) → Wednesday
        (utc(2026, 5, 1, 9), utc(2026, 5, 6, 9)),
        # Maundy Thursday: Good Friday and Easter Monday are holidays → Wednesday
        (utc(2026, 4, 2, 14), utc(2026, 4, 8, 14)),
        # Christmas Eve 2026: Christmas (Fri), the weekend, Boxing Day observed (Mon 28)
        (utc(2026, 12, 24, 10), utc(2026, 12, 30, 10)),
        # an ordinary Monday morning
        (utc(2026, 3, 9, 9), utc(2026, 3, 11, 9)),
    ],
)
def test_acknowledge_by_counts_working_days(
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
    received: datetime,
    acknowledge_by: datetime,
) -> None:
    frozen(received)
    case = submit(org).case
    db.session.expire_all()
    case = db.session.get_one(Case, case.id)
    assert case.received_at == received
    assert case.acknowledge_by == acknowledge_by
    assert case.acknowledge_ceiling == received + timedelta(days=7)
    assert case.acknowledge_by <= case.acknowledge_ceiling


def test_the_seven_calendar_day_ceiling_wins_over_a_longer_working_day_target(
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
) -> None:
    """Five working days from Christmas Eve 2026 run to Tue 5 Jan 2027 (Christmas, Boxing Day
    observed and New Year's Day are holidays), but seven calendar days end on 31 Dec."""
    org.sla_acknowledge_working_days = 5
    db.session.commit()
    received = utc(2026, 12, 24, 10)
    assert add_working_days(received, 5) == utc(2027, 1, 5, 10)
    frozen(received)
    case = submit(org).case
    assert case.acknowledge_ceiling == utc(2026, 12, 31, 10)
    assert case.acknowledge_by == utc(2026, 12, 31, 10)


def test_organisation_acknowledgement_settings_win_over_the_configuration(
    app: Flask,
    frozen: Callable[[datetime], None],
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    client: FlaskClient,
) -> None:
    """Through the real report form: the configured default (here 3 working days, 10-day
    ceiling) applies unless the organisation has its own (1 working day, 2-day ceiling)."""
    app.config["SLA_ACKNOWLEDGE_WORKING_DAYS"] = 3
    app.config["SLA_ACKNOWLEDGE_CEILING_DAYS"] = 10
    plain = make_org("PLAIN")
    own = make_org("OWN")
    own.sla_acknowledge_working_days = 1
    own.sla_acknowledge_ceiling_days = 2
    db.session.commit()
    make_staff(Role.GUARDIAN, plain)
    make_staff(Role.GUARDIAN, own)
    received = utc(2026, 3, 6, 16)  # a Friday
    frozen(received)
    for organisation in (plain, own):
        receipt_from(post_report(client, report_form(organisation.id)))
    cases = {c.organisation_id: c for c in db.session.scalars(select(Case))}
    assert cases[plain.id].acknowledge_by == utc(2026, 3, 11, 16)  # Mon, Tue, Wed
    assert cases[plain.id].acknowledge_ceiling == utc(2026, 3, 16, 16)
    assert cases[own.id].acknowledge_by == utc(2026, 3, 8, 16)  # Mon 9 is past the ceiling
    assert cases[own.id].acknowledge_ceiling == utc(2026, 3, 8, 16)


# --- feedback and update clocks ---------------------------------------------------------------


def test_acknowledging_starts_feedback_and_update_clocks_and_messages_restart_updates(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    frozen(utc(2026, 3, 2, 9))
    submission = submit(org)
    reference = submission.case.reference

    acknowledged = utc(2026, 3, 3, 11)
    frozen(acknowledged)
    client = staff_client(guardian)
    case = db.session.get_one(Case, submission.case.id)
    response = client.post(
        f"/staff/cases/{reference}/status",
        data={"target": "acknowledged", "version": case.version, "message": ""},
    )
    assert response.status_code == 302
    db.session.expire_all()
    case = db.session.get_one(Case, submission.case.id)
    assert case.acknowledged_at == acknowledged
    assert case.feedback_by == acknowledged + timedelta(days=91) == utc(2026, 6, 2, 11)
    assert case.next_update_by == acknowledged + timedelta(days=28) == utc(2026, 3, 31, 11)

    # A guardian's message restarts the 28-day update clock (not the feedback clock).
    written = utc(2026, 3, 20, 15, 30)
    frozen(written)
    client = staff_client(guardian)
    response = client.post(f"/staff/cases/{reference}/messages", data={"body": "An update."})
    assert response.status_code == 302
    db.session.expire_all()
    case = db.session.get_one(Case, submission.case.id)
    assert case.next_update_by == written + timedelta(days=28)
    assert case.last_update_at == written
    assert case.feedback_by == utc(2026, 6, 2, 11)

    # A reporter's message does not: the guardian still owes an update.
    frozen(utc(2026, 3, 25, 8))
    reporter_key = unlock_reporter_key(case, submission.receipt, 2)
    assert reporter_key is not None
    send_reporter_message(case, reporter_key, "Any news?", [])
    db.session.commit()
    assert db.session.get_one(Case, case.id).next_update_by == written + timedelta(days=28)

    # A status change without a message leaves the clock; one with a message restarts it.
    actor = actor_for(app, guardian)
    frozen(utc(2026, 4, 1, 10))
    move(app, case, actor, Status.ASSESSING)
    assert case.next_update_by == written + timedelta(days=28)
    frozen(utc(2026, 4, 2, 10))
    move(app, case, actor, Status.IN_PROGRESS, message="We have started looking into it.")
    assert case.next_update_by == utc(2026, 4, 30, 10)
    assert case.feedback_by == utc(2026, 6, 2, 11)


def test_organisation_clock_settings_win_over_the_configuration(
    app: Flask,
    frozen: Callable[[datetime], None],
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
) -> None:
    app.config["SLA_FEEDBACK_DAYS"] = 60
    app.config["SLA_UPDATE_DAYS"] = 21
    app.config["RETENTION_MONTHS_AFTER_MONITORING"] = 6
    plain = make_org("PLAIN")
    own = make_org("OWN")
    own.sla_feedback_days = 30
    own.sla_update_days = 14
    own.retention_months = 3
    db.session.commit()
    actors = {
        organisation.id: actor_for(app, make_staff(Role.GUARDIAN, organisation))
        for organisation in (plain, own)
    }
    frozen(utc(2026, 3, 2, 9))
    cases = {organisation.id: submit(organisation).case for organisation in (plain, own)}
    acknowledged = utc(2026, 3, 3, 9)
    frozen(acknowledged)
    for organisation_id, case in cases.items():
        move(app, case, actors[organisation_id], Status.ACKNOWLEDGED)
    assert cases[plain.id].feedback_by == acknowledged + timedelta(days=60)
    assert cases[plain.id].next_update_by == acknowledged + timedelta(days=21)
    assert cases[own.id].feedback_by == acknowledged + timedelta(days=30)
    assert cases[own.id].next_update_by == acknowledged + timedelta(days=14)

    closed = utc(2026, 3, 10, 9)
    frozen(closed)
    for organisation_id, case in cases.items():
        move(app, case, actors[organisation_id], *TO_CLOSED[1:])
    assert cases[plain.id].purge_after == utc(2027, 9, 10, 9)  # 12 months + 6
    assert cases[own.id].purge_after == utc(2027, 6, 10, 9)  # 12 months + 3


# --- closure: check-ins and purge -------------------------------------------------------------


def test_month_arithmetic_clamps_to_the_end_of_the_month() -> None:
    assert add_months(utc(2026, 8, 31, 10), 3) == utc(2026, 11, 30, 10)
    assert add_months(utc(2026, 8, 31, 10), 6) == utc(2027, 2, 28, 10)
    assert add_months(utc(2027, 11, 30, 10), 3) == utc(2028, 2, 29, 10)  # leap year
    assert add_months(utc(2026, 1, 31, 10), 12) == utc(2027, 1, 31, 10)


def test_closure_schedules_checkins_and_the_purge(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
) -> None:
    actor = actor_for(app, guardian)
    frozen(utc(2026, 8, 3, 9))
    case = submit(org).case
    closed = utc(2026, 8, 31, 10)
    frozen(closed)
    move(app, case, actor, *TO_CLOSED)
    policy = policy_for(case.organisation, app.config)
    expected = [
        utc(2026, 11, 30, 10),
        utc(2027, 2, 28, 10),
        utc(2027, 5, 31, 10),
        utc(2027, 8, 31, 10),
    ]
    assert checkin_dates(closed, policy) == expected
    assert case.closed_at == closed
    assert case.next_checkin_at == expected[0]
    assert case.next_update_by is None
    assert case.purge_after == purge_date(closed, policy) == utc(2028, 8, 31, 10)

    # Each guardian message once a check-in is due counts as that check-in; one before it
    # is due does not move it.
    frozen(utc(2026, 10, 1, 9))
    move_message(app, case, actor)
    assert case.next_checkin_at == expected[0]
    for due, following in zip(expected, [*expected[1:], None], strict=True):
        frozen(due + timedelta(days=2))
        move_message(app, case, actor)
        assert case.next_checkin_at == following
    assert case.purge_after == utc(2028, 8, 31, 10)


def move_message(app: Flask, case: Case, actor: Actor) -> None:
    from speakup.cases.services import reply_to_reporter

    reply_to_reporter(
        case.reference, actor.user, actor.private_key, "Checking in with you.", [], app.config
    )
    db.session.commit()


def test_withdrawal_has_no_checkins_and_reopening_stops_the_clocks_until_closed_again(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
) -> None:
    actor = actor_for(app, guardian)
    frozen(utc(2026, 3, 2, 9))
    case = submit(org).case
    withdrawn = utc(2026, 3, 4, 9)
    frozen(withdrawn)
    move(app, case, actor, Status.ACKNOWLEDGED, Status.WITHDRAWN)
    assert case.next_checkin_at is None
    assert case.purge_after == utc(2028, 3, 4, 9)

    reopened = utc(2026, 6, 1, 9)
    frozen(reopened)
    move(app, case, actor, Status.REOPENED)
    assert case.closed_at is None and case.purge_after is None and case.next_checkin_at is None
    assert case.next_update_by == reopened + timedelta(days=28)

    closed = utc(2026, 7, 15, 12)
    frozen(closed)
    move(app, case, actor, Status.IN_PROGRESS, Status.FEEDBACK_GIVEN, Status.CLOSED)
    assert case.closed_at == closed
    assert case.next_checkin_at == utc(2026, 10, 15, 12)
    assert case.purge_after == utc(2028, 7, 15, 12)


# --- the inbox filters ------------------------------------------------------------------------


def test_inbox_filters_list_the_right_cases_at_a_frozen_time(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    actor = actor_for(app, guardian)

    def case_at(when: datetime, *targets: Status) -> str:
        frozen(when)
        case = submit(org).case
        move(app, case, actor, *targets)
        return case.reference

    # In date order, as they would have happened. "Now" is Wed 11 March 2026, 12:00.
    checkin_due = case_at(utc(2025, 12, 10, 10), *TO_CLOSED)  # check-in 10 Mar
    update_overdue = case_at(utc(2026, 2, 9, 10), Status.ACKNOWLEDGED)  # update by 9 Mar
    update_soon = case_at(utc(2026, 2, 12, 10), Status.ACKNOWLEDGED)  # update by 12 Mar
    closed_recently = case_at(utc(2026, 3, 1, 10), *TO_CLOSED)  # check-in 1 Jun
    on_track = case_at(utc(2026, 3, 5, 10), Status.ACKNOWLEDGED)  # update by 2 Apr
    ack_overdue = case_at(utc(2026, 3, 6, 16))  # acknowledge by Tue 10 Mar 16:00
    ack_soon = case_at(utc(2026, 3, 10, 9))  # acknowledge by Thu 12 Mar 09:00

    frozen(utc(2026, 3, 11, 12))
    client = staff_client(guardian)
    everything = {
        checkin_due,
        update_overdue,
        update_soon,
        closed_recently,
        on_track,
        ack_overdue,
        ack_soon,
    }
    assert references(client, "") == everything
    assert references(client, "?filter=all") == everything
    assert references(client, "?filter=overdue") == {ack_overdue, update_overdue}
    assert references(client, "?filter=due_soon") == {ack_soon, update_soon}
    assert references(client, "?filter=checkin") == {checkin_due}
    assert references(client, "?filter=open") == {
        update_overdue,
        update_soon,
        on_track,
        ack_overdue,
        ack_soon,
    }

    # A day and a half later the "soon" ones are overdue; a check-in message clears the
    # check-in (the next one is three months on).
    frozen(utc(2026, 3, 12, 23))
    client = staff_client(guardian)
    assert references(client, "?filter=overdue") == {
        ack_overdue,
        update_overdue,
        update_soon,
        ack_soon,
    }
    move_message(app, db.session.scalar(select(Case).where(Case.reference == checkin_due)), actor)
    assert references(client, "?filter=checkin") == set()


def test_a_case_withdrawn_before_acknowledgement_is_never_overdue(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """A withdrawn case has no clock running (received → withdrawn is a legal move), so
    its unmet acknowledge-by date must not keep it in the overdue or due-soon lists."""
    actor = actor_for(app, guardian)
    frozen(utc(2026, 3, 2, 9))
    case = submit(org).case
    frozen(utc(2026, 3, 2, 10))
    move(app, case, actor, Status.WITHDRAWN)
    assert case.acknowledged_at is None

    frozen(utc(2026, 3, 3, 9))  # acknowledge-by (Wed 4 Mar 09:00) is within 3 days
    client = staff_client(guardian)
    assert references(client, "?filter=due_soon") == set()
    frozen(utc(2026, 3, 11, 12))  # and now long past
    client = staff_client(guardian)
    assert references(client, "?filter=overdue") == set()
    assert references(client, "?filter=open") == set()
    # nor is it flagged overdue in the list of all cases
    page = client.get("/staff/cases/").get_data(as_text=True)
    assert case.reference in page
    assert "nhsuk-tag--red" not in page


def test_a_case_with_feedback_given_is_not_due_soon_for_feedback(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """Once feedback is given its clock has stopped: the overdue filter and the case page
    already ignore feedback-by for such a case, and the due-soon filter must agree."""
    actor = actor_for(app, guardian)
    frozen(utc(2025, 12, 11, 12))
    case = submit(org).case
    move(app, case, actor, Status.ACKNOWLEDGED, Status.ASSESSING, Status.IN_PROGRESS)
    assert case.feedback_by == utc(2026, 3, 12, 12)
    frozen(utc(2026, 3, 10, 12))
    move(app, case, actor, Status.FEEDBACK_GIVEN)
    assert case.next_update_by == utc(2026, 4, 7, 12)

    frozen(utc(2026, 3, 11, 12))
    client = staff_client(guardian)
    assert references(client, "?filter=overdue") == set()
    assert references(client, "?filter=due_soon") == set()


# --- the reporter's check-in prompt -----------------------------------------------------------


def test_the_reporter_is_prompted_when_a_checkin_is_due(
    app: Flask,
    frozen: Callable[[datetime], None],
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
) -> None:
    actor = actor_for(app, guardian)
    frozen(utc(2026, 3, 2, 9))
    submission = submit(org)
    closed = utc(2026, 3, 16, 10)
    frozen(closed)
    move(app, submission.case, actor, *TO_CLOSED)

    def reporter_page() -> str:
        reporter = app.test_client()
        response = reporter.post("/follow-up", data={"receipt": submission.receipt})
        assert response.status_code == 302
        page = reporter.get("/follow-up/case")
        assert page.status_code == 200
        return page.get_data(as_text=True)

    frozen(utc(2026, 4, 16, 10))  # a month after closure
    page = reporter_page()
    assert CHECKIN_ANY_TIME in page and CHECKIN_DUE not in page

    frozen(utc(2026, 6, 16, 10, 1))  # three months after closure
    page = reporter_page()
    assert CHECKIN_DUE in page

    # The guardian checks in: no prompt until the six-month check-in.
    move_message(app, submission.case, actor)
    assert submission.case.next_checkin_at == utc(2026, 9, 16, 10)
    page = reporter_page()
    assert CHECKIN_DUE not in page and CHECKIN_ANY_TIME in page
    frozen(utc(2026, 9, 17, 8))
    assert CHECKIN_DUE in reporter_page()
