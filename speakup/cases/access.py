"""Access that follows the people (DESIGN §3.3–3.4, §4 re-sealing and revocation).

Granting happens in the request of a reader who holds the case key: their session opens the
key and :mod:`speakup.cases.custody` seals it to the new reader — only what the reporter's
recorded consents allow, never to someone she named as involved. Revoking deletes the
reader's sealed copies and rotates the keys. Every change of readers posts one plain message
to the reporter's thread.
"""

from __future__ import annotations

from sqlalchemy import select

from speakup.accounts.models import Role, User
from speakup.audit.services import record
from speakup.cases import custody
from speakup.cases.models import Case, KeyType, Status
from speakup.cases.policy import SlaPolicy
from speakup.cases.workflow import Actor, apply_clocks, check_transition, check_version, open_dek
from speakup.db import utcnow
from speakup.errors import ForbiddenError, ValidationError
from speakup.extensions import db


def _open_idk(case: Case, actor: Actor) -> bytes | None:
    return custody.open_case_key(case, actor.private_key, KeyType.IDK, user_id=actor.user.id)


def claim_case(case: Case, actor: Actor, *, expected_version: int | None) -> Case:
    """A reader takes ownership of an unowned case. With several claimants, exactly one
    wins: the version check (and the version column at flush) refuses the others."""
    open_dek(case, actor)
    check_version(case, expected_version)
    if case.owner_user_id is not None:
        raise ValidationError("Someone has already taken this case.")
    case.owner_user_id = actor.user.id
    record("case.claimed", actor_kind="user", actor_user_id=actor.user.id, case_id=case.id)
    return case


def _check_assignable(case: Case, actor: Actor, target: User) -> None:
    if actor.user.role != Role.LEAD_GUARDIAN or actor.user.organisation_id != case.organisation_id:
        raise ForbiddenError("Only the organisation's lead guardian can assign its cases.")
    if target.organisation_id != case.organisation_id or target.role not in (
        Role.GUARDIAN,
        Role.LEAD_GUARDIAN,
    ):
        raise ValidationError("Cases can be assigned only to the organisation's guardians.")


def assign_case(case: Case, actor: Actor, target: User, *, expected_version: int | None) -> Case:
    """A lead guardian gives the case to a guardian of the case's organisation."""
    check_version(case, expected_version)
    _check_assignable(case, actor, target)
    return _pass_on(case, actor, open_dek(case, actor), target, "case.assigned", leaving=None)


def transfer_case(case: Case, actor: Actor, target: User, *, expected_version: int | None) -> Case:
    """Move a case from its current owner to another guardian of the organisation: the
    new guardian is sealed the keys and the previous owner's access is revoked."""
    check_version(case, expected_version)
    _check_assignable(case, actor, target)
    previous = case.owner
    leaving = previous if previous is not None and previous.id != target.id else None
    dek = open_dek(case, actor)
    return _pass_on(case, actor, dek, target, "case.assigned", leaving=leaving)


def hand_over_to_pool(
    case: Case, actor: Actor, target: User, *, remove_self: bool, expected_version: int | None
) -> Case:
    """Give the case to a guardian of the regional pool, optionally stepping away oneself.
    The new guardian sees who the reporter is only if she agreed to that."""
    check_version(case, expected_version)
    if not target.in_pool or target.role not in (Role.GUARDIAN, Role.LEAD_GUARDIAN):
        raise ValidationError("Choose a guardian from the regional pool.")
    dek = open_dek(case, actor)  # a non-reader gets the 404 before anything else
    if target.id == actor.user.id:
        raise ValidationError("Choose another guardian: you already have this case.")
    leaving = actor.user if remove_self else None
    return _pass_on(case, actor, dek, target, "case.handed_over", leaving=leaving)


def _pass_on(
    case: Case, actor: Actor, dek: bytes, target: User, action: str, *, leaving: User | None
) -> Case:
    """Give ``target`` the case (custody decides which keys), make them its owner, remove
    ``leaving`` if given, and tell the reporter in one message."""
    idk = _open_idk(case, actor)
    added = custody.add_reader(case, dek, idk, target, actor=actor.user)
    case.owner_user_id = target.id
    record(
        action,
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"user={target.id}",
    )
    if leaving is not None:
        dek, idk = custody.remove_reader(case, dek, idk, leaving, actor=actor.user)
    custody.announce(
        case, dek, added=[target] if added else [], removed=[leaving] if leaving else []
    )
    return case


def escalate_case(
    case: Case, actor: Actor, *, policy: SlaPolicy, expected_version: int | None
) -> Case:
    """Escalate to the regional panel — only with the reporter's recorded consent; the
    identity key goes to the panel only with the reporter's separate consent."""
    dek = open_dek(case, actor)
    check_version(case, expected_version)
    if not case.escalation_consent:
        raise ForbiddenError("The reporter has not consented to escalation to the panel.")
    check_transition(case, Status.ESCALATED)
    excluded = custody.excluded_user_ids(case)
    panel = [
        user
        for user in db.session.scalars(
            select(User)
            .where(User.role == Role.PANEL_MEMBER, User.disabled.is_(False))
            .order_by(User.id)
        )
        if user.id not in excluded and not user.enrolment_pending
    ]
    if not panel:
        raise ValidationError("There is no panel member who can receive this case.")
    idk = _open_idk(case, actor)
    added = [m for m in panel if custody.add_reader(case, dek, idk, m, actor=actor.user)]
    custody.announce(
        case, dek, added=added, lead="Your concern was escalated to the regional panel:"
    )
    previous = case.status
    case.status = str(Status.ESCALATED)
    apply_clocks(case, Status.ESCALATED, policy, utcnow())
    record(
        "case.status_changed",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"{previous}->escalated",
    )
    return case


def revoke_reader(case: Case, actor: Actor, target: User) -> None:
    """Remove a reader: delete their sealed copies and rotate the case keys."""
    dek, idk = open_dek(case, actor), _open_idk(case, actor)
    if target.id in set(custody.reader_ids(case)):
        dek, _ = custody.remove_reader(case, dek, idk, target, actor=actor.user)
    elif target in custody.pending_readers(case):
        # Reset since: they hold no copy, only a waiting restore, which goes.
        custody.drop_pending(case, target, actor=actor.user)
    else:
        raise ValidationError("This person cannot read the case.")
    custody.announce(case, dek, removed=[target])


def restore_reader(case: Case, actor: Actor, target: User) -> int:
    """Restore a reset colleague's access to this case, explicitly (audited)."""
    dek = open_dek(case, actor)
    return custody.restore_access(case, actor.user, dek, _open_idk(case, actor), target)
