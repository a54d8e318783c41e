"""Staff sign-in (password, then TOTP; enrolment on first sign-in) and sign-out."""

from __future__ import annotations

import logging
from typing import Any

import segno
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from speakup.accounts.forms import CodeForm, EnrolForm, SignInForm
from speakup.accounts.models import Role
from speakup.accounts.services import (
    SignInError,
    account_locked,
    check_password,
    clear_client_failures,
    client_key,
    complete_enrolment,
    find_user,
    new_totp_secret,
    record_failed_second_factor,
    record_sign_in,
    store_totp_secret,
    totp_uri,
    verify_totp,
)
from speakup.accounts.sessions import (
    STAFF,
    SessionSecrets,
    end_session,
    load_session,
    start_session,
    update_session,
)
from speakup.accounts.signals import staff_signed_in
from speakup.crypto import derive_key, new_salt
from speakup.extensions import db, limiter
from speakup.reporting.forms import EmptyForm
from speakup.security import public_endpoint
from speakup.settings import argon2_params

bp = Blueprint("accounts", __name__, url_prefix="/staff")
log = logging.getLogger("speakup.accounts")

SIGN_IN_ERROR = (
    "The email address, password or security code is not right, or the account is locked."
)
ENROL_ERROR = "The email address or enrolment code is not right, or the code has expired."


def _client() -> bytes:
    """This staff client, as a salted hash (throttling wrong passwords per client)."""
    return client_key(request.remote_addr, current_app.config["RATELIMIT_SALT"])


@bp.app_template_global()
def home_endpoint(user: Any) -> str:
    """Where a staff member's "home" is: readers their case inbox, leaders their statistics,
    administrators the accounts. Navigation never offers a page the role would get a 403 on."""
    if getattr(user, "is_reader", False):
        return "cases.inbox"
    role = getattr(user, "role", None)
    if role == Role.LEADER:
        return "stats.dashboard"
    if role == Role.ADMIN:
        return "admin.users"
    return "accounts.sign_in"


@bp.route("/sign-in", methods=["GET", "POST"])
@public_endpoint
@limiter.limit(lambda: current_app.config["RATELIMIT_STAFF_SIGN_IN"], methods=["POST"])
def sign_in() -> ResponseReturnValue:
    """Step 1: password. Unlocks the private key into a pending server-side session."""
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        params = argon2_params(current_app.config)
        user = find_user(form.email.data or "")
        if user is None:
            # Same cost as a real check, so timing does not reveal which emails exist.
            derive_key((form.password.data or "").encode(), new_salt(), params)
            error = SIGN_IN_ERROR
        else:
            try:
                unlocked = check_password(
                    user, form.password.data or "", params, current_app.config, client=_client()
                )
            except SignInError:
                db.session.commit()  # keep the failure count
                error = SIGN_IN_ERROR
            else:
                end_session(STAFF)
                stage = "password" if unlocked.totp_secret else "enrol"
                secret = unlocked.totp_secret or new_totp_secret()
                start_session(
                    STAFF,
                    SessionSecrets(unlocked.private_key, unlocked.kek, secret),
                    stage=stage,
                    user=user,
                )
                db.session.commit()
                return redirect(url_for("accounts.second_factor"))
    status = 400 if form.is_submitted() else 200
    return render_template("staff/sign_in.html", form=form, error=error), status


@bp.route("/sign-in/code", methods=["GET", "POST"])
@public_endpoint
@limiter.limit(lambda: current_app.config["RATELIMIT_STAFF_SIGN_IN"], methods=["POST"])
def second_factor() -> ResponseReturnValue:
    """Step 2: the TOTP code (or, on first sign-in, enrolment by QR code or secret)."""
    loaded = load_session(STAFF)
    if loaded is None or loaded[0].stage not in ("password", "enrol"):
        return redirect(url_for("accounts.sign_in"))
    row, held = loaded
    user = row.user
    if user is None or held.totp_secret is None or held.kek is None:
        return redirect(url_for("accounts.sign_in"))
    enrolling = row.stage == "enrol"
    if user.disabled or account_locked(user):
        # Checked at every step: a lock ends half-finished sign-ins, whichever session.
        end_session(STAFF)
        db.session.commit()
        return redirect(url_for("accounts.sign_in"))
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        if verify_totp(user, held.totp_secret, form.code.data or ""):
            if enrolling:
                store_totp_secret(user, held.kek, held.totp_secret)
            # The password-derived key and TOTP secret are not kept once signed in.
            update_session(STAFF, SessionSecrets(held.private_key), stage="active")
            record_sign_in(user)
            clear_client_failures(user, _client())
            if user.is_reader:
                staff_signed_in.send(user, private_key=held.private_key)
            db.session.commit()
            return redirect(url_for(home_endpoint(user)))
        record_failed_second_factor(user, current_app.config)
        if account_locked(user):
            end_session(STAFF)
        db.session.commit()
        error = SIGN_IN_ERROR
    qr = None
    if enrolling:
        uri = totp_uri(user, held.totp_secret, current_app.config["AUTH_TOTP_ISSUER"])
        # segno builds the SVG from the URI's bits alone: no user-controlled markup.
        svg = segno.make(uri, error="m").svg_inline(
            scale=4, title="QR code for your authenticator app"
        )
        qr = Markup(svg)  # noqa: S704  # nosec B704
    status = 400 if form.is_submitted() else 200
    return (
        render_template(
            "staff/second_factor.html",
            form=form,
            error=error,
            enrolling=enrolling,
            qr=qr,
            secret=held.totp_secret if enrolling else None,
        ),
        status,
    )


@bp.route("/sign-out", methods=["POST"])
@public_endpoint
def sign_out() -> ResponseReturnValue:
    """Destroy the session server-side, whatever stage it reached."""
    form = EmptyForm()
    if form.validate_on_submit():
        end_session(STAFF)
        db.session.commit()
    return redirect(url_for("accounts.sign_in"))


@bp.route("/enrol", methods=["GET", "POST"])
@public_endpoint
@limiter.limit(lambda: current_app.config["RATELIMIT_STAFF_SIGN_IN"], methods=["POST"])
def enrol() -> ResponseReturnValue:
    """After an administrator's reset: the one-time code and a password of one's own, then
    two-factor enrolment. The administrator never knows the password."""
    form = EnrolForm()
    error = None
    if form.validate_on_submit():
        params = argon2_params(current_app.config)
        user = find_user(form.email.data or "")
        try:
            if user is None or user.disabled:
                raise SignInError
            unlocked = complete_enrolment(
                user, form.code.data or "", form.password.data or "", params
            )
        except SignInError:
            error = ENROL_ERROR
        else:
            end_session(STAFF)
            start_session(
                STAFF,
                SessionSecrets(unlocked.private_key, unlocked.kek, new_totp_secret()),
                stage="enrol",
                user=user,
            )
            db.session.commit()
            return redirect(url_for("accounts.second_factor"))
    status = 400 if form.is_submitted() else 200
    return render_template("staff/enrol.html", form=form, error=error), status
