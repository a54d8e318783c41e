"""Staff accounts and server-side sessions (staff and reporters)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from speakup.crypto import PublicKey
from speakup.db import UTCDateTime, utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation


class Role(enum.StrEnum):
    """What a staff account may do (DESIGN §2)."""

    GUARDIAN = "guardian"
    LEAD_GUARDIAN = "lead_guardian"
    PANEL_MEMBER = "panel_member"
    LEADER = "leader"
    ADMIN = "admin"


#: roles whose holders may be sealed case keys
READER_ROLES = frozenset({Role.GUARDIAN, Role.LEAD_GUARDIAN, Role.PANEL_MEMBER})


class User(db.Model):  # type: ignore[name-defined,misc]
    """A staff account with a hybrid keypair whose private half is stored only encrypted.

    The private key is AES-256-GCM under Argon2id(password, ``kdf_salt``); a password is
    correct exactly when that decryption authenticates, so no separate password hash exists.
    """

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    #: offered to reporters in the regional pool of guardians
    in_pool: Mapped[bool] = mapped_column(Boolean, default=False)
    #: leaders only: what their statistics cover (region, system or organisation) and which
    scope_kind: Mapped[str | None] = mapped_column(String(16))
    scope_id: Mapped[int | None] = mapped_column(Integer)
    languages: Mapped[str] = mapped_column(String(200), default="English")
    bio: Mapped[str] = mapped_column(Text, default="")

    public_mlkem: Mapped[bytes] = mapped_column(LargeBinary)
    public_x25519: Mapped[bytes] = mapped_column(LargeBinary)
    #: private key, encrypted under the password-derived key (binds table/row/field)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary)
    kdf_time_cost: Mapped[int] = mapped_column(Integer)
    kdf_memory_kib: Mapped[int] = mapped_column(Integer)
    kdf_parallelism: Mapped[int] = mapped_column(Integer)
    #: TOTP secret, encrypted under the same password-derived key; NULL until enrolled
    totp_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: last accepted TOTP time step, so a code cannot be replayed
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)

    #: after an administrator's reset: no password, no key until the user enrols with the
    #: one-time code (stored only as a SHA-256 hash, and only until it expires or is used)
    enrolment_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    enrolment_code_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    enrolment_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    #: wrong security codes (only someone who knows the password can make these)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()

    @property
    def public_key(self) -> PublicKey:
        """The user's public key, to seal case keys to."""
        return PublicKey(self.public_mlkem, self.public_x25519)

    @property
    def is_reader(self) -> bool:
        """Whether case keys may ever be sealed to this account."""
        return self.role in READER_ROLES and not self.disabled and not self.enrolment_pending

    # Flask-Login protocol -------------------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return not self.disabled

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class AuthSession(db.Model):  # type: ignore[name-defined,misc]
    """A server-side session. The store alone unlocks nothing (DESIGN §4 Sessions).

    The cookie carries a random token and a random session key; the server keeps only the
    token's SHA-256 and the unlocked private key encrypted under the session key.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    #: "staff" or "reporter"
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("concern_case.id", ondelete="CASCADE"))
    #: staff: "password" (second factor pending), "enrol" (TOTP enrolment pending), "active"
    stage: Mapped[str] = mapped_column(String(16))
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<AuthSession {self.id} {self.kind} {self.stage}>"


class SignInThrottle(db.Model):  # type: ignore[name-defined,misc]
    """Wrong passwords for one account from one client (a salted hash of its address, never
    the address). Each client backs off on its own, so someone who types wrong passwords for
    a guardian's name cannot keep the guardian out from her own device."""

    __table_args__ = (UniqueConstraint("user_id", "client_hash", name="user_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    #: HMAC of the client address under the rate-limit salt
    client_hash: Mapped[bytes] = mapped_column(LargeBinary)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: how many times this client has been made to wait (each wait doubles)
    strikes: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
