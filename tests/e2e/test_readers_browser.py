"""The reporter sees who can read her concern, and hears when that changes (DESIGN §3
promise 9), in a real browser, driven by what people see."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from speakup.accounts.models import Role
from tests.e2e.journeys import follow_up, send_report, staff_sign_in, unique_text
from tests.e2e.workflow_support import expect_done, report_confidentially

pytestmark = pytest.mark.browser


def test_the_reporter_sees_her_readers_and_is_told_of_a_hand_over(
    live_site, browsing, make_org, make_staff
):
    elsewhere = make_org("POOLORG")
    make_staff(Role.GUARDIAN, elsewhere, in_pool=True, name="Grace Mensah")
    concern = unique_text("Agency nurses from overseas are always sent to the worst ward, ref")

    reporter = browsing.open(live_site).new_page()
    report_confidentially(reporter, live_site, concern, name="Ama Reporter")
    receipt = send_report(reporter)
    follow_up(reporter, receipt)
    readers = reporter.get_by_role("table", name="People who can read your concern")
    gita = readers.get_by_role("row", name=re.compile("Gita Guardian"))
    expect(gita).to_contain_text("Freedom to Speak Up guardian")
    expect(gita.get_by_role("cell").last).to_contain_text("Yes")
    expect(readers.get_by_role("row", name=re.compile("Grace Mensah"))).to_have_count(0)

    # Her guardian hands the concern over to a guardian of the regional pool.
    guardian = browsing.open(live_site).new_page()
    staff_sign_in(guardian, live_site.guardian)
    guardian.get_by_role("link", name=re.compile(r"^SU-")).click()
    guardian.get_by_text("Hand over to a guardian from the regional pool").click()
    guardian.get_by_label("Pool guardian").select_option(label=f"Grace Mensah ({elsewhere.name})")
    guardian.get_by_role("button", name="Hand over").click()
    guardian.get_by_role("button", name="Yes, hand over").click()
    expect_done(guardian, "The case was handed over.")

    # She sees the new reader, who cannot see her name, and a plain message saying so.
    reporter.reload()
    readers = reporter.get_by_role("table", name="People who can read your concern")
    grace = readers.get_by_role("row", name=re.compile("Grace Mensah"))
    expect(grace).to_contain_text(elsewhere.name)
    expect(grace.get_by_role("cell").last).to_contain_text("No")
    expect(
        reporter.get_by_text(
            f"Your concern was passed to Grace Mensah, a Freedom to Speak Up guardian at "
            f"{elsewhere.name}. They cannot see your name or contact details."
        )
    ).to_be_visible()
    expect(reporter.get_by_text("Speakup (automatic message)")).to_be_visible()
