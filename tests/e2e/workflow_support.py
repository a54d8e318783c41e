"""Steps of the case workflow in the browser, and data set up without it, for the workflow's
browser tests (journeys and accessibility). Written the way people see the pages."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select, update

from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password, create_user, new_totp_secret
from speakup.cases.models import Case, DisclosureMode, Route, Status
from speakup.cases.policy import policy_for
from speakup.cases.triage import Triage, record_triage
from speakup.cases.workflow import Actor, change_status
from speakup.db import utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import (
    ReportInput,
    record_speak_up_again,
    submit_report,
    unlock_reporter_key,
)
from tests.conftest import PASSWORD, SLA, TEST_ARGON2
from tests.e2e.journeys import enter_password, fill_report
from tests.e2e.site import Login, Site

#: what the guardian's page says for each state (macros/case.html)
STATUS_TEXT = {
    "received": "Received – waiting for a guardian to acknowledge it",
    "acknowledged": "Acknowledged – a guardian has it",
    "assessing": "Being assessed",
    "in_progress": "In progress",
    "feedback_given": "Feedback given",
    "closed": "Closed",
    "reopened": "Reopened",
}
CONFLICT = "This case was changed by someone else. Here is its latest state."


# In the browser: staff ---------------------------------------------------------------------


def sign_in(page: Page, login: Login, landing: str = "Your cases") -> None:
    """Staff sign-in (password, then security code), ending on the page with ``landing``."""
    enter_password(page, login)
    page.get_by_label("6-digit code from your authenticator app").fill(login.code())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name=landing)).to_be_visible()


def settle(page: Page) -> None:
    """Let the page finish loading what comes after its load event (the favicon) before a
    step that leaves it at once: a request cut off by navigating is a failure to the watch."""
    page.wait_for_load_state("networkidle")


def open_case(page: Page, reference: str) -> None:
    """A guardian opens a case from their inbox (where signing in lands: going there again
    at once would cut off the page's favicon request, which the watch counts as a failure)."""
    if not page.url.endswith("/staff/cases/"):
        page.goto("/staff/cases/")
    page.get_by_role("link", name=reference, exact=True).click()
    expect(page.get_by_role("heading", level=1, name=f"Case {reference}")).to_be_visible()


def status_value(page: Page) -> Locator:
    """The "Status" value at the top of a case page (guardian's or reporter's)."""
    return page.locator(".nhsuk-summary-list__row", has_text="Status").locator("dd").first


def expect_status(page: Page, status: str) -> None:
    expect(status_value(page)).to_have_text(STATUS_TEXT[status])


def summary_value(page: Page, key: str) -> Locator:
    """The value beside ``key`` in the case summary list."""
    row = page.locator(".nhsuk-summary-list__row").filter(
        has=page.locator("dt", has_text=re.compile(f"^{re.escape(key)}$"))
    )
    return row.locator("dd")


def action_form(page: Page, target: str) -> Locator:
    """The folded-away form of one workflow action ("What to do next"), opened."""
    details = page.locator(f"details#action-{target}")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    expect(page.locator(f"#message-{target}")).to_be_visible()
    return details


def take_action(page: Page, target: str, label: str, message: str | None = None) -> None:
    """Open an action, optionally replace the suggested words to the reporter, and press it.

    ``message=None`` keeps the suggested words; ``""`` sends none."""
    if target == "closed":
        # Closing is confirmed on a page of its own, which holds the words to the reporter.
        details = page.locator("details#action-closed")
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        details.get_by_role("button", name=label, exact=True).click()
        expect(page.get_by_role("heading", level=1, name="Close this case?")).to_be_visible()
        if message is not None:
            page.get_by_label("Words sent to the reporter").fill(message)
        page.get_by_role("button", name="Yes, close the case").click()
        return
    details = action_form(page, target)
    if message is not None:
        page.locator(f"#message-{target}").fill(message)
    details.get_by_role("button", name=label, exact=True).click()


def expect_done(page: Page, text: str) -> None:
    """The green "Done" banner after an action."""
    banner = page.get_by_role("alert").filter(has_text="Done")
    expect(banner).to_contain_text(text)


def expect_conflict(page: Page, status: str) -> None:
    """The case page answered with "someone else changed it" and the case's new state."""
    expect(page).to_have_title(re.compile(r"^Error: "))
    summary = page.locator(".nhsuk-error-summary")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_contain_text(CONFLICT)
    expect_status(page, status)


#: how Chromium logs a case action we answered with 409 ("someone else changed it")
def open_all_details(page: Page) -> None:
    """Unfold every <details>, so what they hold is checked too."""
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")


# In the browser: the reporter -------------------------------------------------------------


def report_confidentially(page: Page, site: Site, what_happened: str, name: str) -> None:
    """Fill the report form: confidentially, with a name and contact, consenting to the panel."""
    page.goto("/report")
    fill_report(page, site, what_happened, how="Confidentially")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("How can the guardian contact you?").fill("reporter@example.test")
    page.get_by_role(
        "group", name="May your concern be escalated to the regional panel if needed?"
    ).get_by_label("Yes", exact=True).check()


def answer_speak_up_again(page: Page, answer: str, words: str) -> None:
    """The reporter answers "Would you speak up again?" on their case page."""
    group = page.get_by_role("group", name="Given your experience, would you speak up again?")
    group.get_by_label(answer, exact=True).check()
    page.get_by_label("Anything you would like to add? (optional)").fill(words)
    page.get_by_role("button", name="Send my answer").click()
    expect(page.get_by_text(f"You answered: {answer}.")).to_be_visible()


def report_detriment(page: Page, text: str) -> None:
    """The reporter tells their guardian something happened after closure."""
    page.get_by_label("What has happened?").fill(text)
    page.get_by_role("button", name="Tell my guardian").click()
    expect(page).to_have_url(re.compile(r"/follow-up/case#messages$"))


# Without the browser: data for pages that are only looked at ------------------------------


@dataclass(frozen=True)
class Seeded:
    """A case made through the services, and the receipt its reporter holds."""

    reference: str
    receipt: str


def add_staff(app: Flask, email: str, name: str, role: Role, *, in_org: bool = True) -> Login:
    """An account with its security code set up, in the site's one organisation (or none)."""
    with app.app_context():
        organisation = db.session.scalars(select(Organisation)).one() if in_org else None
        secret = new_totp_secret()
        create_user(
            email=email,
            display_name=name,
            role=role,
            password=PASSWORD,
            params=TEST_ARGON2,
            organisation=organisation,
            totp_secret=secret,
        )
        db.session.commit()
    return Login(email, PASSWORD, secret)


def disable_account(app: Flask, email: str) -> None:
    """An administrator disabled this account (set directly: only its state is looked at)."""
    with app.app_context():
        db.session.execute(update(User).where(User.email == email).values(disabled=True))
        db.session.commit()


def lock_account(app: Flask, email: str) -> None:
    """Too many wrong passwords: the account is locked for a while (set directly)."""
    with app.app_context():
        until = utcnow() + timedelta(minutes=15)
        db.session.execute(update(User).where(User.email == email).values(locked_until=until))
        db.session.commit()


def submit_case(
    app: Flask,
    what_happened: str,
    *,
    name: str = "",
    escalation_consent: bool = True,
    categories: tuple[str, ...] = (),
) -> Seeded:
    """A report sent to the organisation's guardians (confidential when ``name`` is given)."""
    with app.app_context():
        organisation = db.session.scalars(select(Organisation)).one()
        data = ReportInput(
            organisation_id=organisation.id,
            route=Route.ORGANISATION,
            disclosure_mode=DisclosureMode.CONFIDENTIAL if name else DisclosureMode.ANONYMOUS,
            what_happened=what_happened,
            categories=list(categories),
            name=name,
            contact="reporter@example.test" if name else "",
            escalation_consent=escalation_consent,
            submission_token=secrets.token_urlsafe(16),
        )
        submission = submit_report(
            data, pepper=app.config["RECEIPT_PEPPER"], params=TEST_ARGON2, sla=SLA
        )
        db.session.commit()
        return Seeded(submission.case.reference, submission.receipt)


def _case(reference: str) -> Case:
    return db.session.scalars(select(Case).where(Case.reference == reference)).one()


def guardian_steps(
    app: Flask,
    login: Login,
    reference: str,
    steps: list[tuple[Status, str]],
    *,
    triage: Triage | None = None,
) -> None:
    """A guardian moves a case along (each step with its words to the reporter), as the
    case page's forms would; ``triage`` is recorded once the case is acknowledged."""
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == login.email)).one()
        key = check_password(user, login.password, TEST_ARGON2, app.config).private_key
        actor = Actor(user, key)
        for target, message in steps:
            case = _case(reference)
            policy = policy_for(case.organisation, app.config)
            change_status(
                case, actor, target, policy=policy, expected_version=None, message=message
            )
            db.session.commit()
            if target == Status.ACKNOWLEDGED and triage is not None:
                record_triage(_case(reference), actor, triage, expected_version=None)
                db.session.commit()


def reporter_answers(app: Flask, seeded: Seeded, answer: str, words: str) -> None:
    """The reporter's answer to "Would you speak up again?"."""
    with app.app_context():
        case = _case(seeded.reference)
        key = unlock_reporter_key(case, seeded.receipt, 2)
        assert key is not None
        record_speak_up_again(case, key, answer, words)
        db.session.commit()


def move_clocks(app: Flask, reference: str, **values: object) -> None:
    """Set a case's clock columns directly (a deadline in the past, a check-in due)."""
    with app.app_context():
        db.session.execute(update(Case).where(Case.reference == reference).values(**values))
        db.session.commit()


def someone_else_changes(app: Flask, reference: str) -> None:
    """Another guardian's change lands first: the case's version moves on under the page."""
    with app.app_context():
        db.session.execute(
            update(Case).where(Case.reference == reference).values(version=Case.version + 1)
        )
        db.session.commit()
