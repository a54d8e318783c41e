"""The audit with insiders (DESIGN §7, revised after the outside attack): an organisation's
guardians know its own exact counts and see every published table; every hidden cell of
every *other* organisation must still keep k possible values, and a primary one 0 among
them. Attacked here with the integer programmes of ``test_disclosure`` (our own code, not
``feasible_ranges``), with the insider's cells fixed to their true values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from speakup.stats.disclosure import (
    Constraint,
    ControlResult,
    DisclosureAuditError,
    Insider,
    control,
)
from tests.unit.stats.test_disclosure import (
    PROPERTY,
    Knowledge,
    attacker_ranges,
    check_rules,
    check_sound,
    integers_in,
    knowledge_of,
)

K = 8
CATEGORIES = ("x", "y")


def world(
    counts: dict[str, dict[str, int]], systems: dict[str, list[str]]
) -> tuple[dict[object, int], list[Constraint]]:
    """Organisations' tables (categories and a total), their systems' and the region's,
    with every relation a release builds: each table adds up to its total, organisations to
    their system and systems to the region, cell by cell."""
    values: dict[object, int] = {}
    constraints: list[Constraint] = []
    scopes = {org: [org] for org in counts} | systems | {"region": list(counts)}
    for scope, orgs in scopes.items():
        for c in CATEGORIES:
            values[(scope, c)] = sum(counts[o][c] for o in orgs)
        values[(scope, "total")] = sum(values[(scope, c)] for c in CATEGORIES)
        constraints.append(Constraint((scope, "total"), tuple((scope, c) for c in CATEGORIES)))
    parts = {system: orgs for system, orgs in systems.items()} | {"region": list(systems)}
    for parent, kids in parts.items():
        for c in (*CATEGORIES, "total"):
            constraints.append(Constraint((parent, c), tuple((kid, c) for kid in kids)))
    return values, constraints


def insiders_of(values: dict[object, int], systems: dict[str, list[str]]) -> list[Insider]:
    """What the release's ``insiders`` builds: own exact counts; own scope and the scopes
    containing it are theirs."""
    out = []
    for system, orgs in systems.items():
        for org in orgs:
            known = {key: v for key, v in values.items() if key[0] == org}
            own = frozenset(key for key in values if key[0] in (org, system, "region"))
            out.append(Insider(org, known, own))
    return out


def insider_view(
    knowledge: Knowledge, values: dict[object, int], insider: Insider
) -> tuple[Knowledge, list[object]]:
    """The public's knowledge plus the insider's own exact counts, and the hidden cells
    that must stay protected from them."""
    bounds = dict(knowledge.bounds)
    bounds.update({key: (float(v), float(v)) for key, v in insider.known.items()})
    targets = [key for key in knowledge.hidden if key not in insider.own]
    return Knowledge(bounds, knowledge.relations, knowledge.hidden, knowledge.primary), targets


def check_insiders(
    result: ControlResult,
    values: dict[object, int],
    constraints: list[Constraint],
    insiders: list[Insider],
) -> None:
    knowledge = knowledge_of([result], constraints)
    check_sound(knowledge, values)
    for insider in insiders:
        view, targets = insider_view(knowledge, values, insider)
        for key, (lo, hi) in attacker_ranges(view, targets).items():
            assert integers_in(lo, hi) >= K, (
                f"{insider.name} pins {key!r} (true {values[key]}) to {lo:g}..{hi:g}"
            )
            if key in knowledge.primary:
                assert lo < 0.5, f"{insider.name} proves {key!r} present: {lo:g}..{hi:g}"


#: The issue's scenario, made small: trusts A and B in one system. A has 10 concerns in
#: category x and 2 in y; B has 3 in x and 20 in y. The public audit withholds A's 10 (to
#: protect A's 2) and B's 20 (to protect B's 3) and publishes the system's x as 15. From
#: that alone B's x could be 0..17; but A's lead guardian knows her own 10, so B's x is the
#: system's 13..17 minus 10: 3..7 — five possible values, and proof that B's trust has
#: someone there.
SIBLINGS = {"A": {"x": 10, "y": 2}, "B": {"x": 3, "y": 20}, "C": {"x": 30, "y": 30}}
SYSTEMS = {"S": ["A", "B"], "T": ["C"]}


def test_a_lead_guardian_with_her_own_counts_cannot_pin_a_sibling_trust() -> None:
    values, constraints = world(SIBLINGS, SYSTEMS)
    insiders = insiders_of(values, SYSTEMS)
    lead_a = next(i for i in insiders if i.name == "A")
    # The audit before insiders were modelled (no insiders given): safe against the
    # public, but A's lead guardian pins B's x to 3..7.
    before = control(values, constraints, k=K)
    knowledge = knowledge_of([before], constraints)
    check_sound(knowledge, values)
    assert before.status[("B", "x")] == "primary" and before.status[("S", "x")] == "published"
    view, _ = insider_view(knowledge, values, lead_a)
    assert attacker_ranges(view, [("B", "x")]) == {("B", "x"): (3.0, 7.0)}
    # With the insiders: withheld until no lead guardian can narrow another trust's cell.
    after = control(values, constraints, k=K, insiders=insiders)
    check_rules(values, after)
    check_insiders(after, values, constraints, insiders)


@st.composite
def small_worlds(draw: st.DrawFn) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """A region of two systems of one to three organisations, counts mostly small."""
    counts = st.one_of(st.integers(0, 10), st.integers(0, 12), st.integers(0, 40))
    systems: dict[str, list[str]] = {}
    orgs: dict[str, dict[str, int]] = {}
    for system in ("S", "T"):
        n = draw(st.integers(1, 3))
        systems[system] = [f"{system}{i}" for i in range(n)]
        for org in systems[system]:
            orgs[org] = {c: draw(counts) for c in CATEGORIES}
    return orgs, systems


@settings(PROPERTY, max_examples=25)
@given(small_worlds())
def test_no_insider_narrows_another_organisations_hidden_cell(
    drawn: tuple[dict[str, dict[str, int]], dict[str, list[str]]],
) -> None:
    """Random worlds, released with insiders; then, for each organisation, an attacker with
    its exact counts and every published table: no hidden cell of another organisation (or
    of another system) below k possible values, and no primary cell without 0."""
    counts, systems = drawn
    values, constraints = world(counts, systems)
    insiders = insiders_of(values, systems)
    try:
        result = control(values, constraints, k=K, insiders=insiders)
    except DisclosureAuditError:
        return  # blocked: nothing published, nothing to attack
    check_rules(values, result)
    check_insiders(result, values, constraints, insiders)
