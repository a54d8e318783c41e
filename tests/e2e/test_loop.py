"""The whole loop in a real browser: a reporter raises a concern with a file, a guardian reads
it, downloads the file and replies, and the reporter comes back later with the receipt."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.journeys import (
    fill_report,
    follow_up,
    make_png,
    send_report,
    staff_sign_in,
    unique_text,
)

pytestmark = pytest.mark.browser


def test_reporter_guardian_and_returning_reporter(live_site, browsing, tmp_path):
    concern = unique_text("The rota is changed to keep me off nights, case")
    photo = make_png(tmp_path / "rota-photo.png")

    # A reporter, on their own device, raises a concern anonymously with a photo.
    reporter = browsing.open(live_site).new_page()
    reporter.goto("/")
    # The start "button" is a link styled (and announced) as a button, as on NHS.UK.
    reporter.get_by_role("button", name="Raise a concern").click()
    expect(reporter.get_by_role("heading", name="Raise a concern")).to_be_visible()
    fill_report(reporter, live_site, concern, how="Anonymously", attachment=photo)
    receipt = send_report(reporter)
    expect(reporter.get_by_text("rota-photo.png")).to_be_visible()

    # The guardian signs in with password and security code, and finds the case.
    guardian = browsing.open(live_site).new_page()
    staff_sign_in(guardian, live_site.guardian)
    cases = guardian.locator("table.nhsuk-table tbody tr")
    expect(cases).to_have_count(1)
    cases.get_by_role("link").click()
    expect(guardian.get_by_role("heading", name=re.compile(r"^Case SU-"))).to_be_visible()
    expect(guardian.get_by_text(concern)).to_be_visible()

    # The attachment downloads (never opens inline) and is still a PNG.
    with guardian.expect_download() as download_info:
        guardian.get_by_role("link", name="rota-photo.png").click()
    download = download_info.value
    assert download.suggested_filename == "rota-photo.png"
    data = download.path().read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (24, 16)

    reply = unique_text("Thank you for telling me. I will look at the rota, ref")
    guardian.get_by_label("Message to the reporter").fill(reply)
    guardian.get_by_role("button", name="Send to reporter").click()
    expect(guardian).to_have_url(re.compile(r"/staff/cases/SU-[0-9A-Z-]+#messages$"))
    expect(guardian.get_by_text(reply)).to_be_visible()

    # Later, on a fresh browser, the reporter types the receipt loosely and reads the reply.
    returning = browsing.open(live_site).new_page()
    follow_up(returning, receipt.lower().replace("-", " "))
    expect(returning.get_by_text(reply)).to_be_visible()
    expect(returning.get_by_text(concern)).to_be_visible()
    browsing.assert_clean()
