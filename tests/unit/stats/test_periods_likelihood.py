"""NHS financial-year quarters and release timing, and the WRES-style relative likelihood
(DESIGN §7): pure functions, no Flask."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakup.stats.disclosure import round_to
from speakup.stats.likelihood import BASIS, HIGH, LOW, relative_likelihood
from speakup.stats.periods import (
    Quarter,
    is_releasable,
    latest_releasable,
    parse_quarter,
    quarter_of,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- quarters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quarter", "key", "label", "start", "end"),
    [
        (
            Quarter(2026, 1),
            "FY2026Q1",
            "2026/27 Q1 (Apr–Jun 2026)",
            utc(2026, 4, 1),
            utc(2026, 7, 1),
        ),
        (
            Quarter(2026, 2),
            "FY2026Q2",
            "2026/27 Q2 (Jul–Sep 2026)",
            utc(2026, 7, 1),
            utc(2026, 10, 1),
        ),
        (
            Quarter(2026, 3),
            "FY2026Q3",
            "2026/27 Q3 (Oct–Dec 2026)",
            utc(2026, 10, 1),
            utc(2027, 1, 1),
        ),
        # Q4 is January to March of the *next* calendar year.
        (
            Quarter(2026, 4),
            "FY2026Q4",
            "2026/27 Q4 (Jan–Mar 2027)",
            utc(2027, 1, 1),
            utc(2027, 4, 1),
        ),
        (
            Quarter(1999, 4),
            "FY1999Q4",
            "1999/00 Q4 (Jan–Mar 2000)",
            utc(2000, 1, 1),
            utc(2000, 4, 1),
        ),
    ],
)
def test_quarter_keys_labels_and_boundaries(
    quarter: Quarter, key: str, label: str, start: datetime, end: datetime
) -> None:
    assert quarter.key == key
    assert quarter.label == label
    assert quarter.start == start
    assert quarter.end == end
    assert parse_quarter(key) == quarter


@pytest.mark.parametrize(
    ("moment", "key"),
    [
        (utc(2026, 4, 1), "FY2026Q1"),
        (utc(2026, 3, 31, 23, 59, 59), "FY2025Q4"),
        (utc(2026, 6, 30, 23, 59), "FY2026Q1"),
        (utc(2026, 7, 1), "FY2026Q2"),
        (utc(2026, 12, 31, 23, 59), "FY2026Q3"),
        (utc(2027, 1, 1), "FY2026Q4"),
        (utc(2027, 3, 31, 12), "FY2026Q4"),
        (utc(2027, 4, 1), "FY2027Q1"),
    ],
)
def test_quarter_of_a_moment(moment: datetime, key: str) -> None:
    assert quarter_of(moment).key == key


def test_next_previous_and_year_quarters_wrap_at_the_financial_year() -> None:
    assert Quarter(2026, 4).next() == Quarter(2027, 1)
    assert Quarter(2027, 1).previous() == Quarter(2026, 4)
    assert Quarter(2026, 2).next() == Quarter(2026, 3)
    assert Quarter(2026, 3).year_quarters() == [Quarter(2026, n) for n in (1, 2, 3, 4)]
    assert Quarter(2026, 1) < Quarter(2026, 4) < Quarter(2027, 1)


@pytest.mark.parametrize("text", [" fy2026q3 ", "FY2026Q3"])
def test_parse_is_forgiving_about_case_and_spaces(text: str) -> None:
    assert parse_quarter(text) == Quarter(2026, 3)


@pytest.mark.parametrize("text", ["", "2026Q3", "FY2026Q5", "FY2026Q0", "FY26Q1", "FY2026-Q1"])
def test_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="quarter like"):
        parse_quarter(text)


moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(moments)
def test_every_moment_lies_in_its_quarter(moment: datetime) -> None:
    quarter = quarter_of(moment)
    assert quarter.start <= moment < quarter.end
    assert parse_quarter(quarter.key) == quarter
    assert quarter.next().start == quarter.end
    assert quarter.next().previous() == quarter


# --- release timing ------------------------------------------------------------------------


def test_a_quarter_is_releasable_only_once_it_has_ended_and_the_lag_has_passed() -> None:
    q1 = Quarter(2026, 1)  # ends at 2026-07-01 00:00
    assert not is_releasable(q1, utc(2026, 6, 30, 23, 59), 0)
    assert is_releasable(q1, utc(2026, 7, 1), 0)
    assert not is_releasable(q1, utc(2026, 7, 30, 23, 59, 59), 30)
    assert is_releasable(q1, utc(2026, 7, 31), 30)
    # Q4 ends in the next calendar year.
    q4 = Quarter(2026, 4)
    assert not is_releasable(q4, utc(2027, 4, 30, 23), 30)
    assert is_releasable(q4, utc(2027, 5, 1), 30)


@pytest.mark.parametrize(
    ("now", "lag", "key"),
    [
        (utc(2026, 7, 31), 30, "FY2026Q1"),  # Q1's lag has just passed
        (utc(2026, 7, 30, 23, 59), 30, "FY2025Q4"),  # …not yet
        (utc(2026, 7, 1), 0, "FY2026Q1"),
        (utc(2027, 5, 1), 30, "FY2026Q4"),
        (utc(2027, 4, 30), 30, "FY2026Q3"),
        (utc(2027, 2, 15), 90, "FY2026Q2"),
    ],
)
def test_latest_releasable(now: datetime, lag: int, key: str) -> None:
    assert latest_releasable(now, lag).key == key


@settings(max_examples=200, deadline=None)
@given(moments, st.integers(0, 200))
def test_latest_releasable_is_the_newest_quarter_that_is_releasable(
    now: datetime, lag: int
) -> None:
    quarter = latest_releasable(now, lag)
    assert is_releasable(quarter, now, lag)
    assert not is_releasable(quarter.next(), now, lag)


def test_latest_releasable_moves_on_exactly_at_end_plus_lag() -> None:
    end_plus_lag = Quarter(2026, 2).end + timedelta(days=45)
    assert latest_releasable(end_plus_lag - timedelta(microseconds=1), 45) == Quarter(2026, 1)
    assert latest_releasable(end_plus_lag, 45) == Quarter(2026, 2)


# --- relative likelihood -------------------------------------------------------------------


def published(value: int) -> dict:
    return {"status": "published", "value": value}


def likelihood(bme: int, n_bme: int, white: int, n_white: int) -> dict:
    """From true counts, with the year cells published as the release rounds them."""
    cells = {"bme": published(round_to(bme, 5)), "white": published(round_to(white, 5))}
    return relative_likelihood(
        cells, {"bme": n_bme, "white": n_white}, {"bme": bme, "white": white}
    )


def test_relative_likelihood_against_a_hand_computation() -> None:
    """40 concerns from 1,000 BME staff and 60 from 4,000 White staff:

    - rates 40 / 1000 = 0.040 (40.0 per 1,000) and 60 / 4000 = 0.015 (15.0 per 1,000);
    - relative likelihood 0.040 / 0.015 = 2.667;
    - log method: SE(ln RL) = √(1/40 − 1/1000 + 1/60 − 1/4000) = √0.0404167 = 0.20104;
    - 95% CI exp(ln 2.667 ± 1.96 × 0.20104) = 2.667 × e^(±0.39404) = 1.798 to 3.955;
    - the whole interval is above 1.25: "above" the 0.80–1.25 band.
    """
    result = likelihood(40, 1000, 60, 4000)
    assert result == {
        "value": 2.67,
        "ci_low": 1.80,
        "ci_high": 3.95,
        "band": "above",
        "bme_rate_per_1000": 40.0,
        "white_rate_per_1000": 15.0,
        "reason": "",
        "basis": BASIS.format(minimum=20),
    }
    assert "exact numbers" in result["basis"] and "not from the rounded" in result["basis"]


def test_the_likelihood_uses_the_true_counts_not_the_rounded_ones() -> None:
    """The band case from the outside attack: 12 BME and 9 White concerns from equal
    headcounts are a ratio of 1.33, outside the 0.80–1.25 band; both are published as 10,
    so the old computation from rounded counts showed 1.00 "within the band". Now counts
    that small give no ratio at all; and where both are large enough, the ratio is the true
    counts': 27 BME concerns from 1,000 staff and 23 White from 1,100 are 1.29 (outside the
    band), where their rounded 25 and 25 would say 1.10 (inside it)."""
    assert (round_to(12, 5), round_to(9, 5)) == (10, 10)
    assert likelihood(12, 1000, 9, 1000)["reason"] == "few"
    result = likelihood(27, 1000, 23, 1100)
    assert result["value"] == 1.29
    assert result["band"] == "outside_but_uncertain"
    assert round((25 / 1000) / (25 / 1100), 2) == 1.10  # what the rounded counts say: within


@pytest.mark.parametrize(("bme", "white"), [(18, 60), (19, 60), (22, 60), (60, 9), (60, 19)])
def test_no_likelihood_unless_both_counts_are_certainly_20(bme: int, white: int) -> None:
    """Both true counts at least 20, decided on what is published: 18..22 are all
    published as 20 (or 9 as 10), so none of them is certain to be 20 or more; showing the
    ratio for 20..22 and not for 18..19 would tell everyone which it was."""
    assert likelihood(bme, 1000, white, 4000) == {"value": None, "reason": "few", "minimum": 20}
    assert likelihood(23, 1000, 23, 4000)["value"] is not None  # published 25: at least 23


@settings(max_examples=100, deadline=None)
@given(
    a=st.integers(23, 500),
    b=st.integers(23, 500),
    extra1=st.integers(0, 20_000),
    extra2=st.integers(0, 20_000),
)
def test_relative_likelihood_formula(a: int, b: int, extra1: int, extra2: int) -> None:
    """The ratio of rates with the Katz log-method interval, for any valid inputs."""
    n1, n2 = a + extra1, b + extra2
    result = likelihood(a, n1, b, n2)
    ratio = (a / n1) / (b / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    assert result["value"] == round(ratio, 2)
    assert result["ci_low"] == round(ratio * math.exp(-1.96 * se), 2)
    assert result["ci_high"] == round(ratio * math.exp(1.96 * se), 2)
    assert result["ci_low"] <= result["value"] <= result["ci_high"]


@pytest.mark.parametrize(
    ("bme", "n_bme", "white", "n_white", "band"),
    [
        (100, 1000, 100, 1000, "within"),  # 1.00 (0.77–1.30)
        (25, 2500, 250, 2500, "below"),  # 0.10 (0.07–0.15): all of it below 0.80
        (40, 1000, 60, 4000, "above"),  # 2.67 (1.80–3.95): all of it above 1.25
        (36, 200, 24, 200, "outside_but_uncertain"),  # 1.50 (0.93–2.42)
        (25, 1000, 100, 3000, "outside_but_uncertain"),  # 0.75 (0.49–1.16)
    ],
)
def test_band(bme: int, n_bme: int, white: int, n_white: int, band: str) -> None:
    result = likelihood(bme, n_bme, white, n_white)
    assert result["band"] == band
    assert (LOW, HIGH) == (0.80, 1.25)


@pytest.mark.parametrize("status", ["primary", "complementary"])
@pytest.mark.parametrize("group", ["bme", "white"])
def test_suppressed_with_its_inputs(status: str, group: str) -> None:
    cells = {"bme": published(40), "white": published(60)}
    cells[group] = {"status": status, "value": None}
    result = relative_likelihood(cells, {"bme": 1000, "white": 4000}, {"bme": 40, "white": 60})
    assert result["value"] is None
    assert result["reason"] == "suppressed"
    assert "ci_low" not in result and "band" not in result


def test_no_workforce_figures_no_likelihood() -> None:
    cells = {"bme": published(40), "white": published(60)}
    result = relative_likelihood(cells, None, {"bme": 40, "white": 60})
    assert result == {"value": None, "reason": "workforce"}


@pytest.mark.parametrize(
    ("bme", "white", "headcounts"),
    [
        (40, 60, {"bme": 0, "white": 4000}),
        (40, 60, {"bme": 30, "white": 4000}),  # more concerns than staff
    ],
)
def test_impossible_inputs_give_no_likelihood(bme: int, white: int, headcounts: dict) -> None:
    result = likelihood(bme, headcounts["bme"], white, headcounts["white"])
    assert result["value"] is None
    assert result["reason"] == "inputs"
