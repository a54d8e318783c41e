"""Steps people take in the browser, written the way they see the page (labels, buttons)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.site import Login, Site

RECEIPT = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$")


def unique_text(prefix: str) -> str:
    """Text no other test wrote, to find on a page."""
    return f"{prefix} {secrets.token_hex(6)}"


def make_png(path: Path, size: tuple[int, int] = (24, 16)) -> Path:
    """A small real PNG to attach."""
    Image.new("RGB", size, (0, 94, 184)).save(path, "PNG")
    return path


def fill_report(
    page: Page,
    site: Site,
    what_happened: str,
    *,
    how: str = "Anonymously",
    attachment: Path | None = None,
) -> None:
    """Fill the report form: the organisation's own guardians, ``how`` to speak up."""
    page.get_by_label("Which organisation did it happen in?").select_option(
        label=site.organisation_label
    )
    page.get_by_label("The Freedom to Speak Up guardians of that organisation").check()
    page.get_by_label("What happened?").fill(what_happened)
    page.get_by_label(how, exact=True).check()
    if attachment is not None:
        page.get_by_label("Attach files").set_input_files(attachment)


def send_report(page: Page) -> str:
    """Press send and read the receipt shown once."""
    page.get_by_role("button", name="Send my concern").click()
    expect(page.get_by_role("heading", name="Your concern was received")).to_be_visible()
    receipt = page.get_by_test_id("receipt").inner_text().strip()
    assert RECEIPT.match(receipt), receipt
    return receipt


def follow_up(page: Page, receipt: str) -> None:
    """Sign in to a concern with its receipt, from the follow-up page."""
    page.goto("/follow-up")
    page.get_by_label("Your receipt").fill(receipt)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Your concern", exact=True)).to_be_visible()


def enter_password(page: Page, login: Login) -> None:
    """Staff sign-in, step 1."""
    page.goto("/staff/sign-in")
    page.get_by_label("Email address").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/staff/sign-in/code$"))


def staff_sign_in(page: Page, login: Login) -> None:
    """Staff sign-in, both steps, ending on the case inbox."""
    enter_password(page, login)
    page.get_by_label("6-digit code from your authenticator app").fill(login.code())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your cases")).to_be_visible()
