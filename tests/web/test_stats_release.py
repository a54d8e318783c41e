"""Releases (DESIGN §7): a closed quarter is published once, after its lag, frozen and never
recomputed; rates only over a published denominator of at least 20; the Q4 release adds the
financial-year ethnicity tables, tied to the quarters already released, with the relative
likelihood where it can be shown; the jobs and statistics commands; workforce imports that
are all or nothing; and the national return, counted from the facts.

Facts are written straight into the fact table (as the shuffle job would) for a small
geography: one region, one system, three organisations.
"""

from __future__ import annotations

import csv
import io
import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from scipy.optimize import linprog
from scipy.sparse import coo_matrix
from sqlalchemy import insert, select

from speakup.db import utcnow
from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.stats.catalogue import SPECS
from speakup.stats.disclosure import bounds_for, round_to
from speakup.stats.facts import elements_mask, emit_fact
from speakup.stats.likelihood import relative_likelihood
from speakup.stats.models import Fact, FactInbox, Release, ReleaseTable, Workforce
from speakup.stats.national_return import CURRENT_VERSION, build_return, load_mapping
from speakup.stats.periods import Quarter, quarter_of
from speakup.stats.release import Geography, build_cells, rate_for, release_period
from speakup.stats.vocab import PAY_BANDS, STAFF_GROUPS
from tests.conftest import count

K = 8
HALF = 2
YEAR = 2024  # financial year 2024/25: every quarter of it is long over
Q1, Q2, Q3, Q4 = (Quarter(YEAR, n) for n in (1, 2, 3, 4))
WHITE, BME = "white_british", "black_african"


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def orgs(make_org: Callable[..., Organisation]) -> list[Organisation]:
    return [make_org(code) for code in ("ORGA", "ORGB", "ORGC")]


DEFAULTS: dict[str, dict[str, Any]] = {
    "submitted": {"route": "organisation", "disclosure_mode": "open"},
    "triaged": {"route": "organisation", "disclosure_mode": "open"},
    "closed": {
        "route": "organisation",
        "disclosure_mode": "open",
        "outcome": "closed",
        "ttc_bucket": "under_1_month",
    },
    "speak_up_again": {"answer": "yes"},
}


def add(period: Quarter, org: Organisation, n: int, kind: str = "submitted", **fields: Any) -> None:
    """``n`` identical facts, as the shuffle job writes them (with the fields every fact of
    its kind carries, unless given: the counts must add up to their totals)."""
    fields = DEFAULTS.get(kind, {}) | fields
    if n:
        db.session.execute(
            insert(Fact),
            [
                {
                    "id": secrets.token_hex(16),
                    "kind": kind,
                    "period": period.key,
                    "organisation_id": org.id,
                    "system_id": org.system_id,
                    **fields,
                }
                for _ in range(n)
            ],
        )


STAFF = [code for code, _ in STAFF_GROUPS] + [None]
PAY = [code for code, _ in PAY_BANDS] + [None]
#: one Census code per high-level group, and "not stated"
ETHNICITIES = ["white_british", "black_african", "asian_indian", "mixed_other", "other_arab", None]
ROUTES = ["organisation", "pool", "panel"]
MODES = ["anonymous", "confidential", "open"]


def rich(period: Quarter, org: Organisation, n: int, **fixed: Any) -> None:
    """``n`` concerns spread over every route, way of speaking up, staff group, pay band and
    ethnic group (except the fields given), as real concerns would be."""
    for i in range(n):
        fields = {
            "route": ROUTES[i % 3],
            "disclosure_mode": MODES[(i // 3) % 3],
            "staff_group": STAFF[i % len(STAFF)],
            "pay_band": PAY[(i // len(STAFF)) % len(PAY)],
            "ethnicity": ETHNICITIES[i % len(ETHNICITIES)],
        }
        add(period, org, 1, **(fields | fixed))


def release(quarter: Quarter, app: Flask) -> Release:
    made = release_period(quarter, app.config, utcnow())
    db.session.commit()
    return made


def tables(made: Release) -> dict[tuple[str, int, str], ReleaseTable]:
    return {(t.scope_kind, t.scope_id, t.table_key): t for t in made.tables}


def snapshot() -> dict[tuple, tuple]:
    rows = db.session.scalars(select(ReleaseTable)).all()
    return {(t.release_id, t.scope_kind, t.scope_id, t.table_key): (t.payload, t.svg) for t in rows}


def cell(payload: dict, coord: str) -> dict:
    return payload["cells"][coord]


# --- when a release may happen, and that it happens once ------------------------------------


def test_an_unfinished_quarter_is_refused(app: Flask, orgs: list[Organisation]) -> None:
    lag = int(app.config["STATS_RELEASE_LAG_DAYS"])
    add(Q2, orgs[0], 30)
    db.session.commit()
    just_before = Q2.end + timedelta(days=lag) - timedelta(seconds=1)
    with pytest.raises(ValidationError, match=f"cannot be released until {lag} days after"):
        release_period(Q2, app.config, just_before)
    db.session.rollback()
    current = quarter_of(utcnow())
    with pytest.raises(ValidationError, match="cannot be released"):
        release_period(current, app.config, utcnow())
    db.session.rollback()
    assert count(Release) == count(ReleaseTable) == 0
    # At end + lag exactly, it may.
    made = release_period(Q2, app.config, Q2.end + timedelta(days=lag))
    assert made.period == Q2.key


def test_a_release_is_frozen_and_never_recomputed(app: Flask, orgs: list[Organisation]) -> None:
    a, b, c = orgs
    rich(Q1, a, 132)
    rich(Q1, b, 66)
    rich(Q1, c, 99)
    db.session.commit()
    made = release(Q1, app)
    assert (made.period, made.k) == (Q1.key, K)
    first = snapshot()
    published = tables(made)
    total = {o.code: published[("organisation", o.id, "submitted_total")].payload for o in orgs}
    assert [total[code]["total"] for code in ("ORGA", "ORGB", "ORGC")] == [
        {"status": "published", "value": 130},
        {"status": "published", "value": 65},
        {"status": "published", "value": 100},
    ]

    # Later facts for the same quarter (a late shuffle, say) change nothing published.
    rich(Q1, c, 50)
    db.session.commit()
    with pytest.raises(ValidationError, match="already released"):
        release_period(Q1, app.config, utcnow())
    db.session.rollback()
    with pytest.raises(ValidationError, match="already released"):
        release_period(Q1, app.config, utcnow(), force=True)
    db.session.rollback()
    assert snapshot() == first
    assert count(Release) == 1


def test_rates_only_over_a_published_denominator_of_at_least_20(
    app: Flask, orgs: list[Organisation]
) -> None:
    a, b, c = orgs
    rich(Q1, a, 33, disclosure_mode="anonymous")  # 33 of 99
    rich(Q1, a, 33, disclosure_mode="confidential")
    rich(Q1, a, 33, disclosure_mode="open")
    rich(Q1, b, 9, disclosure_mode="anonymous")  # 9 of 17: too few to give a share of
    rich(Q1, b, 8, disclosure_mode="open")
    rich(Q1, c, 2, disclosure_mode="anonymous")  # 2 of 99: fewer than k
    rich(Q1, c, 48, disclosure_mode="confidential")
    rich(Q1, c, 49, disclosure_mode="open")
    db.session.commit()
    published = tables(release(Q1, app))

    region = published[("region", orgs[0].system.region_id, "by_disclosure")].payload
    assert region["total"] == {"status": "published", "value": 215}
    assert cell(region, "anonymous") == {"status": "published", "value": 45}
    assert region["rate"] == {"label": "Share raised anonymously", "value": 21, "reason": ""}
    by_disclosure = {
        o.code: published[("organisation", o.id, "by_disclosure")].payload for o in orgs
    }
    # B: 17 concerns — published (if at all) as 15, below 20: no share.
    assert by_disclosure["ORGB"]["rate"]["value"] is None
    assert by_disclosure["ORGB"]["rate"]["reason"] == "denominator"
    # C: 100 concerns but "fewer than 8" anonymous: no share.
    assert by_disclosure["ORGC"]["total"] == {"status": "published", "value": 100}
    assert cell(by_disclosure["ORGC"], "anonymous")["status"] != "published"
    assert by_disclosure["ORGC"]["rate"]["value"] is None
    assert by_disclosure["ORGC"]["rate"]["reason"] == "numerator"

    # And for every table of every scope: a rate only from published figures, total ≥ 20.
    checked = 0
    for (_, _, key), table in published.items():
        payload = table.payload
        rate = payload.get("rate")
        if key == "ethnicity_year" or rate is None:
            continue
        numerator = cell(payload, SPECS[key].rate[0])
        total = payload["total"]
        if rate["value"] is None:
            assert (
                total["status"] != "published"
                or total["value"] - HALF < 20
                or numerator["status"] != "published"
            )
            continue
        checked += 1
        assert total["status"] == numerator["status"] == "published"
        assert total["value"] - HALF >= 20  # every count published so is at least 20
        assert rate["value"] == round(100 * numerator["value"] / total["value"])
    assert checked >= 2  # organisation A and the system/region at least


@pytest.mark.parametrize(
    ("true_total", "shown"), [(18, False), (19, False), (22, False), (23, True)]
)
def test_no_rate_over_a_true_denominator_of_18_or_19(true_total: int, shown: bool) -> None:
    """18 and 19 concerns are both published as 20, and the old rule (published ≥ 20) gave
    them a share. The rule is a true denominator of at least 20; it is decided on what is
    published (20 could be 18..22), so that showing the share or not tells nobody which:
    only a published figure whose every possible count is 20 or more gets one."""
    published_total = round_to(true_total, 5)
    cells = {"anonymous": {"status": "published", "value": 10}}
    total = {"status": "published", "value": published_total}
    rate = rate_for(SPECS["by_disclosure"], cells, total, 5)
    assert rate is not None
    if shown:
        assert rate == {"label": "Share raised anonymously", "value": 40, "reason": ""}
    else:
        assert rate == {"label": "Share raised anonymously", "value": None, "reason": "denominator"}


def test_totals_are_published_when_nobody_answers_about_you(
    app: Flask, orgs: list[Organisation]
) -> None:
    """The "about you" questions are optional. In a quarter when nobody answers them, every
    staff-group, pay-band and ethnicity count is "not stated": those cells must be withheld
    (or the zeros beside them could be subtracted out), but nothing requires hiding the
    totals or the route and disclosure tables. Three organisations of 45 concerns, evenly
    spread over the routes and ways of speaking up, must not publish nothing at all."""
    for org in orgs:
        rich(Q1, org, 45, staff_group=None, pay_band=None, ethnicity=None)
    db.session.commit()
    published = tables(release(Q1, app))
    totals = {
        (kind, scope_id): table.payload["total"]
        for (kind, scope_id, key), table in published.items()
        if key == "submitted_total"
    }
    assert totals == {
        ("region", orgs[0].system.region_id): {"status": "published", "value": 135},
        ("system", orgs[0].system_id): {"status": "published", "value": 135},
        **{("organisation", o.id): {"status": "published", "value": 45} for o in orgs},
    }
    for org in orgs:
        payload = published[("organisation", org.id, "by_disclosure")].payload
        assert [cell(payload, m) for m in MODES] == [{"status": "published", "value": 15}] * 3


# --- the financial year and relative likelihood --------------------------------------------


def workforce_csv(rows: list[tuple[str, int, int, int]]) -> bytes:
    lines = ["organisation_code,year,white,bme,not_stated"]
    lines += [f"{code},{YEAR},{white},{bme},10" for code, white, bme, _ in rows]
    return ("\n".join(lines) + "\n").encode()


def test_q4_adds_the_year_table_with_relative_likelihood(
    app: Flask, orgs: list[Organisation], cli: Callable[..., Any], tmp_path: Path
) -> None:
    a, b, c = orgs
    for quarter in (Q1, Q2, Q3, Q4):
        rich(quarter, a, 30, ethnicity=WHITE)
        rich(quarter, a, 25, ethnicity=BME)
        rich(quarter, a, 9, ethnicity=None)
        rich(quarter, b, 30, ethnicity=WHITE)
        rich(quarter, b, 1, ethnicity=BME)  # organisation B: too few to show
        rich(quarter, b, 3, ethnicity=None)
        rich(quarter, c, 20, ethnicity=WHITE)
        rich(quarter, c, 20, ethnicity=BME)
        rich(quarter, c, 3, ethnicity=None)
    db.session.commit()
    path = tmp_path / "workforce.csv"
    path.write_bytes(
        workforce_csv([("ORGA", 3000, 1000, 0), ("ORGB", 2000, 500, 0), ("ORGC", 2500, 800, 0)])
    )
    result = cli("stats", "import-workforce", str(path))
    assert result.exit_code == 0, result.output

    earlier = [release(q, app) for q in (Q1, Q2, Q3)]
    for made in earlier:
        assert not [t for t in made.tables if t.table_key == "ethnicity_year"]
    q4 = tables(release(Q4, app))
    years = {
        scope_id: t.payload
        for (kind, scope_id, key), t in q4.items()
        if key == "ethnicity_year" and kind == "organisation"
    }
    assert len([k for k in q4 if k[2] == "ethnicity_year"]) == 5  # region, system, 3 orgs

    # The region (here the same as its one system): 4 × 46 BME and 4 × 80 White concerns,
    # 2,300 and 7,500 staff. Published as 185 and 320; the ratio is the true counts'.
    region = q4[("region", a.system.region_id, "ethnicity_year")].payload
    assert region["year"] == YEAR
    assert region["headcounts"] == {"white": 7500, "bme": 2300}
    assert cell(region, "bme") == {"status": "published", "value": 185}
    assert cell(region, "white") == {"status": "published", "value": 320}
    likelihood = region["likelihood"]
    true = {"bme": 184, "white": 320, "not_stated": 60}
    assert likelihood == relative_likelihood(region["cells"], region["headcounts"], true)
    assert likelihood["value"] == 1.88  # (184 / 2300) / (320 / 7500) = 1.875
    assert round((185 / 2300) / (320 / 7500), 2) == 1.89  # what the rounded counts say
    assert likelihood["band"] == "above"
    assert "exact numbers" in likelihood["basis"]

    # Organisation B: 4 BME concerns in the year — suppressed, and the likelihood with it.
    year_b = years[b.id]
    assert year_b["headcounts"] == {"white": 2000, "bme": 500}
    assert cell(year_b, "bme")["status"] != "published"
    assert year_b["likelihood"] == {"value": None, "reason": "suppressed"}
    # Wherever a count is hidden, so is the ratio (A's and C's 100 and 80 BME concerns are
    # withheld so that neither guardian team can work out B's 4 from its own counts).
    for payload in years.values():
        if any(cell(payload, g)["status"] != "published" for g in ("bme", "white")):
            assert payload["likelihood"]["value"] is None

    # The year table is tied to the quarters: each published year figure is consistent with
    # what the four quarters published for the same scope and group.
    quarterly = [tables(made) for made in earlier] + [q4]
    compared = 0
    for (kind, scope_id, key), table in q4.items():
        if key != "ethnicity_year":
            continue
        for group in ("white", "bme", "not_stated"):
            year_cell = cell(table.payload, group)
            parts = [cell(q[(kind, scope_id, "by_ethnicity")].payload, group) for q in quarterly]
            if year_cell["status"] != "published" or any(p["status"] != "published" for p in parts):
                continue
            compared += 1
            low = sum(p["value"] - HALF for p in parts)
            high = sum(p["value"] + HALF for p in parts)
            assert low - HALF <= year_cell["value"] <= high + HALF, (kind, scope_id, group)
    assert compared >= 3


def test_no_likelihood_anywhere_without_workforce_figures(
    app: Flask, orgs: list[Organisation]
) -> None:
    for quarter in (Q1, Q2, Q3, Q4):
        for org in orgs:
            rich(quarter, org, 30, ethnicity=WHITE)
            rich(quarter, org, 30, ethnicity=BME)
            rich(quarter, org, 4, ethnicity=None)
    db.session.commit()
    for quarter in (Q1, Q2, Q3, Q4):
        made = release(quarter, app)
    years = [t.payload for t in made.tables if t.table_key == "ethnicity_year"]
    assert len(years) == 5
    for payload in years:
        assert payload["headcounts"] is None
        assert payload["likelihood"] == {"value": None, "reason": "workforce"}
    # The counts themselves are published all the same.
    assert [cell(p, "bme")["status"] for p in years] == ["published"] * 5


# --- what the public can work out from every release -----------------------------------------

SUBMITTED_TABLES = {key for key, spec in SPECS.items() if spec.family == "submitted"}


def public_knowledge(releases: list[Release]) -> tuple[dict, list, set]:
    """Bounds for every published cell of the "submitted" tables of ``releases`` and of the
    year table, and every relation between them that anyone can know: each quarter's
    relations (the release's own structure, from ``build_cells``) and the year table's, which
    this test writes out itself: year = Q1 + Q2 + Q3 + Q4, and organisations add up to their
    system and region. Every hidden cell reads "fewer than k or withheld": it is only known
    to be a count. Also returns which cells are hidden."""
    bounds: dict[tuple, tuple[float, float]] = {}
    relations: list[tuple[tuple, tuple]] = []
    hidden: set[tuple] = set()
    geo = Geography()
    scopes = (
        [("region", r.id) for r in geo.regions]
        + [("system", s.id) for s in geo.systems]
        + [("organisation", o.id) for o in geo.orgs]
    )
    for made in releases:
        for table in made.tables:
            if table.table_key not in SUBMITTED_TABLES | {"ethnicity_year"}:
                continue
            for coord, value in table.payload["cells"].items():
                key = (
                    made.period,
                    table.scope_kind,
                    table.scope_id,
                    table.table_key,
                    tuple(coord.split("|")) if coord else (),
                )
                if value["status"] == "published":
                    bounds[key] = (max(K, value["value"] - HALF), value["value"] + HALF)
                else:
                    bounds[key] = (0.0, math.inf)
                    hidden.add(key)
        quarter = Quarter(int(made.period[2:6]), int(made.period[-1]))
        _, constraints = build_cells(made.period, geo, {})
        relations += [
            (c.total, tuple(c.members)) for c in constraints if c.total[3] in SUBMITTED_TABLES
        ]
        if quarter.number == 4:
            for kind, scope_id in scopes:
                for group in ("white", "bme", "not_stated"):
                    relations.append(
                        (
                            (made.period, kind, scope_id, "ethnicity_year", (group,)),
                            tuple(
                                (q.key, kind, scope_id, "by_ethnicity", (group,))
                                for q in quarter.year_quarters()
                            ),
                        )
                    )
            children = {
                ("region", r.id): [("system", s.id) for s in geo.systems] for r in geo.regions
            }
            children |= {
                ("system", s.id): [("organisation", o.id) for o in geo.orgs if o.system_id == s.id]
                for s in geo.systems
            }
            for (kind, scope_id), kids in children.items():
                for group in ("white", "bme", "not_stated"):
                    relations.append(
                        (
                            (made.period, kind, scope_id, "ethnicity_year", (group,)),
                            tuple((made.period, k, i, "ethnicity_year", (group,)) for k, i in kids),
                        )
                    )
    for total, members in relations:
        for key in (total, *members):
            bounds.setdefault(key, (0.0, math.inf))  # a quarter not released: unknown
    return bounds, relations, hidden


def narrowest_suppressed(
    bounds: dict, relations: list, hidden: set
) -> list[tuple[tuple, float, float]]:
    """For every hidden cell, the range of whole numbers the public knowledge allows, when
    it holds fewer than k of them (integer programmes: an attacker knows counts are whole)."""
    cells = list(bounds)
    index = {key: i for i, key in enumerate(cells)}
    rows, cols, vals = [], [], []
    for r, (total, members) in enumerate(relations):
        rows.append(r)
        cols.append(index[total])
        vals.append(1.0)
        for member in members:
            rows.append(r)
            cols.append(index[member])
            vals.append(-1.0)
    a_eq = coo_matrix((vals, (rows, cols)), shape=(len(relations), len(cells))).tocsr()
    b_eq = np.zeros(len(relations))
    lp_bounds = [(lo, None if math.isinf(hi) else hi) for lo, hi in bounds.values()]
    whole = np.ones(len(cells))

    def solve(objective: np.ndarray, bounds_: list) -> Any:
        return linprog(
            objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds_, method="highs", integrality=whole
        )

    targets = [key for key in cells if key in hidden]
    # Witnesses first: a few whole-number solutions with random weights on all hidden cells
    # at once; a cell they already show taking k different values is safe.
    capped = [(lo, 10**6 if hi is None else hi) for lo, hi in lp_bounds]
    seen: dict[tuple, list[float]] = {key: [] for key in targets}
    rng = np.random.default_rng(0)
    for _ in range(3):
        weights = np.zeros(len(cells))
        for key in targets:
            weights[index[key]] = rng.uniform(0.5, 1.5)
        for sign in (1.0, -1.0):
            solution = solve(sign * weights, capped)
            assert solution.status == 0, solution.message
            for key in targets:
                seen[key].append(float(solution.x[index[key]]))
    narrow = []
    for key in targets:
        if math.floor(max(seen[key]) + 1e-7) - math.ceil(min(seen[key]) - 1e-7) + 1 >= K:
            continue
        objective = np.zeros(len(cells))
        objective[index[key]] = 1.0
        low = solve(objective, lp_bounds)
        assert low.status == 0, low.message
        # Unbounded above? The relaxation says so cleanly; then so is the integer programme.
        relaxed = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=lp_bounds, method="highs")
        assert relaxed.status in (0, 3), relaxed.message
        if relaxed.status == 3:
            continue
        high = solve(-objective, lp_bounds)
        assert high.status == 0, high.message
        lo, top = low.fun, -high.fun
        if math.floor(top + 1e-7) - math.ceil(lo - 1e-7) + 1 < K:
            narrow.append((key, lo, top))
    return narrow


#: Concerns by ethnicity (white, BME, not stated) in the first organisation, quarter by
#: quarter: the pattern that, in the pure tests, lets the year table give Q1 away when the Q4
#: audit does not know the quarters' own relations.
YEAR_A = [(0, 14, 7), (33, 7, 2), (10, 12, 11), (0, 6, 11)]


@pytest.mark.parametrize("organisations", [1, 3], ids=["one-organisation", "three-organisations"])
def test_no_suppressed_cell_can_be_worked_out_across_the_year(
    app: Flask, make_org: Callable[..., Organisation], organisations: int
) -> None:
    """Everything the four releases of a year publish about concerns raised — every
    quarter's tables and the year table — cannot narrow any hidden count below k."""
    first, *others = [make_org(f"YR{i}") for i in range(organisations)]
    for quarter, (white, bme, not_stated) in zip((Q1, Q2, Q3, Q4), YEAR_A, strict=True):
        rich(quarter, first, white, ethnicity=WHITE)
        rich(quarter, first, bme, ethnicity=BME)
        rich(quarter, first, not_stated, ethnicity=None)
        for org in others:
            rich(quarter, org, 30, ethnicity=WHITE)
            rich(quarter, org, 20, ethnicity=BME)
    db.session.commit()
    releases = [release(q, app) for q in (Q1, Q2, Q3, Q4)]
    assert narrowest_suppressed(*public_knowledge(releases)) == []


def test_quarters_released_after_their_year_table_cannot_be_differenced_against_it(
    app: Flask, make_org: Callable[..., Organisation]
) -> None:
    """Nothing stops an operator releasing Q4 (and with it the year table) before Q1–Q3,
    e.g. with ``jobs release --period``. The later Q1–Q3 audits must then take the year
    table into account — or the release must refuse to go out of order. Here White concerns
    are 8, 8, 0 and 8: released Q4 first, then Q1, Q2, Q3, the year (25) minus three
    published 10s pins Q3's "fewer than 8" to 0..3."""
    org = make_org("SOLO")
    for quarter, white in zip((Q1, Q2, Q3, Q4), (8, 8, 0, 8), strict=True):
        fixed = {"staff_group": None, "pay_band": None}
        rich(quarter, org, white, ethnicity=WHITE, **fixed)
        rich(quarter, org, 30, ethnicity=BME, **fixed)
        rich(quarter, org, 10, ethnicity=None, **fixed)
    db.session.commit()
    releases = []
    for quarter in (Q4, Q1, Q2, Q3):
        try:
            releases.append(release(quarter, app))
        except ValidationError:
            db.session.rollback()  # refusing to release out of order is a fine answer too
    assert narrowest_suppressed(*public_knowledge(releases)) == []


def test_the_q4_audit_knows_every_relation_the_earlier_quarters_were_published_with(
    app: Flask, orgs: list[Organisation], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The year table ties Q4 to Q1–Q3, so the Q4 audit must see what the public knows of
    Q1–Q3: not only each earlier cell's published bounds, but the relations between those
    cells (tables add up to totals, organisations to their system). Without the relations a
    hidden Q1 count can be pinned (see test_the_year_audit_needs_the_earlier_quarters_relations
    in the pure tests)."""
    for quarter in (Q1, Q2, Q3, Q4):
        for org, n in zip(orgs, (40, 30, 20), strict=True):
            rich(quarter, org, n)
    db.session.commit()
    earlier = {q.key: release(q, app) for q in (Q1, Q2, Q3)}

    import speakup.stats.release as release_module

    seen: dict[str, Any] = {}
    real_control = release_module.control

    def recording_control(values: dict, constraints: list, **kwargs: Any) -> Any:
        seen["constraints"] = {(c.total, tuple(c.members)) for c in constraints}
        seen["fixed"] = dict(kwargs.get("fixed") or {})
        return real_control(values, constraints, **kwargs)

    monkeypatch.setattr(release_module, "control", recording_control)
    release(Q4, app)
    geo = Geography()
    for period, made in earlier.items():
        _, relations = build_cells(period, geo, {})
        missing = [c for c in relations if (c.total, tuple(c.members)) not in seen["constraints"]]
        assert not missing, (
            f"the Q4 audit was not told {len(missing)} of {len(relations)} relations of "
            f"{period}, e.g. {missing[0].total} = sum of {len(missing[0].members)} cells"
        )
        for table in made.tables:
            for coord, value in table.payload["cells"].items():
                key = (period, table.scope_kind, table.scope_id, table.table_key,
                       tuple(coord.split("|")) if coord else ())  # fmt: skip
                expected = bounds_for(value["status"], value["value"], made.k, 5)
                assert seen["fixed"].get(key) == expected, key


def test_an_organisation_added_during_the_year_does_not_break_the_q4_release(
    app: Flask, orgs: list[Organisation], make_org: Callable[..., Organisation]
) -> None:
    """Organisations join mid-year. The Q4 audit rebuilds Q1–Q3's relations for today's
    geography, which includes cells (the newcomer's Q1–Q3 counts) that no earlier release
    published: they are simply unknown to the public, and the release must go ahead."""
    for quarter in (Q1, Q2, Q3):
        for org in orgs:
            rich(quarter, org, 40)
        db.session.commit()
        release(quarter, app)
    newcomer = make_org("NEWTRUST")
    for org in [*orgs, newcomer]:
        rich(Q4, org, 40)
    db.session.commit()
    published = tables(release(Q4, app))
    assert ("organisation", newcomer.id, "ethnicity_year") in published
    # Its total may be withheld to protect its siblings' small cells from their guardians
    # (who know their own counts); the release went ahead all the same.
    total = published[("organisation", newcomer.id, "submitted_total")].payload["total"]
    assert total in (
        {"status": "published", "value": 40},
        {"status": "complementary", "value": None},
    )


def test_the_two_suppression_labels_give_nothing_away(app: Flask, orgs: list[Organisation]) -> None:
    """The audit treats every hidden cell as merely ``>= 0``. That is all the public learns
    only if a cell below k and a cell withheld to protect it look the same: with two labels,
    "fewer than k" would say ≤ k-1 and "withheld" ≥ k (11 concerns split 3 + 8 would be
    published as total 10, "fewer than 8", "withheld" — pinning the withheld cell to 8..12,
    as precise as publishing it). So both kinds of hiding must occur here, every hidden
    cell must read the same on the dashboard and in the CSV, and the audit model must then
    hold: nothing hidden narrowed below k possibilities."""
    a, b, c = orgs
    rich(Q1, a, 132)
    rich(Q1, b, 17)
    rich(Q1, c, 132)
    db.session.commit()
    made = release(Q1, app)
    statuses = {cell["status"] for table in made.tables for cell in table.payload["cells"].values()}
    assert {"primary", "complementary"} <= statuses  # both kinds of hiding occur here
    with app.test_request_context():
        from speakup.stats.views import _cell_text

        shown = {
            _cell_text(cell, made.k)
            for table in made.tables
            for cell in table.payload["cells"].values()
            if cell["status"] != "published"
        }
    # One wording for both, so the labels add nothing to what the audit already assumes.
    assert shown == {f"fewer than {made.k} or withheld"}
    assert narrowest_suppressed(*public_knowledge([made])) == []


# --- the commands ----------------------------------------------------------------------------


def test_jobs_facts_moves_a_batch_or_waits(
    app: Flask, orgs: list[Organisation], cli: Callable[..., Any]
) -> None:
    for _ in range(3):
        emit_fact("submitted", orgs[0], utcnow(), route="organisation")
    db.session.commit()
    result = cli("jobs", "facts")
    assert result.exit_code == 0, result.output
    assert "facts: 3 waiting, below the batch size; nothing moved" in result.output
    assert (count(FactInbox), count(Fact)) == (3, 0)
    result = cli("jobs", "facts", "--flush")
    assert result.exit_code == 0, result.output
    assert "facts: moved 3 fact(s) in one shuffled batch" in result.output
    assert (count(FactInbox), count(Fact)) == (0, 3)
    batch = int(app.config["STATS_FACTS_MIN_BATCH"])
    for _ in range(batch):
        emit_fact("detriment", orgs[1], utcnow())
    db.session.commit()
    result = cli("jobs", "facts")
    assert f"facts: moved {batch} fact(s)" in result.output
    assert (count(FactInbox), count(Fact)) == (0, 3 + batch)


def test_jobs_release(app: Flask, orgs: list[Organisation], cli: Callable[..., Any]) -> None:
    add(Q1, orgs[0], 25, route="organisation")
    db.session.commit()
    result = cli("jobs", "release", "--period", Q1.key)
    assert result.exit_code == 0, result.output
    assert f"release: {Q1.label}: counting, suppressing and auditing" in result.output
    assert f"release: {Q1.label} published (" in result.output
    made = db.session.scalars(select(Release)).one()
    assert made.period == Q1.key and made.audited_cells > 0
    first = snapshot()

    add(Q1, orgs[1], 25, route="organisation")
    db.session.commit()
    result = cli("jobs", "release", "--period", Q1.key.lower())
    assert result.exit_code == 0, result.output
    assert f"release: {Q1.label} is already released" in result.output
    assert snapshot() == first

    current = quarter_of(utcnow())
    result = cli("jobs", "release", "--period", current.key)
    assert result.exit_code == 1
    assert "cannot be released until" in result.output
    result = cli("jobs", "release", "--period", "FY2024Q9")
    assert result.exit_code != 0
    assert "is not a quarter like" in result.output
    assert count(Release) == 1


def test_jobs_release_blocks_when_the_audit_runs_out_of_time(
    app: Flask, orgs: list[Organisation], cli: Callable[..., Any]
) -> None:
    """The audit has a time limit (well inside the release job's one-hour lease): past it,
    nothing is published and the operator is told why."""
    rich(Q1, orgs[0], 25)
    add(Q1, orgs[1], 3)
    db.session.commit()
    app.config["STATS_AUDIT_TIME_LIMIT_SECONDS"] = 0
    result = cli("jobs", "release", "--period", Q1.key)
    assert result.exit_code == 1, result.output
    assert "release blocked by the disclosure audit: the audit ran out of time" in result.output
    assert count(Release) == 0 and count(ReleaseTable) == 0
    app.config["STATS_AUDIT_TIME_LIMIT_SECONDS"] = 1800
    result = cli("jobs", "release", "--period", Q1.key)
    assert result.exit_code == 0, result.output
    assert count(Release) == 1


# --- workforce import --------------------------------------------------------------------------

GOOD = b"organisation_code,year,white,bme,not_stated\nORGA,2024,3000,1000,25\nORGB,2024,2000,500,\n"


def workforce_rows() -> list[tuple]:
    return sorted(
        db.session.execute(
            select(
                Workforce.organisation_id,
                Workforce.year,
                Workforce.white,
                Workforce.bme,
                Workforce.not_stated,
            )
        ).all()
    )


def test_import_workforce_creates_then_updates(
    app: Flask, orgs: list[Organisation], cli: Callable[..., Any], tmp_path: Path
) -> None:
    a, b, _ = orgs
    path = tmp_path / "workforce.csv"
    path.write_bytes(GOOD)
    result = cli("stats", "import-workforce", str(path))
    assert result.exit_code == 0, result.output
    assert "workforce: 2 row(s) added, 0 updated" in result.output
    assert workforce_rows() == [(a.id, 2024, 3000, 1000, 25), (b.id, 2024, 2000, 500, 0)]

    path.write_bytes(
        "\ufefforganisation_code, year ,white,bme,not_stated\r\n"
        'ORGA,2024,"3,100",1050,30\r\nORGB,2024,2100,520,5\r\nORGC,2025,10,5,0\r\n'.encode()
    )
    result = cli("stats", "import-workforce", str(path))
    assert result.exit_code == 0, result.output
    assert "workforce: 1 row(s) added, 2 updated" in result.output
    c = orgs[2]
    assert workforce_rows() == [
        (a.id, 2024, 3100, 1050, 30),
        (b.id, 2024, 2100, 520, 5),
        (c.id, 2025, 10, 5, 0),
    ]


@pytest.mark.parametrize(
    ("content", "problems"),
    [
        (
            b"organisation_code,year,white,bme\nORGA,2024,lots,1000\nORGB,2024,2000,-5\n",
            [
                "line 2: white must be a whole number, not 'lots'",
                "line 3: bme must be a whole number",
            ],
        ),
        (
            b"organisation_code,year,white,bme\nNOPE,2024,1,1\nORGA,2024,1,1\n",
            ["line 2: unknown organisation code 'NOPE'"],
        ),
        (
            b"organisation_code,year,white\nORGA,2024,1\n",
            ["missing column(s): bme"],
        ),
        (
            b"organisation_code,year,white,bme\nORGA,2024,1,1\nORGA,2024,2,2\n",
            ["line 3: ORGA 2024 appears twice"],
        ),
        (
            "organisation_code,year,white,bme\nORGA,2024,1,1\nÉCOLE,2024,1,1\n".encode("latin-1"),
            ["not UTF-8"],
        ),
        (
            b"organisation_code,year,white,bme\nORGA,1850,1,1\n",
            ["line 2: year 1850 is out of range"],
        ),
        (b"organisation_code,year,white,bme\n", ["the file has no rows"]),
        (b"", ["missing column(s): organisation_code, year, white, bme"]),
        (
            # every problem at once, each listed
            b"organisation_code,year,white,bme\n"
            b"ORGA,2024,1x,1\nNOPE,2024,1,1\nORGB,20z4,1,1\nORGC,2024,1,1\nORGC,2024,1,1\n",
            [
                "line 2: white must be a whole number, not '1x'",
                "line 3: unknown organisation code 'NOPE'",
                "line 4: year must be a whole number, not '20z4'",
                "line 6: ORGC 2024 appears twice",
            ],
        ),
    ],
)
def test_a_malformed_workforce_file_changes_nothing(
    app: Flask,
    orgs: list[Organisation],
    cli: Callable[..., Any],
    tmp_path: Path,
    content: bytes,
    problems: list[str],
) -> None:
    path = tmp_path / "good.csv"
    path.write_bytes(GOOD)
    assert cli("stats", "import-workforce", str(path)).exit_code == 0
    db.session.commit()
    before = workforce_rows()
    path = tmp_path / "bad.csv"
    # A good row for an existing organisation too: it must not be applied on its own.
    path.write_bytes(content)
    result = cli("stats", "import-workforce", str(path))
    assert result.exit_code == 1, result.output
    assert "The workforce file was not imported. Nothing was changed." in result.output
    for problem in problems:
        assert problem in result.output, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert len(listed) == len(problems), result.output
    db.session.expire_all()
    assert workforce_rows() == before


# --- national return -------------------------------------------------------------------------


def test_national_return_counts_the_facts(
    app: Flask, orgs: list[Organisation], cli: Callable[..., Any]
) -> None:
    a, b, _ = orgs
    add(Q2, a, 7, disclosure_mode="anonymous", staff_group="nursing_midwifery")
    add(Q2, a, 4, disclosure_mode="open", staff_group="medical_dental")
    add(Q2, a, 2, disclosure_mode="confidential", staff_group="other")
    add(Q2, a, 3, disclosure_mode="confidential")  # staff group not given
    add(Q2, a, 5, kind="triaged", elements_mask=elements_mask(["patient_safety_quality"]))
    add(Q2, a, 3, kind="triaged", elements_mask=elements_mask(["bullying_harassment", "detriment"]))
    add(Q2, a, 1, kind="triaged", elements_mask=0)
    add(Q2, a, 6, kind="speak_up_again", answer="yes")
    add(Q2, a, 1, kind="speak_up_again", answer="dont_know")
    add(Q2, a, 2, kind="closed", outcome="closed")
    # Not organisation A's quarter: another organisation, another quarter.
    add(Q2, b, 9, disclosure_mode="anonymous", staff_group="nursing_midwifery")
    add(Q1, a, 9, disclosure_mode="anonymous", staff_group="nursing_midwifery")
    add(Q3, a, 4, kind="triaged", elements_mask=elements_mask(["patient_safety_quality"]))
    db.session.commit()

    values = {line.name: line.value for line in build_return(a.id, Q2.key)}
    expected = dict.fromkeys((f["name"] for f in load_mapping()["fields"]), 0)
    expected |= {
        "total_cases": 16,
        "anonymous_cases": 7,
        "element_patient_safety_quality": 5,
        "element_bullying_harassment": 3,
        "element_detriment": 3,
        "group_nursing_midwifery": 7,
        "group_medical_dental": 4,
        "group_other_or_not_known": 5,
        "speak_up_again_yes": 6,
        "speak_up_again_dont_know": 1,
    }
    assert values == expected

    result = cli("stats", "national-return", "ORGA", "--period", Q2.key)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["field"] for r in rows] == list(expected)
    assert {r["mapping_version"] for r in rows} == {CURRENT_VERSION} == {"2025-26"}
    assert {r["organisation_code"] for r in rows} == {"ORGA"}
    assert {r["period"] for r in rows} == {Q2.key}
    assert {r["field"]: int(r["value"]) for r in rows} == expected

    result = cli("stats", "national-return", "NOPE", "--period", Q2.key)
    assert result.exit_code != 0
    result = cli("stats", "national-return", "ORGA", "--period", "2024Q2")
    assert result.exit_code != 0 and "is not a quarter like" in result.output
