"""Property-based tests of the disclosure control (DESIGN §7), pure: no Flask, no database.

Hypothesis draws random tables — one-dimensional tables with their total, two-dimensional
tables with margins and a grand total, two-level hierarchies whose children add up to their
parent, tables full of small counts, two tables sharing a total, and four consecutive
quarters followed by a year table — runs :func:`control` on them, and then attacks what it
published *with code written here*, independently of ``feasible_ranges``:

- every published count is a multiple of 5, at least k, and within rounding of the truth;
  every count below k (zero included) is suppressed;
- soundness: an LP of our own (``scipy.optimize.linprog``) over exactly what the public
  knows finds, for every suppressed cell, the smallest and largest value consistent with it;
  that range must hold at least k integers;
- explicit attacks in interval arithmetic: subtract the published cells from a published
  margin or total (worst case within rounding), difference two tables that share a total,
  and difference the year table against the quarters already released.

The public's knowledge is the audit model of ``speakup.stats.disclosure``: a published ``p``
means the true count is one of the values that round to ``p`` (and, being published, is at
least k); a suppressed cell reads "fewer than k or withheld" whichever it is, so it is only
known to be a count (``>= 0``); each relation between cells is an equality; and counts are
whole numbers (our attacker solves integer programmes, not just their relaxation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from speakup.stats.disclosure import (
    COMPLEMENTARY,
    PRIMARY,
    PUBLISHED,
    Bounds,
    Constraint,
    ControlResult,
    DisclosureAuditError,
    bounds_for,
    control,
    feasible_ranges,
    round_to,
)

K = 8
BASE = 5
HALF = BASE // 2
INF = math.inf

PROPERTY = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Counts: mostly small (so that suppression is frequent), sometimes medium or large.
small_counts = st.integers(0, 10)
mixed_counts = st.one_of(
    st.integers(0, 12), st.integers(0, 12), st.integers(0, 60), st.integers(0, 400)
)


# The public's knowledge and our own attacks ------------------------------------------------


@dataclass
class Knowledge:
    """What anyone can know after the release(s): an interval per cell, and the relations."""

    bounds: dict[object, tuple[float, float]]
    relations: list[tuple[object, tuple[object, ...]]]
    #: the cells shown as "fewer than k" or "withheld"
    hidden: set[object]
    #: the hidden cells that were below k (the public cannot tell them apart; the test can)
    primary: set[object] = field(default_factory=set)


def published_interval(p: int, k: int = K) -> tuple[float, float]:
    """Every count that the rules would publish as ``p`` (it was published, so it is ≥ k)."""
    return (max(k, p - HALF), p + HALF)


def knowledge_of(
    results: Iterable[ControlResult],
    constraints: Iterable[Constraint],
    *,
    k: int = K,
    earlier: Mapping[object, tuple[float, float]] | None = None,
    earlier_hidden: Iterable[object] = (),
    two_labels: bool = False,
) -> Knowledge:
    """What the public knows. ``two_labels`` models a release that showed "fewer than k" and
    "withheld" apart (which Speakup does not do; see the test that says why)."""
    bounds: dict[object, tuple[float, float]] = dict(earlier or {})
    hidden: set[object] = set(earlier_hidden)
    primary: set[object] = set()
    for result in results:
        for key, status in result.status.items():
            if status == PUBLISHED:
                bounds[key] = published_interval(result.published[key], k)
                continue
            hidden.add(key)
            if status == PRIMARY:
                primary.add(key)
            if not two_labels:
                bounds[key] = (0, INF)  # "fewer than k or withheld"
            elif status == PRIMARY:
                bounds[key] = (0, k - 1)  # "fewer than k"
            else:
                bounds[key] = (k, INF)  # "withheld", so not fewer than k
    relations = [(c.total, tuple(c.members)) for c in constraints]
    return Knowledge(bounds, relations, hidden, primary)


def integers_in(low: float, high: float) -> float:
    if math.isinf(high):
        return INF
    return math.floor(high + 1e-7) - math.ceil(low - 1e-7) + 1


def attacker_ranges(
    knowledge: Knowledge, targets: Iterable[object]
) -> dict[object, tuple[float, float]]:
    """Our own integer programmes: min and max of each target subject to every published
    interval and every relation (dense matrices, one pair per target)."""
    cells = list(knowledge.bounds)
    index = {cell: i for i, cell in enumerate(cells)}
    a_eq = np.zeros((max(1, len(knowledge.relations)), len(cells)))
    for row, (total, members) in enumerate(knowledge.relations):
        a_eq[row, index[total]] += 1.0
        for member in members:
            a_eq[row, index[member]] -= 1.0
    b_eq = np.zeros(a_eq.shape[0])
    lp_bounds = [(lo, None if math.isinf(hi) else hi) for lo, hi in knowledge.bounds.values()]
    whole = np.ones(len(cells))
    out: dict[object, tuple[float, float]] = {}
    for target in targets:
        objective = np.zeros(len(cells))
        objective[index[target]] = 1.0
        low = linprog(
            objective, A_eq=a_eq, b_eq=b_eq, bounds=lp_bounds, method="highs", integrality=whole
        )
        assert low.status == 0, f"the published figures admit no solution: {low.message}"
        # Unbounded above? The relaxation says so cleanly; then so is the integer programme.
        relaxed = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=lp_bounds, method="highs")
        assert relaxed.status in (0, 3), relaxed.message
        if relaxed.status == 3:
            out[target] = (float(low.fun), INF)
            continue
        high = linprog(
            -objective, A_eq=a_eq, b_eq=b_eq, bounds=lp_bounds, method="highs", integrality=whole
        )
        assert high.status == 0, high.message
        out[target] = (float(low.fun), float(-high.fun))
    return out


def _sum(intervals: Iterable[tuple[float, float]]) -> tuple[float, float]:
    lo = hi = 0.0
    for a, b in intervals:
        lo += a
        hi += b
    return lo, hi


def margin_attack(knowledge: Knowledge) -> dict[object, tuple[float, float]]:
    """Subtract: for every relation ``total = Σ members`` and every suppressed cell in it,
    the worst-case interval the one equation gives (published cells at either end of their
    rounding interval)."""
    b = knowledge.bounds
    found: dict[object, tuple[float, float]] = {}
    for total, members in knowledge.relations:
        for target in (total, *members):
            if target not in knowledge.hidden:
                continue  # published
            if target == total:
                lo, hi = _sum(b[m] for m in members)
            else:
                others_lo, others_hi = _sum(b[m] for m in members if m != target)
                lo, hi = b[total][0] - others_hi, b[total][1] - others_lo
            prev = found.get(target, b[target])  # what its label says, to begin with
            found[target] = (max(prev[0], lo), min(prev[1], hi))
    return found


def difference_attack(knowledge: Knowledge) -> dict[object, tuple[float, float]]:
    """Difference two tables sharing a total: ``Σ A = T = Σ B``, so a suppressed cell of A
    is (T ∩ Σ B) minus the rest of A."""
    b = knowledge.bounds
    by_total: dict[object, list[tuple[object, ...]]] = {}
    for total, members in knowledge.relations:
        by_total.setdefault(total, []).append(members)
    found: dict[object, tuple[float, float]] = {}
    for total, tables in by_total.items():
        for one in tables:
            for other in tables:
                if one is other:
                    continue
                other_lo, other_hi = _sum(b[m] for m in other)
                s_lo, s_hi = max(other_lo, b[total][0]), min(other_hi, b[total][1])
                for target in one:
                    if target not in knowledge.hidden or target in other:
                        continue
                    rest_lo, rest_hi = _sum(b[m] for m in one if m != target)
                    lo, hi = s_lo - rest_hi, s_hi - rest_lo
                    prev = found.get(target, b[target])  # what its label says
                    found[target] = (max(prev[0], lo), min(prev[1], hi))
    return found


def suppressed_cells(knowledge: Knowledge) -> list[object]:
    return [key for key in knowledge.bounds if key in knowledge.hidden]


def check_rules(values: Mapping[object, int], result: ControlResult, k: int = K) -> None:
    """Rounding, the threshold and primary suppression, cell by cell."""
    assert set(result.status) == set(values)
    for key, value in values.items():
        status, published = result.status[key], result.published[key]
        if value < k:
            assert status == PRIMARY, (key, value, status)
        else:
            assert status in (PUBLISHED, COMPLEMENTARY), (key, value, status)
        if status == PUBLISHED:
            assert published is not None
            assert published % BASE == 0, (key, published)
            assert published >= k, (key, value, published)  # never 1..k-1, never 0
            assert abs(published - value) <= HALF, (key, value, published)
        else:
            assert published is None, (key, published)


def check_sound(
    knowledge: Knowledge, truth: Mapping[object, int], k: int = K
) -> dict[object, tuple[float, float]]:
    """The truth is consistent with what was published, and our own LP cannot narrow any
    suppressed cell below k possible values, nor prove that a small (primary) count is not
    0. Returns the ranges for further checks."""
    for key, value in truth.items():
        lo, hi = knowledge.bounds[key]
        assert lo <= value <= hi, (key, value, (lo, hi))
    targets = suppressed_cells(knowledge)
    ranges = attacker_ranges(knowledge, targets)
    for key in targets:
        lo, hi = ranges[key]
        assert lo - 1e-6 <= truth[key] <= hi + 1e-6, (key, truth[key], ranges[key])
        assert integers_in(lo, hi) >= k, (
            f"suppressed cell {key!r} (true {truth[key]}) is pinned to {lo:g}..{hi:g}"
        )
        if key in knowledge.primary:
            assert lo < 0.5, f"{key!r} (true {truth[key]}) is proven present: {lo:g}..{hi:g}"
    return ranges


def check_attack(found: Mapping[object, tuple[float, float]], k: int = K) -> None:
    for key, (lo, hi) in found.items():
        assert integers_in(lo, hi) >= k, f"attack pins {key!r} to {lo:g}..{hi:g}"


# Table generators -------------------------------------------------------------------------


@st.composite
def one_dimensional(draw: st.DrawFn, counts: st.SearchStrategy[int] = mixed_counts) -> tuple:
    cells = draw(st.lists(counts, min_size=2, max_size=8))
    values: dict[object, int] = {("cell", i): n for i, n in enumerate(cells)}
    values[("total",)] = sum(cells)
    constraints = [Constraint(("total",), tuple(("cell", i) for i in range(len(cells))))]
    return values, constraints


@st.composite
def two_dimensional(draw: st.DrawFn, counts: st.SearchStrategy[int] = mixed_counts) -> tuple:
    """A table with its row and column margins and a grand total, as a release builds them."""
    rows, cols = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    grid = [[draw(counts) for _ in range(cols)] for _ in range(rows)]
    values: dict[object, int] = {}
    constraints: list[Constraint] = []
    for r in range(rows):
        for c in range(cols):
            values[("x", r, c)] = grid[r][c]
    for r in range(rows):
        values[("row", r)] = sum(grid[r])
        constraints.append(Constraint(("row", r), tuple(("x", r, c) for c in range(cols))))
    for c in range(cols):
        values[("col", c)] = sum(grid[r][c] for r in range(rows))
        constraints.append(Constraint(("col", c), tuple(("x", r, c) for r in range(rows))))
    values[("grand",)] = sum(map(sum, grid))
    constraints.append(Constraint(("grand",), tuple(("row", r) for r in range(rows))))
    constraints.append(Constraint(("grand",), tuple(("col", c) for c in range(cols))))
    return values, constraints


@st.composite
def hierarchy(draw: st.DrawFn, counts: st.SearchStrategy[int] = mixed_counts) -> tuple:
    """A parent scope and its children, each with a one-dimensional table and a total;
    every cell of the parent is the sum of the children's (organisations → system)."""
    categories, children = draw(st.integers(2, 5)), draw(st.integers(2, 4))
    grid = [[draw(counts) for _ in range(categories)] for _ in range(children)]
    values: dict[object, int] = {}
    constraints: list[Constraint] = []
    scopes = [f"child{i}" for i in range(children)]
    for scope, row in zip(scopes, grid, strict=True):
        for c, n in enumerate(row):
            values[(scope, c)] = n
        values[(scope, "total")] = sum(row)
    for c in range(categories):
        values[("parent", c)] = sum(row[c] for row in grid)
    values[("parent", "total")] = sum(map(sum, grid))
    for scope in ["parent", *scopes]:
        constraints.append(
            Constraint((scope, "total"), tuple((scope, c) for c in range(categories)))
        )
    for c in [*range(categories), "total"]:
        constraints.append(Constraint(("parent", c), tuple((s, c) for s in scopes)))
    return values, constraints


@st.composite
def shared_total(draw: st.DrawFn, counts: st.SearchStrategy[int] = mixed_counts) -> tuple:
    """One scope's concerns by route and by disclosure mode — two tables with one total —
    optionally with the route × disclosure table between them (as upper scopes have)."""
    grid = [[draw(counts) for _ in range(3)] for _ in range(3)]
    with_cross = draw(st.booleans())
    values: dict[object, int] = {("total",): sum(map(sum, grid))}
    for r in range(3):
        values[("route", r)] = sum(grid[r])
    for d in range(3):
        values[("disclosure", d)] = sum(grid[r][d] for r in range(3))
    constraints = [
        Constraint(("total",), tuple(("route", r) for r in range(3))),
        Constraint(("total",), tuple(("disclosure", d) for d in range(3))),
    ]
    if with_cross:
        for r in range(3):
            for d in range(3):
                values[("route×disclosure", r, d)] = grid[r][d]
        for r in range(3):
            constraints.append(
                Constraint(("route", r), tuple(("route×disclosure", r, d) for d in range(3)))
            )
        for d in range(3):
            constraints.append(
                Constraint(("disclosure", d), tuple(("route×disclosure", r, d) for r in range(3)))
            )
    return values, constraints


def run_and_check(values: dict[object, int], constraints: list[Constraint], k: int = K) -> None:
    result = control(values, constraints, k=k, base=BASE)
    check_rules(values, result, k)
    knowledge = knowledge_of([result], constraints, k=k)
    check_sound(knowledge, values, k)
    check_attack(margin_attack(knowledge), k)
    check_attack(difference_attack(knowledge), k)


# Properties -------------------------------------------------------------------------------


@PROPERTY
@given(one_dimensional())
def test_one_dimensional_tables_with_a_total(table: tuple) -> None:
    run_and_check(*table)


@PROPERTY
@given(two_dimensional())
def test_two_dimensional_tables_with_margins_and_grand_total(table: tuple) -> None:
    run_and_check(*table)


@PROPERTY
@given(hierarchy())
def test_two_level_hierarchies(table: tuple) -> None:
    run_and_check(*table)


@PROPERTY
@given(st.one_of(one_dimensional(small_counts), two_dimensional(small_counts)))
def test_tables_of_many_small_counts(table: tuple) -> None:
    run_and_check(*table)


@PROPERTY
@given(hierarchy(small_counts))
def test_hierarchies_of_many_small_counts(table: tuple) -> None:
    run_and_check(*table)


def k_and_table(k: int) -> st.SearchStrategy[tuple[int, tuple]]:
    near_k = st.one_of(st.integers(0, k + 6), st.integers(k - 1, k + 3), st.integers(0, 80))
    tables = st.one_of(one_dimensional(near_k), two_dimensional(near_k), hierarchy(near_k))
    return st.tuples(st.just(k), tables)


@PROPERTY
@given(st.integers(8, 15).flatmap(k_and_table))
def test_any_configured_k(k_table: tuple[int, tuple]) -> None:
    """k is 8 by default and configurable upward (DESIGN §7): the rules and the proof hold
    for every k, including those (11, 12, …) where a count of k would round below k."""
    k, table = k_table
    run_and_check(*table, k=k)


@PROPERTY
@given(shared_total())
def test_differencing_two_tables_that_share_a_total(table: tuple) -> None:
    values, constraints = table
    result = control(values, constraints, k=K, base=BASE)
    check_rules(values, result)
    knowledge = knowledge_of([result], constraints)
    check_attack(difference_attack(knowledge))
    check_attack(margin_attack(knowledge))
    check_sound(knowledge, values)


GROUPS = ("white", "bme", "not_stated")

#: Found by a longer random search: if the Q4 audit is not given the quarterly relations,
#: Q1 white (0) and Q4 white (0) end up pinned to 0..6, because Q1's "white + not stated =
#: total − BME" and Q2's "BME + not stated = total − white" combine with the year table.
YEAR_BREACH = [
    {"white": 0, "bme": 14, "not_stated": 7},
    {"white": 33, "bme": 7, "not_stated": 2},
    {"white": 10, "bme": 12, "not_stated": 11},
    {"white": 0, "bme": 6, "not_stated": 11},
]


@st.composite
def financial_year(draw: st.DrawFn) -> list[dict[str, int]]:
    """Concerns by ethnicity for four quarters: mostly small, so some cells are suppressed
    in one quarter and not another."""
    counts = st.one_of(st.integers(0, 12), st.integers(0, 12), st.integers(0, 40))
    return [{g: draw(counts) for g in GROUPS} for _ in range(4)]


def release_year(
    year: list[dict[str, int]], *, tell_control_earlier_relations: bool
) -> tuple[list[ControlResult], list[Constraint], dict[object, int]]:
    """Release Q1, Q2, Q3 one by one, then Q4 with the year table (year = Q1+Q2+Q3+Q4 per
    group, as ``release.year_cells`` ties it), passing what the earlier releases published
    as ``fixed`` bounds."""
    results: list[ControlResult] = []
    every_relation: list[Constraint] = []
    truth: dict[object, int] = {}
    earlier: dict[object, Bounds] = {}
    for q, counts in enumerate(year, start=1):
        values: dict[object, int] = {(f"Q{q}", g): n for g, n in counts.items()}
        values[(f"Q{q}", "total")] = sum(counts.values())
        constraints = [Constraint((f"Q{q}", "total"), tuple((f"Q{q}", g) for g in GROUPS))]
        fixed: dict[object, Bounds] = {}
        if q == 4:
            for g in GROUPS:
                values[("year", g)] = sum(quarter[g] for quarter in year)
                constraints.append(
                    Constraint(("year", g), tuple((f"Q{n}", g) for n in (1, 2, 3, 4)))
                )
            if tell_control_earlier_relations:
                constraints += every_relation
                fixed = dict(earlier)
            else:  # exactly what year_cells fixes: the earlier quarters' group cells
                fixed = {key: b for key, b in earlier.items() if key[1] in GROUPS}
        result = control(values, constraints, k=K, base=BASE, fixed=fixed)
        check_rules(values, result)
        for key, status in result.status.items():
            earlier[key] = bounds_for(status, result.published[key], K, BASE)
        results.append(result)
        every_relation += [c for c in constraints if c not in every_relation]
        truth.update(values)
    return results, every_relation, truth


@PROPERTY
@given(financial_year())
@example(YEAR_BREACH)
def test_consecutive_releases_cannot_be_differenced(year: list[dict[str, int]]) -> None:
    """A cell suppressed in an earlier quarter stays protected once the year table is
    published: against the year total minus the other quarters, and against everything."""
    results, relations, truth = release_year(year, tell_control_earlier_relations=True)
    knowledge = knowledge_of(results, relations)
    check_attack(margin_attack(knowledge))
    check_attack(difference_attack(knowledge))
    check_sound(knowledge, truth)


def test_the_year_audit_needs_the_earlier_quarters_relations() -> None:
    """Why the Q4 audit must be given the relations the earlier quarters were published with
    (each quarter's groups add up to its published total), not only their cells' bounds:
    without them the audit passes a year table from which the public — who know those
    relations — can pin Q1's (and Q4's) White count to 0..6. With them (the test above)
    it withholds enough."""
    results, relations, truth = release_year(YEAR_BREACH, tell_control_earlier_relations=False)
    knowledge = knowledge_of(results, relations)
    ranges = attacker_ranges(knowledge, [("Q1", "white"), ("Q4", "white")])
    assert ranges == {("Q1", "white"): (0.0, 6.0), ("Q4", "white"): (0.0, 6.0)}
    assert truth[("Q1", "white")] == truth[("Q4", "white")] == 0


# Example-based checks ---------------------------------------------------------------------


def test_a_small_count_and_its_only_partner_are_both_withheld() -> None:
    values = {"T": 60, "a": 3, "b": 57}
    result = control(values, [Constraint("T", ("a", "b"))])
    assert result.status == {"T": PUBLISHED, "a": PRIMARY, "b": COMPLEMENTARY}
    assert result.published == {"T": 60, "a": None, "b": None}


def test_zero_is_suppressed_like_any_count_below_k() -> None:
    values = {"T": 40, "a": 0, "b": 0, "c": 40}
    result = control(values, [Constraint("T", ("a", "b", "c"))])
    assert result.status["a"] == result.status["b"] == PRIMARY
    check_sound(knowledge_of([result], [Constraint("T", ("a", "b", "c"))]), values)


def test_a_total_is_not_withheld_when_nothing_requires_it() -> None:
    """All 40 concerns in one category (nobody gave a staff group, say): the zeros are
    "fewer than 8" and the 40 is withheld so that they cannot be subtracted out — and that is
    enough: with the total published, each hidden cell could still be anything from 0 to 42.
    Withholding the total as well hides the one figure that mattered, for no protection."""
    values = {"T": 40, "a": 0, "b": 0, "c": 40}
    constraints = [Constraint("T", ("a", "b", "c"))]
    # The smaller suppression is safe by our own audit…
    enough = ControlResult(
        status={"T": PUBLISHED, "a": PRIMARY, "b": PRIMARY, "c": COMPLEMENTARY},
        published={"T": 40, "a": None, "b": None, "c": None},
    )
    check_sound(knowledge_of([enough], constraints), values)
    # …and it is what the control publishes.
    result = control(values, constraints)
    assert result.status == enough.status


def test_a_primary_cell_keeps_zero_among_its_possible_values() -> None:
    """Width is not enough. Found on the audit before this rule by a random search: in this
    3 × 2 table with margins the audit published figures from which the 6 in the top right
    lies in 5..17 — 13 possible values, but proof that at least five people in that group
    spoke up. Every primary cell's range must reach 0 (a τ-Argus protection level); here
    the control withholds more until it does."""
    grid = [[9, 6], [0, 22], [28, 8]]
    values: dict[object, int] = {}
    constraints: list[Constraint] = []
    for r, row in enumerate(grid):
        values.update({("x", r, c): n for c, n in enumerate(row)})
        values[("row", r)] = sum(row)
        constraints.append(Constraint(("row", r), (("x", r, 0), ("x", r, 1))))
    for c in range(2):
        values[("col", c)] = sum(row[c] for row in grid)
        constraints.append(Constraint(("col", c), tuple(("x", r, c) for r in range(3))))
    values[("grand",)] = sum(map(sum, grid))
    constraints.append(Constraint(("grand",), tuple(("row", r) for r in range(3))))
    constraints.append(Constraint(("grand",), (("col", 0), ("col", 1))))
    result = control(values, constraints)
    check_rules(values, result)
    knowledge = knowledge_of([result], constraints)
    assert ("x", 0, 1) in knowledge.primary
    ranges = check_sound(knowledge, values)
    assert ranges[("x", 0, 1)][0] == 0
    for key in knowledge.primary:
        assert result.ranges[key][0] == 0  # the audit's own ranges say so too


def test_two_labels_would_leave_two_small_counts_unprotectable() -> None:
    """Why every hidden cell reads "fewer than 8 or withheld". Found by Hypothesis when the
    labels were tried apart: 1 and 7 concerns in two categories, 8 in all. With one label
    the total is published (10) and each hidden count could be anything from 0 to 12. With
    two, "fewer than 8" says each is at most 7, so a total of 8..12 puts the first in 1..7;
    withholding the total does not help, as "withheld" says it is at least 8 (and the two
    small counts that it is at most 14): 1..7 again — seven possibilities, not eight — and
    no cell is left to withhold. Every small table with a small total would block its
    release."""
    values = {"T": 8, "a": 1, "b": 7}
    constraints = [Constraint("T", ("a", "b"))]
    result = control(values, constraints)
    assert result.status == {"T": PUBLISHED, "a": PRIMARY, "b": PRIMARY}
    assert check_sound(knowledge_of([result], constraints), values)["a"] == (0.0, 12.0)
    two = knowledge_of([result], constraints, two_labels=True)
    assert attacker_ranges(two, ["a"]) == {"a": (1.0, 7.0)}
    all_hidden = ControlResult(
        status={"T": COMPLEMENTARY, "a": PRIMARY, "b": PRIMARY},
        published={"T": None, "a": None, "b": None},
    )
    two = knowledge_of([all_hidden], constraints, two_labels=True)
    assert attacker_ranges(two, ["a", "T"]) == {"a": (1.0, 7.0), "T": (8.0, 14.0)}


def test_the_audit_counts_in_whole_numbers() -> None:
    """Counts are whole, and the audit's programmes say so. Three totals published exactly
    as 1 — a + b, b + c and a + c — have a fractional solution (a = b = c = ½) that an LP
    relaxation accepts, but no whole one: the integer audit refuses them as inconsistent,
    where a relaxation would have "proven" a range for cells that cannot exist."""
    published = {name: Bounds(1, 1) for name in ("ab", "bc", "ac")}
    hidden = {name: Bounds(0, INF, hidden=True) for name in ("a", "b", "c")}
    constraints = [
        Constraint("ab", ("a", "b")),
        Constraint("bc", ("b", "c")),
        Constraint("ac", ("a", "c")),
    ]
    relaxed = linprog(
        np.zeros(6),
        A_eq=np.array([[-1, 0, 0, 1, 1, 0], [0, -1, 0, 0, 1, 1], [0, 0, -1, 1, 0, 1]]),
        b_eq=np.zeros(3),
        bounds=[(1, 1)] * 3 + [(0, None)] * 3,
        method="highs",
    )
    assert relaxed.status == 0  # the relaxation is satisfied by halves
    with pytest.raises(DisclosureAuditError, match="inconsistent"):
        feasible_ranges(published | hidden, constraints, ["a", "b", "c"], k=K)
    # With "a + c" published as 1..2, a = c and 2a is 1 or 2: the relaxation's smallest
    # a is ½, but in whole numbers a can only be 1 (a = c = 1, b = 0).
    published["ac"] = Bounds(1, 2)
    ranges = feasible_ranges(published | hidden, constraints, ["a", "b", "c"])
    assert ranges == {"a": (1.0, 1.0), "b": (0.0, 0.0), "c": (1.0, 1.0)}


def test_an_audit_out_of_time_blocks_rather_than_publishes() -> None:
    values = {"T": 60, "a": 3, "b": 57}
    with pytest.raises(DisclosureAuditError, match="ran out of time"):
        control(values, [Constraint("T", ("a", "b"))], time_limit=0)
    assert control(values, [Constraint("T", ("a", "b"))], time_limit=60).status["a"] == PRIMARY


def test_same_input_same_output() -> None:
    """A release is computed once, but the control itself is deterministic too."""
    values = {("x", i): n for i, n in enumerate([3, 9, 14, 0, 27, 5, 8])}
    values[("t",)] = sum(values.values())
    constraints = [Constraint(("t",), tuple(k for k in values if k != ("t",)))]
    first = control(dict(values), constraints)
    second = control(dict(values), constraints)
    assert first.status == second.status and first.published == second.published


def test_round_half_up_to_five() -> None:
    assert [round_to(v, 5) for v in (8, 9, 10, 12, 13, 17, 18, 102, 103)] == [
        10,
        10,
        10,
        10,
        15,
        15,
        20,
        100,
        105,
    ]


def test_audit_blocks_when_an_earlier_release_pins_a_suppressed_cell() -> None:
    """The year total and one quarter were published exactly in earlier releases (fixed),
    so the other quarter — suppressed back then — is determined; nothing of this release can
    be withheld to help, so the release is blocked."""
    constraints = [Constraint("year", ("q1", "q2")), Constraint("other_total", ("other",))]
    fixed = {"year": Bounds(30, 30), "q2": Bounds(28, 28), "q1": Bounds(0, INF, hidden=True)}
    with pytest.raises(DisclosureAuditError):
        control({"other_total": 50, "other": 50}, constraints, fixed=fixed)


def test_audit_blocks_a_primary_cell_whose_partners_are_all_fixed() -> None:
    """A small count in a relation whose every other cell an earlier release published
    exactly: it cannot be protected."""
    constraints = [Constraint("total", ("a", "b"))]
    fixed = {"total": Bounds(20, 20), "b": Bounds(18, 18)}
    with pytest.raises(DisclosureAuditError):
        control({"a": 2}, constraints, fixed=fixed)


def test_inconsistent_published_figures_are_refused() -> None:
    """Figures that cannot all be true (a part larger than its whole) block the audit."""
    constraints = [Constraint("total", ("a", "b"))]
    fixed = {"total": Bounds(10, 10), "b": Bounds(30, 30)}
    with pytest.raises(DisclosureAuditError):
        control({"a": 3}, constraints, fixed=fixed)


def test_this_release_withholds_its_own_cell_to_protect_an_earlier_one() -> None:
    """Q1 was suppressed and Q2 published; publishing the year exactly would give Q1 away,
    so the year cell (the only one this release may change) is withheld instead."""
    constraints = [Constraint("year", ("q1", "q2"))]
    fixed = {"q1": Bounds(0, INF, hidden=True), "q2": Bounds(28, 32)}
    result = control({"year": 33}, constraints, fixed=fixed)
    assert result.status["year"] == COMPLEMENTARY
    knowledge = knowledge_of(
        [result], constraints, earlier={"q1": (0, INF), "q2": (28, 32)}, earlier_hidden={"q1"}
    )
    check_sound(knowledge, {"year": 33, "q1": 3, "q2": 30})


@pytest.mark.parametrize("k", range(8, 16))
def test_published_counts_are_at_least_k_for_every_configurable_k(k: int) -> None:
    """k is "8 by default, configurable upward" (DESIGN §7). Whatever k is, no count is
    published as a number below k (a "10" next to "fewer than 12" would say the count is
    exactly 12)."""
    for value in range(k, k + 10):
        values = {"T": value + 100, "a": value, "b": 100}
        result = control(values, [Constraint("T", ("a", "b"))], k=k)
        if result.status["a"] == PUBLISHED:
            assert result.published["a"] >= k, f"k={k}: {value} published as {result.published}"


@pytest.mark.parametrize("k", range(8, 16))
def test_a_published_bound_is_everything_the_number_reveals(k: int) -> None:
    """The audit's interval for a published ``p`` (``bounds_for``) must be exactly the set of
    counts that would be published as ``p``: if it were wider, the audit would credit the
    public with less knowledge than it has (published counts are known to be ≥ k)."""
    preimage: dict[int, list[int]] = {}
    for value in range(0, 120):
        result = control({"a": value}, [], k=k)
        if result.status["a"] == PUBLISHED:
            preimage.setdefault(result.published["a"], []).append(value)
    for published, counts in preimage.items():
        if published > 100:
            continue  # the scan stops at 119: the top values' preimages are incomplete
        b = bounds_for(PUBLISHED, published, k, BASE)
        assert (b.low, b.high) == (min(counts), max(counts)), (
            f"k={k}: {published} is published for {min(counts)}..{max(counts)}, "
            f"the audit assumes {b.low}..{b.high}"
        )
