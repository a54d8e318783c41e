"""WRES-style relative likelihood: concerns per head, BME ÷ White, with a 95% interval.

Computed from the *published* (rounded) counts, so it reveals nothing the tables do not;
suppressed with its inputs (if either count is withheld, so is the ratio).
"""

from __future__ import annotations

import math
from typing import Any

LOW, HIGH = 0.80, 1.25


def relative_likelihood(
    cells: dict[str, dict[str, Any]], headcounts: dict[str, int] | None
) -> dict[str, Any]:
    """The ratio, its 95% confidence interval and where it sits against 0.80–1.25."""
    if headcounts is None:
        return {"value": None, "reason": "workforce"}
    bme, white = cells.get("bme", {}), cells.get("white", {})
    if bme.get("status") != "published" or white.get("status") != "published":
        return {"value": None, "reason": "suppressed"}
    a, b = int(bme["value"]), int(white["value"])
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
    }
