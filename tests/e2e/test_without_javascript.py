"""The reporter's side works with JavaScript switched off (DESIGN §3.2)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.journeys import fill_report, send_report, staff_sign_in, unique_text

pytestmark = pytest.mark.browser


def assert_no_javascript(page: Page) -> None:
    """The NHS.UK template's inline snippet marks <body> only when script runs."""
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bjs-enabled\b"))


def test_report_and_follow_up_without_javascript(live_site, browsing):
    page = browsing.open(live_site, java_script_enabled=False).new_page()
    page.goto("/")
    assert_no_javascript(page)
    page.get_by_role("button", name="Raise a concern").click()
    concern = unique_text("Nobody answers when I raise the bell, case")
    fill_report(page, live_site, concern)
    receipt = send_report(page)

    page.get_by_role("link", name="Follow up on a concern").click()
    page.get_by_label("Your receipt").fill(receipt)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/follow-up/case$"))
    assert_no_javascript(page)
    expect(page.get_by_text(concern)).to_be_visible()

    message = unique_text("It happened again last night, ref")
    page.get_by_label("Send a message to your guardian").fill(message)
    page.get_by_role("button", name="Send message").click()
    expect(page).to_have_url(re.compile(r"/follow-up/case#messages$"))
    thread = page.locator("ol.speakup-thread")
    expect(thread.get_by_role("heading", name="You")).to_be_visible()
    expect(thread.get_by_text(message)).to_be_visible()
    browsing.assert_clean()


def test_report_form_errors_without_javascript_lose_nothing(live_site, browsing):
    page = browsing.open(live_site, java_script_enabled=False).new_page()
    page.goto("/report")
    assert_no_javascript(page)

    # Sent empty: a summary of every problem, each linking to its field.
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        page.get_by_role("button", name="Send my concern").click()
    assert sent.value.status == 400
    expect(page).to_have_title(re.compile(r"^Error: "))
    summary = page.locator(".nhsuk-error-summary")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    for text, target in [
        ("Choose the organisation where it happened", "#organisation"),
        ("Choose who should receive your concern", "#route"),
        ("Tell us what happened", "#what_happened"),
        ("Choose how you want to speak up", "#disclosure_mode"),
    ]:
        expect(summary.get_by_role("link", name=text)).to_have_attribute("href", target)
        expect(page.locator(target)).to_have_count(1)
    # Without script the link is a plain in-page jump to the field.
    summary.get_by_role("link", name="Tell us what happened").click()
    expect(page).to_have_url(re.compile(r"/report#what_happened$"))

    # Everything filled except what "confidentially" needs: only those fields complain,
    # and what was typed and chosen is all still there.
    concern = unique_text("My manager mocks my accent in handover, case")
    fill_report(page, live_site, concern, how="Confidentially")
    page.get_by_role("button", name="Send my concern").click()
    expect(summary.get_by_role("link")).to_have_count(2)
    expect(
        summary.get_by_role("link", name="Enter your name, or choose to speak up")
    ).to_be_visible()
    expect(
        summary.get_by_role("link", name="Enter how the guardian can contact you")
    ).to_be_visible()
    expect(page.get_by_label("What happened?")).to_have_value(concern)
    expect(page.get_by_label("Which organisation did it happen in?")).to_have_value(
        re.compile(r"^\d+$")
    )
    expect(page.get_by_label("Confidentially", exact=True)).to_be_checked()
    expect(
        page.get_by_label("The Freedom to Speak Up guardians of that organisation")
    ).to_be_checked()

    # Put right, it goes through and the receipt is shown.
    page.get_by_label("Your name").fill("A Reporter")
    page.get_by_label("How can the guardian contact you?").fill("a.reporter@example.test")
    send_report(page)
    browsing.assert_clean()


def test_choosing_a_pool_guardian_without_javascript(live_site, browsing):
    page = browsing.open(live_site, java_script_enabled=False).new_page()
    page.goto("/report")
    pool_choice = page.get_by_role("group", name="Choose a guardian")
    expect(pool_choice).to_be_hidden()
    page.get_by_label("Which organisation did it happen in?").select_option(
        label=live_site.organisation_label
    )
    # Revealed by CSS alone once the pool route is chosen.
    page.get_by_label("A guardian I choose from the regional pool").check()
    expect(pool_choice).to_be_visible()
    pool_choice.get_by_label("Priya Pool").check()
    concern = unique_text("I would rather speak to someone outside my trust, case")
    page.get_by_label("What happened?").fill(concern)
    page.get_by_label("Anonymously", exact=True).check()
    send_report(page)

    # Sealed to the chosen pool guardian only, not to the organisation's own guardian.
    chosen = browsing.open(live_site).new_page()
    staff_sign_in(chosen, live_site.pool_guardian)
    rows = chosen.locator("table.nhsuk-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Chosen from pool")
    rows.get_by_role("link").click()
    expect(chosen.get_by_text(concern)).to_be_visible()

    other = browsing.open(live_site).new_page()
    staff_sign_in(other, live_site.guardian)
    expect(other.get_by_text("No cases have been sealed to you yet.")).to_be_visible()
    browsing.assert_clean()
