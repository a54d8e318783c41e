"""The checks the other browser tests rely on really do catch problems, and the browser
really enforces the Content Security Policy (no other origin, DESIGN §3.2)."""

from __future__ import annotations

import pytest

from tests.e2e.accessibility import assert_accessible

pytestmark = pytest.mark.browser

LOAD_FROM_ANOTHER_ORIGIN = """() => {
  const img = new Image();
  img.alt = "";
  img.src = "https://analytics.example/pixel.png";
  document.querySelector("main").append(img);
}"""


def test_csp_blocks_another_origin_and_the_watch_reports_it(live_site, browsing):
    page = browsing.open(live_site).new_page()
    page.goto("/")
    # Wait for all three signs: Chromium's own report, our page listener's, and the request.
    with (
        page.expect_console_message(lambda m: "Content Security Policy" in m.text),
        page.expect_console_message(lambda m: m.text.startswith("CSP violation: img-src")),
        page.expect_event("requestfailed"),
    ):
        page.evaluate(LOAD_FROM_ANOTHER_ORIGIN)
    with pytest.raises(AssertionError) as caught:
        browsing.assert_clean()
    for sign in [
        "violates the following Content Security Policy directive",
        "CSP violation: img-src https://analytics.example/pixel.png",
        "request to another origin: GET https://analytics.example/pixel.png",
        "request failed (csp): https://analytics.example/pixel.png",
    ]:
        assert sign in str(caught.value)
    browsing.assert_clean()  # each problem is reported once


def test_axe_reports_a_violation(live_site, browsing):
    page = browsing.open(live_site).new_page()
    page.goto("/")
    assert_accessible(page)
    page.evaluate(
        """() => { const img = new Image();
                  img.src = "/static/dist/assets/images/nhsuk-icon-180.png";
                  document.querySelector("main").append(img); }"""
    )
    with pytest.raises(AssertionError, match=r"image-alt \(critical\)"):
        assert_accessible(page)
    browsing.assert_clean()
