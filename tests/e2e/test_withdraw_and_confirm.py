"""Issue 9 in a real browser, driven by visible labels and roles: the reporter withdraws her
concern after a confirmation page; a guardian sees "Reporter wrote" in the inbox, filters by
it, and hands the case over through its confirmation page. axe finds nothing on the new
pages at 360 px and 1280 px, and nothing scrolls sideways."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from speakup.cases.workflow import WITHDRAWN_MESSAGE
from tests.e2e.accessibility import assert_accessible, assert_no_sideways_scroll, expect_heading
from tests.e2e.journeys import follow_up, send_report, staff_sign_in, unique_text
from tests.e2e.workflow_support import expect_done, report_confidentially

pytestmark = pytest.mark.browser

WIDTHS = {"360px": {"width": 360, "height": 640}, "1280px": {"width": 1280, "height": 800}}


def check(page, width: int) -> None:
    assert_accessible(page)
    assert_no_sideways_scroll(page, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_reporter_writes_guardian_sees_it_and_hands_over_then_she_withdraws(
    width, live_site, browsing
):
    size = WIDTHS[width]
    concern = unique_text("The night manager mocks my accent in handovers, ref")

    reporter = browsing.open(live_site, viewport=size).new_page()
    report_confidentially(reporter, live_site, concern, name="Ama Reporter")
    receipt = send_report(reporter)
    follow_up(reporter, receipt)
    reporter.get_by_label("Send a message to your guardian").fill("It happened again today.")
    reporter.get_by_role("button", name="Send message").click()
    expect(reporter.get_by_text("It happened again today.")).to_be_visible()

    # The guardian's inbox flags that the reporter wrote, and filters by it.
    guardian = browsing.open(live_site, viewport=size).new_page()
    staff_sign_in(guardian, live_site.guardian)
    expect_heading(guardian, "Your cases")
    cases = guardian.get_by_role("table", name="Cases sealed to you")
    expect(cases.get_by_role("cell").get_by_text("Reporter wrote", exact=True)).to_be_visible()
    guardian.get_by_label("Show").select_option(label="Reporter wrote")
    guardian.get_by_role("button", name="Apply").click()
    expect(guardian.get_by_text("1 case (reporter wrote)")).to_be_visible()
    check(guardian, size["width"])

    # Handing over asks first, saying what will happen.
    guardian.get_by_role("link", name=re.compile(r"^SU-")).click()
    guardian.get_by_text("Hand over to a guardian from the regional pool").click()
    org_name = live_site.organisation_label.split(" (")[0]
    guardian.get_by_label("Pool guardian").select_option(label=f"Priya Pool ({org_name})")
    guardian.get_by_role("button", name="Hand over", exact=True).click()
    expect_heading(guardian, "Hand this case over to Priya Pool?")
    expect(guardian.get_by_text("You keep your access to this case.")).to_be_visible()
    check(guardian, size["width"])
    guardian.get_by_role("button", name="Yes, hand over").click()
    expect_done(guardian, "The case was handed over.")

    # She withdraws, after a page that says what withdrawing does.
    reporter.reload()
    reporter.get_by_role("link", name="Withdraw your concern").click()
    expect_heading(reporter, "Are you sure you want to withdraw your concern?")
    check(reporter, size["width"])
    reporter.get_by_role("button", name="Yes, withdraw my concern").click()
    expect_heading(reporter, "Your concern")
    expect(reporter.get_by_text("You withdrew your concern.")).to_be_visible()
    expect(reporter.get_by_role("link", name="Withdraw your concern")).to_have_count(0)
    check(reporter, size["width"])

    # Her guardian reads it in the thread.
    guardian.reload()
    expect(guardian.get_by_text(WITHDRAWN_MESSAGE)).to_be_visible()
    browsing.assert_clean()
