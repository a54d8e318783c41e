"""Account lifecycle: password change, administrator reset by enrolment code, disabling.

Nothing here touches a case: what a reset means for case access is the custody module's
business (:func:`speakup.cases.custody.suspend_user_access`), called by the administrator's
service that orchestrates both.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from speakup.accounts.models import AuthSession, User
from speakup.accounts.services import (
    SignInError,
    begin_enrolment,
    check_password,
    set_password,
    store_totp_secret,
)
from speakup.accounts.sessions import end_user_sessions
from speakup.audit.services import record
from speakup.crypto import Argon2Params
from speakup.errors import ValidationError
from speakup.extensions import db


def change_password(
    user: User,
    current: str,
    new: str,
    params: Argon2Params,
    config: dict,
    *,
    keep_session_id: int | None = None,
    client: bytes | None = None,
) -> None:
    """Re-encrypt the private key (and TOTP secret) under the new password, and end every
    other session of the user (a stolen session does not outlive a password change)."""
    try:
        unlocked = check_password(user, current, params, config, client=client)
    except SignInError:
        raise ValidationError("Your current password is not right.") from None
    kek = set_password(user, new, unlocked.private_key, params)
    if unlocked.totp_secret is not None:
        store_totp_secret(user, kek, unlocked.totp_secret)
    query = delete(AuthSession).where(AuthSession.user_id == user.id)
    if keep_session_id is not None:
        query = query.where(AuthSession.id != keep_session_id)
    db.session.execute(query)
    record("user.password_changed", actor_kind="user", actor_user_id=user.id)


def reset_credentials(user: User, *, by: User | None, lifetime: timedelta, pending: int = 0) -> str:
    """An administrator's reset: the account's key and second factor are destroyed and a
    one-time enrolment code is returned, to be passed on in person. The administrator never
    chooses, sees or types a password."""
    code = begin_enrolment(user, lifetime)
    record(
        "user.reset",
        actor_kind="user" if by else "system",
        actor_user_id=by.id if by else None,
        detail=f"user={user.id} pending={pending}",
    )
    return code


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
