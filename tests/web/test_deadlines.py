"""Acknowledgement clocks: working days skip weekends and England bank holidays (DESIGN §6).

The holiday dates are checked against the ``holidays`` package first, so a test that fails
here says whether our arithmetic or our assumption about the calendar is wrong.
"""

from datetime import UTC, date, datetime, timedelta

import holidays
import pytest

from speakup.cases.deadlines import acknowledgement_deadlines, add_working_days, is_working_day

ENGLAND_2026_27 = holidays.country_holidays("GB", subdiv="ENG", years=[2026, 2027])


def at(day: date, hour: int = 10, minute: int = 15) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def test_the_christmas_2026_bank_holidays_are_what_the_tests_assume():
    # 26 December 2026 is a Saturday, so Boxing Day is observed on Monday 28 December.
    assert date(2026, 12, 25) in ENGLAND_2026_27
    assert date(2026, 12, 28) in ENGLAND_2026_27
    assert date(2026, 12, 24) not in ENGLAND_2026_27
    assert date(2026, 12, 29) not in ENGLAND_2026_27
    assert date(2026, 12, 23).strftime("%A") == "Wednesday"


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 27), True),  # Friday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 11, 29), False),  # Sunday
        (date(2026, 12, 25), False),  # Christmas Day
        (date(2026, 12, 28), False),  # Boxing Day (substitute)
        (date(2026, 12, 29), True),
        (date(2027, 1, 1), False),  # New Year's Day
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 8, 31), False),  # late summer bank holiday
    ],
)
def test_is_working_day(day, working):
    assert is_working_day(day) is working
    assert (day in ENGLAND_2026_27 or day.weekday() >= 5) is (not working)


def test_friday_plus_two_working_days_is_tuesday():
    friday = at(date(2026, 11, 27))
    assert add_working_days(friday, 1) == at(date(2026, 11, 30))
    assert add_working_days(friday, 2) == at(date(2026, 12, 1))


def test_a_weekend_start_counts_from_monday():
    saturday = at(date(2026, 11, 28), 23, 59)
    assert add_working_days(saturday, 1) == at(date(2026, 11, 30), 23, 59)


def test_zero_working_days_is_the_start_itself():
    start = at(date(2026, 11, 27))
    assert add_working_days(start, 0) == start


def test_time_of_day_and_timezone_are_kept():
    start = datetime(2026, 11, 25, 17, 42, 9, 123456, tzinfo=UTC)
    result = add_working_days(start, 2)
    assert result == datetime(2026, 11, 27, 17, 42, 9, 123456, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_christmas_2026_received_wednesday_23rd_acknowledge_by_tuesday_29th():
    received = at(date(2026, 12, 23))
    # 24th is day 1; 25th (Christmas), the weekend and the 28th (Boxing Day observed) are not
    # working days; the 29th is day 2 — computed from the holidays package, not hard-coded.
    counted, day = 0, received.date()
    while counted < 2:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in ENGLAND_2026_27:
            counted += 1
    expected = at(day)
    assert expected == at(date(2026, 12, 29))
    assert add_working_days(received, 2) == expected

    target, ceiling = acknowledgement_deadlines(received, 2, 7)
    assert target == at(date(2026, 12, 29))
    assert ceiling == at(date(2026, 12, 30))


def test_christmas_2027_two_substitute_days():
    # 25 and 26 December 2027 fall at a weekend: both are observed, on the 27th and 28th.
    assert date(2027, 12, 27) in ENGLAND_2026_27 and date(2027, 12, 28) in ENGLAND_2026_27
    received = at(date(2027, 12, 23))  # Thursday
    assert add_working_days(received, 2) == at(date(2027, 12, 29))


def test_across_the_new_year():
    received = at(date(2026, 12, 31))  # Thursday; 1 January 2027 is a bank holiday (Friday)
    assert add_working_days(received, 2) == at(date(2027, 1, 5))


def test_easter_2026():
    received = at(date(2026, 4, 2))  # Thursday before Good Friday
    assert add_working_days(received, 2) == at(date(2026, 4, 8))
    target, ceiling = acknowledgement_deadlines(received, 2, 7)
    assert (target, ceiling) == (at(date(2026, 4, 8)), at(date(2026, 4, 9)))


def test_the_ceiling_is_seven_calendar_days():
    received = at(date(2026, 11, 25))
    _target, ceiling = acknowledgement_deadlines(received, 2, 7)
    assert ceiling == received + timedelta(days=7)


def test_the_target_never_passes_the_ceiling():
    received = at(date(2026, 12, 23))
    # Ten working days from the 23rd run well into January; the ceiling wins.
    target, ceiling = acknowledgement_deadlines(received, 10, 7)
    assert add_working_days(received, 10) > ceiling
    assert target == ceiling == at(date(2026, 12, 30))


def test_the_target_is_the_working_day_date_when_earlier():
    received = at(date(2026, 11, 23))  # Monday
    target, ceiling = acknowledgement_deadlines(received, 2, 7)
    assert target == at(date(2026, 11, 25))
    assert target == min(add_working_days(received, 2), ceiling)
