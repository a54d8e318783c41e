"""Who may see which statistics: a leader sees exactly their scope, released tables only."""

from __future__ import annotations

from dataclasses import dataclass

from speakup.accounts.models import Role, User
from speakup.errors import ForbiddenError
from speakup.extensions import db
from speakup.organisations.models import Organisation, Region, System


@dataclass(frozen=True)
class LeaderScope:
    """A leader's scope with a display name."""

    kind: str
    id: int
    name: str


def leader_scope(user: User) -> LeaderScope:
    """The signed-in leader's scope, or 403 for anyone else."""
    if user.role != Role.LEADER or user.scope_kind is None or user.scope_id is None:
        raise ForbiddenError("Only leaders can see the statistics dashboard.")
    model = {"region": Region, "system": System, "organisation": Organisation}[user.scope_kind]
    row = db.session.get(model, user.scope_id)
    name = str(getattr(row, "name", "Unknown"))
    return LeaderScope(user.scope_kind, user.scope_id, name)
