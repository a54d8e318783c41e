"""Browser tests: Debian's headless Chromium, driven by Playwright, against the real app.

The app is served by werkzeug on 127.0.0.1 in a daemon thread, on the same database the rest
of the suite uses (SQLite by default, PostgreSQL when SPEAKUP_TEST_DATABASE_URL is set).
Playwright never downloads a browser: we launch /usr/bin/chromium, and when it is missing
every browser test fails with a message saying how to install it (the project never skips).

Every browser context opened through ``browsing`` is watched: a request to any other
origin, a failed request, a console error (Chromium reports Content Security Policy
violations there), an uncaught script error or a server error fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, sync_playwright

from speakup import ROOT, create_app
from speakup.accounts.models import Role
from speakup.accounts.services import create_user, new_totp_secret
from speakup.extensions import db
from speakup.organisations.services import (
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from tests.conftest import PASSWORD, PG_URL, TEST_ARGON2, reset_postgres, test_config
from tests.e2e.site import Browsing, Login, Site, serving

CHROMIUM = Path("/usr/bin/chromium")
#: Without these, an offline Chromium keeps trying to reach Google's update, sync and
#: QUIC endpoints and fills the log with refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUILT_CSS = ROOT / "speakup" / "static" / "dist" / "speakup.css"


# The site under test ----------------------------------------------------------------------


@pytest.fixture
def live_site(app: Flask, make_org: Any, make_staff: Any) -> Iterator[Site]:
    """A fresh app (from ``make_app``, via ``app``) with seed data, served for one test."""
    org = make_org()
    guardian = make_staff(Role.GUARDIAN, org, name="Gita Guardian")
    pool = make_staff(Role.GUARDIAN, org, in_pool=True, name="Priya Pool")
    label = f"{org.name} ({org.system.name})"
    logins = [Login(s.user.email, s.password, s.totp_secret) for s in (guardian, pool)]
    with serving(app) as base_url:
        yield Site(base_url, app, label, *logins)


def _seed_staff(email: str, name: str, organisation: Any, *, in_pool: bool = False) -> Login:
    secret = new_totp_secret()
    create_user(
        email=email,
        display_name=name,
        role=Role.GUARDIAN,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=organisation,
        in_pool=in_pool,
        totp_secret=secret,
    )
    return Login(email, PASSWORD, secret)


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory, _postgres_schema: None) -> Iterator[Site]:
    """One served app for a whole module, for tests that only look (fast).

    ``make_app`` is per test, so this repeats its database handling: a fresh SQLite file, or
    the shared PostgreSQL schema emptied before and after. The seed data matches
    ``live_site`` (the same services the ``make_org``/``make_staff`` factories call).
    """
    app = create_app(test_config(tmp_path_factory.mktemp("e2e-site")))
    with app.app_context():
        if PG_URL:
            reset_postgres()
        else:
            db.create_all()
        region = get_or_create_region("MIDLANDS", "Midlands")
        system = get_or_create_system(region, "SYS1", "Test System")
        org = get_or_create_organisation(system, "ORG1", "Test Organisation ORG1")
        guardian = _seed_staff("guardian@example.test", "Gita Guardian", org)
        pool = _seed_staff("pool@example.test", "Priya Pool", org, in_pool=True)
        label = f"{org.name} ({system.name})"
        db.session.commit()
    try:
        with serving(app) as base_url:
            yield Site(base_url, app, label, guardian, pool)
    finally:
        with app.app_context():
            db.session.remove()
            if PG_URL:
                reset_postgres()
            db.engine.dispose()


# The browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole session. Missing means failed, not skipped."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        where = "CI must provide it" if os.environ.get("CI") == "true" else "install it"
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium package; {where} "
            "with `make chromium` (or `sudo apt-get install chromium`). "
            "Playwright's own browser downloads are not used.",
            pytrace=False,
        )
    if not BUILT_CSS.is_file():
        pytest.fail(
            "speakup/static/dist is not built: run `npm ci && node scripts/build-assets.mjs`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    """Open watched contexts with ``browsing.open(site, **options)``; checked at the end."""
    contexts = Browsing(browser)
    try:
        yield contexts
    finally:
        contexts.close()
    contexts.assert_clean()
