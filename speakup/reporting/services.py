"""The reporter's side: submitting a sealed report and following it up with a receipt."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select

from speakup.audit.services import record
from speakup.cases import custody
from speakup.cases.categories import SPEAK_UP_AGAIN_LABELS
from speakup.cases.content import (
    AttachmentView,
    CaseContent,
    add_message,
    encrypt_json,
    read_attachment,
    read_case_content,
    store_attachment,
    write_unversioned,
)
from speakup.cases.custody import ReaderInfo, open_case_key, route_readers
from speakup.cases.deadlines import acknowledgement_deadlines
from speakup.cases.models import (
    DETRIMENT_AUTHOR,
    Case,
    DisclosureMode,
    Exclusion,
    KeyType,
    Route,
    Status,
)
from speakup.cases.policy import SlaPolicy
from speakup.cases.workflow import (
    FINISHED,
    WITHDRAWN_MESSAGE,
    allowed_targets,
    reporter_reopen,
    reporter_withdraw,
)
from speakup.crypto import (
    Argon2Params,
    DecryptionError,
    PrivateKey,
    derive_key,
    generate_keypair,
    new_data_key,
    new_salt,
    open_sealed,
    seal,
    unwrap_private_key,
    wrap_private_key,
)
from speakup.crypto.receipt import ALPHABET, blind_index, generate_receipt, normalise_receipt
from speakup.db import utcnow
from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.attachments import SanitisedFile
from speakup.stats.facts import emit_fact
from speakup.stats.vocab import ETHNIC_GROUP_CODES, PAY_BAND_LABELS, STAFF_GROUP_LABELS

REFERENCE_PREFIX = "SU"


@dataclass
class ReportInput:
    """A validated report, as the form gathered it."""

    organisation_id: int
    route: Route
    disclosure_mode: DisclosureMode
    what_happened: str
    submission_token: str
    chosen_guardian_id: int | None = None
    excluded_guardian_ids: list[int] = field(default_factory=list)
    when: str = ""
    categories: list[str] = field(default_factory=list)
    desired_outcome: str = ""
    name: str = ""
    contact: str = ""
    escalation_consent: bool = False
    #: "If your concern is passed to another guardian, may they see who you are?"
    identity_later_consent: bool = False
    attachments: list[SanitisedFile] = field(default_factory=list)
    #: "about you", for statistics only: never stored with the case
    ethnicity: str = ""
    staff_group: str = ""
    pay_band: str = ""


@dataclass(frozen=True, repr=False)
class Submission:
    """A committed-to-be case and the receipt to show once."""

    case: Case
    receipt: str


class DuplicateSubmissionError(ValidationError):
    """The same form was posted twice (e.g. a refresh after submitting)."""


def new_reference() -> str:
    """A random, non-sequential public case reference, e.g. ``SU-7K3M-Q9TX``."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{REFERENCE_PREFIX}-{body[:4]}-{body[4:]}"


def submission_token_hash(token: str) -> bytes:
    """The stored form of a submission token."""
    return hashlib.sha256(b"speakup-submission|" + token.encode()).digest()


def submit_report(
    data: ReportInput, *, pepper: bytes, params: Argon2Params, sla: dict[str, int]
) -> Submission:
    """Create a case whose content only the route's readers, the recovery key and the
    reporter can open. Flushes; the caller commits and only then shows the receipt."""
    token_hash = submission_token_hash(data.submission_token)
    if db.session.scalar(select(Case.id).where(Case.submission_token_hash == token_hash)):
        raise DuplicateSubmissionError(
            "This report was already received. Its receipt was shown once when you sent it."
        )
    organisation = db.session.get(Organisation, data.organisation_id)
    if organisation is None:
        raise ValidationError("Choose the organisation where it happened.")
    excluded = set(data.excluded_guardian_ids)
    if data.route == Route.POOL and data.chosen_guardian_id in excluded:
        raise ValidationError(
            "You chose a guardian you also named as involved. Choose someone else."
        )
    readers = route_readers(data.route, organisation.id, data.chosen_guardian_id, excluded)
    if not readers:
        raise ValidationError(
            "Nobody on the route you chose can receive your concern (everyone there is named as "
            "involved, or there is nobody yet). Choose another route, such as a guardian from "
            "the regional pool or the Race Equality and Inclusion Panel."
        )

    # The receipt-derived key does not depend on the row, so stretch it before any DB work.
    receipt = generate_receipt()
    normalised = normalise_receipt(receipt) or ""
    reporter_key = generate_keypair()
    reporter_public = reporter_key.public_key()
    salt = new_salt()
    reporter_kek = derive_key(normalised.encode(), salt, params)

    now = utcnow()
    # The organisation's own service levels win over the configured defaults.
    working_days = organisation.sla_acknowledge_working_days or sla["acknowledge_working_days"]
    ceiling_days = organisation.sla_acknowledge_ceiling_days or sla["acknowledge_ceiling_days"]
    ack_by, ack_ceiling = acknowledgement_deadlines(now, working_days, ceiling_days)
    case = Case(
        reference=new_reference(),
        route=str(data.route),
        organisation_id=organisation.id,
        chosen_guardian_id=data.chosen_guardian_id if data.route == Route.POOL else None,
        disclosure_mode=str(data.disclosure_mode),
        escalation_consent=data.escalation_consent,
        identity_later_consent=data.identity_later_consent
        and data.disclosure_mode != DisclosureMode.ANONYMOUS,
        received_at=now,
        acknowledge_by=ack_by,
        acknowledge_ceiling=ack_ceiling,
        last_update_at=now,
        receipt_index=blind_index(pepper, normalised),
        reporter_public_mlkem=reporter_public.mlkem,
        reporter_public_x25519=reporter_public.x25519,
        reporter_wrapped_private_key=b"",
        reporter_kdf_salt=salt,
        reporter_kdf_time_cost=params.time_cost,
        reporter_kdf_memory_kib=params.memory_kib,
        reporter_kdf_parallelism=params.parallelism,
        submission_token_hash=token_hash,
        report_ct=b"",
    )
    db.session.add(case)
    db.session.flush()
    case.reporter_wrapped_private_key = wrap_private_key(
        reporter_key,
        reporter_kek,
        table="concern_case",
        row_id=case.id,
        field="reporter_private_key",
    )
    for user_id in sorted(excluded):
        db.session.add(Exclusion(case_id=case.id, user_id=user_id))
    db.session.flush()

    dek = new_data_key()
    case.report_ct = encrypt_json(
        dek,
        {
            "what_happened": data.what_happened,
            "when": data.when,
            "categories": data.categories,
            "desired_outcome": data.desired_outcome,
        },
        table="concern_case",
        row_id=case.id,
        field="report",
    )
    idk = None
    if data.disclosure_mode != DisclosureMode.ANONYMOUS:
        idk = new_data_key()
        case.identity_ct = encrypt_json(
            idk,
            {"name": data.name, "contact": data.contact},
            table="concern_case",
            row_id=case.id,
            field="identity",
        )
    custody.seal_new_case(case, readers, dek, idk)
    for upload in data.attachments:
        store_attachment(case, dek, upload)
    record("case.submitted", actor_kind="reporter", case_id=case.id, detail=f"route={case.route}")
    # The "about you" answers go only into this unlinkable fact, never onto the case.
    emit_fact(
        "submitted",
        organisation,
        now,
        route=case.route,
        disclosure_mode=case.disclosure_mode,
        ethnicity=data.ethnicity if data.ethnicity in ETHNIC_GROUP_CODES else None,
        staff_group=data.staff_group if data.staff_group in STAFF_GROUP_LABELS else None,
        pay_band=data.pay_band if data.pay_band in PAY_BAND_LABELS else None,
    )
    db.session.flush()
    return Submission(case, receipt)


def find_case_by_receipt(receipt: str, *, pepper: bytes) -> Case | None:
    """Look a case up by its receipt's blind index: no Argon2 work for a wrong receipt."""
    normalised = normalise_receipt(receipt)
    if normalised is None:
        return None
    return db.session.scalar(
        select(Case).where(Case.receipt_index == blind_index(pepper, normalised))
    )


def unlock_reporter_key(case: Case, receipt: str, max_concurrency: int) -> PrivateKey | None:
    """Argon2id(receipt) → the reporter's private key, or None if it does not open."""
    normalised = normalise_receipt(receipt)
    if normalised is None:
        return None
    params = Argon2Params(
        time_cost=case.reporter_kdf_time_cost,
        memory_kib=case.reporter_kdf_memory_kib,
        parallelism=case.reporter_kdf_parallelism,
        max_concurrency=max_concurrency,
    )
    kek = derive_key(normalised.encode(), case.reporter_kdf_salt, params)
    try:
        return unwrap_private_key(
            kek,
            case.reporter_wrapped_private_key,
            table="concern_case",
            row_id=case.id,
            field="reporter_private_key",
        )
    except DecryptionError:
        return None


def reporter_keys(case: Case, private_key: PrivateKey) -> tuple[bytes, bytes | None]:
    """Open the DEK (always sealed to the reporter) and the IDK if one exists."""
    dek = open_case_key(case, private_key, KeyType.DEK)
    if dek is None:
        raise ValidationError("This case can no longer be opened.")
    return dek, open_case_key(case, private_key, KeyType.IDK)


@dataclass(frozen=True)
class ReporterCaseView:
    """What the reporter's follow-up page shows."""

    content: CaseContent
    speak_up_again: dict[str, str] | None
    #: who can read the concern, and whether each can see who she is
    readers: list[ReaderInfo]


def open_own_case(case: Case, private_key: PrivateKey) -> ReporterCaseView:
    """The reporter reads their own case; audited like any other opening."""
    dek, idk = reporter_keys(case, private_key)
    content = read_case_content(case, dek, idk)
    record("case.opened", actor_kind="reporter", case_id=case.id)
    return ReporterCaseView(
        content, read_speak_up_again(case, private_key), custody.readers_for_reporter(case)
    )


def download_own_attachment(
    case: Case, private_key: PrivateKey, attachment_id: int
) -> tuple[AttachmentView, bytes]:
    """The reporter downloads an attachment of their own case; audited."""
    dek, _ = reporter_keys(case, private_key)
    view, data = read_attachment(case, dek, attachment_id)
    record(
        "case.attachment_downloaded",
        actor_kind="reporter",
        case_id=case.id,
        detail=f"attachment={attachment_id}",
    )
    return view, data


def send_reporter_message(
    case: Case, private_key: PrivateKey, body: str, uploads: list[SanitisedFile]
) -> None:
    """The reporter adds a message (and files) to the thread."""
    dek, _ = reporter_keys(case, private_key)
    add_message(case, dek, author_kind="reporter", body=body, uploads=uploads)
    record("case.reporter_message", actor_kind="reporter", case_id=case.id)


def reveal_identity(case: Case, private_key: PrivateKey, name: str, contact: str) -> None:
    """A reporter shares who she is after sending (becoming confidential). Custody seals a
    fresh identity key only to the current readers her consents allow; sealing needs only
    public keys, so she can do it alone."""
    dek, _ = reporter_keys(case, private_key)
    seen_by = custody.share_identity(case, dek, name, contact)
    case.last_update_at = utcnow()
    names = ", ".join(u.display_name for u in seen_by) or "nobody yet"
    custody.add_service_message(case, dek, f"You shared who you are. It can be seen by: {names}.")
    record("case.identity_revealed", actor_kind="reporter", case_id=case.id)


def identity_readers_if_shared(case: Case) -> list[str]:
    """Who would see her identity if she shared it now (the sharing page names them)."""
    return custody.identity_readers_if_shared(case)


def update_consents(
    case: Case,
    private_key: PrivateKey,
    *,
    escalation: bool,
    identity_to_panel: bool,
    identity_to_later: bool,
) -> None:
    """The reporter gives or withdraws her consents. Custody then makes the readers match
    at once: someone newly allowed gets her identity, someone no longer allowed loses it
    (and the identity key is rotated). Escalation already carried out cannot be undone
    from here; she is told so plainly instead."""
    dek, idk = reporter_keys(case, private_key)
    panel_holds = (
        any(u.role == "panel_member" for u in custody.current_readers(case))
        and case.route != Route.PANEL
    )
    if not escalation and panel_holds:
        raise ValidationError(
            "Your concern is already with the regional panel, so your agreement to "
            "escalation cannot be withdrawn here. Write to your guardian if you want the "
            "panel to stop."
        )
    changes = {
        "escalation_consent": escalation,
        "identity_escalation_consent": identity_to_panel,
        "identity_later_consent": identity_to_later,
    }
    for column, value in changes.items():
        if bool(getattr(case, column)) != value:
            setattr(case, column, value)
            record(
                f"case.{column}",
                actor_kind="reporter",
                case_id=case.id,
                detail="given" if value else "withdrawn",
            )
    custody.apply_identity_consents(case, dek, idk)


def _speak_up_again_purpose() -> str:
    return "speak-up-again"


def record_speak_up_again(case: Case, private_key: PrivateKey, answer: str, words: str) -> None:
    """The reporter answers "Given your experience, would you speak up again?". The answer
    is sealed to her own key only, so no guardian can read it beside her name: it is
    counted (without her case) in the statistics and nowhere else."""
    if case.status not in (Status.FEEDBACK_GIVEN, Status.CLOSED):
        raise ValidationError("You can answer this once you have had feedback.")
    if answer not in SPEAK_UP_AGAIN_LABELS:
        raise ValidationError("Choose an answer.")
    reporter_keys(case, private_key)  # proves she can open the case
    case.speak_up_again_ct = seal(
        case.reporter_public_key,
        json.dumps({"answer": answer, "words": words}).encode(),
        purpose=_speak_up_again_purpose(),
        case_id=case.id,
    )
    record("case.speak_up_again_answered", actor_kind="reporter", case_id=case.id)
    if not case.counted_answer:
        case.counted_answer = True
        emit_fact("speak_up_again", case.organisation, utcnow(), answer=answer, route=case.route)


def read_speak_up_again(case: Case, private_key: PrivateKey) -> dict[str, str] | None:
    """The reporter's own answer, if given (only her key opens it)."""
    if case.speak_up_again_ct is None:
        return None
    try:
        raw = open_sealed(
            private_key,
            case.speak_up_again_ct,
            purpose=_speak_up_again_purpose(),
            case_id=case.id,
        )
    except DecryptionError:
        return None
    answer: dict[str, str] = json.loads(raw)
    return answer


def report_detriment(case: Case, private_key: PrivateKey, text: str, policy: SlaPolicy) -> None:
    """A detriment check-in reply: added to the thread, and a finished case is reopened."""
    dek, _ = reporter_keys(case, private_key)
    add_message(case, dek, author_kind=DETRIMENT_AUTHOR, body="Detriment check-in: " + text.strip())
    record("case.detriment_reported", actor_kind="reporter", case_id=case.id)
    # The statistic is cases in which detriment was reported: a reporter who tells us
    # again at a later check-in is still one case (the thread keeps every report). The
    # flag only ever goes one way, so it is set without the version check, and only the
    # request whose UPDATE turned it on counts the case.
    if not case.counted_detriment and write_unversioned(
        case, {"counted_detriment": True}, Case.counted_detriment.is_(False)
    ):
        emit_fact("detriment", case.organisation, utcnow(), route=case.route)
    if Status(case.status) in FINISHED:
        reporter_reopen(case, policy)


def can_withdraw(case: Case) -> bool:
    """Whether the workflow lets her withdraw now (not once feedback was given or the
    case is finished: then there is nothing left to stop)."""
    return Status.WITHDRAWN in allowed_targets(case.status)


def withdraw_concern(case: Case, private_key: PrivateKey, policy: SlaPolicy) -> None:
    """The reporter withdraws her concern: the case becomes withdrawn through the workflow
    table, her guardians are told in the thread, and statistics count only that it was
    withdrawn (the one closure fact, whose outcome says so)."""
    if not can_withdraw(case):
        raise ValidationError(
            "Your concern can no longer be withdrawn: it has had feedback or is already "
            "finished. You can still send a message to your guardian."
        )
    dek, _ = reporter_keys(case, private_key)
    reporter_withdraw(case, policy)
    custody.add_service_message(case, dek, WITHDRAWN_MESSAGE)
