"""Workflow and access actions on a case (every one a POST carrying the version seen).

Each action runs in the acting reader's request: their session opens the case key when
keys must be re-sealed. A stale version — someone else acted first — is answered with the
case's new state and a clear message (409), never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from speakup.accounts.models import User
from speakup.cases.access import (
    assign_case,
    claim_case,
    escalate_case,
    hand_over_to_pool,
    restore_reader,
    revoke_reader,
    transfer_case,
)
from speakup.cases.forms import (
    AssignForm,
    HandOverForm,
    RemoveReaderForm,
    RestoreReaderForm,
    StatusForm,
    TriageForm,
    VersionForm,
)
from speakup.cases.models import Case, Status
from speakup.cases.policy import policy_for
from speakup.cases.triage import Triage, record_triage
from speakup.cases.views import bp, private_key, render_case
from speakup.cases.workflow import DONE_MESSAGES, Actor, change_status, check_version
from speakup.errors import ConflictError, NotFoundError, SpeakupError, ValidationError
from speakup.extensions import db


def _case(reference: str) -> Case:
    case = db.session.scalar(select(Case).where(Case.reference == reference))
    if case is None:
        raise NotFoundError
    return case


def _user(user_id: str | None) -> User:
    user = db.session.get(User, int(user_id)) if user_id and user_id.isdigit() else None
    if user is None:
        raise ValidationError("Choose someone from the list.")
    return user


def _act(
    reference: str,
    action: Callable[[Case, Actor], object],
    done: str,
    *,
    then: str | None = None,
    typed: tuple[str, str] | None = None,
) -> ResponseReturnValue:
    """Run one action at the request boundary: commit, or roll back and explain. Words the
    actor typed (``typed``) are shown again on failure: a conflict never loses them."""
    actor = Actor(current_user, private_key())
    case = _case(reference)
    try:
        action(case, actor)
        db.session.commit()
    # IntegrityError: two readers did the same grant at once (say, both restored a reset
    # colleague); the unique sealed copy let one win, and the other sees the new state.
    except (ConflictError, StaleDataError, IntegrityError):
        db.session.rollback()
        message = ConflictError.public_message
        if typed and typed[1].strip():
            message += " What you wrote is kept below: check it and send it again."
        return render_case(reference, error=message, status=409, typed=typed)
    except NotFoundError:
        db.session.rollback()
        raise
    except SpeakupError as exc:
        db.session.rollback()
        return render_case(reference, error=exc.message, status=exc.status_code, typed=typed)
    flash(done)
    return redirect(then or url_for("cases.show", reference=reference))


def _invalid(reference: str, **forms: Any) -> ResponseReturnValue:
    return render_case(reference, error="Check the form and try again.", status=400, **forms)


@bp.route("/<reference>/status", methods=["POST"])
def change_state(reference: str) -> ResponseReturnValue:
    """Move the case along the workflow (with an optional message to the reporter)."""
    form = StatusForm()
    if not form.validate_on_submit():
        return _invalid(reference, typed=(form.target.data or "", form.message.data or ""))
    try:
        target = Status(form.target.data)
    except ValueError:
        return _invalid(reference)

    def action(case: Case, actor: Actor) -> object:
        return change_status(
            case,
            actor,
            target,
            policy=policy_for(case.organisation, current_app.config),
            expected_version=form.version.data,
            message=form.message.data,
        )

    return _act(
        reference,
        action,
        DONE_MESSAGES.get(target, "Done."),
        typed=(target.value, form.message.data or ""),
    )


@bp.route("/<reference>/triage", methods=["POST"])
def triage(reference: str) -> ResponseReturnValue:
    """Record the triage."""
    form = TriageForm()
    if not form.validate_on_submit():
        return _invalid(reference, triage_form=form)
    data = Triage(
        elements=list(form.elements.data or []),
        race_codes=list(form.race_codes.data or []),
        about=list(form.about.data or []),
        flags=list(form.flags.data or []),
        priority=form.priority.data,
    )
    return _act(
        reference,
        lambda case, actor: record_triage(case, actor, data, expected_version=form.version.data),
        "Triage saved.",
    )


@bp.route("/<reference>/claim", methods=["POST"])
def claim(reference: str) -> ResponseReturnValue:
    """Take ownership of an unowned case."""
    form = VersionForm()
    if not form.validate_on_submit():
        return _invalid(reference)
    return _act(
        reference,
        lambda case, actor: claim_case(case, actor, expected_version=form.version.data),
        "You have taken this case.",
    )


@bp.route("/<reference>/assign", methods=["POST"])
def assign(reference: str) -> ResponseReturnValue:
    """Lead guardian: assign or transfer within the organisation."""
    form = AssignForm()
    form.user_id.choices = None  # validated by the service, not by a fixed list
    form.user_id.validate_choice = False
    if not form.validate_on_submit():
        return _invalid(reference)

    def action(case: Case, actor: Actor) -> object:
        target = _user(form.user_id.data)
        if form.transfer.data:
            return transfer_case(case, actor, target, expected_version=form.version.data)
        return assign_case(case, actor, target, expected_version=form.version.data)

    return _act(reference, action, "The case was assigned.")


@bp.route("/<reference>/hand-over", methods=["POST"])
def hand_over(reference: str) -> ResponseReturnValue:
    """Hand over to a guardian of the regional pool."""
    form = HandOverForm()
    form.user_id.validate_choice = False
    if not form.validate_on_submit():
        return _invalid(reference)

    def action(case: Case, actor: Actor) -> object:
        return hand_over_to_pool(
            case,
            actor,
            _user(form.user_id.data),
            remove_self=bool(form.remove_self.data),
            expected_version=form.version.data,
        )

    if form.remove_self.data:
        # Without our own access the case page would be a 404: go back to the inbox.
        return _act(
            reference,
            action,
            "The case was handed over and your access removed.",
            then=url_for("cases.inbox"),
        )
    return _act(reference, action, "The case was handed over.")


@bp.route("/<reference>/escalate", methods=["POST"])
def escalate(reference: str) -> ResponseReturnValue:
    """Escalate to the regional panel (only with the reporter's consent)."""
    form = VersionForm()
    if not form.validate_on_submit():
        return _invalid(reference)
    return _act(
        reference,
        lambda case, actor: escalate_case(
            case,
            actor,
            policy=policy_for(case.organisation, current_app.config),
            expected_version=form.version.data,
        ),
        "The case was escalated to the regional panel.",
    )


@bp.route("/<reference>/readers/remove", methods=["POST"])
def remove_reader(reference: str) -> ResponseReturnValue:
    """Remove a reader; the case key is rotated so their old copy opens nothing new."""
    form = RemoveReaderForm()
    form.user_id.validate_choice = False
    if not form.validate_on_submit():
        return _invalid(reference)

    def action(case: Case, actor: Actor) -> object:
        check_version(case, form.version.data)
        target = _user(form.user_id.data)
        revoke_reader(case, actor, target)
        return case

    return _act(reference, action, "The reader was removed and the case key changed.")


@bp.route("/<reference>/readers/restore", methods=["POST"])
def restore_reader_access(reference: str) -> ResponseReturnValue:
    """Restore a reset colleague's access to this case, explicitly (audited)."""
    form = RestoreReaderForm()
    if not form.validate_on_submit():
        return _invalid(reference)

    def action(case: Case, actor: Actor) -> object:
        target = _user(form.user_id.data)
        if not restore_reader(case, actor, target):
            raise ValidationError(
                f"Nothing could be restored for {target.display_name}: "
                "what the reporter agreed to no longer allows it."
            )
        return case

    return _act(reference, action, "Their access to this case was restored.")
