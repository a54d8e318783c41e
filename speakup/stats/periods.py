"""NHS financial-year quarters: Q1 April–June … Q4 January–March."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_KEY = re.compile(r"^FY(\d{4})Q([1-4])$")
_MONTH_NAMES = ["Apr", "Jul", "Oct", "Jan"]
_END_NAMES = ["Jun", "Sep", "Dec", "Mar"]


@dataclass(frozen=True, order=True)
class Quarter:
    """A financial-year quarter; ``year`` is the year the financial year starts in."""

    year: int
    number: int

    @property
    def key(self) -> str:
        """Stable key, e.g. ``FY2026Q3``."""
        return f"FY{self.year}Q{self.number}"

    @property
    def label(self) -> str:
        """Human label, e.g. ``2026/27 Q3 (Oct–Dec 2026)``."""
        end_year = self.year + 1 if self.number == 4 else self.year
        return (
            f"{self.year}/{str(self.year + 1)[-2:]} Q{self.number} "
            f"({_MONTH_NAMES[self.number - 1]}–{_END_NAMES[self.number - 1]} {end_year})"
        )

    @property
    def start(self) -> datetime:
        month = 4 + 3 * (self.number - 1)
        year = self.year
        if month > 12:
            month -= 12
            year += 1
        return datetime(year, month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the quarter."""
        return self.next().start

    def next(self) -> Quarter:
        return (
            Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        )

    def previous(self) -> Quarter:
        return (
            Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)
        )

    def year_quarters(self) -> list[Quarter]:
        """All four quarters of this quarter's financial year."""
        return [Quarter(self.year, n) for n in (1, 2, 3, 4)]


def quarter_of(moment: datetime) -> Quarter:
    """The financial-year quarter containing ``moment``."""
    if moment.month >= 4:
        return Quarter(moment.year, (moment.month - 4) // 3 + 1)
    return Quarter(moment.year - 1, 4)


def parse_quarter(key: str) -> Quarter:
    """Inverse of :attr:`Quarter.key`."""
    match = _KEY.match(key.strip().upper())
    if not match:
        raise ValueError(f"{key!r} is not a quarter like FY2026Q3")
    return Quarter(int(match.group(1)), int(match.group(2)))


def latest_releasable(now: datetime, lag_days: int) -> Quarter:
    """The most recent quarter that ended at least ``lag_days`` ago."""
    return quarter_of(now - timedelta(days=lag_days)).previous()


def is_releasable(quarter: Quarter, now: datetime, lag_days: int) -> bool:
    """A quarter may be released once it has ended and the lag has passed."""
    return now >= quarter.end + timedelta(days=lag_days)
