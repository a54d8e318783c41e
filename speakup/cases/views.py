"""Guardian pages: the inbox of cases sealed to me, a case, replying, downloading."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from speakup.accounts.sessions import STAFF, active_private_key
from speakup.cases.categories import RACE_EQUALITY_LABELS
from speakup.cases.downloads import attachment_response
from speakup.cases.forms import ReplyForm
from speakup.cases.services import download_attachment, list_inbox, open_case, reply_to_reporter
from speakup.crypto import PrivateKey
from speakup.errors import ForbiddenError
from speakup.extensions import db
from speakup.reporting.attachments import AttachmentError
from speakup.reporting.uploads import sanitise_uploads

bp = Blueprint("cases", __name__, url_prefix="/staff/cases")


def _private_key() -> PrivateKey:
    key = active_private_key(STAFF)
    if key is None or not current_user.is_reader:
        raise ForbiddenError
    return key


@bp.route("/")
def inbox() -> ResponseReturnValue:
    """Cases sealed to the signed-in reader, newest first, paginated."""
    if not current_user.is_reader:
        raise ForbiddenError("Only guardians and panel members have a case inbox.")
    page = request.args.get("page", 1, type=int) or 1
    result = list_inbox(current_user, page, int(current_app.config["INBOX_PAGE_SIZE"]))
    return render_template("cases/inbox.html", inbox=result)


def _render_case(
    reference: str, form: ReplyForm | None = None, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    case, content = open_case(reference, current_user, _private_key())
    db.session.commit()  # the audit event for this open
    return (
        render_template(
            "cases/case.html",
            case=case,
            content=content,
            form=form or ReplyForm(),
            race_labels=RACE_EQUALITY_LABELS,
            error=error,
        ),
        status,
    )


@bp.route("/<reference>")
def show(reference: str) -> ResponseReturnValue:
    """The decrypted case for one of its readers (404 for anyone else)."""
    return _render_case(reference)


@bp.route("/<reference>/messages", methods=["POST"])
def reply(reference: str) -> ResponseReturnValue:
    """Reply to the reporter."""
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            uploads = sanitise_uploads(form.attachments.data)
            reply_to_reporter(
                reference, current_user, _private_key(), form.body.data.strip(), uploads
            )
            db.session.commit()
        except AttachmentError as exc:
            db.session.rollback()
            return _render_case(reference, form, str(exc), 400)
        return redirect(url_for("cases.show", reference=reference, _anchor="messages"))
    return _render_case(reference, form, None, 400)


@bp.route("/<reference>/attachments/<int:attachment_id>")
def download(reference: str, attachment_id: int) -> ResponseReturnValue:
    """Download an attachment (audited), never rendered inline."""
    view, data = download_attachment(reference, attachment_id, current_user, _private_key())
    db.session.commit()
    return attachment_response(view, data)
