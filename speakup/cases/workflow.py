"""The case workflow (DESIGN §6): one explicit transition table, clocks, templated messages.

Every change goes through :func:`change_status` (or :func:`speakup.cases.access.escalate_case`
for escalation, which also re-seals keys). Each change checks the version the actor saw
(optimistic locking), writes an audit event and updates the SLA clocks in the same flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from speakup.accounts.models import User
from speakup.audit.services import record
from speakup.cases.content import add_message, write_unversioned
from speakup.cases.custody import open_case_key
from speakup.cases.models import Case, KeyType, Status
from speakup.cases.policy import SlaPolicy, checkin_dates, days_from, purge_date
from speakup.crypto import PrivateKey
from speakup.db import utcnow
from speakup.errors import ConflictError, NotFoundError, ValidationError
from speakup.stats.facts import emit_fact, ttc_bucket

#: from-state → states it may move to. Escalation has its own service (it re-seals keys).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.ACKNOWLEDGED, Status.WITHDRAWN}),
    Status.ACKNOWLEDGED: frozenset({Status.ASSESSING, Status.WITHDRAWN}),
    Status.ASSESSING: frozenset(
        {Status.IN_PROGRESS, Status.ESCALATED, Status.REFERRED, Status.SIGNPOSTED, Status.WITHDRAWN}
    ),
    Status.IN_PROGRESS: frozenset(
        {
            Status.ESCALATED,
            Status.REFERRED,
            Status.SIGNPOSTED,
            Status.FEEDBACK_GIVEN,
            Status.WITHDRAWN,
        }
    ),
    Status.ESCALATED: frozenset({Status.IN_PROGRESS, Status.FEEDBACK_GIVEN, Status.WITHDRAWN}),
    Status.REFERRED: frozenset({Status.FEEDBACK_GIVEN, Status.WITHDRAWN}),
    Status.SIGNPOSTED: frozenset({Status.FEEDBACK_GIVEN, Status.WITHDRAWN}),
    Status.FEEDBACK_GIVEN: frozenset({Status.CLOSED, Status.IN_PROGRESS}),
    Status.CLOSED: frozenset({Status.REOPENED}),
    Status.WITHDRAWN: frozenset({Status.REOPENED}),
    Status.REOPENED: frozenset({Status.ASSESSING, Status.IN_PROGRESS, Status.WITHDRAWN}),
}

#: states in which the case is finished (no update clock runs)
FINISHED = frozenset({Status.CLOSED, Status.WITHDRAWN})

#: action labels for buttons, by target state
ACTION_LABELS: dict[Status, str] = {
    Status.ACKNOWLEDGED: "Acknowledge",
    Status.ASSESSING: "Start assessing",
    Status.IN_PROGRESS: "Mark in progress",
    Status.ESCALATED: "Escalate to the regional panel",
    Status.REFERRED: "Refer",
    Status.SIGNPOSTED: "Signpost",
    Status.FEEDBACK_GIVEN: "Give feedback",
    Status.CLOSED: "Close",
    Status.WITHDRAWN: "Withdraw",
    Status.REOPENED: "Reopen",
}

#: the reporter message offered (editable) with each transition; empty = none offered
MESSAGE_TEMPLATES: dict[Status, str] = {
    Status.ACKNOWLEDGED: (
        "Thank you for speaking up. I have received your concern and I am looking at it. "
        "I will update you at least every 4 weeks, and you can reply here at any time."
    ),
    Status.REFERRED: (
        "I have referred your concern to the people who can look into it. I will keep you "
        "updated, and I will not share who you are without your permission."
    ),
    Status.SIGNPOSTED: (
        "I think the best route for your concern is the one I describe below. I am here if "
        "you want to talk it through."
    ),
    Status.FEEDBACK_GIVEN: ("Here is what has happened as a result of your concern: "),
    Status.CLOSED: (
        "I am closing your concern now. Thank you for speaking up. Please tell me, using the "
        "question on this page, whether you would speak up again. If anything happens to you "
        "because you spoke up, tell me here: I will check in with you over the next year."
    ),
    Status.REOPENED: "I have reopened your concern and will be in touch.",
}


#: each state as the end of "The case …", for sentences (never the raw state name)
STATE_SENTENCES: dict[Status, str] = {
    Status.RECEIVED: "is waiting to be acknowledged",
    Status.ACKNOWLEDGED: "has been acknowledged",
    Status.ASSESSING: "is being assessed",
    Status.IN_PROGRESS: "is in progress",
    Status.ESCALATED: "has been escalated to the regional panel",
    Status.REFERRED: "has been referred",
    Status.SIGNPOSTED: "has been signposted",
    Status.FEEDBACK_GIVEN: "has had feedback",
    Status.CLOSED: "is closed",
    Status.WITHDRAWN: "has been withdrawn",
    Status.REOPENED: "has been reopened",
}

#: what the actor is told once a move is done
DONE_MESSAGES: dict[Status, str] = {
    Status.ACKNOWLEDGED: "The case was acknowledged.",
    Status.ASSESSING: "You started assessing the case.",
    Status.IN_PROGRESS: "The case is in progress.",
    Status.ESCALATED: "The case was escalated to the regional panel.",
    Status.REFERRED: "The case was referred.",
    Status.SIGNPOSTED: "The reporter was signposted.",
    Status.FEEDBACK_GIVEN: "Feedback was given.",
    Status.CLOSED: "The case was closed.",
    Status.WITHDRAWN: "The case was withdrawn.",
    Status.REOPENED: "The case was reopened.",
}

#: the message the reporter gets when she withdraws (her guardians read it in the thread)
WITHDRAWN_MESSAGE = (
    "This concern was withdrawn by the person who raised it. Its guardians will take no "
    "further action on it. Messages can still be sent here."
)


def illegal_move_message(current: Status, target: Status) -> str:
    """Why a move is refused, in words (the states as sentences, the moves as buttons)."""
    order = list(ACTION_LABELS)
    allowed = sorted(allowed_targets(current), key=order.index)
    nexts = ", ".join(f"“{ACTION_LABELS[s]}”" for s in allowed) or "nothing"
    label = ACTION_LABELS.get(target)
    move = f"“{label}”" if label else "that"
    return (
        f"The case {STATE_SENTENCES[current]}, so {move} is not possible now. "
        f"What can be done next: {nexts}."
    )


class IllegalTransitionError(ValidationError):
    """A move the workflow table does not allow."""


@dataclass(frozen=True, repr=False)
class Actor:
    """A signed-in reader acting on a case, with their unlocked private key."""

    user: User
    private_key: PrivateKey


def allowed_targets(status: str) -> frozenset[Status]:
    """Where a case in ``status`` may go next."""
    return TRANSITIONS.get(Status(status), frozenset())


def open_dek(case: Case, actor: Actor) -> bytes:
    """The actor's opened data key, or 404 if they are not a reader of this case."""
    dek = open_case_key(case, actor.private_key, KeyType.DEK, user_id=actor.user.id)
    if dek is None:
        raise NotFoundError
    return dek


def check_version(case: Case, expected_version: int | None) -> None:
    """Refuse to act on a state the actor did not see (optimistic locking)."""
    if expected_version is not None and case.version != expected_version:
        raise ConflictError


def check_transition(case: Case, target: Status) -> None:
    """Raise a clear error if the table does not allow this move."""
    current = Status(case.status)
    if target not in allowed_targets(current):
        raise IllegalTransitionError(illegal_move_message(current, target))


def apply_clocks(case: Case, target: Status, policy: SlaPolicy, now: datetime) -> None:
    """Update the SLA timestamps for a move into ``target``."""
    if target == Status.ACKNOWLEDGED:
        case.acknowledged_at = now
        case.feedback_by = days_from(now, policy.feedback_days)
        case.next_update_by = days_from(now, policy.update_days)
    elif target in FINISHED:
        _count_closure(case, target, now)
        case.closed_at = now
        case.next_update_by = None
        case.purge_after = purge_date(now, policy)
        dates = checkin_dates(now, policy) if target == Status.CLOSED else []
        case.next_checkin_at = dates[0] if dates else None
    elif target == Status.REOPENED:
        case.closed_at = None
        case.purge_after = None
        case.next_checkin_at = None
        case.next_update_by = days_from(now, policy.update_days)
    if target == Status.ESCALATED:
        case.escalated_at = now
    if target == Status.FEEDBACK_GIVEN and case.feedback_given_at is None:
        case.feedback_given_at = now


def _count_closure(case: Case, target: Status, now: datetime) -> None:
    """The first closure (or withdrawal) of a case becomes one statistics fact."""
    if case.counted_closure:
        return
    case.counted_closure = True
    emit_fact(
        "closed",
        case.organisation,
        now,
        route=case.route,
        disclosure_mode=case.disclosure_mode,
        outcome=target.value,
        ttc_bucket=ttc_bucket(case.received_at, now),
        ack_met=case.acknowledged_at is not None and case.acknowledged_at <= case.acknowledge_by,
        feedback_met=None
        if case.feedback_given_at is None or case.feedback_by is None
        else case.feedback_given_at <= case.feedback_by,
    )


def note_update_to_reporter(case: Case, policy: SlaPolicy, now: datetime) -> None:
    """A guardian message restarts the 4-weekly update clock (unless the case is finished)
    and, after closure, counts as the due detriment check-in.

    The clocks are written without the version check (:func:`write_unversioned`), so replies
    sent at the same moment as other messages all succeed; each write is conditional on
    the state it was computed for, as the row stands when the database applies it."""
    write_unversioned(case, {"last_update_at": now})
    write_unversioned(
        case,
        {"next_update_by": days_from(now, policy.update_days)},
        Case.status.not_in([str(s) for s in FINISHED]),
    )
    if (
        Status(case.status) in FINISHED
        and case.closed_at is not None
        and case.next_checkin_at is not None
        and case.next_checkin_at <= now
    ):
        later = [d for d in checkin_dates(case.closed_at, policy) if d > now]
        write_unversioned(
            case,
            {"next_checkin_at": later[0] if later else None},
            Case.status.in_([str(s) for s in FINISHED]),
            Case.closed_at == case.closed_at,
            Case.next_checkin_at <= now,
        )


def change_status(
    case: Case,
    actor: Actor,
    target: Status,
    *,
    policy: SlaPolicy,
    expected_version: int | None,
    message: str | None = None,
) -> Case:
    """Move a case along the workflow, optionally sending the reporter a message."""
    dek = open_dek(case, actor)
    check_version(case, expected_version)
    if target == Status.ESCALATED:
        raise IllegalTransitionError("Use escalation to the regional panel to escalate a case.")
    check_transition(case, target)
    if target == Status.FEEDBACK_GIVEN:
        check_feedback(message)
    previous = case.status
    now = utcnow()
    case.status = str(target)
    apply_clocks(case, target, policy, now)
    if message and message.strip():
        add_message(
            case, dek, author_kind="guardian", author_user_id=actor.user.id, body=message.strip()
        )
        note_update_to_reporter(case, policy, now)
    record(
        "case.status_changed",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=f"{previous}->{target.value}",
    )
    return case


def _plain(text: str) -> str:
    """Words only: spacing collapsed, trailing punctuation and spaces dropped."""
    return " ".join(text.split()).rstrip(" .:;,-–")


def check_feedback(message: str | None) -> None:
    """Feedback must say something: not empty, and not the template's opening words alone
    (a guardian pressing "Give feedback" without editing it would send a half sentence)."""
    written = _plain(message or "")
    template = _plain(MESSAGE_TEMPLATES[Status.FEEDBACK_GIVEN])
    if not written:
        raise ValidationError("Write the feedback to the reporter.")
    if not _plain(written.removeprefix(template)):
        raise ValidationError(
            "Your feedback is only the opening words of the template. Write what has "
            "happened as a result of the concern before giving feedback."
        )


def reporter_withdraw(case: Case, policy: SlaPolicy) -> None:
    """The reporter withdraws her concern (same transition table as a guardian's moves).
    The closure fact counts it once, with outcome "withdrawn" and nothing else of hers."""
    check_transition(case, Status.WITHDRAWN)
    previous = case.status
    case.status = str(Status.WITHDRAWN)
    apply_clocks(case, Status.WITHDRAWN, policy, utcnow())
    record(
        "case.status_changed",
        actor_kind="reporter",
        case_id=case.id,
        detail=f"{previous}->withdrawn",
    )


def reporter_reopen(case: Case, policy: SlaPolicy) -> None:
    """A reporter's detriment report reopens a finished case (same transition table)."""
    check_transition(case, Status.REOPENED)
    previous = case.status
    case.status = str(Status.REOPENED)
    apply_clocks(case, Status.REOPENED, policy, utcnow())
    record(
        "case.status_changed",
        actor_kind="reporter",
        case_id=case.id,
        detail=f"{previous}->reopened",
    )
