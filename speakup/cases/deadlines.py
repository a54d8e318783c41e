"""Service-level clocks in working days, respecting England's bank holidays."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays


@lru_cache(maxsize=32)
def _bank_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv="ENG", years=[year - 1, year, year + 1])


def is_working_day(day: date) -> bool:
    """Monday to Friday and not an England bank holiday."""
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """``start`` moved forward by ``days`` working days, keeping the time of day."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current.date()):
            remaining -= 1
    return current


def acknowledgement_deadlines(
    received: datetime, working_days: int, ceiling_days: int
) -> tuple[datetime, datetime]:
    """(target, ceiling) for acknowledging a case; the ceiling is in calendar days."""
    target = add_working_days(received, working_days)
    ceiling = received + timedelta(days=ceiling_days)
    return min(target, ceiling), ceiling
