"""The reporter's service pages (privacy, accessibility, help, other routes and rights), the
quick exit on every reporter page, and the start page's links to them."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from speakup.reporting.pages import QUICK_EXIT_URL

SERVICE_PAGES = {
    "/privacy": "Privacy notice",
    "/accessibility": "Accessibility statement",
    "/help": "Help",
    "/other-routes": "Other ways to speak up and your rights",
}
FOOTER_LINKS = {
    "/help": "Help",
    "/other-routes": "Other ways to speak up",
    "/privacy": "Privacy",
    "/accessibility": "Accessibility statement",
}
#: reporter pages reachable without a receipt
REPORTER_PAGES = ["/", "/report", "/follow-up", "/no-such-page", *SERVICE_PAGES]


def text(client: FlaskClient, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def words(html: str) -> str:
    """The page's text, tags removed and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("path", SERVICE_PAGES)
def test_service_pages_are_public_reporter_pages(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<h1>{SERVICE_PAGES[path]}</h1>" in html
    # The reporter layout: no staff navigation, no staff session.
    assert "/staff" not in html
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("path", REPORTER_PAGES)
def test_every_reporter_page_has_a_quick_exit_and_the_service_links(
    client: FlaskClient, path: str
) -> None:
    html = text(client, path)
    exits = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>Exit this page</a>', html)
    assert exits == [QUICK_EXIT_URL], path
    tag = re.search(r"<a [^>]*>Exit this page</a>", html)
    assert tag and 'rel="nofollow noreferrer"' in tag.group(0)
    # A plain link at the top, before the page's content and without any script.
    assert html.index("Exit this page") < html.index('id="maincontent"')
    footer = html[html.index("<footer") :]
    for href, label in FOOTER_LINKS.items():
        assert re.search(rf'href="{href}"[^>]*>\s*{label}\s*<', footer), (path, label)


def test_staff_pages_have_no_quick_exit(client: FlaskClient) -> None:
    assert "Exit this page" not in text(client, "/staff/sign-in")


def test_the_start_page_links_to_the_service_pages_and_puts_the_button_first(
    client: FlaskClient,
) -> None:
    html = text(client, "/")
    main = html[html.index('id="maincontent"') : html.index("</main>")]
    for href in SERVICE_PAGES:
        assert f'href="{href}"' in main
    # The button comes straight after the heading and one sentence (the browser test
    # checks it is in the first screen of a phone).
    assert main.index("Raise a concern</a>") < main.index("Three ways to speak up")


def test_the_privacy_notice_says_what_the_code_does(client: FlaskClient) -> None:
    page = words(text(client, "/privacy"))
    for promise in (
        "We do not record your IP address, your device or your browser",
        "A fingerprint of your receipt, not the receipt",
        "(an HMAC)",
        "only the guardians who receive your concern can open them",
        "Guardians you named as involved Nothing, ever",
        "Your name only with your separate consent",
        "are never stored with your concern",
        "load nothing from any other website",
    ):
        assert promise in page, promise


def test_other_routes_names_the_bodies_and_the_law_without_linking_out(
    client: FlaskClient,
) -> None:
    html = text(client, "/other-routes")
    page = words(html)
    for name in (
        "National Guardian's Office",
        "NHS England",
        "trade union",
        "Protect",
        "Acas",
        "Public Interest Disclosure Act 1998",
        "protected disclosure",
        "section 27 of the Equality Act 2010",
        "victimisation",
    ):
        assert name in page, name
    main = html[html.index('id="maincontent"') : html.index("</main>")]
    assert not re.search(r'(href|src)="(https?:)?//', main)


def test_help_explains_a_lost_receipt(client: FlaskClient) -> None:
    page = words(text(client, "/help"))
    assert "If you lost your receipt" in page
    assert "Raise a new concern and say in it that it is about an earlier one" in page
