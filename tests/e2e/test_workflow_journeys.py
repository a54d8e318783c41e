"""The case workflow in a real browser (DESIGN §6): a guardian takes a concern from received
to closed, the reporter answers "would you speak up again?" and reports detriment after
closure (which reopens the case) — also without JavaScript — and two guardians acting on one
case at once: exactly one wins, the other is told and shown the new state."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from speakup.cases.models import Status
from speakup.cases.workflow import MESSAGE_TEMPLATES
from tests.e2e.journeys import follow_up, send_report, staff_sign_in, unique_text
from tests.e2e.test_without_javascript import assert_no_javascript
from tests.e2e.workflow_support import (
    action_form,
    answer_speak_up_again,
    expect_conflict,
    expect_done,
    expect_status,
    open_case,
    report_confidentially,
    report_detriment,
    submit_case,
    summary_value,
    take_action,
)

pytestmark = pytest.mark.browser

CLOSING_WORDS = MESSAGE_TEMPLATES[Status.CLOSED]


def _messages(page: Page) -> Locator:
    """The thread of messages between the reporter and the guardians."""
    return page.locator("ol.speakup-thread")


def test_guardian_takes_a_case_to_closure_and_the_reporter_reopens_it(live_site, browsing):
    concern = unique_text("My manager gives the worst shifts to overseas nurses, case")

    # The reporter speaks up confidentially and agrees to escalation to the regional panel.
    reporter = browsing.open(live_site).new_page()
    report_confidentially(reporter, live_site, concern, name="Ama Reporter")
    receipt = send_report(reporter)

    # The guardian signs in with password and security code and opens the new case.
    guardian = browsing.open(live_site).new_page()
    staff_sign_in(guardian, live_site.guardian)
    guardian.get_by_role("link", name=re.compile(r"^SU-")).click()
    expect(guardian.get_by_role("heading", level=1, name=re.compile(r"^Case SU-"))).to_be_visible()
    expect_status(guardian, "received")
    expect(guardian.get_by_text(concern)).to_be_visible()
    expect(summary_value(guardian, "Reporter")).to_contain_text("Ama Reporter")
    expect(summary_value(guardian, "Escalation to the panel")).to_have_text(
        re.compile(r"^Reporter consents")
    )

    # Acknowledge: the suggested words are offered, edited, and sent with the change.
    action_form(guardian, "acknowledged")
    words = guardian.locator("#message-acknowledged")
    expect(words).to_have_value(MESSAGE_TEMPLATES[Status.ACKNOWLEDGED])
    acknowledgement = unique_text("Thank you, Ama. I have your concern about the rota, ref")
    take_action(guardian, "acknowledged", "Acknowledge", acknowledgement)
    expect_done(guardian, "The case was acknowledged")
    expect_status(guardian, "acknowledged")
    expect(_messages(guardian).get_by_text(acknowledgement)).to_be_visible()
    # Once acknowledged there is nothing more to acknowledge.
    expect(guardian.locator("details#action-acknowledged")).to_have_count(0)

    # Triage: an element, a race-equality code, a flag and a priority; it moves to assessing.
    triage = guardian.locator("form", has=guardian.get_by_role("button", name="Save triage"))
    expect(triage).to_be_visible()  # open until a first triage is recorded
    triage.get_by_role("group", name="Elements of the concern").get_by_label(
        "Inappropriate attitudes or behaviours"
    ).check()
    triage.get_by_role("group", name="Race equality codes").get_by_label(
        "Unfair allocation of work, shifts or rotas"
    ).check()
    triage.get_by_role("group", name="Flags").get_by_label(
        "Possible protected act (Equality Act 2010 s.27)"
    ).check()
    triage.get_by_role("group", name="Priority").get_by_label("High", exact=True).check()
    triage.get_by_role("button", name="Save triage").click()
    expect_done(guardian, "Triage saved.")
    expect_status(guardian, "assessing")
    expect(summary_value(guardian, "Priority")).to_have_text("High")
    # Recorded, the triage folds away and shows what was chosen when reopened.
    guardian.get_by_text("Change the triage").click()
    for label in (
        "Inappropriate attitudes or behaviours",
        "Unfair allocation of work, shifts or rotas",
        "Possible protected act (Equality Act 2010 s.27)",
    ):
        expect(guardian.get_by_label(label)).to_be_checked()
    expect(guardian.get_by_label("High", exact=True)).to_be_checked()

    # In progress, with nothing sent to the reporter.
    take_action(guardian, "in_progress", "Mark in progress", "")
    expect_done(guardian, "The case is in progress")
    expect_status(guardian, "in_progress")

    # Feedback needs words: the suggested opening is finished by the guardian.
    feedback = unique_text("The rota is now made by the ward team together, ref")
    take_action(guardian, "feedback_given", "Give feedback", feedback)
    expect_done(guardian, "Feedback was given")
    expect_status(guardian, "feedback_given")

    # Close, sending the suggested closing words; the check-ins over the next year appear.
    take_action(guardian, "closed", "Close")
    expect_done(guardian, "The case was closed")
    expect_status(guardian, "closed")
    expect(summary_value(guardian, "Detriment check-ins")).to_have_text(
        re.compile(r"^(\d{1,2} \w+ \d{4}, ){3}\d{1,2} \w+ \d{4}$")
    )

    # Later the reporter comes back with the receipt: the feedback and the closing words.
    returning = browsing.open(live_site).new_page()
    follow_up(returning, receipt)
    expect_status(returning, "closed")
    thread = _messages(returning)
    expect(thread.get_by_text(acknowledgement)).to_be_visible()
    expect(thread.get_by_text(feedback)).to_be_visible()
    expect(thread.get_by_text(CLOSING_WORDS)).to_be_visible()

    # "Would you speak up again?" — the guardian sees the answer on the case.
    words_added = unique_text("It took a long time, ref")
    answer_speak_up_again(returning, "Maybe", words_added)
    guardian.reload()
    # Sealed to her alone: the guardian sees that she answered, never what.
    expect(summary_value(guardian, "Would speak up again?")).to_have_text(
        re.compile(r"^The reporter answered\.")
    )
    expect(guardian.get_by_text(words_added)).to_have_count(0)

    # The detriment check-in reopens the case, and the guardian reads what happened.
    detriment = unique_text("Since the change I have been left off the training list, ref")
    report_detriment(returning, detriment)
    expect_status(returning, "reopened")
    expect(_messages(returning).get_by_text(detriment)).to_be_visible()

    guardian.reload()
    expect_status(guardian, "reopened")
    last = _messages(guardian).locator("li").last
    expect(last.get_by_role("heading", name="Reporter")).to_be_visible()
    expect(last).to_contain_text(f"Detriment check-in: {detriment}")
    # A reopened case is worked again from where the table allows.
    expect(guardian.locator("details#action-assessing")).to_have_count(1)
    expect(guardian.locator("details#action-in_progress")).to_have_count(1)
    browsing.assert_clean()


def test_reporter_answers_and_reports_detriment_without_javascript(live_site, browsing):
    concern = unique_text("I was moved wards after raising racist comments, case")
    reporter = browsing.open(live_site, java_script_enabled=False).new_page()
    report_confidentially(reporter, live_site, concern, name="Kofi Reporter")
    assert_no_javascript(reporter)
    receipt = send_report(reporter)

    guardian = browsing.open(live_site).new_page()
    staff_sign_in(guardian, live_site.guardian)
    guardian.get_by_role("link", name=re.compile(r"^SU-")).click()
    take_action(guardian, "acknowledged", "Acknowledge")
    expect_done(guardian, "The case was acknowledged")
    take_action(guardian, "assessing", "Start assessing", "")
    expect_done(guardian, "You started assessing the case")
    take_action(guardian, "in_progress", "Mark in progress", "")
    expect_done(guardian, "The case is in progress")
    feedback = unique_text("Your ward move has been reversed, ref")
    take_action(guardian, "feedback_given", "Give feedback", feedback)
    expect_done(guardian, "Feedback was given")

    # With feedback given (not yet closed) the reporter is asked, and answers without script.
    follow_up(reporter, receipt)
    assert_no_javascript(reporter)
    # First, separately from the escalation consent given with the report, the reporter lets
    # the panel know who they are if the case goes there.
    panel = reporter.get_by_role(
        "group", name="If it is escalated, may the panel know who you are?"
    )
    expect(panel.get_by_label("No", exact=True)).to_be_checked()
    panel.get_by_label("Yes", exact=True).check()
    reporter.get_by_role("button", name="Save my answer").click()
    expect(reporter).to_have_url(re.compile(r"/follow-up/case#escalation$"))
    expect(panel.get_by_label("Yes", exact=True)).to_be_checked()
    expect_status(reporter, "feedback_given")
    expect(_messages(reporter).get_by_text(feedback)).to_be_visible()
    expect(reporter.get_by_label("What has happened?")).to_have_count(0)  # not closed yet

    # Sent without an answer: the error is shown (status 400) and nothing typed is lost.
    reporter.get_by_label("Anything you would like to add? (optional)").fill("Not sure yet.")
    with reporter.expect_response(lambda r: r.request.method == "POST") as sent:
        reporter.get_by_role("button", name="Send my answer").click()
    assert sent.value.status == 400
    summary = reporter.locator(".nhsuk-error-summary")
    expect(summary.get_by_role("link", name="Choose an answer")).to_have_attribute(
        "href", "#answer"
    )
    expect(reporter.get_by_label("Anything you would like to add? (optional)")).to_have_value(
        "Not sure yet."
    )
    answer_speak_up_again(reporter, "No", "Not sure yet.")
    expect(reporter).to_have_url(re.compile(r"/follow-up/case#speak-up-again$"))

    guardian.reload()
    expect(summary_value(guardian, "Would speak up again?")).to_have_text(
        re.compile(r"^The reporter answered\.")
    )
    expect(guardian.get_by_text("Not sure yet.")).to_have_count(0)
    expect(summary_value(guardian, "Escalation to the panel")).to_have_text(
        "Reporter consents; identity may go to the panel"
    )
    take_action(guardian, "closed", "Close")
    expect_done(guardian, "The case was closed")

    # After closure: the detriment form, without script, reopens the case.
    reporter.reload()
    expect_status(reporter, "closed")
    expect(reporter.get_by_text("You answered: No.")).to_be_visible()
    with reporter.expect_response(lambda r: r.request.method == "POST") as sent:
        reporter.get_by_role("button", name="Tell my guardian").click()
    assert sent.value.status == 400
    expect(
        reporter.locator(".nhsuk-error-summary").get_by_role(
            "link", name="Tell us what has happened"
        )
    ).to_be_visible()
    detriment = unique_text("My new manager was told I complained, ref")
    report_detriment(reporter, detriment)
    assert_no_javascript(reporter)
    expect_status(reporter, "reopened")
    expect(_messages(reporter).get_by_text(f"Detriment check-in: {detriment}")).to_be_visible()

    guardian.reload()
    expect_status(guardian, "reopened")
    expect(_messages(guardian).get_by_text(f"Detriment check-in: {detriment}")).to_be_visible()
    browsing.assert_clean()


def test_two_guardians_acknowledge_at_once_and_exactly_one_wins(live_site, browsing):
    seeded = submit_case(live_site.app, unique_text("Nobody acts on the bank staff rota, case"))

    # Two guardians of the organisation, each on their own device, open the same case.
    first = browsing.open(live_site).new_page()
    staff_sign_in(first, live_site.guardian)
    open_case(first, seeded.reference)
    second = browsing.open(live_site).new_page()
    staff_sign_in(second, live_site.pool_guardian)
    open_case(second, seeded.reference)
    for page in (first, second):
        expect_status(page, "received")
        action_form(page, "acknowledged")

    first_words = unique_text("Thank you, I have it, ref")
    take_action(first, "acknowledged", "Acknowledge", first_words)
    expect_done(first, "The case was acknowledged")

    # The second, on the page as it was, presses the same button: refused, told, and shown
    # the case as it is now — the first guardian's words are there, not theirs.
    second_words = unique_text("Thank you from me too, ref")
    with second.expect_response(lambda r: r.request.method == "POST") as sent:
        take_action(second, "acknowledged", "Acknowledge", second_words)
    assert sent.value.status == 409
    expect_conflict(second, "acknowledged")
    thread = _messages(second)
    expect(thread.get_by_text(first_words)).to_be_visible()
    expect(thread.get_by_text(second_words)).to_have_count(0)
    expect(second.locator("details#action-acknowledged")).to_have_count(0)

    # From the refreshed page the second guardian can carry on.
    take_action(second, "assessing", "Start assessing", "")
    expect_done(second, "You started assessing the case")
    expect_status(second, "assessing")
    first.reload()
    expect_status(first, "assessing")
    browsing.assert_clean()
