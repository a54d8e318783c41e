"""Staff accounts: creation, password checks that unlock the private key, TOTP, lockout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
from sqlalchemy import func, select

from speakup.accounts.models import Role, User
from speakup.audit.services import record
from speakup.crypto import (
    Argon2Params,
    DecryptionError,
    PrivateKey,
    decrypt_field,
    derive_key,
    encrypt_field,
    generate_keypair,
    new_salt,
)
from speakup.db import utcnow
from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation

MIN_PASSWORD_LENGTH = 12


class SignInError(Exception):
    """Wrong email, password or code, or a locked account. One neutral message for all."""


@dataclass(frozen=True, repr=False)
class Unlocked:
    """What a correct password gives: the private key and the key that wraps the user's
    secrets (needed once more to store a newly enrolled TOTP secret)."""

    private_key: PrivateKey
    kek: bytes
    totp_secret: str | None


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively."""
    return email.strip().lower()


def _kdf_params(user: User, template: Argon2Params) -> Argon2Params:
    return Argon2Params(
        time_cost=user.kdf_time_cost,
        memory_kib=user.kdf_memory_kib,
        parallelism=user.kdf_parallelism,
        max_concurrency=template.max_concurrency,
    )


def set_password(user: User, password: str, private_key: PrivateKey, params: Argon2Params) -> bytes:
    """(Re-)wrap the private key under a key derived from ``password``; return that key."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters.")
    user.kdf_salt = new_salt()
    user.kdf_time_cost = params.time_cost
    user.kdf_memory_kib = params.memory_kib
    user.kdf_parallelism = params.parallelism
    kek = derive_key(password.encode(), user.kdf_salt, params)
    user.wrapped_private_key = encrypt_field(
        kek, private_key.to_bytes(), table="staff_user", row_id=user.id, field="private_key"
    )
    return kek


def create_user(
    *,
    email: str,
    display_name: str,
    role: Role,
    password: str,
    params: Argon2Params,
    organisation: Organisation | None = None,
    in_pool: bool = False,
    languages: str = "English",
    bio: str = "",
    totp_secret: str | None = None,
    scope: tuple[str, int] | None = None,
) -> User:
    """Create an account with a fresh keypair. ``totp_secret`` pre-enrols (demo data only)."""
    email = normalise_email(email)
    if db.session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise ValidationError(f"An account for {email} already exists.")
    if role in (Role.GUARDIAN, Role.LEAD_GUARDIAN) and organisation is None:
        raise ValidationError("Guardians belong to an organisation.")
    if (role == Role.LEADER) != (scope is not None):
        raise ValidationError(
            "Leaders, and only leaders, have a scope (region, system or organisation)."
        )
    private_key = generate_keypair()
    public = private_key.public_key()
    user = User(
        email=email,
        display_name=display_name,
        role=str(role),
        organisation=organisation,
        in_pool=in_pool,
        languages=languages,
        bio=bio,
        scope_kind=scope[0] if scope else None,
        scope_id=scope[1] if scope else None,
        public_mlkem=public.mlkem,
        public_x25519=public.x25519,
        wrapped_private_key=b"",
        kdf_salt=b"",
        kdf_time_cost=0,
        kdf_memory_kib=0,
        kdf_parallelism=0,
    )
    db.session.add(user)
    db.session.flush()  # the row id is part of the associated data
    kek = set_password(user, password, private_key, params)
    if totp_secret is not None:
        store_totp_secret(user, kek, totp_secret)
    record("user.created", actor_kind="system", detail=f"user={user.id} role={role}")
    return user


def store_totp_secret(user: User, kek: bytes, secret: str) -> None:
    """Encrypt the TOTP secret under the password-derived key (useless without it)."""
    user.totp_wrapped = encrypt_field(
        kek, secret.encode(), table="staff_user", row_id=user.id, field="totp"
    )


def find_user(email: str) -> User | None:
    """Look up an account by email."""
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def check_password(
    user: User, password: str, params: Argon2Params, config: dict[str, Any]
) -> Unlocked:
    """Verify a password by unlocking the private key; count failures and lock out."""
    now = utcnow()
    # Derive first, even for a locked account, so timing does not reveal the lock.
    kek = derive_key(password.encode(), user.kdf_salt, _kdf_params(user, params))
    if user.disabled or (user.locked_until is not None and user.locked_until > now):
        raise SignInError
    try:
        raw = decrypt_field(
            kek, user.wrapped_private_key, table="staff_user", row_id=user.id, field="private_key"
        )
    except DecryptionError:
        user.failed_logins += 1
        if user.failed_logins >= int(config["AUTH_MAX_FAILED_LOGINS"]):
            user.locked_until = now + timedelta(seconds=int(config["AUTH_LOCKOUT_SECONDS"]))
            user.failed_logins = 0
            record("user.locked", actor_kind="system", actor_user_id=user.id)
        raise SignInError from None
    totp_secret = None
    if user.totp_wrapped is not None:
        totp_secret = decrypt_field(
            kek, user.totp_wrapped, table="staff_user", row_id=user.id, field="totp"
        ).decode()
    return Unlocked(PrivateKey.from_bytes(raw), kek, totp_secret)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(length=32)


def totp_uri(user: User, secret: str, issuer: str) -> str:
    """The otpauth:// URI for authenticator apps (shown as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def verify_totp(user: User, secret: str, code: str) -> bool:
    """Check a 6-digit code (±1 step), refusing a code at or before the last one used."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return False
    totp = pyotp.TOTP(secret)
    now = int(utcnow().timestamp())
    for offset in (-1, 0, 1):
        step = now // totp.interval + offset
        if step <= user.totp_last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            user.totp_last_step = step
            return True
    return False


def record_sign_in(user: User) -> None:
    """A completed sign-in clears the failure counter and is audited."""
    user.failed_logins = 0
    user.locked_until = None
    record("user.signed_in", actor_kind="user", actor_user_id=user.id)


def record_failed_second_factor(user: User, config: dict[str, Any]) -> None:
    """A wrong TOTP code counts towards lockout like a wrong password."""
    user.failed_logins += 1
    if user.failed_logins >= int(config["AUTH_MAX_FAILED_LOGINS"]):
        user.locked_until = utcnow() + timedelta(seconds=int(config["AUTH_LOCKOUT_SECONDS"]))
        user.failed_logins = 0
        record("user.locked", actor_kind="system", actor_user_id=user.id)
