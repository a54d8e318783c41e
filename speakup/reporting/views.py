"""Public reporter pages: start, report, receipt, follow-up. No staff session reaches here.

Privacy (DESIGN §3.2): nothing on these routes reads, logs or stores an address or user
agent; the only derivative is the rate-limit key in speakup.ratelimit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from speakup.accounts.models import Role, User
from speakup.accounts.sessions import (
    REPORTER,
    SessionSecrets,
    end_session,
    load_session,
    start_session,
)
from speakup.cases.categories import RACE_EQUALITY_LABELS, SPEAK_UP_AGAIN_LABELS
from speakup.cases.downloads import attachment_response
from speakup.cases.models import Case, DisclosureMode, Route
from speakup.cases.policy import policy_for
from speakup.db import utcnow
from speakup.errors import SpeakupError, ValidationError
from speakup.extensions import db, limiter
from speakup.organisations.models import System
from speakup.ratelimit import (
    form_token_key,
    issue_form_token,
    not_refused,
    rate_limit_key,
    salted_key,
)
from speakup.reporting.attachments import AttachmentError
from speakup.reporting.forms import (
    ConsentForm,
    DetrimentForm,
    EmptyForm,
    IdentityForm,
    MessageForm,
    ReceiptForm,
    ReportForm,
    SpeakUpAgainForm,
    choice_list,
)
from speakup.reporting.services import (
    DuplicateSubmissionError,
    ReportInput,
    can_withdraw,
    download_own_attachment,
    find_case_by_receipt,
    identity_readers_if_shared,
    open_own_case,
    record_speak_up_again,
    report_detriment,
    reveal_identity,
    send_reporter_message,
    submit_report,
    unlock_reporter_key,
    update_consents,
    withdraw_concern,
)
from speakup.reporting.uploads import sanitise_uploads
from speakup.security import public_endpoint
from speakup.settings import argon2_params

bp = Blueprint("reporting", __name__)

NEUTRAL_RECEIPT_ERROR = "We could not find a case with that receipt. Check it and try again."


@bp.route("/")
@public_endpoint
def start() -> ResponseReturnValue:
    """Plain-words start page: the three ways, what is kept, what happens next, safety."""
    return render_template("reporter/start.html")


def _month_choices() -> list[tuple[str, str]]:
    today = datetime.now(UTC).date()
    choices = [("", "Prefer not to say")]
    year, month = today.year, today.month
    for _ in range(24):
        label = datetime(year, month, 1, tzinfo=UTC).strftime("%B %Y")
        choices.append((f"{year:04d}-{month:02d}", label))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    choices.append(("earlier", "More than 2 years ago"))
    return choices


def _fill_report_choices(form: ReportForm) -> dict[str, object]:
    systems = db.session.scalars(
        select(System).options(selectinload(System.organisations)).order_by(System.name)
    ).all()
    form.organisation.choices = choice_list(
        [("", "Choose an organisation")]
        + [
            (str(org.id), f"{org.name} ({system.name})")
            for system in systems
            for org in system.organisations
        ]
    )
    form.when.choices = choice_list(_month_choices())
    pool = db.session.scalars(
        select(User)
        .where(User.in_pool.is_(True), User.disabled.is_(False))
        .options(selectinload(User.organisation))
        .order_by(User.display_name)
    ).all()
    form.pool_guardian.choices = choice_list([(str(u.id), u.display_name) for u in pool])
    involved = db.session.scalars(
        select(User)
        .where(
            User.disabled.is_(False),
            User.role.in_([Role.GUARDIAN, Role.LEAD_GUARDIAN, Role.PANEL_MEMBER]),
        )
        .options(selectinload(User.organisation))
        .order_by(User.display_name)
    ).all()
    form.excluded.choices = choice_list([(str(u.id), u.display_name) for u in involved])
    return {"pool": pool, "involved": involved}


def _report_input(form: ReportForm) -> ReportInput:
    uploads = sanitise_uploads(form.attachments.data)
    mode = DisclosureMode(form.disclosure_mode.data)
    known = {choice.value for choice in form.excluded.choices}  # type: ignore[union-attr]
    return ReportInput(
        organisation_id=int(form.organisation.data),
        route=Route(form.route.data),
        chosen_guardian_id=int(form.pool_guardian.data)
        if form.route.data == Route.POOL and form.pool_guardian.data
        else None,
        excluded_guardian_ids=[int(v) for v in form.excluded.data or [] if v in known],
        disclosure_mode=mode,
        what_happened=form.what_happened.data.strip(),
        when=form.when.data or "",
        categories=[c for c in form.categories.data or [] if c in RACE_EQUALITY_LABELS],
        desired_outcome=(form.desired_outcome.data or "").strip(),
        name=(form.name.data or "").strip() if mode != DisclosureMode.ANONYMOUS else "",
        contact=(form.contact.data or "").strip() if mode != DisclosureMode.ANONYMOUS else "",
        escalation_consent=form.escalation_consent.data == "yes",
        identity_later_consent=form.identity_later_consent.data == "yes",
        attachments=uploads,
        submission_token=form.submission_token.data or "",
        ethnicity=form.ethnicity.data or "",
        staff_group=form.staff_group.data or "",
        pay_band=form.pay_band.data or "",
    )


@bp.route("/report", methods=["GET", "POST"])
@public_endpoint
@limiter.limit(
    lambda: current_app.config["RATELIMIT_REPORT_SUBMIT"], methods=["POST"], deduct_when=not_refused
)
@limiter.limit(
    lambda: current_app.config["RATELIMIT_REPORT_FORM_TOKEN"],
    methods=["POST"],
    key_func=form_token_key("submission_token"),
    scope="report-form-token",
)
def new_report() -> ResponseReturnValue:
    """The report form; on success, the receipt — rendered only after the commit."""
    form = ReportForm()
    extra = _fill_report_choices(form)
    if not form.submission_token.data:
        form.submission_token.data = issue_form_token()
    form_error: str | None = None
    if form.validate_on_submit():
        try:
            data = _report_input(form)
            submission = submit_report(
                data,
                pepper=current_app.config["RECEIPT_PEPPER"],
                params=argon2_params(current_app.config),
                sla={
                    "acknowledge_working_days": current_app.config["SLA_ACKNOWLEDGE_WORKING_DAYS"],
                    "acknowledge_ceiling_days": current_app.config["SLA_ACKNOWLEDGE_CEILING_DAYS"],
                },
            )
            db.session.commit()
        except DuplicateSubmissionError as exc:
            db.session.rollback()
            return render_template("reporter/already_sent.html", message=exc.message), 409
        except (AttachmentError, ValidationError) as exc:
            db.session.rollback()
            form_error = str(exc)
        else:
            # Committed: only now is the receipt shown (DESIGN §3.6). Nothing is logged:
            # a log line's time would say when a reporter acted.
            return render_template(
                "reporter/receipt.html",
                receipt=submission.receipt,
                case=submission.case,
                removed=[(a.filename, a.notice) for a in data.attachments],
            )
    status = 400 if form.is_submitted() else 200
    return (
        render_template(
            "reporter/report_form.html",
            form=form,
            form_error=form_error,
            race_labels=RACE_EQUALITY_LABELS,
            **extra,
        ),
        status,
    )


@bp.route("/follow-up", methods=["GET", "POST"])
@public_endpoint
@limiter.limit(lambda: current_app.config["RATELIMIT_FOLLOW_UP_SIGN_IN"], methods=["POST"])
def follow_up() -> ResponseReturnValue:
    """Sign in with a receipt. Wrong or malformed receipts get one neutral error."""
    form = ReceiptForm()
    error = None
    if form.validate_on_submit():
        receipt = form.receipt.data or ""
        case = find_case_by_receipt(receipt, pepper=current_app.config["RECEIPT_PEPPER"])
        private_key = None
        if case is not None:
            private_key = unlock_reporter_key(
                case, receipt, int(current_app.config["ARGON2_MAX_CONCURRENCY"])
            )
        if case is None or private_key is None:
            error = NEUTRAL_RECEIPT_ERROR
        else:
            end_session(REPORTER)
            start_session(REPORTER, SessionSecrets(private_key), stage="active", case_id=case.id)
            db.session.commit()
            return redirect(url_for("reporting.case"))
    elif form.is_submitted():
        error = NEUTRAL_RECEIPT_ERROR if form.receipt.data else "Enter your receipt"
    status = 400 if error else 200
    return render_template("reporter/follow_up.html", form=form, error=error), status


def _reporter_case_key() -> str:
    """Limiter key for the reporter's case (whoever signs in to it), else her address."""
    loaded = load_session(REPORTER)
    if loaded is None or loaded[0].case_id is None:
        return rate_limit_key()
    return salted_key(b"case", str(loaded[0].case_id).encode())


def _files_sent() -> int:
    return sum(1 for f in request.files.getlist("attachments") if f.filename)


#: Messages and detriment reports: per case, and coarse per address.
_reporter_writes = [
    limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_REPORTER_MESSAGE"],
        scope="reporter-message",
        key_func=_reporter_case_key,
        methods=["POST"],
    ),
    limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_REPORTER_ATTACHMENTS"],
        scope="reporter-attachments",
        key_func=_reporter_case_key,
        methods=["POST"],
        cost=_files_sent,
    ),
    limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_REPORTER_MESSAGE_ADDRESS"],
        scope="reporter-message-address",
        methods=["POST"],
        deduct_when=not_refused,
    ),
]


def _limit_reporter_writes(view: Callable[[], ResponseReturnValue]) -> Any:
    for limit in reversed(_reporter_writes):
        view = limit(view)
    return view


def _reporter_case() -> tuple[Case, SessionSecrets] | None:
    loaded = load_session(REPORTER)
    if loaded is None or loaded[0].case_id is None:
        return None
    case = db.session.get(Case, loaded[0].case_id)
    if case is None:
        return None
    return case, loaded[1]


def _render_case(
    case: Case,
    secrets_: SessionSecrets,
    *,
    error: str | None = None,
    status: int = 200,
    **forms: Any,
) -> ResponseReturnValue:
    view = open_own_case(case, secrets_.private_key)
    db.session.commit()  # the audit event for this opening
    consent_form = forms.get("consent_form") or ConsentForm(
        formdata=None,
        consent="yes" if case.escalation_consent else "no",
        identity_consent="yes" if case.identity_escalation_consent else "no",
        later_consent="yes" if case.identity_later_consent else "no",
    )
    return (
        render_template(
            "reporter/case.html",
            case=case,
            content=view.content,
            speak_up_again=view.speak_up_again,
            readers=view.readers,
            would_see_identity=identity_readers_if_shared(case),
            message_form=forms.get("message_form") or MessageForm(formdata=None),
            identity_form=forms.get("identity_form") or IdentityForm(formdata=None),
            consent_form=consent_form,
            speak_up_again_form=forms.get("speak_up_again_form") or SpeakUpAgainForm(formdata=None),
            detriment_form=forms.get("detriment_form") or DetrimentForm(formdata=None),
            sign_out_form=EmptyForm(),
            race_labels=RACE_EQUALITY_LABELS,
            answer_labels=SPEAK_UP_AGAIN_LABELS,
            can_withdraw=can_withdraw(case),
            checkin_due=case.next_checkin_at is not None and case.next_checkin_at <= utcnow(),
            error=error,
        ),
        status,
    )


@bp.route("/follow-up/case")
@public_endpoint
def case() -> ResponseReturnValue:
    """The reporter's own case: status, dates, thread, and what they can do."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    return _render_case(*current)


@bp.route("/follow-up/case/messages", methods=["POST"])
@public_endpoint
@_limit_reporter_writes
def send_message() -> ResponseReturnValue:
    """The reporter writes to their guardian."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = MessageForm()
    if form.validate_on_submit():
        try:
            uploads = sanitise_uploads(form.attachments.data)
            send_reporter_message(case_, secrets_.private_key, form.body.data.strip(), uploads)
            db.session.commit()
        except (AttachmentError, SpeakupError) as exc:
            db.session.rollback()
            return _render_case(case_, secrets_, message_form=form, error=str(exc), status=400)
        return redirect(url_for("reporting.case", _anchor="messages"))
    return _render_case(case_, secrets_, message_form=form, status=400)


@bp.route("/follow-up/case/identity", methods=["POST"])
@public_endpoint
def share_identity() -> ResponseReturnValue:
    """Reveal identity later: the case becomes confidential."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = IdentityForm()
    if form.validate_on_submit():
        reveal_identity(
            case_, secrets_.private_key, form.name.data.strip(), form.contact.data.strip()
        )
        db.session.commit()
        return redirect(url_for("reporting.case", _anchor="identity"))
    return _render_case(case_, secrets_, identity_form=form, status=400)


@bp.route("/follow-up/case/consent", methods=["POST"])
@public_endpoint
def escalation_consent() -> ResponseReturnValue:
    """Give or withdraw consent to escalate to the regional panel."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = ConsentForm()
    if form.validate_on_submit():
        try:
            update_consents(
                case_,
                secrets_.private_key,
                escalation=form.consent.data == "yes",
                identity_to_panel=form.identity_consent.data == "yes",
                identity_to_later=form.later_consent.data == "yes",
            )
        except SpeakupError as exc:
            db.session.rollback()
            return _render_case(case_, secrets_, consent_form=form, error=exc.message, status=400)
        db.session.commit()
        return redirect(url_for("reporting.case", _anchor="escalation"))
    return _render_case(case_, secrets_, consent_form=form, status=400)


@bp.route("/follow-up/case/withdraw", methods=["GET", "POST"])
@public_endpoint
def withdraw() -> ResponseReturnValue:
    """Withdraw her concern: GET says what will happen, POST (the confirmation) does it."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = EmptyForm()
    if not can_withdraw(case_):
        return redirect(url_for("reporting.case"))
    if form.validate_on_submit():
        try:
            withdraw_concern(
                case_, secrets_.private_key, policy_for(case_.organisation, current_app.config)
            )
        except SpeakupError as exc:
            db.session.rollback()
            return _render_case(case_, secrets_, error=exc.message, status=400)
        db.session.commit()
        return redirect(url_for("reporting.case"))
    return render_template("reporter/withdraw.html", case=case_, form=form)


@bp.route("/follow-up/case/attachments/<int:attachment_id>")
@public_endpoint
def download(attachment_id: int) -> ResponseReturnValue:
    """Download an attachment of the reporter's own case, never rendered inline."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    view, data = download_own_attachment(case_, secrets_.private_key, attachment_id)
    db.session.commit()
    return attachment_response(view, data)


@bp.route("/follow-up/sign-out", methods=["POST"])
@public_endpoint
def sign_out() -> ResponseReturnValue:
    """Forget the receipt session on this device."""
    form = EmptyForm()
    if form.validate_on_submit():
        end_session(REPORTER)
        db.session.commit()
    return redirect(url_for("reporting.start"))


@bp.route("/follow-up/case/speak-up-again", methods=["POST"])
@public_endpoint
def speak_up_again() -> ResponseReturnValue:
    """Answer "Given your experience, would you speak up again?"."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = SpeakUpAgainForm()
    if form.validate_on_submit():
        try:
            record_speak_up_again(
                case_, secrets_.private_key, form.answer.data, (form.words.data or "").strip()
            )
        except SpeakupError as exc:
            db.session.rollback()
            return _render_case(case_, secrets_, error=exc.message, status=400)
        db.session.commit()
        return redirect(url_for("reporting.case", _anchor="speak-up-again"))
    return _render_case(case_, secrets_, speak_up_again_form=form, status=400)


@bp.route("/follow-up/case/detriment", methods=["POST"])
@public_endpoint
@_limit_reporter_writes
def detriment() -> ResponseReturnValue:
    """Tell the guardian something happened after speaking up (reopens a closed case)."""
    current = _reporter_case()
    if current is None:
        return redirect(url_for("reporting.follow_up"))
    case_, secrets_ = current
    form = DetrimentForm()
    if form.validate_on_submit():
        for attempt in range(3):
            try:
                report_detriment(
                    case_,
                    secrets_.private_key,
                    form.text.data,
                    policy_for(case_.organisation, current_app.config),
                )
                db.session.commit()
                break
            except StaleDataError:
                # Reopening a finished case is a state change; if a guardian changed the
                # case at the same moment, do it again on the case as it now is, so her
                # report is never lost (a reporter has no "case changed" page to act on).
                db.session.rollback()
                if attempt == 2:
                    raise
                case_ = db.session.get_one(Case, case_.id)
        return redirect(url_for("reporting.case", _anchor="messages"))
    return _render_case(case_, secrets_, detriment_form=form, status=400)
