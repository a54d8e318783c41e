"""Statistics in a real browser: a leader's dashboard (server-drawn charts that load as
images, the data tables and what "fewer than 8" means, the quarter switch without
JavaScript, CSV download), publishing "you said, we did", the public page anyone can read,
and the lead guardian's national return. Every page in every state passes axe-core on a
desktop screen and a 320px phone, without sideways scrolling on the phone.

One served app and one world (that of tests/web/test_stats_access.py) serve the module.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from speakup import create_app
from speakup.accounts.models import Role
from speakup.db import utcnow
from speakup.extensions import db
from speakup.stats.models import Action, ReturnSignoff
from speakup.stats.national_return import CURRENT_VERSION
from speakup.stats.periods import latest_releasable, parse_quarter, quarter_of
from tests.conftest import PG_URL, reset_postgres
from tests.conftest import test_config as app_config
from tests.e2e.accessibility import (
    VIEWPORTS,
    assert_accessible,
    assert_no_sideways_scroll,
    expect_heading,
)
from tests.e2e.journeys import enter_password, unique_text
from tests.e2e.site import Browsing, Login, Site, serving
from tests.stats_world import (
    RELEASED,
    UNRELEASED,
    Account,
    StatsWorld,
    build_stats_world,
    make_account,
)

pytestmark = pytest.mark.browser

LATEST, EARLIER = parse_quarter(RELEASED[-1]), parse_quarter(RELEASED[0])


@dataclass(frozen=True)
class StatsSite:
    """The served app, its world, and signed-in browser states to reuse (a security code
    works only once, so each account signs in once per module)."""

    site: Site
    world: StatsWorld
    #: account key -> cookies of a signed-in browser
    states: dict[str, dict[str, Any]]
    #: a region leader who has not signed in yet: the journey signs in as them
    journey_leader: Login


def login(account: Account) -> Login:
    return Login(account.email, account.password, account.totp_secret)


def sign_in(page: Page, who: Login, landing: str | re.Pattern[str]) -> None:
    """Both steps of the staff sign-in, ending on the heading of ``landing``."""
    enter_password(page, who)
    page.get_by_label("6-digit code from your authenticator app").fill(who.code())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name=landing)).to_be_visible()


@pytest.fixture(scope="module")
def stats_site(
    tmp_path_factory: pytest.TempPathFactory, _postgres_schema: None, browser: Browser
) -> Iterator[StatsSite]:
    """The statistics world, served; one published action (nothing changed) for org A1 and
    a signed-off return for the latest release, so pages can be seen in those states."""
    app = create_app(app_config(tmp_path_factory.mktemp("e2e-stats")))
    with app.app_context():
        if PG_URL:
            reset_postgres()
        else:
            db.create_all()
        world = build_stats_world(app.config)
        journey = make_account(
            "journey.leader@example.test",
            "Jo Journey",
            Role.LEADER,
            scope=("region", world.region_id),
        )
        db.session.add_all(
            [
                Action(
                    scope_kind="organisation",
                    scope_id=world.orgs["A1"],
                    period=LATEST.key,
                    theme="bullying_harassment",
                    title="Staff told us bullying goes unchallenged on night shifts",
                    description="We looked at moving guardian hours to nights.",
                    status="no_change",
                    explanation="The guardian's hours are set by contract until April.",
                    created_by=world.accounts["org_leader"].user_id,
                ),
                Action(
                    scope_kind="organisation",
                    scope_id=world.orgs["A1"],
                    period=EARLIER.key,
                    theme="racism_public",
                    title="Racist abuse from visitors is not followed up",
                    description="Security now logs every incident and tells the reporter.",
                    status="done",
                    created_by=world.accounts["org_leader"].user_id,
                ),
                ReturnSignoff(
                    organisation_id=world.orgs["A1"],
                    period=LATEST.key,
                    mapping_version=CURRENT_VERSION,
                    signed_by=world.accounts["lead_guardian"].user_id,
                ),
            ]
        )
        db.session.commit()
    try:
        with serving(app) as base_url:
            a1 = world.org_names["A1"]
            site = Site(base_url, app, a1, login(world.accounts["guardian"]), login(journey))
            scope_names = {
                "region_leader": "Speaking up in Midlands",
                "system_leader": f"Speaking up in {world.system_names['A']}",
                "org_leader": f"Speaking up in {a1}",
                "lead_guardian": "Your cases",
            }
            states = {}
            browsing = Browsing(browser)
            try:
                for key, heading in scope_names.items():
                    page = browsing.open(site).new_page()
                    sign_in(page, login(world.accounts[key]), heading)
                    states[key] = page.context.storage_state()
                browsing.assert_clean()
            finally:
                browsing.close()
            yield StatsSite(site, world, states, login(journey))
    finally:
        with app.app_context():
            db.session.remove()
            if PG_URL:
                reset_postgres()
            db.engine.dispose()


def open_as(browsing: Browsing, stats: StatsSite, who: str | None, **options: Any) -> Page:
    if who is not None:
        options["storage_state"] = stats.states[who]
    return browsing.open(stats.site, **options).new_page()


def assert_charts_loaded(page: Page) -> int:
    """Every chart on the page is a loaded, drawn image; returns how many there are."""
    page.wait_for_load_state("load")
    charts = page.locator("img.speakup-chart")
    count = charts.count()
    for i in range(count):
        chart = charts.nth(i)
        expect(chart).to_have_attribute("alt", re.compile(r"^Chart of .+table below"))
        drawn = chart.evaluate("img => img.complete && img.naturalWidth > 0")
        assert drawn, f"chart {chart.get_attribute('src')} did not load"
    return count


def assert_no_javascript(page: Page) -> None:
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bjs-enabled\b"))


# The journeys -----------------------------------------------------------------------------


def test_a_region_leader_reads_the_figures_and_publishes_an_action(
    stats_site: StatsSite, browsing: Browsing, tmp_path: Path
):
    world = stats_site.world
    leader = browsing.open(stats_site.site).new_page()
    sign_in(leader, stats_site.journey_leader, "Speaking up in Midlands")
    expect(leader).to_have_url(re.compile(r"/staff/statistics/$"))

    # The figures: charts drawn on the server, each with its table, and what hiding means.
    assert assert_charts_loaded(leader) >= 10
    note = leader.locator(".nhsuk-inset-text")
    expect(note.get_by_role("heading", name="How to read these figures")).to_be_visible()
    expect(note).to_contain_text(
        "a count below 8 is hidden and shown as “fewer than 8 or withheld”"
    )
    expect(note).to_contain_text("rounded to the nearest 5")
    expect(note).to_contain_text(f"for {LATEST.label}")
    by_route = leader.get_by_role("region", name="Concerns by who received them")
    expect(by_route.get_by_role("img")).to_be_visible()
    table = by_route.get_by_role("table", name="Concerns by who received them")
    expect(table.get_by_role("rowheader", name="Organisation's guardians")).to_be_visible()
    expect(leader.get_by_role("cell", name="fewer than 8 or withheld").first).to_be_visible()
    expect(leader.get_by_role("heading", name=re.compile("Census 2021"))).to_be_visible()

    # A table as CSV.
    with leader.expect_download() as download:
        leader.get_by_role("link", name="Download “Concerns by who received them” as CSV").click()
    assert download.value.suggested_filename == f"speakup-{LATEST.key}-by_route.csv"
    saved = tmp_path / "by_route.csv"
    download.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert rows[0][:4] == ["period", "scope", "table", "row"]
    assert {tuple(r[:3]) for r in rows[1:]} == {
        (LATEST.key, rows[1][1], "Concerns by who received them")
    }
    assert [r[3] for r in rows[1:4]] == [
        "Organisation's guardians",
        "Guardian chosen from the regional pool",
        "Race Equality and Inclusion Panel",
    ]
    assert rows[-1][3] == "Note" and "fewer than 8" in rows[-1][4]

    # Another quarter, with JavaScript off: a plain form and a full page.
    plain = browsing.open(
        stats_site.site, java_script_enabled=False, storage_state=leader.context.storage_state()
    ).new_page()
    plain.goto("/staff/statistics/")
    assert_no_javascript(plain)
    options = plain.get_by_label("Quarter").locator("option")
    expect(options).to_have_text([LATEST.label, EARLIER.label])
    assert UNRELEASED not in plain.content()
    plain.get_by_label("Quarter").select_option(label=EARLIER.label)
    plain.get_by_role("button", name="Show").click()
    expect(plain).to_have_url(re.compile(rf"period={EARLIER.key}$"))
    expect(plain.locator(".nhsuk-inset-text")).to_contain_text(f"for {EARLIER.label}")
    expect(plain.get_by_role("heading", name=re.compile("^Relative likelihood"))).to_be_visible()
    assert assert_charts_loaded(plain) >= 10

    # "You said, we did": a reason is required when nothing changed.
    leader.get_by_role("link", name="You said, we did", exact=True).click()
    expect(leader.get_by_role("heading", level=1)).to_have_text("You said, we did: Midlands")
    expect(leader.get_by_text("None yet.")).to_be_visible()
    title = unique_text("Staff said feedback takes too long")
    leader.get_by_label("Period it responds to").select_option(label=LATEST.label)
    leader.get_by_label("Theme").select_option(label="Patient safety or quality")
    leader.get_by_label("What you heard").fill(title)
    leader.get_by_label("What you did (or will do)").fill("We asked every trust for a plan.")
    leader.get_by_role("radio", name="Nothing changed").check()
    with leader.expect_response(lambda r: r.request.method == "POST") as sent:
        leader.get_by_role("button", name="Publish").click()
    assert sent.value.status == 400
    summary = leader.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("Explain why nothing changed")
    summary.get_by_role("link", name=re.compile("Explain why nothing changed")).click()
    expect(leader.get_by_label("If nothing changed, why not?")).to_be_focused()
    expect(leader.get_by_label("What you heard")).to_have_value(title)
    reason = unique_text("The national review has not reported yet")
    leader.get_by_label("If nothing changed, why not?").fill(reason)
    leader.get_by_role("button", name="Publish").click()
    expect(leader.get_by_text("Your action is published")).to_be_visible()
    expect(leader.get_by_role("heading", name=title)).to_be_visible()

    # Anyone reads it, without signing in.
    staff = browsing.open(stats_site.site).new_page()
    staff.goto("/you-said-we-did")
    expect(staff.get_by_role("heading", level=1)).to_have_text("You said, we did")
    card = staff.locator(".nhsuk-card", has=staff.get_by_role("heading", name=title))
    expect(card).to_contain_text("The Midlands region")
    expect(card).to_contain_text("Nothing changed")
    expect(card).to_contain_text(f"Why nothing changed: {reason}")
    expect(card).not_to_contain_text("Jo Journey")
    # Filtered to organisation A1: its actions only.
    staff.get_by_label("Show actions for").select_option(label=world.org_names["A1"])
    staff.get_by_role("button", name="Show").click()
    expect(staff.get_by_role("heading", name=title)).to_have_count(0)
    expect(
        staff.get_by_role("heading", name=re.compile("bullying goes unchallenged"))
    ).to_be_visible()
    browsing.assert_clean()


def test_the_lead_guardian_downloads_and_signs_off_the_return(
    stats_site: StatsSite, browsing: Browsing, tmp_path: Path
):
    page = open_as(browsing, stats_site, "lead_guardian")
    page.goto("/staff/cases/")
    page.get_by_role("link", name="National return").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"National quarterly return: {stats_site.world.org_names['A1']}"
    )
    # The last quarter that ended (while this is 2026/27 Q3, the world's unreleased one).
    last = quarter_of(utcnow()).previous()
    expect(page.get_by_label("Quarter")).to_have_value(last.key)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the return as CSV").click()
    saved = tmp_path / "return.csv"
    download.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert rows[0][2] == "mapping_version" and {r[2] for r in rows[1:]} == {CURRENT_VERSION}
    assert {r[0] for r in rows[1:]} == {"ORGA1"} and {r[1] for r in rows[1:]} == {last.key}

    page.get_by_role("button", name="Sign off this return").click()
    expect(page.get_by_text(f"You signed off the return for {last.label}.")).to_be_visible()
    expect(page.get_by_role("button", name="Sign off this return")).to_have_count(0)
    with stats_site.site.app.app_context():
        signed = db.session.scalars(
            select(ReturnSignoff).where(ReturnSignoff.period == last.key)
        ).all()
        assert len(signed) == 1
    browsing.assert_clean()


# Every page, in every state, for everyone -------------------------------------------------

Screen = Callable[[Page, StatsSite], None]
SCREENS: dict[str, tuple[str | None, Screen]] = {}


def screen(name: str, who: str | None) -> Callable[[Screen], Screen]:
    def register(fn: Screen) -> Screen:
        SCREENS[name] = (who, fn)
        return fn

    return register


@screen("dashboard-region", "region_leader")
def _dashboard_region(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/")
    expect_heading(page, "Speaking up in Midlands")
    assert assert_charts_loaded(page) >= 10


@screen("dashboard-region-year-end", "region_leader")
def _dashboard_region_year_end(page: Page, stats: StatsSite) -> None:
    page.goto(f"/staff/statistics/?period={EARLIER.key}")
    expect(page.get_by_role("heading", name=re.compile("^Relative likelihood"))).to_be_visible()
    assert_charts_loaded(page)


@screen("dashboard-system", "system_leader")
def _dashboard_system(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/")
    expect_heading(page, f"Speaking up in {stats.world.system_names['A']}")
    expect(
        page.get_by_role("heading", name="Concerns by route and way of speaking up")
    ).to_be_visible()
    assert_charts_loaded(page)


@screen("dashboard-organisation", "org_leader")
def _dashboard_organisation(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/")
    expect_heading(page, f"Speaking up in {stats.world.org_names['A1']}")
    expect(page.get_by_role("cell", name="fewer than 8 or withheld").first).to_be_visible()
    assert_charts_loaded(page)


@screen("actions-empty", "system_leader")
def _actions_empty(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/actions")
    expect(page.get_by_text("None yet.")).to_be_visible()


@screen("actions-errors", "system_leader")
def _actions_errors(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/actions")
    page.get_by_role("radio", name="Nothing changed").check()
    page.get_by_role("button", name="Publish").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("Say what you heard")
    expect(summary).to_contain_text("Explain why nothing changed")


@screen("actions-published", "org_leader")
def _actions_published(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/actions")
    expect(
        page.get_by_role("heading", name=re.compile("bullying goes unchallenged"))
    ).to_be_visible()
    expect(page.get_by_label(re.compile("^Change the status of"))).to_have_count(2)


@screen("actions-update-refused", "org_leader")
def _actions_update_refused(page: Page, stats: StatsSite) -> None:
    page.goto("/staff/statistics/actions")
    change = page.get_by_label(
        "Change the status of “Racist abuse from visitors is not followed up”"
    )
    change.select_option(label="Nothing changed")
    form = page.locator("form", has=change)
    form.get_by_role("button", name="Update").click()
    expect(page.get_by_text("Explain why nothing changed")).to_be_visible()


@screen("public-actions", None)
def _public_actions(page: Page, stats: StatsSite) -> None:
    page.goto("/you-said-we-did")
    expect(page.get_by_text("Why nothing changed:").first).to_be_visible()


@screen("public-actions-none-here", None)
def _public_actions_none(page: Page, stats: StatsSite) -> None:
    page.goto(f"/you-said-we-did?scope=organisation:{stats.world.orgs['B2']}")
    expect(page.get_by_text("No actions have been published here yet.")).to_be_visible()


@screen("national-return", "lead_guardian")
def _national_return(page: Page, stats: StatsSite) -> None:
    page.goto(f"/staff/national-return?period={EARLIER.key}")
    expect(page.get_by_role("button", name="Sign off this return")).to_be_visible()


@screen("national-return-signed-off", "lead_guardian")
def _national_return_signed(page: Page, stats: StatsSite) -> None:
    page.goto(f"/staff/national-return?period={LATEST.key}")
    expect(page.get_by_text("Signed off on")).to_be_visible()


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("name", SCREENS)
def test_statistics_page_is_accessible(name, viewport, stats_site, browsing):
    who, show = SCREENS[name]
    size = VIEWPORTS[viewport]
    page = open_as(browsing, stats_site, who, viewport=size)
    show(page, stats_site)
    assert_accessible(page)
    if size["width"] == 320:
        assert_no_sideways_scroll(page, 320)
    browsing.assert_clean()


def test_the_world_has_not_drifted(stats_site):
    """The screens above assume these (the journeys may add to them, never remove)."""
    with stats_site.site.app.app_context():
        assert latest_releasable(utcnow(), 30) >= LATEST
        titles = set(db.session.scalars(select(Action.title)))
        assert "Racist abuse from visitors is not followed up" in titles
