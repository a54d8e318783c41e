"""Confirmation pages for the actions that are hard to undo (issue 9): handing a case over,
removing a reader, escalating to the panel and closing.

Each GET says what will happen and changes nothing; its button POSTs to the action's own
endpoint in :mod:`speakup.cases.actions`, carrying the version the guardian saw, so a
change made meanwhile by someone else is still answered with a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from speakup.accounts.models import User
from speakup.cases.custody import current_readers, pending_readers
from speakup.cases.models import Case, DisclosureMode, Status
from speakup.cases.policy import checkin_dates, policy_for, purge_date
from speakup.cases.services import get_case_for_reader, pool_guardians
from speakup.cases.views import bp, private_key, render_case
from speakup.cases.workflow import MESSAGE_TEMPLATES, allowed_targets
from speakup.dates import uk_date
from speakup.db import utcnow
from speakup.ids import bounded_int


@dataclass
class Confirmation:
    """What one confirmation page shows and sends."""

    title: str
    consequences: list[str]
    action: str
    button: str
    hidden: dict[str, str] = field(default_factory=dict)
    #: the words to the reporter, editable on the page (closing only)
    message: str | None = None
    warning: bool = False


def _seen_version(case: Case) -> int:
    """The version the guardian saw on the case page (else the current one)."""
    return request.args.get("version", type=bounded_int) or case.version


def _chosen(candidates: list[User]) -> User | None:
    wanted = request.args.get("user_id", type=bounded_int)
    return next((u for u in candidates if u.id == wanted), None)


def _render(case: Case, confirmation: Confirmation) -> ResponseReturnValue:
    confirmation.hidden.setdefault("version", str(_seen_version(case)))
    return render_template("cases/confirm.html", case=case, c=confirmation)


def _reporter_words(case: Case, name: str, *, later: bool) -> str:
    if case.disclosure_mode == DisclosureMode.ANONYMOUS and not case.identity_ct:
        return "The reporter is anonymous: nobody can see who they are."
    if later and case.identity_later_consent:
        return (
            "The reporter agreed that a guardian their concern is passed to may see who "
            f"they are, so {name} will."
        )
    return f"{name} will not see who the reporter is: the reporter has not agreed to that."


@bp.route("/<reference>/hand-over/confirm")
def confirm_hand_over(reference: str) -> ResponseReturnValue:
    """Hand over to a pool guardian: who gets the case, whether you keep it."""
    case, _, _ = get_case_for_reader(reference, current_user, private_key())
    offered = [u for u in pool_guardians(case) if u.id != current_user.id]
    target = _chosen(offered)
    if target is None:
        return render_case(reference, error="Choose a guardian from the list.", status=400)
    remove_self = request.args.get("remove_self") == "y"
    where = f" ({target.organisation.name})" if target.organisation else ""
    consequences = [
        f"{target.display_name}{where} will be able to read the concern, its files and "
        "every message.",
        _reporter_words(case, target.display_name, later=True),
        "The reporter is told in their messages that their concern was passed on.",
        "You will no longer be able to open this case."
        if remove_self
        else "You keep your access to this case.",
    ]
    hidden = {"user_id": str(target.id)}
    if remove_self:
        hidden["remove_self"] = "y"
    return _render(
        case,
        Confirmation(
            title=f"Hand this case over to {target.display_name}?",
            consequences=consequences,
            action=url_for("cases.hand_over", reference=reference),
            button="Yes, hand over",
            hidden=hidden,
            warning=remove_self,
        ),
    )


@bp.route("/<reference>/readers/remove/confirm")
def confirm_remove_reader(reference: str) -> ResponseReturnValue:
    """Remove a reader: they lose the case and the key changes."""
    case, _, _ = get_case_for_reader(reference, current_user, private_key())
    target = _chosen(current_readers(case) + pending_readers(case))
    if target is None:
        return render_case(reference, error="Choose a reader from the list.", status=400)
    yourself = target.id == current_user.id
    consequences = [
        (
            "You will no longer be able to open this case."
            if yourself
            else f"{target.display_name} will no longer be able to open this case."
        ),
        "Their copy of the case key is deleted and the case is locked under a new key, so "
        "nothing written afterwards can be opened with an old copy.",
        "The reporter is told in their messages who can read their concern now.",
    ]
    return _render(
        case,
        Confirmation(
            title=f"Remove {'your own' if yourself else target.display_name + '’s'} access?",
            consequences=consequences,
            action=url_for("cases.remove_reader", reference=reference),
            button="Yes, remove access",
            hidden={"user_id": str(target.id)},
            warning=True,
        ),
    )


@bp.route("/<reference>/escalate/confirm")
def confirm_escalate(reference: str) -> ResponseReturnValue:
    """Escalate to the regional panel: who gets the case, and whether they see her name."""
    case, _, _ = get_case_for_reader(reference, current_user, private_key())
    if not case.escalation_consent or Status.ESCALATED not in allowed_targets(case.status):
        return render_case(
            reference,
            error="This case cannot be escalated now: it needs the reporter's consent and a "
            "case that is being assessed or in progress.",
            status=400,
        )
    who = (
        "The panel will see who the reporter is: the reporter agreed to that."
        if case.identity_escalation_consent and case.identity_ct
        else "The panel will not see who the reporter is."
    )
    consequences = [
        "Every member of the regional Race Equality and Inclusion Panel will be able to read "
        "the concern, its files and every message.",
        who,
        "The case becomes “Escalated”; you keep your access.",
        "The reporter is told in their messages that the panel has their concern.",
    ]
    return _render(
        case,
        Confirmation(
            title="Escalate this case to the regional panel?",
            consequences=consequences,
            action=url_for("cases.escalate", reference=reference),
            button="Yes, escalate to the regional panel",
        ),
    )


@bp.route("/<reference>/close")
def confirm_close(reference: str) -> ResponseReturnValue:
    """Close the case: the words to the reporter, the check-ins, when it is deleted."""
    case, _, _ = get_case_for_reader(reference, current_user, private_key())
    if Status.CLOSED not in allowed_targets(case.status):
        return render_case(
            reference, error="This case can be closed only after feedback is given.", status=400
        )
    policy = policy_for(case.organisation, current_app.config)
    now = utcnow()
    checkins = checkin_dates(now, policy)
    consequences = [
        "The reporter gets the message below and is asked whether they would speak up again.",
        (
            "You will check in with the reporter about detriment on "
            + ", ".join(uk_date(d) for d in checkins)
            + "."
            if checkins
            else "No detriment check-ins are scheduled."
        ),
        f"Everything in the case is deleted for good on {uk_date(purge_date(now, policy))}.",
        "It is counted once in the statistics as closed. It can be reopened if needed.",
    ]
    return _render(
        case,
        Confirmation(
            title="Close this case?",
            consequences=consequences,
            action=url_for("cases.change_state", reference=reference),
            button="Yes, close the case",
            hidden={"target": Status.CLOSED.value},
            message=MESSAGE_TEMPLATES[Status.CLOSED],
        ),
    )
