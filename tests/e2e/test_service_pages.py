"""The reporter's service pages in a real browser: axe-clean on a phone (360 px) and a
desktop (1280 px), the quick exit as a plain link, and "Raise a concern" in the first
screen of a 360 x 640 phone. Driven by visible names and roles only."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from speakup.reporting.pages import QUICK_EXIT_URL
from tests.e2e.accessibility import assert_accessible, assert_no_sideways_scroll, expect_heading

pytestmark = pytest.mark.browser

WIDTHS = {"360px": {"width": 360, "height": 640}, "1280px": {"width": 1280, "height": 800}}
#: footer link → the page's heading
PAGES = {
    "Privacy": "Privacy notice",
    "Accessibility statement": "Accessibility statement",
    "Help": "Help",
    "Other ways to speak up": "Other ways to speak up and your rights",
}


@pytest.mark.parametrize("width", WIDTHS)
def test_service_pages_are_accessible_and_reached_from_the_footer(width, live_site, browsing):
    size = WIDTHS[width]
    page = browsing.open(live_site, viewport=size).new_page()
    for link, heading in PAGES.items():
        page.goto("/")
        page.get_by_role("contentinfo").get_by_role("link", name=link, exact=True).click()
        expect_heading(page, heading)
        exit_link = page.get_by_role("link", name="Exit this page")
        expect(exit_link).to_have_attribute("href", QUICK_EXIT_URL)
        expect(exit_link).to_have_attribute("rel", "nofollow noreferrer")
        assert_accessible(page)
        assert_no_sideways_scroll(page, size["width"])
    browsing.assert_clean()


def test_raise_a_concern_is_in_the_first_screen_of_a_phone(live_site, browsing):
    page = browsing.open(live_site, viewport={"width": 360, "height": 640}).new_page()
    page.goto("/")
    button = page.get_by_role("button", name="Raise a concern")
    expect(button).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    box = button.bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= 640, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360, box
    # The quick exit sits above it, also without scrolling.
    exit_box = page.get_by_role("link", name="Exit this page").bounding_box()
    assert exit_box is not None and exit_box["y"] + exit_box["height"] <= box["y"]
    assert_accessible(page)
    browsing.assert_clean()


def test_the_quick_exit_works_without_javascript(live_site, browsing):
    page = browsing.open(live_site, java_script_enabled=False).new_page()
    page.goto("/report")
    link = page.get_by_role("link", name="Exit this page")
    expect(link).to_be_visible()
    # A plain link: no script needed. Following it would leave for another site, which the
    # test's watch forbids, so check where it goes instead of pressing it.
    expect(link).to_have_attribute("href", QUICK_EXIT_URL)
    browsing.assert_clean()
