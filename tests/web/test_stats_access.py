"""Who reaches which statistics (DESIGN §2, §7): a leader sees exactly the released tables of
their own scope — never another scope's, never an unreleased figure, never a case — and no
URL lets anyone name a scope. Everyone else is refused the dashboard.

The world: one region, two systems of two organisations each, two released quarters
(FY2025Q4, with the year table, and FY2026Q1) and one quarter with facts but no release
(FY2026Q2). The facts are synthetic (``demo_data.synthetic_facts``, fixed seed), released
through the real release job, disclosure control and audit included.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from speakup import ROOT
from speakup.extensions import db
from speakup.organisations.models import Organisation, Region, System
from speakup.stats.catalogue import SPECS
from speakup.stats.models import Release, ReleaseTable
from speakup.stats.periods import Quarter, parse_quarter
from speakup.stats.views import ORDER
from tests.conftest import recorded_queries
from tests.stats_world import (
    RELEASED,
    UNRELEASED,
    StatsWorld,
    cells_of,
)

#: the quarter running now has no facts and no release either
FUTURE = "FY2099Q1"
K = 8

#: tables defined only above organisation level (catalogue: UPPER_SCOPES / REGION)
SYSTEM_AND_REGION_ONLY = "by_route_disclosure"
REGION_ONLY = "by_ethnic_group"

SCOPE_WORDS = {"scope", "scope_id", "scope_kind", "kind", "region", "system", "organisation"}


def published_number(text: str) -> int | None:
    """The count a cell shows, or None for "fewer than 8", "withheld" or an empty cell."""
    plain = text.replace(",", "")
    return int(plain) if plain.isdigit() else None


def assert_disclosure_controlled(texts: list[str]) -> None:
    """Every count is ≥ k or 0 and a multiple of 5; everything else says why it is hidden."""
    for text in texts:
        number = published_number(text)
        if number is None:
            assert text in (f"fewer than {K} or withheld", ""), text
            continue
        assert not 1 <= number < K, f"a count below {K} is published: {text!r}"
        assert number % 5 == 0, f"a count is not rounded to 5: {text!r}"


def scope_tables(kind: str, scope_id: int, period: str) -> dict[str, ReleaseTable]:
    rows = db.session.scalars(
        select(ReleaseTable)
        .join(Release, Release.id == ReleaseTable.release_id)
        .where(
            Release.period == period,
            ReleaseTable.scope_kind == kind,
            ReleaseTable.scope_id == scope_id,
        )
    ).all()
    return {t.table_key: t for t in rows}


def cell_text(cell: dict[str, Any]) -> str:
    if cell["status"] == "published":
        return str(cell["value"])
    return f"fewer than {K} or withheld"


def scope_name(kind: str, scope_id: int) -> str:
    model = {"region": Region, "system": System, "organisation": Organisation}[kind]
    return db.session.get_one(model, scope_id).name


def expected_csv_cells(payload: dict[str, Any]) -> list[str]:
    """The published cells of a table in reading order, as its CSV must show them."""
    if payload.get("columns"):
        return [
            cell_text(payload["cells"][f"{r}|{c}"])
            for r, _ in payload["rows"]
            for c, _ in payload["columns"]
        ]
    if payload.get("rows"):
        return [cell_text(payload["cells"][r]) for r, _ in payload["rows"]]
    return [cell_text(payload["total"])]


LEADERS = ["region_leader", "system_leader", "org_leader"]
NOT_LEADERS = ["guardian", "lead_guardian", "panel", "admin"]


# A leader's own scope ---------------------------------------------------------------------


def test_a_leader_lands_on_their_statistics(app, world):
    client = app.test_client()
    account = world.accounts["org_leader"]
    client.post("/staff/sign-in", data={"email": account.email, "password": account.password})
    done = client.post("/staff/sign-in/code", data={"code": account.code()})
    assert done.status_code == 302 and done.location.endswith("/staff/statistics/")


@pytest.mark.parametrize("leader", LEADERS)
def test_each_leader_sees_exactly_their_scopes_released_tables(leader, world, as_):
    client = as_(leader)
    kind, scope_id = world.scope_of(leader)
    for period in RELEASED:
        page = client.get(f"/staff/statistics/?period={period}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        own = scope_tables(kind, scope_id, period)
        assert own, "the release has tables for this scope"
        shown = set(re.findall(r'id="table-([a-z_]+)"', html))
        # The dashboard's tables are this scope's, all those it lists (family totals other
        # than concerns raised are the denominators of the tables, served as CSV only).
        assert shown == set(own) & set(ORDER), "the dashboard shows this scope's tables"
        for key, table in own.items():
            if key == "ethnicity_year":
                continue  # shown as a likelihood, with no chart and no CSV
            if table.svg:
                chart = client.get(f"/staff/statistics/{period}/{key}.svg")
                assert chart.status_code == 200
                # Every chart carries a unique id: byte equality proves whose chart it is.
                assert chart.get_data(as_text=True) == table.svg
            else:
                assert client.get(f"/staff/statistics/{period}/{key}.svg").status_code == 404
            download = client.get(f"/staff/statistics/{period}/{key}.csv")
            assert download.status_code == 200
            rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
            assert rows[0][:4] == ["period", "scope", "table", "row"]
            # Every row, the note included, says which period, scope and table it is from.
            title = table.payload.get("title", key)
            assert all(row[:3] == [period, scope_name(kind, scope_id), title] for row in rows[1:])
            body = [c for row in rows[1:] for c in row[4:] if row[3] not in ("Total", "Note")]
            expected = expected_csv_cells(table.payload)
            if table.payload.get("rows"):
                assert body == expected, key
            else:
                assert rows[1][3:] == ["Total", expected[0]]


def test_the_scope_name_is_the_leaders_own(world, as_):
    names = {
        "region_leader": "Midlands",
        "system_leader": world.system_names["A"],
        "org_leader": world.org_names["A1"],
    }
    for leader, name in names.items():
        html = as_(leader).get("/staff/statistics/").get_data(as_text=True)
        assert f"<h1>Speaking up in {name}</h1>" in html
        others = [n for n in [*world.org_names.values(), *world.system_names.values()] if n != name]
        for other in others:
            assert other not in html, f"{leader}'s dashboard names {other}"


def test_tables_of_a_wider_scope_are_not_found_for_a_narrower_leader(world, as_):
    period = RELEASED[-1]
    org, system = as_("org_leader"), as_("system_leader")
    region = as_("region_leader")
    for ext in ("svg", "csv"):
        assert (
            org.get(f"/staff/statistics/{period}/{SYSTEM_AND_REGION_ONLY}.{ext}").status_code == 404
        )
        assert org.get(f"/staff/statistics/{period}/{REGION_ONLY}.{ext}").status_code == 404
        assert system.get(f"/staff/statistics/{period}/{REGION_ONLY}.{ext}").status_code == 404
        assert (
            system.get(f"/staff/statistics/{period}/{SYSTEM_AND_REGION_ONLY}.{ext}").status_code
            == 200
        )
        assert region.get(f"/staff/statistics/{period}/{REGION_ONLY}.{ext}").status_code == 200
    html = org.get("/staff/statistics/").get_data(as_text=True)
    assert SPECS[SYSTEM_AND_REGION_ONLY].title not in html
    assert SPECS[REGION_ONLY].title not in html


@pytest.mark.parametrize(
    "tampered",
    [
        "?scope=organisation:{B1}",
        "?scope_kind=organisation&scope_id={B1}",
        "?scope_id={B1}",
        "?organisation={B1}&organisation_id={B1}&org={B1}",
        "?system={B}&system_id={B}",
        "?region=1&scope=region:1&kind=region",
    ],
)
def test_no_query_parameter_changes_whose_figures_are_shown(tampered, world, as_):
    query = tampered.format(B1=world.orgs["B1"], B=world.systems["B"])
    client = as_("org_leader")
    period = RELEASED[-1]
    own = scope_tables("organisation", world.orgs["A1"], period)

    plain = client.get(f"/staff/statistics/?period={period}").get_data(as_text=True)
    tried = client.get(f"/staff/statistics/{query}&period={period}").get_data(as_text=True)
    strip = re.compile(r'(nonce|value)="[^"]*"')  # the CSP nonce and CSRF token differ
    assert strip.sub("", tried) == strip.sub("", plain)
    assert world.org_names["B1"] not in tried

    chart = client.get(f"/staff/statistics/{period}/by_route.svg{query}")
    assert chart.get_data(as_text=True) == own["by_route"].svg
    download = client.get(f"/staff/statistics/{period}/by_route.csv{query}")
    assert download.get_data() == client.get(f"/staff/statistics/{period}/by_route.csv").get_data()
    # A wider table stays out of reach whatever is added to the address.
    wider = client.get(f"/staff/statistics/{period}/{SYSTEM_AND_REGION_ONLY}.csv{query}")
    assert wider.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/staff/statistics/{period}/../by_route.csv",
        "/staff/statistics/{period}/by_route.CSV",
        "/staff/statistics/{lower}/by_route.csv",
        "/staff/statistics/{period}/by_route.csv.svg",
        "/staff/statistics/{period}/organisation:{B1}:by_route.csv",
        "/staff/statistics/organisation/{B1}/{period}/by_route.csv",
        "/staff/statistics/{period}/no_such_table.csv",
        "/staff/statistics/{period}/no_such_table.svg",
        "/staff/statistics/{period}/submitted_total.svg",
    ],
)
def test_made_up_statistics_addresses_are_not_found(path, world, as_):
    period = RELEASED[-1]
    url = path.format(period=period, lower=period.lower(), B1=world.orgs["B1"])
    response = as_("org_leader").get(url, follow_redirects=True)
    assert response.status_code == 404, url


def test_no_statistics_address_takes_a_scope(app):
    """Leaders' scopes come from their account only: no route has a scope argument, and the
    only arguments any statistics route has are a period, a table key and an action id."""
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("stats.")]
    paths = {r.rule for r in rules}
    assert "/staff/statistics/" in paths and "/staff/national-return" in paths
    for rule in rules:
        assert rule.arguments <= {"period", "table_key", "action_id"}, rule.rule
        assert not {a.lower() for a in rule.arguments} & SCOPE_WORDS, rule.rule
    under = [r for r in app.url_map.iter_rules() if r.rule.startswith("/staff/statistics")]
    assert under and all(r.endpoint.startswith("stats.") for r in under)


# Released figures only --------------------------------------------------------------------


@pytest.mark.parametrize("leader", LEADERS)
def test_unreleased_quarters_are_neither_listed_nor_served(leader, world, as_):
    client = as_(leader)
    kind, scope_id = world.scope_of(leader)
    assert db.session.scalar(select(Release).where(Release.period == UNRELEASED)) is None
    assert any(f["period"] == UNRELEASED for f in world.facts), "it has facts to count"

    html = client.get("/staff/statistics/").get_data(as_text=True)
    listed = re.findall(r'<option value="(FY\d{4}Q\d)"', html)
    assert listed == sorted(RELEASED, reverse=True)
    assert parse_quarter(UNRELEASED).label not in html

    asked = client.get(f"/staff/statistics/?period={UNRELEASED}")
    assert asked.status_code == 200
    shown = asked.get_data(as_text=True)
    assert parse_quarter(UNRELEASED).label not in shown
    assert f"for {parse_quarter(RELEASED[-1]).label}" in shown, "the latest release instead"

    for period in (UNRELEASED, FUTURE, "FY2026Q3", "latest", "FY2026Q1;FY2026Q2"):
        for key in ("by_route", "submitted_total", "by_disclosure"):
            for ext in ("svg", "csv"):
                url = f"/staff/statistics/{period}/{key}.{ext}"
                assert client.get(url).status_code == 404, url


def test_without_any_release_the_dashboard_says_so(app, as_):
    # The world's releases removed: a leader sees the explanation, never a raw count.
    db.session.query(ReleaseTable).delete()
    db.session.query(Release).delete()
    db.session.commit()
    html = as_("region_leader").get("/staff/statistics/").get_data(as_text=True)
    assert "No quarter has been released yet" in html
    cells = cells_of(html)
    assert cells.td == []


def _dashboard_queries(client: FlaskClient) -> tuple[int, str]:
    db.session.expire_all()
    with recorded_queries() as statements:
        response = client.get("/staff/statistics/")
    assert response.status_code == 200
    return len(statements), response.get_data(as_text=True)


def test_the_dashboard_query_count_does_not_grow_with_releases(world, as_):
    """The quarter-by-quarter trend is read in one query, however many quarters are out."""
    client = as_("region_leader")
    client.get("/staff/statistics/")  # warm up: templates, connections
    with_two, _ = _dashboard_queries(client)
    earlier = db.session.scalar(select(Release).where(Release.period == RELEASED[0]))
    assert earlier is not None
    for period in ("FY2024Q1", "FY2024Q2", "FY2024Q3", "FY2024Q4", "FY2025Q1"):
        copy_of = Release(period=period, k=earlier.k, audited_cells=earlier.audited_cells)
        db.session.add(copy_of)
        db.session.flush()
        db.session.execute(
            insert(ReleaseTable),
            [
                {
                    "release_id": copy_of.id,
                    "scope_kind": t.scope_kind,
                    "scope_id": t.scope_id,
                    "table_key": t.table_key,
                    "payload": copy.deepcopy(t.payload),
                    "svg": "",
                }
                for t in earlier.tables
                if t.table_key == "submitted_total"
            ],
        )
    db.session.commit()
    with_seven, html = _dashboard_queries(client)
    assert with_seven == with_two
    trend = html[html.index("Concerns raised each quarter") :]
    labels = [parse_quarter(p).label for p in ("FY2024Q1", "FY2025Q1", *RELEASED)]
    positions = [trend.index(label) for label in labels]
    assert positions == sorted(positions)  # oldest first


@pytest.mark.parametrize("leader", LEADERS)
def test_the_dashboard_never_shows_a_small_count(leader, world, as_):
    client = as_(leader)
    for period in RELEASED:
        html = client.get(f"/staff/statistics/?period={period}").get_data(as_text=True)
        cells = cells_of(html)
        assert len(cells.td) > 20
        assert_disclosure_controlled(cells.td)
        # The explanation of what is hidden and why, in plain language.
        assert f"“fewer than {K} or withheld”" in html
        assert "rounded to the nearest 5" in html
        assert f"fewer than {K} or withheld" in html
        # Every table is downloadable, and every CSV is as controlled as the page.
        for link in re.findall(r'href="(/staff/statistics/[^"]+\.csv)"', html):
            rows = list(csv.reader(io.StringIO(client.get(link).get_data(as_text=True))))
            # Data rows carry period, scope, table and their label before the counts.
            assert all(row[:2] == [period, scope_name(*world.scope_of(leader))] for row in rows[1:])
            values = [c for row in rows[1:] if row[3] != "Note" for c in row[4:]]
            assert values
            assert_disclosure_controlled(values)
            assert rows[-1][3] == "Note"
            assert f"reads 'fewer than {K} or withheld'" in rows[-1][4]
    # Small counts exist in this world: the tests above would catch one if shown.
    assert any(c == f"fewer than {K} or withheld" for c in cells.td)


def test_the_organisation_dashboard_hides_real_small_counts(world, as_):
    """Cross-check against the facts: a count of 1–7 in the organisation's raw data is never
    what its table shows."""
    period = RELEASED[-1]
    org_id = world.orgs["A1"]
    raw: dict[str, int] = {}
    for f in world.facts:
        if f["period"] == period and f["organisation_id"] == org_id and f["kind"] == "submitted":
            raw[f["disclosure_mode"]] = raw.get(f["disclosure_mode"], 0) + 1
    table = scope_tables("organisation", org_id, period)["by_disclosure"]
    for mode, n in raw.items():
        cell = table.payload["cells"][mode]
        if 1 <= n < K:
            assert cell["status"] != "published" and cell["value"] is None
    download = as_("org_leader").get(f"/staff/statistics/{period}/by_disclosure.csv")
    rows = {r[3]: r[-1] for r in csv.reader(io.StringIO(download.get_data(as_text=True))) if r}
    for mode, label in (("anonymous", "Anonymous"), ("confidential", "Confidential")):
        if 1 <= raw.get(mode, 0) < K:
            assert rows[label] == f"fewer than {K} or withheld"


@pytest.mark.parametrize("leader", LEADERS)
def test_every_id_on_the_dashboard_is_unique(leader, as_):
    client = as_(leader)
    for period in RELEASED:
        html = client.get(f"/staff/statistics/?period={period}").get_data(as_text=True)
        ids = re.findall(r'\sid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
        for target in re.findall(r'\s(?:for|aria-labelledby)="([^"]+)"', html):
            assert ids.count(target) == 1, target


# Nothing else for a leader ----------------------------------------------------------------


@pytest.fixture
def case_reference(app: Flask, world: StatsWorld, submit: Any) -> str:
    org = db.session.get(Organisation, world.orgs["A1"])
    return submit(org).case.reference


@pytest.mark.parametrize("leader", LEADERS)
def test_a_leader_reaches_no_case(leader, case_reference, as_):
    client = as_(leader)
    assert client.get("/staff/cases/").status_code == 403
    assert client.get("/staff/cases/overview").status_code == 403
    for suffix in ("", "/audit", "/attachments/1"):
        real = client.get(f"/staff/cases/{case_reference}{suffix}")
        made_up = client.get(f"/staff/cases/SU-NOPE-NOPE{suffix}")
        # Refused for the role before any case is looked up, so the answer is the same
        # whether the case exists or not: nothing can be probed.
        assert (real.status_code, made_up.status_code) == (403, 403), suffix
        assert case_reference not in real.get_data(as_text=True)
        assert "Something happened on the ward" not in real.get_data(as_text=True)
    posted = client.post(f"/staff/cases/{case_reference}/messages", data={"body": "hello"})
    assert posted.status_code == 403


@pytest.mark.parametrize("leader", LEADERS)
def test_a_leader_reaches_no_administration_or_national_return(leader, world, as_):
    client = as_(leader)
    for url in (
        "/staff/admin/users",
        "/staff/admin/audit",
        "/staff/national-return",
        f"/staff/national-return.csv?period={RELEASED[-1]}",
    ):
        assert client.get(url).status_code == 403, url
    signed = client.post(f"/staff/national-return?period={RELEASED[-1]}")
    assert signed.status_code == 403
    disable = client.post(f"/staff/admin/users/{world.accounts['guardian'].user_id}/disable")
    assert disable.status_code == 403


@pytest.mark.parametrize("who", NOT_LEADERS)
def test_only_leaders_see_the_dashboard(who, world, as_):
    client = as_(who)
    period = RELEASED[-1]
    for url in (
        "/staff/statistics/",
        f"/staff/statistics/?period={period}",
        f"/staff/statistics/{period}/by_route.svg",
        f"/staff/statistics/{period}/by_route.csv",
        "/staff/statistics/actions",
    ):
        assert client.get(url).status_code == 403, url
    published = client.post(
        "/staff/statistics/actions",
        data={"period": period, "theme": "other", "title": "t", "description": "d"},
    )
    assert published.status_code == 403


def test_signed_out_people_are_sent_to_sign_in(client, world):
    period = RELEASED[-1]
    for url in (
        "/staff/statistics/",
        f"/staff/statistics/{period}/by_route.svg",
        f"/staff/statistics/{period}/by_route.csv",
        f"/staff/statistics/{period}/no_such_table.csv",
        f"/staff/statistics/{UNRELEASED}/by_route.csv",
        "/staff/statistics/actions",
        "/staff/national-return",
        f"/staff/national-return.csv?period={period}",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location.endswith("/staff/sign-in"), url
    for url in (
        "/staff/statistics/actions",
        "/staff/statistics/actions/1",
        "/staff/national-return",
    ):
        response = client.post(url)
        assert response.status_code == 302 and response.location.endswith("/staff/sign-in")


def test_a_leader_without_a_scope_is_refused(app, world, as_):
    # An account whose scope was lost (data repaired by hand) sees nothing rather than all.
    from speakup.accounts.models import User

    user = db.session.get(User, world.accounts["org_leader"].user_id)
    client = as_("org_leader")
    user.scope_id = None
    db.session.commit()
    assert client.get("/staff/statistics/").status_code == 403
    assert client.get(f"/staff/statistics/{RELEASED[-1]}/by_route.csv").status_code == 403


# The chart itself -------------------------------------------------------------------------


def test_a_chart_is_an_inert_image(world, as_):
    client = as_("region_leader")
    period = RELEASED[-1]
    for key in ("by_route", "by_route_disclosure", "by_ethnic_group", "speak_up_again"):
        response = client.get(f"/staff/statistics/{period}/{key}.svg")
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        policy = [p.strip() for p in response.headers["Content-Security-Policy"].split(";")]
        assert "sandbox" in policy and "default-src 'none'" in policy
        assert not any(p.startswith("script-src") for p in policy)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        svg = response.get_data(as_text=True)
        assert svg.startswith("<svg")
        assert not re.search(r"<\s*script", svg, re.IGNORECASE)
        assert not re.search(r"\bon[a-z]+\s*=", svg, re.IGNORECASE), "no event handler"
        assert "javascript:" not in svg.lower()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", svg))
        assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
        assert "<foreignObject" not in svg and "<image" not in svg


def test_the_release_job_imports_cleanly_with_warnings_as_errors():
    """Importing the chart module must leave no legacy import hook behind: on Python 3.11 it
    turns every later failed import (numpy's optional ones, for a start) into an
    ImportWarning, an error under this suite's ``filterwarnings = error``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error::ImportWarning", "-c", "import speakup.stats.release"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_charts_and_csvs_are_not_cached_anywhere_shared(world, as_):
    client = as_("org_leader")
    period = RELEASED[-1]
    for ext in ("svg", "csv"):
        response = client.get(f"/staff/statistics/{period}/by_route.{ext}")
        assert "public" not in response.headers.get("Cache-Control", "")
    download = client.get(f"/staff/statistics/{period}/by_route.csv")
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_the_world_is_what_the_tests_assume(world):
    """Guards the fixtures: two releases, the Q4 one with its year table, and k as set."""
    releases = db.session.scalars(select(Release).order_by(Release.period)).all()
    assert [r.period for r in releases] == list(RELEASED)
    assert all(r.k == K for r in releases)
    region = scope_tables("region", world.region_id, "FY2025Q4")
    assert "ethnicity_year" in region and REGION_ONLY in region
    assert REGION_ONLY not in scope_tables("system", world.systems["A"], "FY2025Q4")
    assert SYSTEM_AND_REGION_ONLY not in scope_tables("organisation", world.orgs["A1"], "FY2026Q1")
    assert Quarter(2026, 2).key == UNRELEASED
