"""Administration (accounts, who accessed what — never content) and the staff account page."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from speakup.accounts.lifecycle import change_password, disable_account, enable_account
from speakup.accounts.models import Role, User
from speakup.accounts.services import client_key
from speakup.accounts.sessions import STAFF, load_session
from speakup.accounts.views import home_endpoint
from speakup.admin.forms import ChangePasswordForm
from speakup.admin.services import reset_staff_account
from speakup.audit.models import AuditEvent
from speakup.db import utcnow
from speakup.errors import ForbiddenError, NotFoundError, SpeakupError
from speakup.extensions import db
from speakup.ids import bounded_int
from speakup.organisations.services import describe_scope
from speakup.reporting.forms import EmptyForm
from speakup.settings import argon2_params

bp = Blueprint("admin", __name__, url_prefix="/staff")

AUDIT_PAGE_SIZE = 50


def _require_admin() -> None:
    if current_user.role != Role.ADMIN:
        raise ForbiddenError("Only administrators can see this page.")


@bp.route("/admin/users")
def users() -> ResponseReturnValue:
    """Every staff account, with disable and reset."""
    _require_admin()
    accounts = db.session.scalars(
        select(User).options(selectinload(User.organisation)).order_by(User.display_name)
    ).all()
    scopes = {
        u.id: describe_scope(u.scope_kind, u.scope_id) for u in accounts if u.role == Role.LEADER
    }
    return render_template("admin/users.html", accounts=accounts, scopes=scopes, now=utcnow())


def _account(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFoundError
    return user


@bp.route("/admin/users/<int:user_id>/disable", methods=["POST"])
def disable_user(user_id: int) -> ResponseReturnValue:
    """Disable an account; its sessions end at once."""
    _require_admin()
    form = EmptyForm()
    if form.validate_on_submit():
        user = _account(user_id)
        if user.id == current_user.id:
            flash("You cannot disable your own account.", "error")
        else:
            disable_account(user, by=current_user)
            db.session.commit()
            flash(f"{user.display_name} is disabled and signed out everywhere.")
    return redirect(url_for("admin.users"))


@bp.route("/admin/users/<int:user_id>/enable", methods=["GET", "POST"])
def enable_user(user_id: int) -> ResponseReturnValue:
    """Re-enable a disabled account, after a confirmation page (GET shows it, POST acts)."""
    _require_admin()
    user = _account(user_id)
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            enable_account(user, by=current_user)
        except SpeakupError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(f"{user.display_name} is enabled and can sign in again.")
        return redirect(url_for("admin.users"))
    if not user.disabled:
        flash(f"{user.display_name}'s account is not disabled.", "error")
        return redirect(url_for("admin.users"))
    return render_template("admin/enable.html", account=user, form=form)


@bp.route("/admin/users/<int:user_id>/reset", methods=["GET", "POST"])
def reset_user(user_id: int) -> ResponseReturnValue:
    """Reset an account (after a confirmation page): the user's key is destroyed and a
    one-time enrolment code is shown once, to be passed on in person."""
    _require_admin()
    user = _account(user_id)
    form = EmptyForm()
    if user.id == current_user.id:
        flash("You cannot reset your own account: change your password instead.", "error")
        return redirect(url_for("admin.users"))
    if form.validate_on_submit():
        result = reset_staff_account(user, by=current_user, config=current_app.config)
        db.session.commit()
        response = make_response(render_template("admin/reset_done.html", user=user, result=result))
        # The code is shown once: never kept in a cache or the browser's history.
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("admin/reset_confirm.html", user=user, form=form)


@bp.route("/admin/audit")
def audit() -> ResponseReturnValue:
    """Who accessed what and when (never content), newest first, filterable."""
    _require_admin()
    # Reporter actions are not listed here at all: their times, even without content, could
    # be matched against door or network logs. Readers of a case see them by day only.
    query = select(AuditEvent).where(AuditEvent.actor_kind != "reporter")
    case_id = request.args.get("case", type=bounded_int)
    user_id = request.args.get("user", type=bounded_int)
    if case_id:
        query = query.where(AuditEvent.case_id == case_id)
    if user_id:
        query = query.where(AuditEvent.actor_user_id == user_id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=bounded_int) or 1), pages)
    events = db.session.scalars(
        query.order_by(AuditEvent.seq.desc())
        .limit(AUDIT_PAGE_SIZE)
        .offset((page - 1) * AUDIT_PAGE_SIZE)
    ).all()
    names = dict(db.session.execute(select(User.id, User.display_name)).all())
    return render_template(
        "admin/audit.html",
        events=events,
        names=names,
        page=page,
        pages=pages,
        total=total,
        case_id=case_id,
        user_id=user_id,
    )


@bp.route("/account/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    """Change one's own password (re-encrypts the private key; no re-sealing needed)."""
    form = ChangePasswordForm()
    error = None
    if form.validate_on_submit():
        try:
            loaded = load_session(STAFF)
            change_password(
                current_user,
                form.current.data or "",
                form.new.data or "",
                argon2_params(current_app.config),
                current_app.config,
                keep_session_id=loaded[0].id if loaded else None,
                client=client_key(request.remote_addr, current_app.config["RATELIMIT_SALT"]),
            )
        except SpeakupError as exc:
            db.session.commit()  # keep a failed-attempt count
            error = exc.message
        else:
            db.session.commit()
            flash("Your password was changed.")
            return redirect(url_for(home_endpoint(current_user)))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/password.html", form=form, error=error), status
