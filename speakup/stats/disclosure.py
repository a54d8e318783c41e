"""Disclosure control with a proof (DESIGN §7). Pure: no Flask, no database.

Every count below ``k`` — zero included — is suppressed; every other count is rounded to the
nearest ``base`` (5). Complementary suppression then withholds further cells until an audit
(``scipy.optimize.linprog``, with whole-number variables) proves that, from everything
published — the rounded cells, the totals, the other tables and scopes of the release, and
earlier releases — every suppressed cell still has a feasible interval of at least ``k``
possible values. This is the standard protection-interval audit:

- a published value ``p`` means the true count is in ``[max(k, p - base//2), p + base//2]``
  (rounding to the nearest ``base``, and nothing below ``k`` is ever published);
- a suppressed cell (primary or complementary, this release or earlier) is only known to be
  a count (``>= 0``): both are shown with the same words ("fewer than k or withheld"), so
  the label tells an attacker nothing more. Two labels would not do: "withheld" would say
  ``>= k`` and "fewer than k" ``<= k - 1``, so a total of 8 over two small counts (1 + 7),
  withheld, would be known to lie in 8..14 and its first count in 1..7 — fewer than ``k``
  possibilities, and nothing left to withhold (``tests/unit/stats/test_disclosure.py``);
- each relation between cells (a table adds up to its total, organisations add up to
  their system, systems to the region, quarters to their year) is an equality;
- counts are whole numbers: the ranges are those of integer programmes, which can be
  narrower than their linear relaxation's, so the audit credits the public with no less.

Two more requirements, after an outside attack (DESIGN §7, revised):

- **A primary cell keeps 0 among its possible values** (a protection level as in τ-Argus):
  an interval such as 2..14 is wide, but it proves that at least two people in that group
  spoke up. The audit requires every primary (small-count) cell's lower end to be 0.
- **Insiders.** An organisation's guardians know its own exact counts. For each
  :class:`Insider` the audit runs again with those cells fixed to their true values, and
  every hidden cell the insider does not own must still keep ``k`` possible values (and a
  primary one, 0). Cells that a published figure reveals exactly (:class:`Reveal`, the
  relative likelihood's counts) are fixed to their true values for everyone.

If no further cell can be withheld to make every suppressed cell safe, the release is
blocked.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

#: any hashable key (the release uses (period, scope kind, scope id, table, coordinate))
CellKey = Any

#: rounds of random-weight witness LPs before falling back to one exact LP pair per cell
WITNESS_ROUNDS = 6

PUBLISHED = "published"
PRIMARY = "primary"
COMPLEMENTARY = "complementary"


class DisclosureAuditError(RuntimeError):
    """The audit could not make every suppressed cell safe: the release is blocked."""


@dataclass(frozen=True)
class Constraint:
    """``total`` equals the sum of ``members`` (true counts)."""

    total: CellKey
    members: tuple[CellKey, ...]

    @property
    def cells(self) -> tuple[CellKey, ...]:
        return (self.total, *self.members)


@dataclass(frozen=True)
class Bounds:
    """What is publicly known about one cell."""

    low: float
    high: float  # math.inf for unbounded
    #: suppressed ("fewer than k" or "withheld"), so the audit must prove it safe
    hidden: bool = False
    #: suppressed because it was fewer than k: its interval must also keep 0
    primary: bool = False


@dataclass(frozen=True)
class Insider:
    """Someone who knows some cells exactly: an organisation's guardians know its counts.

    ``known`` maps each such cell to its true value; ``own`` lists the cells the audit does
    not protect from this insider (their own scope's, and the scopes that contain it)."""

    name: str
    known: Mapping[CellKey, int]
    own: frozenset[CellKey]


@dataclass(frozen=True)
class Reveal:
    """A figure computed from true counts (the relative likelihood) is published when every
    one of ``cells`` is published at ``min_published`` or more; it then gives those counts
    away exactly, so the audit takes them as known."""

    cells: tuple[CellKey, ...]
    min_published: int


@dataclass
class ControlResult:
    """Published values (None where suppressed), statuses, and the audit's ranges."""

    status: dict[CellKey, str]
    published: dict[CellKey, int | None]
    ranges: dict[CellKey, tuple[float, float]] = field(default_factory=dict)
    iterations: int = 0


def round_to(value: int, base: int) -> int:
    """Round half up to the nearest multiple of ``base``."""
    return base * math.floor((value + base / 2) / base)


def shows_at_least(published: int | None, minimum: int, base: int) -> bool:
    """Whether every count that is published as ``published`` is at least ``minimum``.

    Rules such as "a rate only over a denominator of at least 20" must hold for the true
    count, but must not be decided on it: a published 20 is a true 18..22, and leaving out
    the rate only when it is 18 or 19 would tell everyone so. Deciding on the published
    figure's lowest possible count keeps the rule true and the decision public (a true 20
    to 22 published as 20 gets no rate either)."""
    return published is not None and published - base // 2 >= minimum


def bounds_for(status: str, published: int | None, k: int, base: int) -> Bounds:
    """The interval one cell's own publication states (see the module docstring)."""
    if status in (PRIMARY, COMPLEMENTARY):
        # Both read "fewer than k or withheld": all the label says is that it is a count.
        return Bounds(0, math.inf, hidden=True, primary=status == PRIMARY)
    if published is None:
        raise DisclosureAuditError(f"a {status} cell has no published value")
    half = base // 2
    # Anything published is at least k (smaller counts are never published).
    return Bounds(max(k, published - half), published + half)


def possible_values(low: float, high: float) -> float:
    """How many integers lie in [low, high]."""
    if math.isinf(high):
        return math.inf
    return math.floor(high + 1e-6) - math.ceil(low - 1e-6) + 1


def _components(
    keys: Iterable[CellKey], constraints: list[Constraint]
) -> list[tuple[list[CellKey], list[Constraint]]]:
    parent: dict[CellKey, CellKey] = {key: key for key in keys}

    def find(x: CellKey) -> CellKey:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for constraint in constraints:
        root = find(constraint.total)
        for member in constraint.members:
            other = find(member)
            if other != root:
                parent[other] = root
    cells_of: dict[CellKey, list[CellKey]] = defaultdict(list)
    for key in parent:
        cells_of[find(key)].append(key)
    constraints_of: dict[CellKey, list[Constraint]] = defaultdict(list)
    for constraint in constraints:
        constraints_of[find(constraint.total)].append(constraint)
    return [(cells, constraints_of.get(root, [])) for root, cells in cells_of.items()]


def _run(
    objective: np.ndarray,
    a_eq: Any,
    b_eq: np.ndarray,
    lp_bounds: list,
    *,
    integer: bool,
    deadline: float | None,
) -> Any:
    """One programme (HiGHS), in whole numbers or relaxed, within the audit's time."""
    options: dict[str, float] = {}
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DisclosureAuditError("the audit ran out of time")
        options["time_limit"] = left
    result = linprog(
        objective,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=lp_bounds,
        method="highs",
        integrality=np.ones(len(objective), dtype=np.int8) if integer else None,
        options=options,
    )
    if result.status == 2:
        raise DisclosureAuditError("published figures are inconsistent (infeasible)")
    return result


@dataclass(frozen=True)
class _Optimum:
    """An optimal solution in whole numbers, and its objective value."""

    x: np.ndarray
    fun: float


#: how close to whole a relaxation's solution must be to be taken as whole
_WHOLE = 1e-6


def _solve(
    objective: np.ndarray,
    a_eq: Any,
    b_eq: np.ndarray,
    lp_bounds: list,
    deadline: float | None = None,
    *,
    may_be_unbounded: bool = False,
) -> _Optimum | None:
    """An optimum in whole numbers, or None when the objective can fall without limit
    (only if ``may_be_unbounded``). Fails closed: anything else (a time limit, a solver
    error) stops the release rather than guessing a range.

    The relaxation is solved first. Unbounded, it says so cleanly (HiGHS' integer solver
    only says "unbounded or infeasible"), and with whole-number data and a whole-number
    solution (the true counts) the integer programme is unbounded exactly when its
    relaxation is. These relations (sums with their totals) nearly always have a
    whole-number optimal vertex, and then it is the integer optimum too, as no integer
    solution can beat the relaxation. Safety does not rest on that optimality (which holds
    only to the solver's tolerance): the rounded vector is checked to satisfy every relation
    and bound exactly, so a reported minimum or maximum is always taken by a real
    whole-number solution, and a range can only come out narrower than the truth (a false
    block), never wider. Only a fractional optimum needs the integer solver.
    """
    relaxed = _run(objective, a_eq, b_eq, lp_bounds, integer=False, deadline=deadline)
    if relaxed.status == 3 and may_be_unbounded:
        return None
    if relaxed.status == 0:
        whole = np.round(relaxed.x)
        low = np.array([lo for lo, _ in lp_bounds], dtype=float)
        high = np.array([math.inf if hi is None else hi for _, hi in lp_bounds], dtype=float)
        if (
            np.all(np.abs(relaxed.x - whole) < _WHOLE)
            and not np.any(a_eq @ whole - b_eq)
            and np.all(whole >= low)
            and np.all(whole <= high)
        ):
            return _Optimum(whole, float(objective @ whole))
    result = _run(objective, a_eq, b_eq, lp_bounds, integer=True, deadline=deadline)
    if result.status != 0:
        raise DisclosureAuditError(f"the audit could not solve a range: {result.message}")
    return _Optimum(np.asarray(result.x), float(result.fun))


def _bounded(solution: _Optimum | None) -> _Optimum:
    if solution is None:  # only asked for where the programme is bounded
        raise DisclosureAuditError("the audit could not solve a range: unbounded")
    return solution


def feasible_ranges(
    bounds: dict[CellKey, Bounds],
    constraints: list[Constraint],
    targets: Iterable[CellKey],
    *,
    k: int | None = None,
    zero: Collection[CellKey] = (),
    deadline: float | None = None,
) -> dict[CellKey, tuple[float, float]]:
    """For each target, an interval of whole numbers consistent with the bounds and the
    constraints (integer programmes: counts are whole).

    With ``k``, two "witness" programmes per round (minimise, then maximise, a random
    weighting of all remaining targets) give feasible solutions; a target whose witness
    values already span ``k`` possible values is proven safe by them (its true range is at
    least that wide). Only the remaining targets get their own exact minimum and maximum.
    Without ``k`` every target gets its exact range. A target in ``zero`` (a primary cell)
    is proven safe by witnesses only if one of them also shows it at 0; otherwise its exact
    minimum is solved, so its range says whether 0 is possible. Past ``deadline``
    (``time.monotonic``) the audit stops with :class:`DisclosureAuditError`.
    """
    wanted = set(targets)
    result: dict[CellKey, tuple[float, float]] = {}
    for cells, cons in _components(bounds.keys(), constraints):
        todo = [c for c in cells if c in wanted]
        if not todo:
            continue
        if not cons:
            for cell in todo:
                result[cell] = (bounds[cell].low, bounds[cell].high)
            continue
        index = {cell: i for i, cell in enumerate(cells)}
        rows, cols, vals = [], [], []
        for r, constraint in enumerate(cons):
            rows.append(r)
            cols.append(index[constraint.total])
            vals.append(-1.0)
            for member in constraint.members:
                rows.append(r)
                cols.append(index[member])
                vals.append(1.0)
        a_eq = coo_matrix((vals, (rows, cols)), shape=(len(cons), len(cells))).tocsr()
        b_eq = np.zeros(len(cons))
        lp_bounds = [
            (bounds[c].low, None if math.isinf(bounds[c].high) else bounds[c].high) for c in cells
        ]
        remaining = todo
        seen_low: dict[CellKey, float] = {}
        seen_high: dict[CellKey, float] = {}

        def note(
            solution: np.ndarray,
            cells_: list[CellKey],
            index: dict[CellKey, int] = index,
            seen_low: dict[CellKey, float] = seen_low,
            seen_high: dict[CellKey, float] = seen_high,
        ) -> None:
            for cell in cells_:
                value = float(solution[index[cell]])
                seen_low[cell] = min(seen_low.get(cell, math.inf), value)
                seen_high[cell] = max(seen_high.get(cell, -math.inf), value)

        def proven(
            cell: CellKey,
            seen_low: dict[CellKey, float] = seen_low,
            seen_high: dict[CellKey, float] = seen_high,
        ) -> bool:
            return (
                k is not None
                and possible_values(seen_low[cell], seen_high[cell]) >= k
                and (cell not in zero or seen_low[cell] < 0.5)
            )

        if k is not None:
            # A finite cap keeps the witness programmes bounded; any solution under it is
            # feasible. A cap too low to admit any solution only means no witnesses.
            finite = [b.high for b in bounds.values() if not math.isinf(b.high)]
            cap = 2 * (sum(finite) + k * len(cells)) + 100
            capped = [(lo, cap if hi is None else hi) for lo, hi in lp_bounds]
            rng = np.random.default_rng(len(cells))  # deterministic: same release, same work
            for _round in range(WITNESS_ROUNDS):
                if not remaining:
                    break
                weights = np.zeros(len(cells))
                for cell in remaining:
                    weights[index[cell]] = rng.uniform(0.5, 1.5)
                try:
                    low_witness = _bounded(_solve(weights, a_eq, b_eq, capped, deadline))
                    high_witness = _bounded(_solve(-weights, a_eq, b_eq, capped, deadline))
                except DisclosureAuditError:
                    break  # no witnesses: the exact programmes below decide, failing closed
                note(low_witness.x, remaining)
                note(high_witness.x, remaining)
                for cell in remaining:
                    if proven(cell):
                        result[cell] = (seen_low[cell], seen_high[cell])
                remaining = [c for c in remaining if c not in result]
        # Exact ranges for the rest; every solution found is also a witness for the others.
        for cell in list(remaining):
            if cell in result:
                continue
            objective = np.zeros(len(cells))
            objective[index[cell]] = 1.0
            if seen_low.get(cell, math.inf) <= bounds[cell].low + 1e-9:
                lo = bounds[cell].low  # a witness already sits on the lower bound
            else:
                low = _bounded(_solve(objective, a_eq, b_eq, lp_bounds, deadline))
                lo = float(low.fun)
                note(low.x, [c for c in remaining if c not in result])
            high = _solve(-objective, a_eq, b_eq, lp_bounds, deadline, may_be_unbounded=True)
            if high is None:
                hi = math.inf
            else:
                hi = float(-high.fun)
                note(high.x, [c for c in remaining if c not in result])
            result[cell] = (lo, hi)
            for other in remaining:
                if other not in result and other in seen_low and proven(other):
                    result[other] = (seen_low[other], seen_high[other])
    return result


def control(
    values: dict[CellKey, int],
    constraints: list[Constraint],
    *,
    k: int = 8,
    base: int = 5,
    fixed: dict[CellKey, Bounds] | None = None,
    insiders: Iterable[Insider] = (),
    reveals: Iterable[Reveal] = (),
    max_iterations: int = 10_000,
    time_limit: float | None = None,
) -> ControlResult:
    """Suppress, round and audit. ``fixed`` cells belong to earlier releases: they take part
    in the audit with the bounds already published and are never changed. Every hidden cell
    must keep ``k`` possible values, and a primary one 0 among them, against the public and
    against each of ``insiders`` (who know their cells exactly); ``reveals`` are cells a
    published figure gives away exactly. ``time_limit`` (seconds) bounds the whole audit:
    past it the release is blocked, not published."""
    fixed = fixed or {}
    insiders = list(insiders)
    reveals = list(reveals)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    if k < 2 or base < 1:
        raise ValueError("k must be at least 2 and base at least 1")
    # Below k: "fewer than k". A count of k or more that would round below k (k above 8)
    # cannot be shown without looking like a small count, so it is withheld instead.
    status = {
        key: PRIMARY if value < k else (COMPLEMENTARY if round_to(value, base) < k else PUBLISHED)
        for key, value in values.items()
    }

    def current_bounds() -> dict[CellKey, Bounds]:
        out = {
            key: bounds_for(st, round_to(values[key], base) if st == PUBLISHED else None, k, base)
            for key, st in status.items()
        }
        out.update(fixed)
        for reveal in reveals:
            if all(
                status.get(c) == PUBLISHED and round_to(values[c], base) >= reveal.min_published
                for c in reveal.cells
            ):
                out.update({c: Bounds(values[c], values[c]) for c in reveal.cells})
        return out

    def suppressed(key: CellKey) -> bool:
        if key in fixed:
            # An earlier release published no number for it: it was suppressed.
            return fixed[key].hidden
        return status[key] != PUBLISHED

    def withhold_one(constraint: Constraint, avoid: CellKey, keep: Collection[CellKey]) -> bool:
        """Withhold the smallest published member (else the total) that is not ``avoid``
        and not in ``keep`` (cells an insider knows anyway: withholding them helps nothing)."""
        candidates = [
            c
            for c in constraint.members
            if c not in fixed and c != avoid and c not in keep and status[c] == PUBLISHED
        ]
        total = constraint.total
        if (
            not candidates
            and total not in fixed
            and total != avoid
            and total not in keep
            and status[total] == PUBLISHED
        ):
            candidates = [total]
        if not candidates:
            return False
        chosen = min(candidates, key=lambda c: (values[c], str(c)))
        status[chosen] = COMPLEMENTARY
        return True

    by_cell: dict[CellKey, list[Constraint]] = defaultdict(list)
    for constraint in constraints:
        for cell in constraint.cells:
            by_cell[cell].append(constraint)

    def withhold_near(cell: CellKey, keep: Collection[CellKey]) -> bool:
        """Withhold the smallest published cell in the nearest constraint that has one,
        searching outwards through cells that are already suppressed."""
        seen_cells = {cell}
        seen_constraints: set[int] = set()
        frontier = [cell]
        while frontier:
            next_frontier: list[CellKey] = []
            for here in frontier:
                for constraint in sorted(by_cell[here], key=lambda c: len(c.cells)):
                    if id(constraint) in seen_constraints:
                        continue
                    seen_constraints.add(id(constraint))
                    if withhold_one(constraint, cell, keep):
                        return True
                    for other in constraint.cells:
                        if other not in seen_cells:
                            seen_cells.add(other)
                            next_frontier.append(other)
            frontier = next_frontier
        return False

    # The insiders' and reveals' cells are fixed to their true values, so the truth must
    # satisfy every relation, or the programmes are infeasible: a count outside the
    # catalogue (a fact with an unknown value) is a bug to fix, not to publish around.
    for constraint in constraints:
        if all(c in values for c in constraint.cells) and values[constraint.total] != sum(
            values[m] for m in constraint.members
        ):
            raise DisclosureAuditError(
                f"the true counts do not add up to their total {constraint.total!r}"
            )
    # The public first (name ""), then each insider with their own cells fixed.
    audits = [Insider("", {}, frozenset()), *insiders]
    proven: dict[str, set[CellKey]] = {audit.name: set() for audit in audits}
    iterations = 0
    ranges: dict[CellKey, tuple[float, float]] = {}
    while True:
        iterations += 1
        if iterations > max_iterations:
            raise DisclosureAuditError("suppression did not converge")
        # Quick pass: no constraint may have exactly one suppressed cell.
        changed = True
        while changed:
            changed = False
            for constraint in constraints:
                hidden = [c for c in constraint.cells if suppressed(c)]
                if len(hidden) == 1 and withhold_one(constraint, hidden[0], ()):
                    changed = True
        # The proof. Withholding more only widens what is feasible, so a cell proven safe
        # (against the public or one insider) stays safe: each round audits only the rest.
        unsafe: list[tuple[CellKey, frozenset[CellKey]]] = []
        for audit in audits:
            bounds = current_bounds()
            bounds.update({cell: Bounds(v, v) for cell, v in audit.known.items()})
            targets = [
                key
                for key, b in bounds.items()
                if b.hidden and key not in audit.own and key not in proven[audit.name]
            ]
            zero = {key for key in targets if bounds[key].primary}
            found = feasible_ranges(bounds, constraints, targets, k=k, zero=zero, deadline=deadline)
            if not audit.name:
                ranges.update(found)
            bad = [
                key
                for key in targets
                if possible_values(*found[key]) < k or (key in zero and found[key][0] > 0.5)
            ]
            proven[audit.name].update(set(targets) - set(bad))
            keep = frozenset(audit.known)  # withholding what they know helps nothing
            unsafe += [(key, keep) for key in bad]
            if bad and not audit.name:
                break  # safe against the public first; the insiders are audited after
        if not unsafe:
            published = {
                key: (round_to(values[key], base) if st == PUBLISHED else None)
                for key, st in status.items()
            }
            return ControlResult(status, published, ranges, iterations)
        progressed = False
        # One withholding per neighbourhood per round: a second unsafe cell next to one just
        # helped is re-audited first, so nothing is withheld that is not needed.
        touched: set[CellKey] = set()
        for cell, keep in sorted(unsafe, key=lambda pair: str(pair[0])):
            if cell in touched:
                continue
            if withhold_near(cell, keep):
                progressed = True
                for constraint in by_cell[cell]:
                    touched.update(constraint.cells)
        if not progressed:
            raise DisclosureAuditError(
                f"cannot protect {len(unsafe)} suppressed cell(s), e.g. {unsafe[0][0]!r}"
            )
