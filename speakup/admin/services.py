"""Administration services that span features: an account reset touches the account
(accounts) and what it could read (case custody), in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from speakup.accounts.lifecycle import reset_credentials
from speakup.accounts.models import User
from speakup.cases.custody import suspend_user_access


@dataclass(frozen=True, repr=False)
class ResetResult:
    """The one-time enrolment code (shown once, never stored) and how many case keys wait
    to be restored explicitly by a reader of each case or the recovery custodian."""

    code: str
    pending: int
    expires_hours: int


def reset_staff_account(user: User, *, by: User | None, config: dict[str, Any]) -> ResetResult:
    """Reset an account so that the administrator gains nothing: the user's key is destroyed,
    their case access waits for an explicit restore, and only the enrolment code — to be
    passed on in person — lets the user set their own password and second factor."""
    hours = int(config["AUTH_ENROLMENT_CODE_HOURS"])
    pending = suspend_user_access(user)
    code = reset_credentials(user, by=by, lifetime=timedelta(hours=hours), pending=pending)
    return ResetResult(code, pending, hours)
