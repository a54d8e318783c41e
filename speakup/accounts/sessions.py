"""Server-side sessions for staff and for reporters signed in with a receipt (DESIGN §4).

The cookie holds ``token.session_key`` (both random, 256 bits). The database holds only
SHA-256(token) and the signed-in reader's private key encrypted under ``session_key``, so the
session store alone unlocks nothing. Staff cookies are scoped to ``/staff`` and reporter
cookies to ``/follow-up``: a browser never sends a staff session to reporter pages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import delete, inspect, select

from speakup.accounts.models import AuthSession, User
from speakup.crypto import DecryptionError, PrivateKey, decrypt, encrypt
from speakup.db import utcnow
from speakup.extensions import db, login_manager

STAFF = "staff"
REPORTER = "reporter"
COOKIES = {STAFF: ("speakup_staff", "/staff"), REPORTER: ("speakup_reporter", "/follow-up")}


@dataclass(frozen=True, repr=False)
class SessionSecrets:
    """What a session holds unlocked for the duration of one request."""

    private_key: PrivateKey
    #: staff sign-in in progress: the password-derived key and TOTP secret (if enrolled)
    kek: bytes | None = None
    totp_secret: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "pk": base64.b64encode(self.private_key.to_bytes()).decode(),
                "kek": base64.b64encode(self.kek).decode() if self.kek else None,
                "totp": self.totp_secret,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SessionSecrets:
        data = json.loads(raw)
        return cls(
            PrivateKey.from_bytes(base64.b64decode(data["pk"])),
            base64.b64decode(data["kek"]) if data["kek"] else None,
            data["totp"],
        )


def _state() -> dict[str, Any]:
    """Per-request session state. Kept on the request, not ``g``: an app context (and so
    ``g``) can outlive one request, and session secrets must not."""
    state: dict[str, Any] = request.environ.setdefault("speakup.sessions", {})
    return state


def _aad(token_hash: bytes) -> bytes:
    return b"speakup|auth_session|" + token_hash.hex().encode()


def start_session(
    kind: str,
    secrets_: SessionSecrets,
    *,
    stage: str,
    user: User | None = None,
    case_id: int | None = None,
) -> AuthSession:
    """Create a session row and arrange for its cookie to be set on this response."""
    token = secrets.token_bytes(32)
    key = secrets.token_bytes(32)
    token_hash = hashlib.sha256(token).digest()
    row = AuthSession(
        token_hash=token_hash,
        kind=kind,
        user_id=user.id if user else None,
        case_id=case_id,
        stage=stage,
        wrapped_secret=encrypt(key, secrets_.to_bytes(), _aad(token_hash)),
    )
    db.session.add(row)
    db.session.flush()
    cookie = base64.urlsafe_b64encode(token).decode() + "." + base64.urlsafe_b64encode(key).decode()
    _state().setdefault("set_cookies", {})[kind] = cookie
    _state().setdefault("sessions", {})[kind] = (row, secrets_, key)
    return row


def update_session(kind: str, secrets_: SessionSecrets, *, stage: str) -> None:
    """Replace what the current session holds (e.g. after the second factor)."""
    row, _, key = _state()["sessions"][kind]
    row.stage = stage
    row.wrapped_secret = encrypt(key, secrets_.to_bytes(), _aad(row.token_hash))
    _state()["sessions"][kind] = (row, secrets_, key)


def _parse_cookie(value: str) -> tuple[bytes, bytes] | None:
    try:
        token_b64, key_b64 = value.split(".", 1)
        token = base64.urlsafe_b64decode(token_b64)
        key = base64.urlsafe_b64decode(key_b64)
    except (ValueError, TypeError):
        return None
    if len(token) != 32 or len(key) != 32:
        return None
    return token, key


def load_session(kind: str) -> tuple[AuthSession, SessionSecrets] | None:
    """The valid session of this kind for this request, or ``None`` (expired ones deleted)."""
    cache = _state().setdefault("sessions", {})
    if kind in cache:
        row, secrets_, _ = cache[kind]
        return row, secrets_
    cookie = request.cookies.get(COOKIES[kind][0])
    parsed = _parse_cookie(cookie) if cookie else None
    if parsed is None:
        return None
    token, key = parsed
    token_hash = hashlib.sha256(token).digest()
    row = db.session.scalar(
        select(AuthSession).where(AuthSession.token_hash == token_hash, AuthSession.kind == kind)
    )
    if row is None:
        return None
    now = utcnow()
    idle = timedelta(seconds=int(current_app.config["AUTH_IDLE_TIMEOUT_SECONDS"]))
    absolute = timedelta(seconds=int(current_app.config["AUTH_ABSOLUTE_TIMEOUT_SECONDS"]))
    if now - row.last_seen_at > idle or now - row.created_at > absolute:
        db.session.delete(row)
        db.session.commit()
        _state().setdefault("clear_cookies", set()).add(kind)
        return None
    if kind == STAFF and (row.user is None or row.user.disabled):
        return None
    try:
        secrets_ = SessionSecrets.from_bytes(decrypt(key, row.wrapped_secret, _aad(token_hash)))
    except DecryptionError:
        return None
    if now - row.last_seen_at > timedelta(seconds=60):
        row.last_seen_at = now
        db.session.commit()
    cache[kind] = (row, secrets_, key)
    return row, secrets_


def end_session(kind: str) -> None:
    """Destroy the current session server-side and clear its cookie."""
    loaded = load_session(kind)
    # A lock may already have deleted it in bulk (every half-finished session of an account).
    if loaded is not None and inspect(loaded[0]).persistent:
        db.session.delete(loaded[0])
    _state().setdefault("sessions", {}).pop(kind, None)
    _state().setdefault("clear_cookies", set()).add(kind)


def end_user_sessions(user_id: int) -> None:
    """Destroy every session of an account (used when it is disabled or reset)."""
    db.session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))


def active_private_key(kind: str) -> PrivateKey | None:
    """The signed-in reader's private key, if the session is fully authenticated."""
    loaded = load_session(kind)
    if loaded is None or loaded[0].stage != "active":
        return None
    return loaded[1].private_key


def _write_cookies(response: Response) -> Response:
    secure = bool(current_app.config["SESSION_COOKIE_SECURE"])
    for kind in _state().get("clear_cookies", set()):
        name, path = COOKIES[kind]
        response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="Strict")
    for kind, value in _state().get("set_cookies", {}).items():
        name, path = COOKIES[kind]
        # No max_age: a session cookie, gone when the browser closes (shared devices).
        response.set_cookie(name, value, path=path, secure=secure, httponly=True, samesite="Strict")
    return response


def _load_staff_user(_request: Any) -> User | None:
    loaded = load_session(STAFF)
    if loaded is None or loaded[0].stage != "active":
        return None
    return loaded[0].user


def init_staff_sessions(app: Flask) -> None:
    """Wire sessions into Flask-Login and the response cycle."""
    login_manager.request_loader(_load_staff_user)
    login_manager.login_view = "accounts.sign_in"
    login_manager.session_protection = None  # our sessions are server-side, not Flask's
    app.after_request(_write_cookies)

    @app.before_request
    def _forget_cached_user() -> None:
        # Flask-Login caches the user on ``g``, which lives as long as the app context;
        # the signed-in user must be worked out afresh for every request.
        g.pop("_login_user", None)
