"""The fixed table catalogue (DESIGN §7) and the counting of facts into its cells.

At most two dimensions below region level, and organisation tables have one dimension only.
Every table exists for every scope it is defined for, with every row — zeros included — so
the shape of what is published never depends on the data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from speakup.cases.categories import (
    NATIONAL_ELEMENTS,
    RACE_EQUALITY_CODES,
    SPEAK_UP_AGAIN,
)
from speakup.extensions import db
from speakup.stats.models import Fact
from speakup.stats.vocab import (
    HIGH_LEVEL_LABELS,
    PAY_BAND_LABELS,
    STAFF_GROUP_LABELS,
    WRES_LABELS,
    high_level_group,
    wres_group,
)

REGION, SYSTEM, ORGANISATION = "region", "system", "organisation"
ALL_SCOPES = (REGION, SYSTEM, ORGANISATION)
UPPER_SCOPES = (REGION, SYSTEM)

#: dimension → ordered (value, label)
DIMENSIONS: dict[str, list[tuple[str, str]]] = {
    "route": [
        ("organisation", "Organisation's guardians"),
        ("pool", "Guardian chosen from the regional pool"),
        ("panel", "Race Equality and Inclusion Panel"),
    ],
    "disclosure": [("anonymous", "Anonymous"), ("confidential", "Confidential"), ("open", "Open")],
    "ethnicity": list(WRES_LABELS.items()),
    "ethnic_group": list(HIGH_LEVEL_LABELS.items()),
    "staff_group": list(STAFF_GROUP_LABELS.items()),
    "pay_band": list(PAY_BAND_LABELS.items()),
    "element": NATIONAL_ELEMENTS,
    "race_code": RACE_EQUALITY_CODES,
    "ttc": [
        ("under_1_month", "Under 1 month"),
        ("1_to_3_months", "1 to 3 months"),
        ("3_to_6_months", "3 to 6 months"),
        ("6_to_12_months", "6 to 12 months"),
        ("over_12_months", "Over 12 months"),
    ],
    "ack": [("met", "Within 2 working days"), ("not_met", "Later")],
    "feedback": [
        ("met", "Within 3 months"),
        ("not_met", "Later"),
        ("none", "No feedback recorded"),
    ],
    "outcome": [("closed", "Closed"), ("withdrawn", "Withdrawn")],
    "answer": SPEAK_UP_AGAIN,
}


@dataclass(frozen=True)
class TableSpec:
    """One catalogue table."""

    key: str
    title: str
    family: str  # the fact kind it counts
    dims: tuple[str, ...]  # () for a single total
    scopes: tuple[str, ...]
    multi_label: bool = False
    #: (numerator value, label) for a published percentage of the table's total
    rate: tuple[str, str] | None = None
    note: str = ""

    @property
    def total_key(self) -> str:
        """The family total every single-label table of the family sums to."""
        return f"{self.family}_total"


FAMILY_TOTALS = {
    "submitted": "Concerns raised",
    "triaged": "Concerns triaged",
    "closed": "Concerns closed",
    "speak_up_again": "Answers to “would you speak up again?”",
    "detriment": "Cases where detriment after speaking up was reported",
}

CATALOGUE: list[TableSpec] = [
    TableSpec("by_route", "Concerns by who received them", "submitted", ("route",), ALL_SCOPES),
    TableSpec(
        "by_disclosure",
        "Concerns by how people spoke up",
        "submitted",
        ("disclosure",),
        ALL_SCOPES,
        rate=("anonymous", "Share raised anonymously"),
    ),
    TableSpec(
        "by_route_disclosure",
        "Concerns by route and way of speaking up",
        "submitted",
        ("route", "disclosure"),
        UPPER_SCOPES,
    ),
    TableSpec(
        "by_ethnicity",
        "Concerns by ethnicity of reporters who said",
        "submitted",
        ("ethnicity",),
        ALL_SCOPES,
        note="Only reporters who chose to answer are counted by group; the rest are “Not stated”.",
    ),
    TableSpec(
        "by_ethnic_group",
        "Concerns by ethnic group (Census 2021 high-level groups)",
        "submitted",
        ("ethnic_group",),
        (REGION,),
    ),
    TableSpec(
        "by_staff_group", "Concerns by staff group", "submitted", ("staff_group",), ALL_SCOPES
    ),
    TableSpec("by_pay_band", "Concerns by pay band", "submitted", ("pay_band",), ALL_SCOPES),
    TableSpec(
        "by_element",
        "Concerns with an element of…",
        "triaged",
        ("element",),
        ALL_SCOPES,
        multi_label=True,
        note="A concern can have several elements, so these do not add up to the total.",
    ),
    TableSpec(
        "by_race_code",
        "Race equality themes in concerns",
        "triaged",
        ("race_code",),
        ALL_SCOPES,
        multi_label=True,
        note="A concern can have several themes, so these do not add up to the total.",
    ),
    TableSpec(
        "acknowledgement",
        "Concerns acknowledged within 2 working days",
        "closed",
        ("ack",),
        ALL_SCOPES,
        rate=("met", "Acknowledged within deadline"),
    ),
    TableSpec(
        "feedback",
        "Feedback given within 3 months",
        "closed",
        ("feedback",),
        ALL_SCOPES,
        rate=("met", "Feedback within deadline"),
    ),
    TableSpec("time_to_close", "Time to close", "closed", ("ttc",), ALL_SCOPES),
    TableSpec("by_outcome", "How concerns ended", "closed", ("outcome",), ALL_SCOPES),
    TableSpec(
        "speak_up_again",
        "Given your experience, would you speak up again?",
        "speak_up_again",
        ("answer",),
        ALL_SCOPES,
        rate=("yes", "Would speak up again"),
    ),
]
TOTAL_SPECS = [
    TableSpec(f"{family}_total", title, family, (), ALL_SCOPES)
    for family, title in FAMILY_TOTALS.items()
]
SPECS = {spec.key: spec for spec in TOTAL_SPECS + CATALOGUE}

#: fact column per dimension (None = derived in Python)
_COLUMN = {
    "route": Fact.route,
    "disclosure": Fact.disclosure_mode,
    "staff_group": Fact.staff_group,
    "pay_band": Fact.pay_band,
    "ttc": Fact.ttc_bucket,
    "outcome": Fact.outcome,
    "answer": Fact.answer,
}


def _normalise(dim: str, raw: object) -> str:
    """Map a stored fact value to the dimension's published value."""
    if dim == "ethnicity":
        return wres_group(raw if isinstance(raw, str) else None)
    if dim == "ethnic_group":
        return high_level_group(raw if isinstance(raw, str) else None)
    if dim in ("staff_group", "pay_band"):
        known = {v for v, _ in DIMENSIONS[dim]}
        return raw if isinstance(raw, str) and raw in known else "not_stated"
    if dim == "ack":
        return "met" if raw else "not_met"
    if dim == "feedback":
        return "none" if raw is None else ("met" if raw else "not_met")
    return str(raw)


def _grouped(family: str, period: str, columns: list) -> Iterable[tuple]:
    query = (
        select(Fact.organisation_id, *columns, func.count())
        .where(Fact.kind == family, Fact.period == period)
        .group_by(Fact.organisation_id, *columns)
    )
    return db.session.execute(query).all()


def count_by_organisation(period: str) -> dict[tuple[str, tuple[str, ...]], dict[int, int]]:
    """(table key, coordinate) → organisation id → count, for every catalogue table.
    One GROUP BY per table: the work stays in the database however many facts there are."""
    counts: dict[tuple[str, tuple[str, ...]], dict[int, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for family in FAMILY_TOTALS:
        for org_id, n in _grouped(family, period, []):
            counts[(f"{family}_total", ())][org_id] += n
    for spec in CATALOGUE:
        if spec.multi_label:
            column = Fact.elements_mask if spec.dims[0] == "element" else Fact.race_mask
            values = [v for v, _ in DIMENSIONS[spec.dims[0]]]
            for org_id, bits, n in _grouped(spec.family, period, [column]):
                for i, value in enumerate(values):
                    if (bits or 0) >> i & 1:
                        counts[(spec.key, (value,))][org_id] += n
            continue
        columns: list[Any] = []
        for dim in spec.dims:
            if dim in ("ethnicity", "ethnic_group"):
                columns.append(Fact.ethnicity)
            elif dim == "ack":
                columns.append(Fact.ack_met)
            elif dim == "feedback":
                columns.append(Fact.feedback_met)
            else:
                columns.append(_COLUMN[dim])
        for row in _grouped(spec.family, period, columns):
            org_id, *raw, n = row
            coord = tuple(_normalise(dim, value) for dim, value in zip(spec.dims, raw, strict=True))
            counts[(spec.key, coord)][org_id] += n
    return counts


def coordinates(spec: TableSpec) -> list[tuple[str, ...]]:
    """Every cell coordinate of a table, in display order."""
    if not spec.dims:
        return [()]
    if len(spec.dims) == 1:
        return [(v,) for v, _ in DIMENSIONS[spec.dims[0]]]
    return [(a, b) for a, _ in DIMENSIONS[spec.dims[0]] for b, _ in DIMENSIONS[spec.dims[1]]]
