"""Staff accounts: creation, password checks that unlock the private key, TOTP, lockout."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import delete, func, select

from speakup.accounts.models import AuthSession, Role, SignInThrottle, User
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
    unwrap_private_key,
    wrap_private_key,
)
from speakup.crypto.receipt import ALPHABET
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
    user.wrapped_private_key = wrap_private_key(
        private_key, kek, table="staff_user", row_id=user.id, field="private_key"
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
    user: User,
    password: str,
    params: Argon2Params,
    config: dict[str, Any],
    *,
    client: bytes | None = None,
) -> Unlocked:
    """Verify a password by unlocking the private key. A wrong one counts against this
    account *from this client* only (see :class:`SignInThrottle`)."""
    now = utcnow()
    # Derive first, even for a locked account, so timing does not reveal the lock.
    kek = derive_key(password.encode(), user.kdf_salt, _kdf_params(user, params))
    if (
        user.disabled
        or user.enrolment_pending
        or account_locked(user, now)
        or (client is not None and client_blocked(user, client, now))
    ):
        raise SignInError
    try:
        private_key = unwrap_private_key(
            kek, user.wrapped_private_key, table="staff_user", row_id=user.id, field="private_key"
        )
    except DecryptionError:
        record_password_failure(user, client, config)
        raise SignInError from None
    totp_secret = None
    if user.totp_wrapped is not None:
        totp_secret = decrypt_field(
            kek, user.totp_wrapped, table="staff_user", row_id=user.id, field="totp"
        ).decode()
    return Unlocked(private_key, kek, totp_secret)


# Throttling ----------------------------------------------------------------------------------


def client_key(address: str | None, salt: bytes) -> bytes:
    """A salted HMAC of a staff client's address: enough to tell clients apart, never stored
    or logged as the address itself."""
    return hmac.new(salt, b"staff-client|" + (address or "").encode(), hashlib.sha256).digest()


def account_locked(user: User, now: datetime | None = None) -> bool:
    """Locked for everyone: after too many wrong security codes (which need the password),
    or wrong passwords from many clients at once."""
    now = now or utcnow()
    return user.locked_until is not None and user.locked_until > now


def _throttle(user: User, client: bytes) -> SignInThrottle | None:
    return db.session.scalar(
        select(SignInThrottle).where(
            SignInThrottle.user_id == user.id, SignInThrottle.client_hash == client
        )
    )


def client_blocked(user: User, client: bytes, now: datetime | None = None) -> bool:
    """Whether this client must wait before trying this account's password again."""
    row = _throttle(user, client)
    now = now or utcnow()
    return row is not None and row.blocked_until is not None and row.blocked_until > now


def record_password_failure(user: User, client: bytes | None, config: dict[str, Any]) -> None:
    """A wrong password: after ``AUTH_MAX_FAILED_LOGINS`` from one client, that client waits
    (15 minutes, doubling each time, at most a day). Only when many clients are made to wait
    within an hour is the account itself locked, and the administrator told (audit)."""
    if client is None:
        return
    now = utcnow()
    row = _throttle(user, client)
    if row is None:
        row = SignInThrottle(user_id=user.id, client_hash=client, failures=0, strikes=0)
        db.session.add(row)
    row.failures += 1
    row.updated_at = now
    if row.failures < int(config["AUTH_MAX_FAILED_LOGINS"]):
        return
    row.failures = 0
    row.strikes += 1
    wait = min(int(config["AUTH_LOCKOUT_SECONDS"]) * 2 ** (row.strikes - 1), 86400)
    row.blocked_until = now + timedelta(seconds=wait)
    record("user.sign_in_throttled", actor_kind="system", actor_user_id=user.id)
    db.session.flush()
    recent = db.session.scalar(
        select(func.count())
        .select_from(SignInThrottle)
        .where(
            SignInThrottle.user_id == user.id,
            SignInThrottle.blocked_until.is_not(None),
            SignInThrottle.updated_at > now - timedelta(hours=1),
        )
    )
    if (recent or 0) >= int(config["AUTH_ACCOUNT_LOCK_CLIENTS"]):
        lock_account(user, config, reason="many clients")


def lock_account(user: User, config: dict[str, Any], *, reason: str) -> None:
    """Lock the account for everyone and end every half-finished sign-in of it at once."""
    user.locked_until = utcnow() + timedelta(seconds=int(config["AUTH_LOCKOUT_SECONDS"]))
    user.failed_logins = 0
    db.session.execute(
        delete(AuthSession).where(AuthSession.user_id == user.id, AuthSession.stage != "active")
    )
    record("user.locked", actor_kind="system", actor_user_id=user.id, detail=reason)


def clear_client_failures(user: User, client: bytes | None) -> None:
    """A completed sign-in forgets this client's wrong passwords."""
    if client is not None:
        db.session.execute(
            delete(SignInThrottle).where(
                SignInThrottle.user_id == user.id, SignInThrottle.client_hash == client
            )
        )


# Enrolment after a reset ---------------------------------------------------------------------


def _code_hash(code: str) -> bytes:
    return hashlib.sha256(b"speakup-enrolment|" + normalise_code(code).encode()).digest()


def normalise_code(code: str) -> str:
    """Codes are read aloud and typed: ignore case, spaces and dashes."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_enrolment_code() -> str:
    """100 random bits as 20 characters in groups of four, e.g. ``K3M7-Q9TX-…``."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(20))
    return "-".join(body[i : i + 4] for i in range(0, 20, 4))


def begin_enrolment(user: User, lifetime: timedelta) -> str:
    """Replace the account's credentials by a one-time enrolment code: the old private key
    and second factor are destroyed, every session ends, and nobody — the administrator
    included — knows a password for the account until its owner sets one."""
    code = new_enrolment_code()
    user.enrolment_pending = True
    user.enrolment_code_hash = _code_hash(code)
    user.enrolment_expires_at = utcnow() + lifetime
    user.wrapped_private_key = b""
    user.totp_wrapped = None
    user.totp_last_step = 0
    user.failed_logins = 0
    user.locked_until = None
    db.session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
    return code


def complete_enrolment(user: User, code: str, password: str, params: Argon2Params) -> Unlocked:
    """The user sets their own password with the code: a new keypair, sealed under it. The
    code works once and only until it expires."""
    now = utcnow()
    if (
        not user.enrolment_pending
        or user.enrolment_code_hash is None
        or user.enrolment_expires_at is None
        or user.enrolment_expires_at <= now
        or not hmac.compare_digest(user.enrolment_code_hash, _code_hash(code))
    ):
        raise SignInError
    private = generate_keypair()
    public = private.public_key()
    user.public_mlkem = public.mlkem
    user.public_x25519 = public.x25519
    kek = set_password(user, password, private, params)
    user.enrolment_pending = False
    user.enrolment_code_hash = None
    user.enrolment_expires_at = None
    record("user.enrolled", actor_kind="user", actor_user_id=user.id)
    return Unlocked(private, kek, None)


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
    """A completed sign-in clears the code-failure counter and is audited."""
    user.failed_logins = 0
    record("user.signed_in", actor_kind="user", actor_user_id=user.id)


def record_failed_second_factor(user: User, config: dict[str, Any]) -> None:
    """A wrong security code. Only someone who knows the password can make one, so these
    count against the account itself: enough of them lock it for every client."""
    user.failed_logins += 1
    if user.failed_logins >= int(config["AUTH_MAX_FAILED_LOGINS"]):
        lock_account(user, config, reason="security codes")
