"""Every page, in every state a person meets it in, passes axe-core (WCAG 2.2 AA and best
practice) on a desktop screen and on a 320px-wide phone, where it must not scroll sideways.

One server and one set of data serve the whole module: the pages are only looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from speakup.accounts.models import Role
from speakup.accounts.services import create_user
from speakup.cases.models import Case
from speakup.extensions import db
from speakup.organisations.models import Organisation
from tests.conftest import PASSWORD, TEST_ARGON2
from tests.e2e.accessibility import (
    VIEWPORTS,
    assert_accessible,
    assert_no_sideways_scroll,
    expect_heading,
)
from tests.e2e.journeys import (
    enter_password,
    fill_report,
    follow_up,
    make_png,
    send_report,
    staff_sign_in,
)
from tests.e2e.site import Browsing, Login, Site

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Prepared:
    """A case with files and messages on both sides, and the people to look at it."""

    receipt: str
    reference: str
    #: cookies of a guardian who has signed in (a security code works only once)
    guardian_state: dict[str, Any]
    #: an account that has not yet set up its security code
    new_staff: Login
    photo: Path


@pytest.fixture(scope="module")
def prepared(
    shared_site: Site, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> Prepared:
    """Made once, through the browser: a report with a photo, a guardian's reply with a
    photo, and the reporter's answer; plus a staff account still to set up its code."""
    site = shared_site
    with site.app.app_context():
        organisation = db.session.scalars(select(Organisation)).one()
        create_user(
            email="new.guardian@example.test",
            display_name="Nadia New",
            role=Role.GUARDIAN,
            password=PASSWORD,
            params=TEST_ARGON2,
            organisation=organisation,
        )
        db.session.commit()
    new_staff = Login("new.guardian@example.test", PASSWORD, None)
    photo = make_png(tmp_path_factory.mktemp("e2e-files") / "ward-photo.png")

    browsing = Browsing(browser)
    try:
        reporter = browsing.open(site).new_page()
        reporter.goto("/report")
        fill_report(reporter, site, "Racist remarks at handover.\nTwice.", attachment=photo)
        receipt = send_report(reporter)

        guardian = browsing.open(site).new_page()
        staff_sign_in(guardian, site.guardian)
        guardian.get_by_role("link", name=re.compile(r"^SU-")).click()
        guardian.get_by_label("Message to the reporter").fill("Thank you. Is this the rota?")
        guardian.get_by_label("Attach files").set_input_files(photo)
        guardian.get_by_role("button", name="Send to reporter").click()
        expect(guardian.get_by_text("Thank you. Is this the rota?")).to_be_visible()
        guardian_state = guardian.context.storage_state()

        follow_up(reporter, receipt)
        reporter.get_by_label("Send a message to your guardian").fill("Yes, that is it.")
        reporter.get_by_role("button", name="Send message").click()
        expect(reporter.get_by_text("Yes, that is it.")).to_be_visible()
        browsing.assert_clean()
    finally:
        browsing.close()
    with site.app.app_context():
        reference = db.session.scalars(select(Case.reference)).one()
    return Prepared(receipt, reference, guardian_state, new_staff, photo)


# The pages, each brought into the state to check ------------------------------------------

Screen = Callable[[Page, Site, Prepared], None]
SCREENS: dict[str, Screen] = {}
#: screens seen by a signed-in guardian
STAFF_SCREENS = {"inbox", "guardian-case"}


def screen(name: str) -> Callable[[Screen], Screen]:
    def register(fn: Screen) -> Screen:
        SCREENS[name] = fn
        return fn

    return register


@screen("start")
def _start(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/")
    expect_heading(page, re.compile("^Speak up"))


@screen("report-form")
def _report_form(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/report")
    expect_heading(page, "Raise a concern")


@screen("report-form-pool-choice")
def _report_form_pool_choice(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/report")
    page.get_by_label("A guardian I choose from the regional pool").check()
    expect(page.get_by_role("group", name="Choose a guardian")).to_be_visible()


@screen("report-form-errors")
def _report_form_errors(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/report")
    page.get_by_role("button", name="Send my concern").click()
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()


@screen("receipt")
def _receipt(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/report")
    fill_report(page, site, "Left off training lists again.", attachment=prep.photo)
    send_report(page)


@screen("follow-up")
def _follow_up(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/follow-up")
    expect_heading(page, "Follow up on a concern")


@screen("follow-up-error")
def _follow_up_error(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/follow-up")
    page.get_by_label("Your receipt").fill("AAAA-BBBB-CCCC-DDDD")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()


@screen("reporter-case")
def _reporter_case(page: Page, site: Site, prep: Prepared) -> None:
    follow_up(page, prep.receipt)
    expect(page.get_by_role("link", name="ward-photo.png")).to_have_count(2)
    expect(page.get_by_text("Yes, that is it.")).to_be_visible()


@screen("staff-sign-in")
def _staff_sign_in(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/sign-in")
    expect_heading(page, "Sign in")


@screen("staff-sign-in-error")
def _staff_sign_in_error(page: Page, site: Site, prep: Prepared) -> None:
    # An unknown address: a wrong password would count towards locking a real account.
    page.goto("/staff/sign-in")
    page.get_by_label("Email address").fill("nobody@example.test")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()


@screen("security-code")
def _security_code(page: Page, site: Site, prep: Prepared) -> None:
    enter_password(page, site.guardian)
    expect_heading(page, "Enter your security code")


@screen("security-code-enrolment")
def _enrolment(page: Page, site: Site, prep: Prepared) -> None:
    enter_password(page, prep.new_staff)
    expect_heading(page, "Set up your security code")
    expect(page.locator(".speakup-qr svg")).to_be_visible()


@screen("inbox")
def _inbox(page: Page, site: Site, prep: Prepared) -> None:
    page.goto("/staff/cases/")
    expect(page.get_by_role("link", name=prep.reference)).to_be_visible()


@screen("guardian-case")
def _guardian_case(page: Page, site: Site, prep: Prepared) -> None:
    page.goto(f"/staff/cases/{prep.reference}")
    expect_heading(page, f"Case {prep.reference}")
    expect(page.get_by_role("link", name="ward-photo.png")).to_have_count(2)


@screen("not-found")
def _not_found(page: Page, site: Site, prep: Prepared) -> None:
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect_heading(page, "Page not found")


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("name", SCREENS)
def test_page_is_accessible(name, viewport, shared_site, prepared, browsing):
    size = VIEWPORTS[viewport]
    options: dict[str, Any] = {"viewport": size}
    if name in STAFF_SCREENS:
        options["storage_state"] = prepared.guardian_state
    page = browsing.open(shared_site, **options).new_page()
    SCREENS[name](page, shared_site, prepared)
    assert_accessible(page)
    if size["width"] == 320:
        assert_no_sideways_scroll(page, 320)
    browsing.assert_clean()
