"""Service levels per organisation (DESIGN §6): configured defaults, organisation overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from speakup.organisations.models import Organisation


@dataclass(frozen=True)
class SlaPolicy:
    """The clocks that apply to one organisation's cases."""

    acknowledge_working_days: int = 2
    acknowledge_ceiling_days: int = 7
    feedback_days: int = 91
    update_days: int = 28
    checkin_months: tuple[int, ...] = (3, 6, 9, 12)
    retention_months: int = 12

    @property
    def monitoring_months(self) -> int:
        """Detriment monitoring lasts until the last check-in."""
        return max(self.checkin_months) if self.checkin_months else 0


def policy_for(organisation: Organisation, config: Mapping[str, Any]) -> SlaPolicy:
    """The organisation's own settings where it has them, else the configured defaults."""

    def pick(own: int | None, key: str) -> int:
        return int(own) if own is not None else int(config[key])

    return SlaPolicy(
        acknowledge_working_days=pick(
            organisation.sla_acknowledge_working_days, "SLA_ACKNOWLEDGE_WORKING_DAYS"
        ),
        acknowledge_ceiling_days=pick(
            organisation.sla_acknowledge_ceiling_days, "SLA_ACKNOWLEDGE_CEILING_DAYS"
        ),
        feedback_days=pick(organisation.sla_feedback_days, "SLA_FEEDBACK_DAYS"),
        update_days=pick(organisation.sla_update_days, "SLA_UPDATE_DAYS"),
        checkin_months=tuple(int(m) for m in config["RETENTION_CHECKIN_MONTHS"]),
        retention_months=pick(organisation.retention_months, "RETENTION_MONTHS_AFTER_MONITORING"),
    )


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months later, clamped to the month's last day (31 Jan + 1 → 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError("unreachable")  # pragma: no cover


def checkin_dates(closed_at: datetime, policy: SlaPolicy) -> list[datetime]:
    """Detriment check-ins after closure (3, 6, 9 and 12 months by default)."""
    return [add_months(closed_at, m) for m in policy.checkin_months]


def purge_date(closed_at: datetime, policy: SlaPolicy) -> datetime:
    """When a closed case is crypto-shredded: monitoring end plus the retention period."""
    return add_months(closed_at, policy.monitoring_months + policy.retention_months)


def days_from(moment: datetime, days: int) -> datetime:
    """Calendar days later."""
    return moment + timedelta(days=days)
