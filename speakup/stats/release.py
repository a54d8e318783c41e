"""Releasing a closed quarter: count facts into the fixed catalogue for every scope, control
disclosure across the whole release (and against earlier releases), freeze the result.

A release is written once and never recomputed: the dashboard reads only frozen tables, so
the same question always gets the same answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation, Region, System
from speakup.stats.catalogue import (
    CATALOGUE,
    DIMENSIONS,
    ORGANISATION,
    REGION,
    SPECS,
    SYSTEM,
    TOTAL_SPECS,
    TableSpec,
    coordinates,
    count_by_organisation,
)
from speakup.stats.charts import bar_chart
from speakup.stats.disclosure import (
    COMPLEMENTARY,
    PRIMARY,
    PUBLISHED,
    Bounds,
    Constraint,
    Insider,
    Reveal,
    bounds_for,
    control,
    shows_at_least,
)
from speakup.stats.facts import shuffle_inbox
from speakup.stats.likelihood import MIN_COUNT, relative_likelihood
from speakup.stats.models import Release, ReleaseTable, Workforce
from speakup.stats.periods import Quarter, is_releasable, parse_quarter

log = logging.getLogger("speakup.stats.release")

YEAR_TABLE = "ethnicity_year"


@dataclass(frozen=True)
class Scope:
    kind: str
    id: int
    name: str


def _key(period: str, scope: Scope, table: str, coord: tuple[str, ...]) -> tuple:
    return (period, scope.kind, scope.id, table, coord)


def _coord_id(coord: tuple[str, ...]) -> str:
    return "|".join(coord)


class Geography:
    """Region, systems and organisations, and which scope contains which."""

    def __init__(self) -> None:
        self.regions = db.session.scalars(select(Region).order_by(Region.id)).all()
        self.systems = db.session.scalars(select(System).order_by(System.id)).all()
        self.orgs = db.session.scalars(select(Organisation).order_by(Organisation.id)).all()

    def scopes(self, kinds: tuple[str, ...]) -> list[Scope]:
        out: list[Scope] = []
        if REGION in kinds:
            out += [Scope(REGION, r.id, r.name) for r in self.regions]
        if SYSTEM in kinds:
            out += [Scope(SYSTEM, s.id, s.name) for s in self.systems]
        if ORGANISATION in kinds:
            out += [Scope(ORGANISATION, o.id, o.name) for o in self.orgs]
        return out

    def org_ids(self, scope: Scope) -> list[int]:
        if scope.kind == ORGANISATION:
            return [scope.id]
        if scope.kind == SYSTEM:
            return [o.id for o in self.orgs if o.system_id == scope.id]
        systems = {s.id for s in self.systems if s.region_id == scope.id}
        return [o.id for o in self.orgs if o.system_id in systems]

    def restricted_to(self, scopes: set[tuple[str, int]]) -> Geography:
        """The geography as an earlier release saw it (organisations may be added later)."""
        then = object.__new__(Geography)
        then.regions = [r for r in self.regions if (REGION, r.id) in scopes]
        then.systems = [s for s in self.systems if (SYSTEM, s.id) in scopes]
        then.orgs = [o for o in self.orgs if (ORGANISATION, o.id) in scopes]
        return then

    def children(self, scope: Scope) -> list[Scope]:
        if scope.kind == REGION:
            return [Scope(SYSTEM, s.id, s.name) for s in self.systems if s.region_id == scope.id]
        if scope.kind == SYSTEM:
            return [Scope(ORGANISATION, o.id, o.name) for o in self.orgs if o.system_id == scope.id]
        return []


def build_cells(
    period: str, geo: Geography, counts: Mapping[tuple[str, tuple[str, ...]], Mapping[int, int]]
) -> tuple[dict[tuple, int], list[Constraint]]:
    """Every cell of every scope's tables, and the linear relations between them."""
    values: dict[tuple, int] = {}
    constraints: list[Constraint] = []
    for spec in TOTAL_SPECS + CATALOGUE:
        for scope in geo.scopes(spec.scopes):
            ids = geo.org_ids(scope)
            for coord in coordinates(spec):
                per_org = counts.get((spec.key, coord), {})
                values[_key(period, scope, spec.key, coord)] = sum(per_org.get(i, 0) for i in ids)
    for spec in CATALOGUE:
        for scope in geo.scopes(spec.scopes):
            # Single-label tables add up to their family's total.
            if not spec.multi_label and len(spec.dims) == 1:
                constraints.append(
                    Constraint(
                        _key(period, scope, spec.total_key, ()),
                        tuple(_key(period, scope, spec.key, c) for c in coordinates(spec)),
                    )
                )
            # Two-dimensional tables add up to their one-dimensional margins.
            if len(spec.dims) == 2:
                first, second = spec.dims
                margin = {"route": "by_route", "disclosure": "by_disclosure"}
                for a, _ in DIMENSIONS[first]:
                    constraints.append(
                        Constraint(
                            _key(period, scope, margin[first], (a,)),
                            tuple(
                                _key(period, scope, spec.key, (a, b)) for b, _ in DIMENSIONS[second]
                            ),
                        )
                    )
                for b, _ in DIMENSIONS[second]:
                    constraints.append(
                        Constraint(
                            _key(period, scope, margin[second], (b,)),
                            tuple(
                                _key(period, scope, spec.key, (a, b)) for a, _ in DIMENSIONS[first]
                            ),
                        )
                    )
    # The region's Census groups refine the White/BME split.
    for scope in geo.scopes((REGION,)):
        wres = {g: _key(period, scope, "by_ethnicity", (g,)) for g, _ in DIMENSIONS["ethnicity"]}
        census = {
            g: _key(period, scope, "by_ethnic_group", (g,)) for g, _ in DIMENSIONS["ethnic_group"]
        }
        constraints.append(Constraint(wres["white"], (census["white"],)))
        constraints.append(Constraint(wres["not_stated"], (census["not_stated"],)))
        constraints.append(
            Constraint(wres["bme"], tuple(census[g] for g in ("asian", "black", "mixed", "other")))
        )
    # Scopes add up: organisations → system → region, cell by cell.
    for spec in TOTAL_SPECS + CATALOGUE:
        for scope in geo.scopes(spec.scopes):
            kids = [k for k in geo.children(scope) if k.kind in spec.scopes]
            if not kids:
                continue
            for coord in coordinates(spec):
                constraints.append(
                    Constraint(
                        _key(period, scope, spec.key, coord),
                        tuple(_key(period, kid, spec.key, coord) for kid in kids),
                    )
                )
    return values, constraints


def _earlier_bounds(release: Release) -> dict[tuple, Bounds]:
    """What an earlier release made public, as bounds for the audit."""
    out: dict[tuple, Bounds] = {}
    for table in release.tables:
        payload = table.payload
        scope = Scope(table.scope_kind, table.scope_id, "")
        for coord_id, cell in payload.get("cells", {}).items():
            coord = tuple(coord_id.split("|")) if coord_id else ()
            out[_key(release.period, scope, table.table_key, coord)] = bounds_for(
                cell["status"], cell["value"], release.k, payload.get("base", 5)
            )
    return out


def year_cells(
    quarter: Quarter,
    geo: Geography,
    year_counts: Mapping[tuple[str, tuple[str, ...]], Mapping[int, int]],
) -> tuple[dict[tuple, int], list[Constraint], dict[tuple, Bounds]]:
    """Financial-year counts by White/BME (for relative likelihood, in the Q4 release),
    tied to the four quarterly tables so they cannot be differenced against them."""
    period = quarter.key
    values: dict[tuple, int] = {}
    constraints: list[Constraint] = []
    fixed: dict[tuple, Bounds] = {}
    earlier = {
        r.period: r
        for r in db.session.scalars(
            select(Release).where(Release.period.in_([q.key for q in quarter.year_quarters()]))
        )
    }
    known: dict[tuple, Bounds] = {}
    scopes_then: dict[str, set[tuple[str, int]]] = {}
    for release in earlier.values():
        # Everything each earlier quarter published, and every relation it was published
        # with, is public: the audit sees all of it alongside the year's counts.
        published = _earlier_bounds(release)
        known.update(published)
        fixed.update(published)
        scopes_then[release.period] = {(t.scope_kind, t.scope_id) for t in release.tables}
        then = geo.restricted_to(scopes_then[release.period])
        constraints += [
            c
            for c in build_cells(release.period, then, {})[1]
            if all(cell in published for cell in c.cells)
        ]
    scopes = geo.scopes((REGION, SYSTEM, ORGANISATION))
    for scope in scopes:
        ids = geo.org_ids(scope)
        for group, _ in DIMENSIONS["ethnicity"]:
            per_org = year_counts.get(("by_ethnicity", (group,)), {})
            year_key = _key(period, scope, YEAR_TABLE, (group,))
            values[year_key] = sum(per_org.get(i, 0) for i in ids)
            members = []
            for q in quarter.year_quarters():
                q_key = _key(q.key, scope, "by_ethnicity", (group,))
                members.append(q_key)
                if q != quarter:
                    if q.key in scopes_then and (scope.kind, scope.id) not in scopes_then[q.key]:
                        fixed[q_key] = Bounds(0, 0)  # the scope did not exist then
                    else:
                        fixed[q_key] = known.get(q_key, Bounds(0, math.inf, hidden=True))
            constraints.append(Constraint(year_key, tuple(members)))
        kids = geo.children(scope)
        if kids:
            for group, _ in DIMENSIONS["ethnicity"]:
                constraints.append(
                    Constraint(
                        _key(period, scope, YEAR_TABLE, (group,)),
                        tuple(_key(period, kid, YEAR_TABLE, (group,)) for kid in kids),
                    )
                )
    return values, constraints, fixed


def _cell_payload(status: str, value: int | None) -> dict[str, Any]:
    return {"status": status, "value": value if status == PUBLISHED else None}


#: the smallest true denominator a percentage may have (DESIGN §7)
MIN_DENOMINATOR = 20


def rate_for(
    spec: TableSpec, cells: dict[str, dict[str, Any]], total: dict[str, Any], base: int
) -> dict[str, Any] | None:
    """A percentage from published figures only, when the denominator is published and its
    true count is certainly ≥ 20 (:func:`shows_at_least`)."""
    if spec.rate is None:
        return None
    value, label = spec.rate
    numerator = cells.get(value, {})
    if total["status"] != PUBLISHED or not shows_at_least(total["value"], MIN_DENOMINATOR, base):
        return {"label": label, "value": None, "reason": "denominator"}
    if numerator.get("status") != PUBLISHED:
        return {"label": label, "value": None, "reason": "numerator"}
    return {"label": label, "value": round(100 * numerator["value"] / total["value"]), "reason": ""}


def _chart(spec_title: str, payload: dict[str, Any], k: int) -> str:
    rows = payload["rows"]
    if payload.get("columns"):
        series = {
            col_label: [payload["cells"][_coord_id((r, c))]["value"] for r, _ in rows]
            for c, col_label in payload["columns"]
        }
    else:
        series = {"Concerns": [payload["cells"][_coord_id((r,))]["value"] for r, _ in rows]}
    return bar_chart(spec_title, [label for _, label in rows], series, k=k)


def release_period(
    quarter: Quarter,
    config: Mapping[str, Any],
    now: datetime,
    *,
    force: bool = False,
    audit_insiders: bool | None = None,
) -> Release:
    """Publish one closed quarter for every scope; refuses an open or already released one.

    ``audit_insiders`` (default: ``[stats] audit_insiders``) also audits every organisation
    as an insider who knows its own counts. Only the synthetic demo switches it off."""
    if audit_insiders is None:
        audit_insiders = bool(config.get("STATS_AUDIT_INSIDERS", True))
    if db.session.scalar(select(Release.id).where(Release.period == quarter.key)) is not None:
        raise ValidationError(
            f"{quarter.label} was already released; releases are never recomputed."
        )
    year_end = Quarter(quarter.year, 4)
    if quarter.number != 4 and db.session.scalar(
        select(Release.id).where(Release.period == year_end.key)
    ):
        # The year table went out with Q4; an earlier quarter released now could be
        # differenced against it, so quarters are released in order within a year.
        raise ValidationError(
            f"{year_end.label} is already released with its year table, so {quarter.label} "
            "can no longer be released: release quarters in order."
        )
    lag = int(config["STATS_RELEASE_LAG_DAYS"])
    if not force and not is_releasable(quarter, now, lag):
        raise ValidationError(f"{quarter.label} cannot be released until {lag} days after it ends.")
    shuffle_inbox(config, min_batch=1, flush=True)
    k = int(config["STATS_K"])
    base = int(config["STATS_ROUNDING_BASE"])
    geo = Geography()
    counts = count_by_organisation(quarter.key)
    values, constraints = build_cells(quarter.key, geo, counts)
    fixed: dict[tuple, Bounds] = {}
    if quarter.number == 4:
        year_counts: dict[tuple[str, tuple[str, ...]], dict[int, int]] = {}
        for q in quarter.year_quarters():
            for key, per_org in (count_by_organisation(q.key) if q != quarter else counts).items():
                if key[0] == "by_ethnicity":
                    bucket = year_counts.setdefault(key, {})
                    for org_id, n in per_org.items():
                        bucket[org_id] = bucket.get(org_id, 0) + n
        y_values, y_constraints, fixed = year_cells(quarter, geo, year_counts)
        values.update(y_values)
        constraints += y_constraints
    workforce = _workforce(quarter) if quarter.number == 4 else {}
    result = control(
        values,
        constraints,
        k=k,
        base=base,
        fixed=fixed,
        insiders=insiders(geo, values, fixed) if audit_insiders else [],
        reveals=[
            Reveal(
                tuple(_key(quarter.key, scope, YEAR_TABLE, (g,)) for g in ("bme", "white")),
                MIN_COUNT + base // 2,
            )
            for scope in geo.scopes((REGION, SYSTEM, ORGANISATION))
            if _headcounts(geo, scope, workforce) is not None
        ]
        if quarter.number == 4
        else [],
        time_limit=float(config["STATS_AUDIT_TIME_LIMIT_SECONDS"]),
    )

    release = Release(period=quarter.key, k=k, audited_cells=len(values), created_at=now)
    db.session.add(release)
    db.session.flush()
    for spec in TOTAL_SPECS + CATALOGUE:
        for scope in geo.scopes(spec.scopes):
            cells = {
                _coord_id(c): _cell_payload(
                    result.status[_key(quarter.key, scope, spec.key, c)],
                    result.published[_key(quarter.key, scope, spec.key, c)],
                )
                for c in coordinates(spec)
            }
            total_key = _key(quarter.key, scope, spec.total_key, ())
            total = _cell_payload(result.status[total_key], result.published[total_key])
            payload: dict[str, Any] = {
                "title": spec.title,
                "note": spec.note,
                "dims": list(spec.dims),
                "rows": DIMENSIONS[spec.dims[0]] if spec.dims else [],
                "columns": DIMENSIONS[spec.dims[1]] if len(spec.dims) == 2 else [],
                "cells": cells,
                "total": total,
                "multi_label": spec.multi_label,
                "rate": rate_for(spec, cells, total, base) if len(spec.dims) == 1 else None,
                "base": base,
            }
            svg = _chart(spec.title, payload, k) if spec.dims else ""
            db.session.add(
                ReleaseTable(
                    release_id=release.id,
                    scope_kind=scope.kind,
                    scope_id=scope.id,
                    table_key=spec.key,
                    payload=payload,
                    svg=svg,
                )
            )
    if quarter.number == 4:
        _add_likelihood_tables(release, quarter, geo, result, values, workforce, base)
    db.session.flush()
    log.info("released %s: %d cells audited", quarter.key, len(values))
    return release


def insiders(
    geo: Geography, values: Mapping[tuple, int], fixed: Mapping[tuple, Bounds]
) -> list[Insider]:
    """Each organisation's guardians, as the audit models them: they know their own
    organisation's counts this period exactly, and see every published table. The cells of
    the scopes that contain the organisation are theirs; every other hidden cell is
    protected from them."""
    system_region = {s.id: s.region_id for s in geo.systems}
    out = []
    for org in geo.orgs:
        containing = {
            (ORGANISATION, org.id),
            (SYSTEM, org.system_id),
            (REGION, system_region.get(org.system_id)),
        }
        own = frozenset(key for key in (*values, *fixed) if (key[1], key[2]) in containing)
        known = {
            key: value
            for key, value in values.items()
            if key[1] == ORGANISATION and key[2] == org.id
        }
        out.append(Insider(f"organisation {org.id}", known, own))
    return out


def _workforce(quarter: Quarter) -> dict[int, Workforce]:
    return {
        w.organisation_id: w
        for w in db.session.scalars(select(Workforce).where(Workforce.year == quarter.year))
    }


def _headcounts(
    geo: Geography, scope: Scope, workforce: Mapping[int, Workforce]
) -> dict[str, int] | None:
    """White and BME headcounts of a scope, if every organisation in it has imported them."""
    ids = geo.org_ids(scope)
    staff = [workforce.get(i) for i in ids]
    if not ids or any(w is None for w in staff):
        return None
    return {"white": sum(w.white for w in staff if w), "bme": sum(w.bme for w in staff if w)}


def _add_likelihood_tables(
    release: Release,
    quarter: Quarter,
    geo: Geography,
    result: Any,
    values: Mapping[tuple, int],
    workforce: Mapping[int, Workforce],
    base: int,
) -> None:
    for scope in geo.scopes((REGION, SYSTEM, ORGANISATION)):
        cells = {}
        counts = {}
        for group, _ in DIMENSIONS["ethnicity"]:
            key = _key(quarter.key, scope, YEAR_TABLE, (group,))
            cells[group] = _cell_payload(result.status[key], result.published[key])
            counts[group] = values[key]
        headcounts = _headcounts(geo, scope, workforce)
        payload = {
            "title": "Relative likelihood of raising a concern, "
            f"{quarter.year}/{str(quarter.year + 1)[-2:]}",
            "year": quarter.year,
            "cells": {g: c for g, c in cells.items()},
            "rows": DIMENSIONS["ethnicity"],
            "headcounts": headcounts,
            # From the true counts (the audit took them as known where it is shown).
            "likelihood": relative_likelihood(cells, headcounts, counts, base=base),
            "base": base,
        }
        db.session.add(
            ReleaseTable(
                release_id=release.id,
                scope_kind=scope.kind,
                scope_id=scope.id,
                table_key=YEAR_TABLE,
                payload=payload,
                svg="",
            )
        )


def parse_or_latest(period: str | None, now: datetime, lag_days: int) -> Quarter:
    """The quarter named, or the latest one whose lag has passed."""
    from speakup.stats.periods import latest_releasable

    return parse_quarter(period) if period else latest_releasable(now, lag_days)


__all__ = ["release_period", "parse_or_latest", "SPECS", "PRIMARY", "COMPLEMENTARY"]
