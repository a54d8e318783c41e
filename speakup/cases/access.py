"""Access that follows the people (DESIGN §3.3–3.4, §4 re-sealing and revocation).

Granting happens in the request of a reader who holds the case key: their session opens the
key and seals it to the new reader's public key. Exclusions are enforced by
:func:`speakup.cases.keys.grant_case_key` on every grant. Revoking deletes the reader's
sealed copies and rotates the keys, re-encrypting everything, so an old copy opens nothing
written afterwards.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from speakup.accounts.models import Role, User
from speakup.audit.services import record
from speakup.cases.content import decrypt_json, encrypt_json
from speakup.cases.keys import (
    excluded_user_ids,
    grant_case_key,
    open_case_key,
    reader_ids,
    seal_to_recovery,
    seal_to_reporter,
)
from speakup.cases.models import (
    Attachment,
    Case,
    CaseKey,
    KeyType,
    Message,
    PendingGrant,
    RecipientKind,
    Status,
)
from speakup.cases.policy import SlaPolicy
from speakup.cases.workflow import Actor, apply_clocks, check_transition, check_version, open_dek
from speakup.crypto import decrypt_field, encrypt_field, new_data_key
from speakup.db import utcnow
from speakup.errors import ForbiddenError, ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation


def _open_idk(case: Case, actor: Actor) -> bytes | None:
    return open_case_key(case, actor.private_key, KeyType.IDK, user_id=actor.user.id)


def _has_key(case: Case, user: User, key_type: KeyType) -> bool:
    return user.id in reader_ids(case, key_type)


def add_reader(case: Case, actor: Actor, target: User, *, with_identity: bool) -> None:
    """Seal the case to ``target`` (and the identity key only if ``with_identity`` and the
    actor holds it). Idempotent: an existing reader is left as is."""
    dek = open_dek(case, actor)
    if target.id in excluded_user_ids(case):
        # Checked here as well as in grant_case_key, so nothing is half-granted.
        raise ForbiddenError("The reporter named this person as involved: they can never see it.")
    if not _has_key(case, target, KeyType.DEK):
        grant_case_key(case, target, KeyType.DEK, dek)
    if with_identity and case.identity_ct is not None and not _has_key(case, target, KeyType.IDK):
        idk = _open_idk(case, actor)
        if idk is not None:
            grant_case_key(case, target, KeyType.IDK, idk)
    record(
        "case.reader_added",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"user={target.id} identity={'yes' if with_identity else 'no'}",
    )


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


def assign_case(case: Case, actor: Actor, target: User, *, expected_version: int | None) -> Case:
    """A lead guardian gives the case to a guardian of the case's organisation."""
    check_version(case, expected_version)
    if actor.user.role != Role.LEAD_GUARDIAN or actor.user.organisation_id != case.organisation_id:
        raise ForbiddenError("Only the organisation's lead guardian can assign its cases.")
    if target.organisation_id != case.organisation_id or target.role not in (
        Role.GUARDIAN,
        Role.LEAD_GUARDIAN,
    ):
        raise ValidationError("Cases can be assigned only to the organisation's guardians.")
    add_reader(case, actor, target, with_identity=True)
    case.owner_user_id = target.id
    record(
        "case.assigned",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"user={target.id}",
    )
    return case


def transfer_case(case: Case, actor: Actor, target: User, *, expected_version: int | None) -> Case:
    """Move a case from its current owner to another guardian of the organisation: the
    new guardian is sealed the keys and the previous owner's access is revoked."""
    previous = case.owner
    assign_case(case, actor, target, expected_version=expected_version)
    if previous is not None and previous.id != target.id:
        revoke_reader(case, actor, previous)
    return case


def hand_over_to_pool(
    case: Case, actor: Actor, target: User, *, remove_self: bool, expected_version: int | None
) -> Case:
    """Give the case to a guardian of the regional pool (identity follows: the reporter
    shared it with the case's guardians), optionally stepping away oneself."""
    check_version(case, expected_version)
    if not target.in_pool or target.role not in (Role.GUARDIAN, Role.LEAD_GUARDIAN):
        raise ValidationError("Choose a guardian from the regional pool.")
    add_reader(case, actor, target, with_identity=True)
    case.owner_user_id = target.id
    record(
        "case.handed_over",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"user={target.id}",
    )
    if remove_self:
        revoke_reader(case, actor, actor.user)
    return case


def escalate_case(
    case: Case, actor: Actor, *, policy: SlaPolicy, expected_version: int | None
) -> Case:
    """Escalate to the regional panel — only with the reporter's recorded consent; the
    identity key goes to the panel only with the reporter's separate consent."""
    open_dek(case, actor)
    check_version(case, expected_version)
    if not case.escalation_consent:
        raise ForbiddenError("The reporter has not consented to escalation to the panel.")
    check_transition(case, Status.ESCALATED)
    excluded = excluded_user_ids(case)
    panel = [
        user
        for user in db.session.scalars(
            select(User).where(User.role == Role.PANEL_MEMBER, User.disabled.is_(False))
        )
        if user.id not in excluded
    ]
    if not panel:
        raise ValidationError("There is no panel member who can receive this case.")
    for member in panel:
        add_reader(case, actor, member, with_identity=case.identity_escalation_consent)
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
    dek = open_dek(case, actor)
    idk = _open_idk(case, actor)
    had_idk = _has_key(case, target, KeyType.IDK)
    remaining = [uid for uid in reader_ids(case) if uid != target.id]
    if not remaining:
        raise ValidationError("A case must keep at least one reader.")
    db.session.execute(
        delete(CaseKey).where(
            CaseKey.case_id == case.id,
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.user_id == target.id,
        )
    )
    db.session.execute(
        delete(PendingGrant).where(
            PendingGrant.case_id == case.id, PendingGrant.user_id == target.id
        )
    )
    if case.owner_user_id == target.id:
        case.owner_user_id = None
    rotate_case_keys(case, dek, idk if had_idk else None)
    record(
        "case.reader_removed",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"user={target.id}",
    )


def _reencrypt(
    old: bytes, new: bytes, blob: bytes, *, table: str, row_id: int, field: str
) -> bytes:
    plain = decrypt_field(old, blob, table=table, row_id=row_id, field=field)
    return encrypt_field(new, plain, table=table, row_id=row_id, field=field)


def rotate_case_keys(case: Case, old_dek: bytes, old_idk: bytes | None) -> None:
    """Re-encrypt the case under a fresh DEK (and IDK, if given) and re-seal the new keys to
    every remaining holder (readers, recovery, reporter) using only their public keys."""
    db.session.flush()
    new_dek = new_data_key()
    case.report_ct = _reencrypt(
        old_dek, new_dek, case.report_ct, table="concern_case", row_id=case.id, field="report"
    )
    for column, field in (("triage_ct", "triage"), ("speak_up_again_ct", "speak_up_again")):
        blob = getattr(case, column)
        if blob is not None:
            setattr(
                case,
                column,
                _reencrypt(
                    old_dek, new_dek, blob, table="concern_case", row_id=case.id, field=field
                ),
            )
    for message in db.session.scalars(select(Message).where(Message.case_id == case.id)):
        message.body_ct = _reencrypt(
            old_dek, new_dek, message.body_ct, table="message", row_id=message.id, field="body"
        )
    for attachment in db.session.scalars(select(Attachment).where(Attachment.case_id == case.id)):
        attachment.meta_ct = _reencrypt(
            old_dek,
            new_dek,
            attachment.meta_ct,
            table="attachment",
            row_id=attachment.id,
            field="meta",
        )
        attachment.data_ct = _reencrypt(
            old_dek,
            new_dek,
            attachment.data_ct,
            table="attachment",
            row_id=attachment.id,
            field="data",
        )
    _reseal(case, KeyType.DEK, new_dek)
    if old_idk is not None and case.identity_ct is not None:
        new_idk = new_data_key()
        identity = decrypt_json(
            old_idk, case.identity_ct, table="concern_case", row_id=case.id, field="identity"
        )
        case.identity_ct = encrypt_json(
            new_idk, identity, table="concern_case", row_id=case.id, field="identity"
        )
        _reseal(case, KeyType.IDK, new_idk)


def _reseal(case: Case, key_type: KeyType, key: bytes) -> None:
    """Replace every sealed copy of one key type with copies of ``key``."""
    holders = [db.session.get(User, uid) for uid in reader_ids(case, key_type) if uid is not None]
    db.session.execute(
        delete(CaseKey).where(CaseKey.case_id == case.id, CaseKey.key_type == str(key_type))
    )
    for holder in holders:
        if holder is not None and holder.is_reader:
            grant_case_key(case, holder, key_type, key)
    organisation = db.session.get_one(Organisation, case.organisation_id)
    recovery = organisation.recovery_public_key
    if recovery is not None:
        seal_to_recovery(case, recovery, key_type, key)
    seal_to_reporter(case, key_type, key)
