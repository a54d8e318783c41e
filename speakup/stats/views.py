"""Statistics for leaders (released tables of their scope only), "you said, we did", and the
lead guardian's national return. Nothing here reads a case or an unreleased fact, except the
national return, which counts facts for the lead guardian's own organisation (and asks
:mod:`speakup.cases.exclusions` only whether she is named in a concern of the quarter)."""

from __future__ import annotations

import csv
import io

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from speakup.accounts.models import Role
from speakup.audit.services import record
from speakup.cases.exclusions import is_named_in_period, lead_named_in_period
from speakup.db import utcnow
from speakup.errors import ForbiddenError, NotFoundError
from speakup.extensions import db
from speakup.organisations.models import Organisation, System
from speakup.reporting.forms import EmptyForm, choice_list
from speakup.security import public_endpoint
from speakup.stats.access import leader_scope
from speakup.stats.catalogue import SPECS
from speakup.stats.forms import (
    ACTION_STATUS_LABELS,
    THEME_LABELS,
    ActionForm,
    ActionStatusForm,
)
from speakup.stats.models import Action, Release, ReleaseTable, ReturnSignoff
from speakup.stats.national_return import CURRENT_VERSION, build_return, return_csv
from speakup.stats.periods import Quarter, latest_releasable, parse_quarter

bp = Blueprint("stats", __name__)

#: display order of a scope's tables on the dashboard
ORDER = [
    "trend",
    "submitted_total",
    "by_route",
    "by_disclosure",
    "by_route_disclosure",
    "by_ethnicity",
    "by_ethnic_group",
    "by_staff_group",
    "by_pay_band",
    "by_element",
    "by_race_code",
    "acknowledgement",
    "feedback",
    "time_to_close",
    "by_outcome",
    "speak_up_again",
    "detriment_total",
    "ethnicity_year",
]


def _releases() -> list[Release]:
    return list(db.session.scalars(select(Release).order_by(Release.period.desc())))


def _scope_tables(release: Release, kind: str, scope_id: int) -> list[ReleaseTable]:
    tables = db.session.scalars(
        select(ReleaseTable).where(
            ReleaseTable.release_id == release.id,
            ReleaseTable.scope_kind == kind,
            ReleaseTable.scope_id == scope_id,
        )
    ).all()
    rank = {key: i for i, key in enumerate(ORDER)}
    return sorted((t for t in tables if t.table_key in rank), key=lambda t: rank[t.table_key])


@bp.route("/staff/statistics/")
def dashboard() -> ResponseReturnValue:
    """A leader's released statistics, one quarter at a time."""
    scope = leader_scope(current_user)
    releases = _releases()
    release = None
    if releases:
        wanted = request.args.get("period")
        release = next((r for r in releases if r.period == wanted), releases[0])
    tables = _scope_tables(release, scope.kind, scope.id) if release else []
    # Concerns raised in every released quarter, oldest first, in one query.
    trend = [
        (parse_quarter(period).label, payload["total"])
        for period, payload in db.session.execute(
            select(Release.period, ReleaseTable.payload)
            .join(ReleaseTable, ReleaseTable.release_id == Release.id)
            .where(
                ReleaseTable.scope_kind == scope.kind,
                ReleaseTable.scope_id == scope.id,
                ReleaseTable.table_key == "submitted_total",
            )
            .order_by(Release.period)
        )
    ]
    return render_template(
        "stats/dashboard.html",
        scope=scope,
        releases=releases,
        release=release,
        quarter=parse_quarter(release.period) if release else None,
        tables=tables,
        trend=trend,
        parse_quarter=parse_quarter,
    )


def _leader_table(period: str, table_key: str) -> ReleaseTable:
    scope = leader_scope(current_user)
    table = db.session.scalar(
        select(ReleaseTable)
        .join(Release, Release.id == ReleaseTable.release_id)
        .where(
            Release.period == period,
            ReleaseTable.scope_kind == scope.kind,
            ReleaseTable.scope_id == scope.id,
            ReleaseTable.table_key == table_key,
        )
    )
    if table is None:
        raise NotFoundError
    return table


@bp.route("/staff/statistics/<period>/<table_key>.svg")
def chart(period: str, table_key: str) -> ResponseReturnValue:
    """The chart drawn at release time, as an image."""
    table = _leader_table(period, table_key)
    if not table.svg:
        raise NotFoundError
    response = Response(table.svg, mimetype="image/svg+xml")
    # Shown through <img>, which runs no script; the chart's own inline styles are allowed.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def _cell_text(cell: dict, k: int) -> str:
    # One wording for every hidden cell, so the label itself says nothing (see _cell.html).
    if cell["status"] == "published":
        return str(cell["value"])
    return f"fewer than {k} or withheld"


@bp.route("/staff/statistics/<period>/<table_key>.csv")
def table_csv(period: str, table_key: str) -> ResponseReturnValue:
    """A published table as CSV (published values only, with the same labels).

    Every row carries the period, the scope and the table as values, so files from several
    downloads can be stacked and filtered; the note on hidden counts is a row like the rest.
    """
    table = _leader_table(period, table_key)
    scope = leader_scope(current_user)
    k = table.release.k
    payload = table.payload
    out = io.StringIO()
    writer = csv.writer(out)
    where = [period, scope.name, payload.get("title", table_key)]
    if payload.get("columns"):
        writer.writerow(["period", "scope", "table", "row", *[lb for _, lb in payload["columns"]]])
        for value, label in payload["rows"]:
            cells = [_cell_text(payload["cells"][f"{value}|{c}"], k) for c, _ in payload["columns"]]
            writer.writerow([*where, label, *cells])
    else:
        writer.writerow(["period", "scope", "table", "row", "count"])
        for value, label in payload.get("rows") or []:
            writer.writerow([*where, label, _cell_text(payload["cells"][value], k)])
        if not payload.get("rows"):
            writer.writerow([*where, "Total", _cell_text(payload["total"], k)])
    if payload.get("total") and payload.get("rows") and not payload.get("multi_label"):
        writer.writerow([*where, "Total", _cell_text(payload["total"], k)])
    writer.writerow(
        [
            *where,
            "Note",
            f"A hidden count reads 'fewer than {k} or withheld': either it is below {k}, or it "
            "is withheld so that a small count cannot be worked out. Other counts are rounded "
            "to the nearest 5.",
        ]
    )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers.set(
        "Content-Disposition", "attachment", filename=f"speakup-{period}-{table_key}.csv"
    )
    return response


# "You said, we did" -----------------------------------------------------------------------


def _period_choices() -> list[tuple[str, str]]:
    latest = latest_releasable(utcnow(), int(current_app.config["STATS_RELEASE_LAG_DAYS"]))
    quarters = []
    q = latest.next()
    for _ in range(8):
        quarters.append((q.key, q.label))
        q = q.previous()
    return quarters


@bp.route("/staff/statistics/actions", methods=["GET", "POST"])
def actions() -> ResponseReturnValue:
    """A leader's actions for their scope: list and publish new ones."""
    scope = leader_scope(current_user)
    form = ActionForm()
    form.period.choices = choice_list(_period_choices())
    if form.validate_on_submit():
        action = Action(
            scope_kind=scope.kind,
            scope_id=scope.id,
            period=form.period.data,
            theme=form.theme.data,
            title=form.title.data.strip(),
            description=form.description.data.strip(),
            status=form.status.data,
            explanation=(form.explanation.data or "").strip(),
            created_by=current_user.id,
        )
        db.session.add(action)
        db.session.flush()
        record(
            "stats.action_published",
            actor_kind="user",
            actor_user_id=current_user.id,
            detail=f"action={action.id}",
        )
        db.session.commit()
        flash("Your action is published on the “You said, we did” page.")
        return redirect(url_for("stats.actions"))
    mine = db.session.scalars(
        select(Action)
        .where(Action.scope_kind == scope.kind, Action.scope_id == scope.id)
        .order_by(Action.created_at.desc())
    ).all()
    status = 400 if form.is_submitted() else 200
    return (
        render_template(
            "stats/actions.html",
            scope=scope,
            form=form,
            actions=mine,
            status_labels=ACTION_STATUS_LABELS,
            theme_labels=THEME_LABELS,
            parse_quarter=parse_quarter,
        ),
        status,
    )


@bp.route("/staff/statistics/actions/<int:action_id>", methods=["POST"])
def update_action(action_id: int) -> ResponseReturnValue:
    """Change an action's status (with a reason when nothing changed)."""
    scope = leader_scope(current_user)
    action = db.session.get(Action, action_id)
    if action is None or (action.scope_kind, action.scope_id) != (scope.kind, scope.id):
        raise NotFoundError
    form = ActionStatusForm()
    if form.validate_on_submit():
        explanation = (form.explanation.data or "").strip()
        if form.status.data == "no_change" and not explanation:
            flash("Explain why nothing changed: staff are owed a reason.", "error")
        else:
            action.status = form.status.data
            action.explanation = explanation or action.explanation
            action.updated_at = utcnow()
            record(
                "stats.action_updated",
                actor_kind="user",
                actor_user_id=current_user.id,
                detail=f"action={action.id}",
            )
            db.session.commit()
            flash("The action was updated.")
    return redirect(url_for("stats.actions"))


@bp.route("/you-said-we-did")
@public_endpoint
def public_actions() -> ResponseReturnValue:
    """Every published action, for any member of staff, without signing in."""
    systems = {s.id: s.name for s in db.session.scalars(select(System))}
    orgs = {o.id: o.name for o in db.session.scalars(select(Organisation))}
    chosen = request.args.get("scope", "")
    query = select(Action).order_by(Action.updated_at.desc())
    if chosen:
        kind, _, ident = chosen.partition(":")
        if kind in ("region", "system", "organisation") and ident.isdigit():
            query = query.where(Action.scope_kind == kind, Action.scope_id == int(ident))
    items = db.session.scalars(query).all()

    def scope_name(action: Action) -> str:
        if action.scope_kind == "system":
            return systems.get(action.scope_id, "")
        if action.scope_kind == "organisation":
            return orgs.get(action.scope_id, "")
        return "The Midlands region"

    return render_template(
        "stats/public_actions.html",
        actions=items,
        scope_name=scope_name,
        status_labels=ACTION_STATUS_LABELS,
        theme_labels=THEME_LABELS,
        parse_quarter=parse_quarter,
        systems=sorted(systems.items(), key=lambda kv: kv[1]),
        orgs=sorted(orgs.items(), key=lambda kv: kv[1]),
        chosen=chosen,
    )


# National return ---------------------------------------------------------------------------


#: why a lead guardian named in a concern of the quarter does not see its return: the return
#: counts every concern, her overview hides those naming her, so the difference would tell
#: her how many name her. The words say why without any count.
NAMED_IN_PERIOD = (
    "You are named in a concern in this period, so another guardian of your organisation "
    "prepares this return."
)


def _named(user_id: int, organisation_id: int, quarter: Quarter) -> bool:
    # The statistics feature reads no case; speakup.cases.exclusions answers yes or no.
    return is_named_in_period(user_id, organisation_id, quarter.start, quarter.end)


def _preparer_organisation(quarter: Quarter) -> tuple[Organisation, bool]:
    """The organisation whose return the signed-in user may prepare for ``quarter``, and
    whether she is named in one of its concerns of the quarter (and so sees no figure).

    Its lead guardian prepares it; when a lead guardian is named in a concern of the quarter,
    another guardian of the organisation may prepare it instead.
    """
    org = current_user.organisation
    role = current_user.role
    if org is not None and role == Role.LEAD_GUARDIAN:
        return org, _named(current_user.id, org.id, quarter)
    if (
        org is not None
        and role == Role.GUARDIAN
        and lead_named_in_period(org.id, quarter.start, quarter.end)
    ):
        return org, _named(current_user.id, org.id, quarter)
    raise ForbiddenError("Only an organisation's lead guardian signs off its national return.")


def _guardian_of_an_organisation() -> None:
    # Refused before the period is read, so no one else learns even which quarters exist.
    if current_user.role not in (Role.LEAD_GUARDIAN, Role.GUARDIAN) or (
        current_user.organisation is None
    ):
        raise ForbiddenError("Only an organisation's lead guardian signs off its national return.")


@bp.route("/staff/national-return", methods=["GET", "POST"])
def national_return() -> ResponseReturnValue:
    """The organisation's quarterly return, with CSV download and sign-off."""
    _guardian_of_an_organisation()
    default = latest_releasable(utcnow(), 0)
    period = request.values.get("period") or default.key
    try:
        quarter = parse_quarter(period)
    except ValueError:
        raise NotFoundError from None
    if quarter.end > utcnow():
        if request.method == "POST":
            raise NotFoundError  # nothing is signed off for a quarter still running
        flash("That quarter has not ended yet.", "error")
        quarter = default
    org, named = _preparer_organisation(quarter)
    quarters = []
    q = default
    for _ in range(8):
        quarters.append(q)
        q = q.previous()
    if named:
        if request.method == "POST":
            raise ForbiddenError(NAMED_IN_PERIOD)
        return render_template(
            "stats/national_return.html",
            org=org,
            quarter=quarter,
            quarters=quarters,
            named=NAMED_IN_PERIOD,
        )
    lines = build_return(org.id, quarter.key)
    signoff = db.session.scalar(
        select(ReturnSignoff).where(
            ReturnSignoff.organisation_id == org.id, ReturnSignoff.period == quarter.key
        )
    )
    form = EmptyForm()
    if request.method == "POST" and form.validate_on_submit() and signoff is None:
        signoff = ReturnSignoff(
            organisation_id=org.id,
            period=quarter.key,
            mapping_version=CURRENT_VERSION,
            signed_by=current_user.id,
        )
        db.session.add(signoff)
        record(
            "stats.return_signed_off",
            actor_kind="user",
            actor_user_id=current_user.id,
            detail=f"organisation={org.id} period={quarter.key}",
        )
        db.session.commit()
        flash(f"You signed off the return for {quarter.label}.")
        return redirect(url_for("stats.national_return", period=quarter.key))
    return render_template(
        "stats/national_return.html",
        org=org,
        quarter=quarter,
        quarters=quarters,
        lines=lines,
        signoff=signoff,
        version=CURRENT_VERSION,
        form=form,
        named=None,
    )


@bp.route("/staff/national-return.csv")
def national_return_csv() -> ResponseReturnValue:
    """The return as CSV for upload to the national collection."""
    _guardian_of_an_organisation()
    try:
        quarter = parse_quarter(request.args.get("period", ""))
    except ValueError:
        raise NotFoundError from None
    if quarter.end > utcnow():
        raise NotFoundError  # no partial return for a quarter still running
    org, named = _preparer_organisation(quarter)
    if named:
        raise ForbiddenError(NAMED_IN_PERIOD)
    lines = build_return(org.id, quarter.key)
    response = Response(
        return_csv(org.code, quarter.key, lines, CURRENT_VERSION), mimetype="text/csv"
    )
    response.headers.set(
        "Content-Disposition", "attachment", filename=f"ftsu-return-{org.code}-{quarter.key}.csv"
    )
    return response


__all__ = ["bp", "SPECS"]
