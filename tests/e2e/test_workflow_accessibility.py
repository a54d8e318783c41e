"""The workflow's pages, in the states people meet them in, pass axe-core (WCAG 2.2 AA and
best practice) on a desktop screen and on a 320px-wide phone, where they must not scroll
sideways: the case page from received to closed, the inbox with filters and overdue cases,
the lead guardian's overview, audit trails, the administration pages, changing a password,
the reporter's page after feedback and after closure, and the "someone else changed it" page.

One server and one set of data serve the whole module. The cases are made through the
services (the journeys test the same steps in the browser); each person signs in through
the browser once, as a security code works only once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from speakup.accounts.models import Role
from speakup.cases.models import Status
from speakup.cases.triage import Triage
from speakup.db import utcnow
from tests.e2e.accessibility import (
    VIEWPORTS,
    assert_accessible,
    assert_no_sideways_scroll,
    expect_heading,
)
from tests.e2e.journeys import follow_up
from tests.e2e.site import Browsing, Site
from tests.e2e.workflow_support import (
    Seeded,
    add_staff,
    disable_account,
    expect_conflict,
    expect_status,
    guardian_steps,
    lock_account,
    move_clocks,
    open_all_details,
    reporter_answers,
    settle,
    sign_in,
    someone_else_changes,
    submit_case,
    summary_value,
    take_action,
)

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Prepared:
    """Cases in several states, and the signed-in cookies of each kind of staff."""

    received: Seeded
    assessing: Seeded
    feedback: Seeded
    closed: Seeded
    #: cookies by who: "guardian", "lead", "admin" (a security code works only once)
    states: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def prepared(shared_site: Site, browser: Browser) -> Prepared:
    site, app = shared_site, shared_site.app
    lead = add_staff(app, "lead@example.test", "Lola Lead", Role.LEAD_GUARDIAN)
    admin = add_staff(app, "admin@example.test", "Adam Admin", Role.ADMIN, in_org=False)
    # An account disabled before any case came in, for the accounts page's other state.
    add_staff(app, "former@example.test", "Fern Former", Role.GUARDIAN)
    disable_account(app, "former@example.test")
    add_staff(app, "locked@example.test", "Lee Locked", Role.GUARDIAN)
    add_staff(app, "reset@example.test", "Rhea Reset", Role.GUARDIAN)
    lock_account(app, "locked@example.test")
    guardian = site.guardian
    now = utcnow()

    # Received and overdue: acknowledge-by has passed (the ceiling too).
    received = submit_case(
        app,
        "Racist remarks about my accent at every handover.",
        name="Ama Reporter",
        categories=("racism_colleague", "microaggressions"),
    )
    move_clocks(
        app,
        received.reference,
        received_at=now - timedelta(days=10),
        acknowledge_by=now - timedelta(days=6),
        acknowledge_ceiling=now - timedelta(days=3),
    )
    # Triaged and being assessed, escalation possible.
    assessing = submit_case(app, "Overseas nurses never get the training days.")
    guardian_steps(
        app,
        guardian,
        assessing.reference,
        [(Status.ACKNOWLEDGED, "Thank you. I am looking at it.")],
        triage=Triage(
            elements=["worker_safety_wellbeing"],
            race_codes=["training_access", "international_recruits"],
            about=["manager"],
            flags=["protected_act", "immediate_risk"],
            priority="urgent",
        ),
    )
    # Feedback given: the reporter is asked whether they would speak up again.
    feedback = submit_case(app, "My rota is changed without notice.", escalation_consent=False)
    guardian_steps(
        app,
        guardian,
        feedback.reference,
        [
            (Status.ACKNOWLEDGED, "Thank you."),
            (Status.ASSESSING, ""),
            (Status.IN_PROGRESS, ""),
            (Status.FEEDBACK_GIVEN, "Rotas are now agreed four weeks ahead."),
        ],
    )
    # Closed four months ago, with the answer given and the first check-in due.
    closed = submit_case(app, "I was left out of team meetings.", name="Kofi Reporter")
    guardian_steps(
        app,
        guardian,
        closed.reference,
        [
            (Status.ACKNOWLEDGED, "Thank you."),
            (Status.ASSESSING, ""),
            (Status.REFERRED, "I have referred it to the divisional director."),
            (Status.FEEDBACK_GIVEN, "Team meetings now have an open invitation list."),
            (Status.CLOSED, "I am closing your concern now."),
        ],
    )
    reporter_answers(app, closed, "maybe", "It helped, but it took months.")
    move_clocks(
        app,
        closed.reference,
        received_at=now - timedelta(days=230),
        closed_at=now - timedelta(days=120),
        next_checkin_at=now - timedelta(days=28),
    )

    states: dict[str, dict[str, Any]] = {}
    browsing = Browsing(browser)
    try:
        for who, login, landing in (
            ("guardian", guardian, "Your cases"),
            ("lead", lead, "Your cases"),
            ("admin", admin, "Staff accounts"),
        ):
            page = browsing.open(site).new_page()
            sign_in(page, login, landing)
            states[who] = page.context.storage_state()
        browsing.assert_clean()
    finally:
        browsing.close()
    return Prepared(received, assessing, feedback, closed, states)


# The pages, each brought into the state to check ------------------------------------------

Screen = Callable[[Page, Site, Prepared], None]
#: name -> (who looks: a staff state or None for a reporter, how to get there)
SCREENS: dict[str, tuple[str | None, Screen]] = {}


def screen(name: str, who: str | None) -> Callable[[Screen], Screen]:
    def register(fn: Screen) -> Screen:
        SCREENS[name] = (who, fn)
        return fn

    return register


def _case_page(page: Page, reference: str) -> None:
    page.goto(f"/staff/cases/{reference}")
    expect_heading(page, f"Case {reference}")


@screen("case-received-all-actions", "lead")
def _case_received(page: Page, site: Site, prep: Prepared) -> None:
    # A lead guardian also sees "Assign or transfer"; every fold is opened.
    _case_page(page, prep.received.reference)
    expect_status(page, "received")
    expect(page.get_by_role("button", name="Take this case")).to_be_visible()
    expect(page.locator(".speakup-deadlines").get_by_text("Overdue")).to_be_visible()
    open_all_details(page)
    for label in ("Acknowledge", "Withdraw", "Save triage", "Assign", "Hand over"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()


@screen("case-assessing", "guardian")
def _case_assessing(page: Page, site: Site, prep: Prepared) -> None:
    _case_page(page, prep.assessing.reference)
    expect_status(page, "assessing")
    expect(summary_value(page, "Priority")).to_have_text("Urgent")
    open_all_details(page)
    expect(
        page.get_by_role("button", name="Escalate to the regional panel", exact=True)
    ).to_be_visible()


@screen("case-closed", "guardian")
def _case_closed(page: Page, site: Site, prep: Prepared) -> None:
    _case_page(page, prep.closed.reference)
    expect_status(page, "closed")
    expect(summary_value(page, "Detriment check-ins")).to_be_visible()
    # Sealed to the reporter alone: the guardian sees only that she answered.
    expect(summary_value(page, "Would speak up again?")).to_have_text(
        "The reporter answered. Their answer is counted in the statistics only: it is sealed "
        "so that nobody but the reporter can read it beside their case."
    )
    open_all_details(page)
    expect(page.get_by_role("button", name="Reopen", exact=True)).to_be_visible()


@screen("case-conflict", "guardian")
def _case_conflict(page: Page, site: Site, prep: Prepared) -> None:
    # Another guardian's change lands while this page is open: the press is refused (409).
    _case_page(page, prep.received.reference)
    settle(page)
    someone_else_changes(site.app, prep.received.reference)
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        take_action(page, "acknowledged", "Acknowledge")
    assert sent.value.status == 409
    expect_conflict(page, "received")


@screen("confirm-close", "guardian")
def _confirm_close(page: Page, site: Site, prep: Prepared) -> None:
    # Confirmation pages change nothing until their button is pressed (issue 9).
    _case_page(page, prep.feedback.reference)
    open_all_details(page)
    page.get_by_role("button", name="Close", exact=True).click()
    expect_heading(page, "Close this case?")
    expect(page.get_by_label("Words sent to the reporter")).to_be_visible()


@screen("confirm-escalate", "guardian")
def _confirm_escalate(page: Page, site: Site, prep: Prepared) -> None:
    _case_page(page, prep.assessing.reference)
    open_all_details(page)
    page.get_by_role("button", name="Escalate to the regional panel", exact=True).click()
    expect_heading(page, "Escalate this case to the regional panel?")


@screen("confirm-remove-reader", "guardian")
def _confirm_remove(page: Page, site: Site, prep: Prepared) -> None:
    _case_page(page, prep.received.reference)
    page.get_by_text("Remove someone's access").click()
    page.get_by_label("Reader to remove").select_option(index=1)
    page.get_by_role("button", name="Remove access").click()
    expect_heading(page, re.compile(r"^Remove .* access\?$"))
    expect(page.get_by_role("button", name="Yes, remove access")).to_be_visible()


@screen("case-audit-trail", "guardian")
def _case_audit(page: Page, site: Site, prep: Prepared) -> None:
    page.goto(f"/staff/cases/{prep.closed.reference}")
    settle(page)
    page.get_by_role("link", name="Audit trail of this case").click()
    expect_heading(page, f"Audit trail of case {prep.closed.reference}")
    expect(
        page.get_by_role("cell", name="case.status_changed (feedback_given->closed)")
    ).to_be_visible()


@screen("inbox-by-deadline", "guardian")
def _inbox(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/cases/")
    settle(page)
    page.get_by_label("Order").select_option(label="Next deadline first")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"sort=due"))
    rows = page.locator("table.nhsuk-table tbody tr")
    expect(rows).to_have_count(4)
    # The two overdue first: the check-in due a month ago, then the acknowledgement.
    expect(rows.nth(0)).to_contain_text(prep.closed.reference)
    expect(rows.nth(0)).to_contain_text("Detriment check-in")
    expect(rows.nth(1)).to_contain_text(prep.received.reference)
    for row in (rows.nth(0), rows.nth(1)):
        expect(row.get_by_text("Overdue")).to_be_visible()


@screen("inbox-overdue", "guardian")
def _inbox_overdue(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/cases/")
    settle(page)
    page.get_by_label("Show").select_option(label="Overdue")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.nhsuk-table tbody tr")
    expect(rows.first).to_contain_text(prep.received.reference)
    expect(rows.filter(has_text=prep.received.reference)).to_contain_text("Overdue")


@screen("inbox-no-match", "guardian")
def _inbox_no_match(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/cases/?filter=due_soon&sort=priority")
    expect(page.get_by_label("Show")).to_have_value("due_soon")


@screen("lead-overview", "lead")
def _overview(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/cases/overview")
    expect_heading(page, re.compile(r"^Open cases in "))
    expect(page.get_by_role("cell", name=prep.received.reference)).to_be_visible()


@screen("admin-users", "admin")
def _admin_users(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/admin/users")
    expect_heading(page, "Staff accounts")
    open_all_details(page)
    expect(page.get_by_role("link", name="Reset Gita Guardian’s account")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Fern Former"))).to_contain_text("Disabled")
    expect(page.get_by_role("row", name=re.compile("^Lee Locked"))).to_contain_text("Locked")


@screen("admin-reset-confirm", "admin")
def _admin_reset_confirm(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/admin/users")
    page.get_by_role("link", name="Reset Gita Guardian’s account").click()
    expect_heading(page, "Reset Gita Guardian’s account?")
    expect(page.get_by_role("button", name="Reset Gita Guardian’s account")).to_be_visible()


@screen("admin-reset-done", "admin")
def _admin_reset_done(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/admin/users")
    page.get_by_role("link", name="Reset Rhea Reset’s account").click()
    settle(page)
    page.get_by_role("button", name="Reset Rhea Reset’s account").click()
    expect_heading(page, "Rhea Reset’s account was reset")
    expect(page.get_by_text(re.compile(r"^([0-9A-Z]{4}-){4}[0-9A-Z]{4}$"))).to_be_visible()


@screen("staff-enrol", None)
def _staff_enrol(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/enrol")
    expect_heading(page, "Set up your account again")


@screen("staff-enrol-errors", None)
def _staff_enrol_errors(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/enrol")
    settle(page)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".nhsuk-error-summary").get_by_role("link")).to_have_count(4)


@screen("admin-audit-log", "admin")
def _admin_audit(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/admin/audit")
    expect_heading(page, "Who accessed what")


@screen("change-password", "guardian")
def _change_password(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/account/password")
    expect_heading(page, "Change your password")


@screen("change-password-errors", "guardian")
def _change_password_errors(page: Page, site: Site, prep: Prepared) -> None:
    # Nothing that counts as a wrong password: the form stops before checking it.
    page.goto("/staff/account/password")
    settle(page)
    page.get_by_label("New password", exact=True).fill("too short")
    page.get_by_label("New password again").fill("something else")
    page.get_by_role("button", name="Change password").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary.get_by_role("link")).to_have_count(3)


@screen("reporter-after-feedback", None)
def _reporter_feedback(page: Page, site: Site, prep: Prepared) -> None:
    follow_up(page, prep.feedback.receipt)
    expect_status(page, "feedback_given")
    expect(page.get_by_role("heading", name="Would you speak up again?")).to_be_visible()


@screen("reporter-after-feedback-error", None)
def _reporter_feedback_error(page: Page, site: Site, prep: Prepared) -> None:
    follow_up(page, prep.feedback.receipt)
    settle(page)
    page.get_by_role("button", name="Send my answer").click()
    expect(page.locator(".nhsuk-error-summary").get_by_role("link")).to_have_text(
        "Choose an answer"
    )


@screen("reporter-after-closure", None)
def _reporter_closed(page: Page, site: Site, prep: Prepared) -> None:
    follow_up(page, prep.closed.receipt)
    expect_status(page, "closed")
    expect(page.get_by_text("You answered: Maybe.")).to_be_visible()
    expect(page.get_by_text("It is time for a check-in.")).to_be_visible()
    expect(page.get_by_label("What has happened?")).to_be_visible()
    # Confidential: the separate consent to the panel knowing who they are is asked too.
    expect(
        page.get_by_role("group", name="If it is escalated, may the panel know who you are?")
    ).to_be_visible()
    open_all_details(page)


@screen("reporter-after-closure-error", None)
def _reporter_closed_error(page: Page, site: Site, prep: Prepared) -> None:
    follow_up(page, prep.closed.receipt)
    settle(page)
    page.get_by_role("button", name="Tell my guardian").click()
    expect(page.locator(".nhsuk-error-summary").get_by_role("link")).to_have_text(
        "Tell us what has happened"
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("name", SCREENS)
def test_page_is_accessible(name, viewport, shared_site, prepared, browsing):
    size = VIEWPORTS[viewport]
    who, show = SCREENS[name]
    options: dict[str, Any] = {"viewport": size}
    if who is not None:
        options["storage_state"] = prepared.states[who]
    page = browsing.open(shared_site, **options).new_page()
    show(page, shared_site, prepared)
    assert_accessible(page)
    if size["width"] == 320:
        assert_no_sideways_scroll(page, 320)
    browsing.assert_clean()
