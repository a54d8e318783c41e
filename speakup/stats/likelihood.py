"""WRES-style relative likelihood: concerns per head, BME ÷ White, with a 95% interval.

Computed from the *true* year counts, not the rounded ones: rounding to the nearest 5 moves
small counts by up to 10 %, enough to put a ratio of 1.33 inside the 0.80–1.25 band as
1.00. It is shown only when both counts are published and certainly at least 20 (decided
on the published figures, :func:`speakup.stats.disclosure.shows_at_least`, so the decision
itself gives nothing away); below that the interval spans most of the scale. A ratio from
true counts gives those counts away, so the release's audit takes them as known
(:class:`speakup.stats.disclosure.Reveal`) before anything is published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from speakup.stats.disclosure import shows_at_least

#: both counts must be at least this (DESIGN §7)
MIN_COUNT = 20

BASIS = (
    "Worked out from the exact numbers of concerns raised in the year by Black, Asian and "
    "minority ethnic staff and by White staff (each at least {minimum}), not from the "
    "rounded figures in the table, and from the workforce headcounts."
)

LOW, HIGH = 0.80, 1.25


def relative_likelihood(
    cells: Mapping[str, Mapping[str, Any]],
    headcounts: Mapping[str, int] | None,
    counts: Mapping[str, int],
    *,
    base: int = 5,
) -> dict[str, Any]:
    """The ratio of the true ``counts`` per head, its 95% confidence interval and where it
    sits against 0.80–1.25; ``cells`` are the published year cells, which decide whether
    it may be shown."""
    if headcounts is None:
        return {"value": None, "reason": "workforce"}
    bme, white = cells.get("bme", {}), cells.get("white", {})
    if bme.get("status") != "published" or white.get("status") != "published":
        return {"value": None, "reason": "suppressed"}
    if not all(shows_at_least(c["value"], MIN_COUNT, base) for c in (bme, white)):
        return {"value": None, "reason": "few", "minimum": MIN_COUNT}
    a, b = int(counts["bme"]), int(counts["white"])
    n1, n2 = int(headcounts["bme"]), int(headcounts["white"])
    if min(a, b, n1, n2) <= 0 or a > n1 or b > n2:
        return {"value": None, "reason": "inputs"}
    ratio = (a / n1) / (b / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    low = math.exp(math.log(ratio) - 1.96 * se)
    high = math.exp(math.log(ratio) + 1.96 * se)
    if high < LOW:
        band = "below"
    elif low > HIGH:
        band = "above"
    elif LOW <= ratio <= HIGH:
        band = "within"
    else:
        band = "outside_but_uncertain"
    return {
        "value": round(ratio, 2),
        "ci_low": round(low, 2),
        "ci_high": round(high, 2),
        "band": band,
        "bme_rate_per_1000": round(1000 * a / n1, 1),
        "white_rate_per_1000": round(1000 * b / n2, 1),
        "reason": "",
        "basis": BASIS.format(minimum=MIN_COUNT),
    }
