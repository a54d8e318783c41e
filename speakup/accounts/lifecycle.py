"""Account lifecycle: password change, administrator reset, disabling, and restoring access
after a reset (pending grants processed by another reader, or by the recovery custodian)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import aliased

from speakup.accounts.models import User
from speakup.accounts.services import (
    SignInError,
    check_password,
    set_password,
    store_totp_secret,
)
from speakup.accounts.sessions import end_user_sessions
from speakup.audit.services import record
from speakup.cases.keys import grant_case_key, open_case_key, seal_to_recovery
from speakup.cases.models import Case, CaseKey, KeyType, PendingGrant, RecipientKind
from speakup.crypto import Argon2Params, DecryptionError, PrivateKey, generate_keypair, open_sealed
from speakup.errors import ForbiddenError, ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation


def _holds_current_copy(case_id: int, user: User, key_type: str) -> bool:
    """Whether ``user`` already holds this case key sealed to their current public key (a
    colleague re-added them after a reset): the pending grant is then simply done.
    A copy sealed to an earlier key of theirs is worthless and is removed."""
    rows = db.session.scalars(
        select(CaseKey).where(
            CaseKey.case_id == case_id,
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.user_id == user.id,
            CaseKey.key_type == key_type,
        )
    ).all()
    current = user.public_key.key_id
    for row in rows:
        if row.recipient_key_id != current:
            db.session.delete(row)
    db.session.flush()
    return any(row.recipient_key_id == current for row in rows)


def change_password(user: User, current: str, new: str, params: Argon2Params, config: dict) -> None:
    """Re-encrypt the private key (and TOTP secret) under the new password."""
    try:
        unlocked = check_password(user, current, params, config)
    except SignInError:
        raise ValidationError("Your current password is not right.") from None
    kek = set_password(user, new, unlocked.private_key, params)
    if unlocked.totp_secret is not None:
        store_totp_secret(user, kek, unlocked.totp_secret)
    record("user.password_changed", actor_kind="user", actor_user_id=user.id)


def reset_account(user: User, new_password: str, params: Argon2Params, *, by: User | None) -> int:
    """An administrator's reset: a new keypair (the old private key is unrecoverable without
    the old password), a new TOTP enrolment, all sessions ended. Every case the user could
    read becomes a pending grant; returns how many."""
    held = db.session.execute(
        select(CaseKey.case_id, CaseKey.key_type).where(
            CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user.id
        )
    ).all()
    for case_id, key_type in held:
        exists = db.session.scalar(
            select(PendingGrant.id).where(
                PendingGrant.case_id == case_id,
                PendingGrant.user_id == user.id,
                PendingGrant.key_type == key_type,
            )
        )
        if exists is None:
            db.session.add(PendingGrant(case_id=case_id, user_id=user.id, key_type=key_type))
    db.session.execute(
        delete(CaseKey).where(
            CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user.id
        )
    )
    private = generate_keypair()
    public = private.public_key()
    user.public_mlkem = public.mlkem
    user.public_x25519 = public.x25519
    user.totp_wrapped = None
    user.totp_last_step = 0
    user.failed_logins = 0
    user.locked_until = None
    set_password(user, new_password, private, params)
    end_user_sessions(user.id)
    record(
        "user.reset",
        actor_kind="user" if by else "system",
        actor_user_id=by.id if by else None,
        detail=f"user={user.id} pending={len(held)}",
    )
    return len(held)


def disable_account(user: User, *, by: User | None) -> None:
    """Disable an account and end its sessions at once."""
    user.disabled = True
    end_user_sessions(user.id)
    record(
        "user.disabled",
        actor_kind="user" if by else "system",
        actor_user_id=by.id if by else None,
        detail=f"user={user.id}",
    )


def enable_account(user: User, *, by: User | None) -> None:
    """Re-enable a disabled account. Nothing else changes: the user signs in with their own
    password and security code (an administrator never learns either) and holds again the
    case keys that were sealed to them, which disabling never removed."""
    if not user.disabled:
        raise ValidationError(f"{user.display_name}'s account is not disabled.")
    user.disabled = False
    record(
        "user.enabled",
        actor_kind="user" if by else "system",
        actor_user_id=by.id if by else None,
        detail=f"user={user.id}",
    )


def process_pending_grants(reader: User, private_key: PrivateKey) -> int:
    """In a reader's own request: for each pending grant on a case this reader can open,
    seal the key to the waiting user's new public key. Returns how many were granted."""
    rows = db.session.execute(
        select(PendingGrant, Case)
        .join(Case, Case.id == PendingGrant.case_id)
        .join(
            CaseKey,
            (CaseKey.case_id == PendingGrant.case_id)
            & (CaseKey.key_type == PendingGrant.key_type)
            & (CaseKey.recipient_kind == str(RecipientKind.USER))
            & (CaseKey.user_id == reader.id),
        )
        .where(PendingGrant.user_id != reader.id)
    ).all()
    granted = 0
    for pending, case in rows:
        target = db.session.get(User, pending.user_id)
        key = open_case_key(case, private_key, KeyType(pending.key_type), user_id=reader.id)
        if target is None or key is None or not target.is_reader:
            continue
        if _holds_current_copy(case.id, target, pending.key_type):
            db.session.delete(pending)
            continue
        try:
            grant_case_key(case, target, KeyType(pending.key_type), key)
        except ForbiddenError:
            pass  # excluded or no longer a reader: the grant is dropped, never given
        else:
            granted += 1
            record(
                "case.access_restored",
                actor_kind="user",
                actor_user_id=reader.id,
                case_id=case.id,
                detail=f"user={target.id} key={pending.key_type}",
            )
        db.session.delete(pending)
    return granted


def restore_with_recovery_key(
    organisation_id: int, recovery_key: PrivateKey, user: User | None = None
) -> int:
    """The recovery custodian's route: open each pending grant's key for the organisation's
    cases with the offline recovery key and seal it to the user's new public key."""
    query = (
        select(PendingGrant, Case)
        .join(Case, Case.id == PendingGrant.case_id)
        .where(Case.organisation_id == organisation_id)
    )
    if user is not None:
        query = query.where(PendingGrant.user_id == user.id)
    granted = 0
    for pending, case in db.session.execute(query).all():
        sealed = db.session.scalar(
            select(CaseKey.sealed).where(
                CaseKey.case_id == case.id,
                CaseKey.recipient_kind == str(RecipientKind.RECOVERY),
                CaseKey.key_type == pending.key_type,
            )
        )
        target = db.session.get(User, pending.user_id)
        if sealed is None or target is None or not target.is_reader:
            continue
        if _holds_current_copy(case.id, target, pending.key_type):
            db.session.delete(pending)
            continue
        try:
            key = open_sealed(
                recovery_key, sealed, purpose=f"case-{pending.key_type}", case_id=case.id
            )
            grant_case_key(case, target, KeyType(pending.key_type), key)
        except (DecryptionError, ForbiddenError):
            continue
        granted += 1
        record(
            "case.access_restored",
            actor_kind="system",
            case_id=case.id,
            detail=f"user={target.id} key={pending.key_type} via=recovery",
        )
        db.session.delete(pending)
    return granted


def reseal_recovery_copies(reader: User, private_key: PrivateKey) -> int:
    """In a reader's own request: where a case this reader holds has no recovery copy sealed
    to its organisation's *current* recovery key (the key was replaced, or created after the
    case), seal the case key to it and drop the stale copy. One query finds them, so a
    sign-in with nothing to do costs no decryption."""
    recovery_copy = aliased(CaseKey)
    rows = db.session.execute(
        select(CaseKey.key_type, Case, Organisation, recovery_copy)
        .join(Case, Case.id == CaseKey.case_id)
        .join(Organisation, Organisation.id == Case.organisation_id)
        .outerjoin(
            recovery_copy,
            (recovery_copy.case_id == CaseKey.case_id)
            & (recovery_copy.key_type == CaseKey.key_type)
            & (recovery_copy.recipient_kind == str(RecipientKind.RECOVERY)),
        )
        .where(
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.user_id == reader.id,
            Organisation.recovery_public_mlkem.is_not(None),
        )
    ).all()
    sealed = 0
    for key_type, case, organisation, existing in rows:
        recovery = organisation.recovery_public_key
        if recovery is None or (
            existing is not None and existing.recipient_key_id == recovery.key_id
        ):
            continue
        key = open_case_key(case, private_key, KeyType(key_type), user_id=reader.id)
        if key is None:
            continue
        if existing is not None:
            db.session.delete(existing)
            db.session.flush()
        seal_to_recovery(case, recovery, KeyType(key_type), key)
        record(
            "case.recovery_resealed",
            actor_kind="user",
            actor_user_id=reader.id,
            case_id=case.id,
            detail=f"key={key_type}",
        )
        sealed += 1
    return sealed
