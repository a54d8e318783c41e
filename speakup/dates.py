"""Dates and times as people in the UK read them: "14 November 2026, 09:30" in UK time.

Everything is stored in UTC (speakup.db); only the page turns it into Europe/London time,
so a reporter who wrote at 00:30 in summer does not see "23:30 the day before".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Flask

UK = ZoneInfo("Europe/London")


def uk_time(value: datetime) -> datetime:
    """A stored UTC moment in UK local time (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UK)


def uk_date(value: datetime | date | None, weekday: bool = False) -> str:
    """``14 November 2026`` (the UK date of a moment; with ``weekday``, ``Saturday 14
    November 2026``), or "" for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = uk_time(value)
    day = f"{value:%A} " if weekday else ""
    return f"{day}{value.day} {value:%B %Y}"


def uk_datetime(value: datetime | None) -> str:
    """``14 November 2026, 09:30`` in UK time, or "" for none."""
    if value is None:
        return ""
    local = uk_time(value)
    return f"{local.day} {local:%B %Y, %H:%M}"


def month_year(value: str | None) -> str:
    """A stored ``2026-11`` as ``November 2026``; anything else is shown as it is."""
    if not value:
        return ""
    try:
        return f"{datetime.strptime(value, '%Y-%m'):%B %Y}"
    except ValueError:
        return value


def init_date_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.jinja_env.filters["uk_date"] = uk_date
    app.jinja_env.filters["uk_datetime"] = uk_datetime
    app.jinja_env.filters["month_year"] = month_year
