"""Guardian pages: the inbox of cases sealed to me, a case, replying, downloading.

Workflow and access actions on a case live in :mod:`speakup.cases.actions`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from speakup.accounts.models import Role
from speakup.accounts.sessions import STAFF, active_private_key
from speakup.cases import categories
from speakup.cases.custody import pending_case_references
from speakup.cases.downloads import attachment_response
from speakup.cases.forms import (
    AssignForm,
    HandOverForm,
    RemoveReaderForm,
    ReplyForm,
    StatusForm,
    TriageForm,
    VersionForm,
)
from speakup.cases.models import Status
from speakup.cases.policy import checkin_dates, policy_for
from speakup.cases.services import (
    INBOX_FILTERS,
    INBOX_SORTS,
    assignable_guardians,
    download_attachment,
    list_inbox,
    open_case,
    organisation_overview,
    pool_guardians,
    reply_to_reporter,
)
from speakup.cases.workflow import ACTION_LABELS, MESSAGE_TEMPLATES, allowed_targets
from speakup.crypto import PrivateKey
from speakup.db import utcnow
from speakup.errors import ForbiddenError
from speakup.extensions import db
from speakup.ids import bounded_int
from speakup.reporting.attachments import AttachmentError
from speakup.reporting.forms import choice_list
from speakup.reporting.uploads import sanitise_uploads

bp = Blueprint("cases", __name__, url_prefix="/staff/cases")


def private_key() -> PrivateKey:
    """The signed-in reader's unlocked private key (403 for non-readers)."""
    key = active_private_key(STAFF)
    if key is None or not current_user.is_reader:
        raise ForbiddenError
    return key


@bp.route("/")
def inbox() -> ResponseReturnValue:
    """Cases sealed to the signed-in reader, filtered and sorted, paginated."""
    if not current_user.is_reader:
        raise ForbiddenError("Only guardians and panel members have a case inbox.")
    result = list_inbox(
        current_user,
        request.args.get("page", 1, type=bounded_int) or 1,
        int(current_app.config["INBOX_PAGE_SIZE"]),
        filter_name=request.args.get("filter", "all"),
        sort=request.args.get("sort", "received"),
        due_soon_days=int(current_app.config["SLA_DUE_SOON_DAYS"]),
    )
    return render_template(
        "cases/inbox.html",
        inbox=result,
        filters=INBOX_FILTERS,
        sorts=INBOX_SORTS,
        now=utcnow(),
        waiting=pending_case_references(current_user),
    )


@bp.route("/overview")
def overview() -> ResponseReturnValue:
    """A lead guardian's overview of the organisation's open cases (no content)."""
    if current_user.role != Role.LEAD_GUARDIAN or current_user.organisation_id is None:
        raise ForbiddenError("Only lead guardians have an organisation overview.")
    cases = organisation_overview(current_user, utcnow())
    by_state: dict[str, int] = {}
    for case in cases:
        by_state[case.status] = by_state.get(case.status, 0) + 1
    return render_template("cases/overview.html", cases=cases, by_state=by_state, now=utcnow())


def render_case(
    reference: str,
    *,
    error: str | None = None,
    status: int = 200,
    typed: tuple[str, str] | None = None,
    **forms: Any,
) -> ResponseReturnValue:
    """The case page with every form it offers (``forms`` override ones that failed).

    ``typed`` is (target state, the words the guardian wrote) from a status change that
    failed — a conflict or a refused move — so her words come back instead of the template.
    """
    view = open_case(reference, current_user, private_key())
    db.session.commit()  # the audit event for this open
    case = view.case
    version = case.version
    targets = sorted(allowed_targets(case.status), key=lambda s: list(ACTION_LABELS).index(s))
    status_forms = []
    for target in targets:
        kept = typed is not None and typed[0] == target.value
        form = StatusForm(
            formdata=None,
            target=target.value,
            version=version,
            message=typed[1] if typed is not None and kept else MESSAGE_TEMPLATES.get(target, ""),
        )
        status_forms.append((target, form))
    triage = view.triage
    triage_form = forms.get("triage_form") or TriageForm(
        formdata=None,
        version=version,
        elements=triage.elements if triage else [],
        race_codes=triage.race_codes if triage else view.content.report.get("categories", []),
        about=triage.about if triage else [],
        flags=triage.flags if triage else [],
        priority=triage.priority if triage else case.priority,
    )
    assign_form = forms.get("assign_form") or AssignForm(formdata=None, version=version)
    assign_form.user_id.choices = choice_list(
        [("", "Choose a guardian")]
        + [(str(u.id), u.display_name) for u in assignable_guardians(case)]
    )
    hand_over_form = forms.get("hand_over_form") or HandOverForm(formdata=None, version=version)
    hand_over_form.user_id.choices = choice_list(
        [("", "Choose a guardian")]
        + [
            (str(u.id), f"{u.display_name} ({u.organisation.name if u.organisation else ''})")
            for u in pool_guardians(case)
            if u.id != current_user.id
        ]
    )
    remove_form = forms.get("remove_form") or RemoveReaderForm(formdata=None, version=version)
    remove_form.user_id.choices = choice_list(
        [("", "Choose a reader")]
        + [(str(u.id), u.display_name) for u in view.readers + view.pending]
    )
    policy = policy_for(case.organisation, current_app.config)
    escalation_possible = Status.ESCALATED in allowed_targets(case.status)
    return (
        render_template(
            "cases/case.html",
            view=view,
            case=case,
            content=view.content,
            form=forms.get("reply_form") or _reply_form(typed, targets),
            status_forms=status_forms,
            typed=typed,
            action_labels=ACTION_LABELS,
            triage_form=triage_form,
            assign_form=assign_form,
            hand_over_form=hand_over_form,
            remove_form=remove_form,
            version_form=VersionForm(formdata=None, version=version),
            can_escalate=case.escalation_consent and escalation_possible,
            escalation_possible=escalation_possible,
            is_lead=current_user.role == Role.LEAD_GUARDIAN
            and current_user.organisation_id == case.organisation_id,
            checkins=checkin_dates(case.closed_at, policy) if case.closed_at else [],
            cat=categories,
            race_labels=categories.RACE_EQUALITY_LABELS,
            now=utcnow(),
            error=error,
        ),
        status,
    )


def _reply_form(typed: tuple[str, str] | None, targets: list[Status]) -> ReplyForm:
    """The reply box; it takes the typed words of a move no longer offered, so they are
    never lost (she can send them as a message or copy them)."""
    if typed and typed[1].strip() and typed[0] not in {t.value for t in targets}:
        return ReplyForm(formdata=None, body=typed[1])
    return ReplyForm()


@bp.route("/<reference>")
def show(reference: str) -> ResponseReturnValue:
    """The decrypted case for one of its readers (404 for anyone else)."""
    return render_case(reference)


@bp.route("/<reference>/messages", methods=["POST"])
def reply(reference: str) -> ResponseReturnValue:
    """Reply to the reporter."""
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            uploads = sanitise_uploads(form.attachments.data)
            reply_to_reporter(
                reference,
                current_user,
                private_key(),
                form.body.data.strip(),
                uploads,
                current_app.config,
            )
            db.session.commit()
        except AttachmentError as exc:
            db.session.rollback()
            return render_case(reference, error=str(exc), status=400, reply_form=form)
        return redirect(url_for("cases.show", reference=reference, _anchor="messages"))
    return render_case(reference, status=400, reply_form=form)


@bp.route("/<reference>/attachments/<int:attachment_id>")
def download(reference: str, attachment_id: int) -> ResponseReturnValue:
    """Download an attachment (audited), never rendered inline."""
    view, data = download_attachment(reference, attachment_id, current_user, private_key())
    db.session.commit()
    return attachment_response(view, data)


@bp.route("/<reference>/audit")
def audit_trail(reference: str) -> ResponseReturnValue:
    """Who did what to this case and when — for its readers; never content."""
    from sqlalchemy import select

    from speakup.accounts.models import User
    from speakup.audit.models import AuditEvent
    from speakup.cases.services import get_case_for_reader

    case, _, _ = get_case_for_reader(reference, current_user, private_key())
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.seq)
    ).all()
    names = dict(db.session.execute(select(User.id, User.display_name)).all())
    return render_template("cases/audit.html", case=case, events=events, names=names)
