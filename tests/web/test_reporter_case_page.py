"""The reporter's case page (issue 9): withdrawing her concern, UK dates and times, plain
state names, and the feedback deadline gone once it no longer applies."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import Case, DisclosureMode, Message, Route, Status
from speakup.cases.workflow import WITHDRAWN_MESSAGE
from speakup.dates import month_year, uk_date, uk_datetime
from speakup.extensions import db
from speakup.reporting.services import ReportInput, submit_report
from speakup.settings import argon2_params
from speakup.stats.facts import shuffle_inbox
from speakup.stats.models import Fact
from tests.conftest import actor_for, move
from tests.web.test_follow_up import CSRF, page, signed_in


@pytest.fixture
def org(make_org, tmp_path):
    return make_org(recovery_dir=tmp_path)


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Grace Guardian")


def test_uk_dates_and_times():
    summer = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)  # 00:30 on 2 July in London (BST)
    winter = datetime(2026, 11, 14, 9, 5, tzinfo=UTC)  # GMT: the same clock time
    assert uk_datetime(summer) == "2 July 2026, 00:30"
    assert uk_date(summer) == "2 July 2026"
    assert uk_date(summer, weekday=True) == "Thursday 2 July 2026"
    assert uk_datetime(winter) == "14 November 2026, 09:05"
    assert uk_datetime(None) == "" and uk_date(None) == ""
    assert month_year("2026-11") == "November 2026"
    assert month_year("") == "" and month_year("a while ago") == "a while ago"


# Withdrawing -----------------------------------------------------------------------------


def test_withdraw_asks_first_then_withdraws_tells_guardians_and_counts_once(
    app, guardian, org, submit, staff_client
):
    submission = submit(org)
    case_id = submission.case.id
    reporter = signed_in(app, submission.receipt)

    body = page(reporter.get("/follow-up/case"))
    assert "Withdraw your concern" in body
    confirm = reporter.get("/follow-up/case/withdraw")
    assert confirm.status_code == 200
    text = page(confirm)
    assert "Are you sure you want to withdraw your concern?" in text
    assert "Yes, withdraw my concern" in text
    # The GET changed nothing.
    assert db.session.get(Case, case_id).status == Status.RECEIVED

    token = CSRF.search(text).group(1)
    done = reporter.post("/follow-up/case/withdraw", data={"csrf_token": token})
    assert done.status_code == 302 and done.location.endswith("/follow-up/case")

    case = db.session.get(Case, case_id)
    db.session.refresh(case)
    assert case.status == Status.WITHDRAWN and case.closed_at is not None
    assert case.next_update_by is None and case.purge_after is not None
    details = db.session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.case_id == case_id,
            AuditEvent.action == "case.status_changed",
            AuditEvent.actor_kind == "reporter",
        )
    ).all()
    assert details == ["received->withdrawn"]
    kinds = db.session.scalars(select(Message.author_kind).where(Message.case_id == case_id)).all()
    assert kinds == ["service"]

    after = page(reporter.get("/follow-up/case"))
    assert "You withdrew your concern." in after
    assert WITHDRAWN_MESSAGE in after
    assert "Speakup (automatic message)" in after
    assert 'href="/follow-up/case/withdraw"' not in after
    assert "Feedback on what is being done" not in after

    # Her guardian reads it in the thread.
    guardian_page = page(staff_client(guardian).get(f"/staff/cases/{case.reference}"))
    assert WITHDRAWN_MESSAGE in guardian_page

    # Statistics: one closure fact, outcome withdrawn.
    shuffle_inbox(app.config, min_batch=1, flush=True)
    closed = db.session.scalars(select(Fact).where(Fact.kind == "closed")).all()
    assert [f.outcome for f in closed] == ["withdrawn"]


def test_withdraw_is_not_offered_or_possible_after_feedback(app, guardian, org, submit):
    submission = submit(org)
    case = submission.case
    move(
        app,
        case,
        actor_for(app, guardian),
        Status.ACKNOWLEDGED,
        Status.ASSESSING,
        Status.IN_PROGRESS,
        Status.FEEDBACK_GIVEN,
    )
    reporter = signed_in(app, submission.receipt)
    body = page(reporter.get("/follow-up/case"))
    assert 'href="/follow-up/case/withdraw"' not in body
    # Deadline hidden once feedback was given; the date it was given shown instead.
    assert "Feedback on what is being done" not in body
    assert "Feedback given" in body
    token = CSRF.search(body).group(1)
    r = reporter.post("/follow-up/case/withdraw", data={"csrf_token": token})
    assert r.status_code == 302
    db.session.refresh(case)
    assert case.status == Status.FEEDBACK_GIVEN
    assert reporter.get("/follow-up/case/withdraw").status_code == 302


def test_withdraw_needs_a_session_and_its_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_staff(Role.GUARDIAN, org)
        submission = submit_report(
            ReportInput(
                organisation_id=org.id,
                route=Route.ORGANISATION,
                disclosure_mode=DisclosureMode.ANONYMOUS,
                what_happened="Something happened.",
                submission_token=secrets.token_urlsafe(16),
            ),
            pepper=app.config["RECEIPT_PEPPER"],
            params=argon2_params(app.config),
            sla={"acknowledge_working_days": 2, "acknowledge_ceiling_days": 7},
        )
        db.session.commit()
        assert app.test_client().get("/follow-up/case/withdraw").location.endswith("/follow-up")
        reporter = app.test_client()
        token = CSRF.search(reporter.get("/follow-up").get_data(as_text=True)).group(1)
        signed = reporter.post(
            "/follow-up", data={"receipt": submission.receipt, "csrf_token": token}
        )
        assert signed.status_code == 302
        assert reporter.post("/follow-up/case/withdraw", data={}).status_code == 400
        db.session.refresh(submission.case)
        assert submission.case.status == Status.RECEIVED


# Dates and words --------------------------------------------------------------------------


def test_when_shows_as_month_and_year_and_times_in_uk_time(app, guardian, org, submit):
    submission = submit(org, when="2026-11")
    reporter = signed_in(app, submission.receipt)
    body = page(reporter.get("/follow-up/case"))
    assert "November 2026" in body
    assert "2026-11" not in body
    assert " UTC" not in body


def test_the_panel_case_does_not_say_your_guardian(app, make_staff, org, submit):
    make_staff(Role.PANEL_MEMBER, name="Pat Panel")
    submission = submit(org, route=Route.PANEL)
    reporter = signed_in(app, submission.receipt)
    body = page(reporter.get("/follow-up/case"))
    assert "Send a message to the panel" in body
    assert "your guardian" not in body.replace("your guardian is", "")
