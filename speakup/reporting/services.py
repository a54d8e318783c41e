"""The reporter's side: submitting a sealed report and following it up with a receipt."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from speakup.audit.services import record
from speakup.cases.content import (
    AttachmentView,
    CaseContent,
    add_message,
    decrypt_json,
    encrypt_json,
    read_attachment,
    read_case_content,
    store_attachment,
)
from speakup.cases.deadlines import acknowledgement_deadlines
from speakup.cases.keys import (
    grant_case_key,
    open_case_key,
    reader_ids,
    route_readers,
    seal_to_recovery,
    seal_to_reporter,
)
from speakup.cases.models import Case, CaseKey, DisclosureMode, Exclusion, KeyType, Route
from speakup.cases.policy import SlaPolicy
from speakup.crypto import (
    Argon2Params,
    DecryptionError,
    PrivateKey,
    decrypt_field,
    derive_key,
    encrypt_field,
    generate_keypair,
    new_data_key,
    new_salt,
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
    case.reporter_wrapped_private_key = encrypt_field(
        reporter_kek,
        reporter_key.to_bytes(),
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
    _seal_everywhere(case, organisation, readers, KeyType.DEK, dek)
    if idk is not None:
        _seal_everywhere(case, organisation, readers, KeyType.IDK, idk)
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


def _seal_everywhere(
    case: Case, organisation: Organisation, readers: list, key_type: KeyType, key: bytes
) -> None:
    for reader in readers:
        grant_case_key(case, reader, key_type, key)
    recovery = organisation.recovery_public_key
    if recovery is not None:
        seal_to_recovery(case, recovery, key_type, key)
    seal_to_reporter(case, key_type, key)


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
        raw = decrypt_field(
            kek,
            case.reporter_wrapped_private_key,
            table="concern_case",
            row_id=case.id,
            field="reporter_private_key",
        )
    except DecryptionError:
        return None
    return PrivateKey.from_bytes(raw)


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


def open_own_case(case: Case, private_key: PrivateKey) -> ReporterCaseView:
    """The reporter reads their own case; audited like any other opening."""
    dek, idk = reporter_keys(case, private_key)
    content = read_case_content(case, dek, idk)
    record("case.opened", actor_kind="reporter", case_id=case.id)
    return ReporterCaseView(content, read_speak_up_again(case, dek))


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
    """A reporter shares who they are with the case's current readers (becoming
    confidential). Sealing needs only public keys, so the reporter can do it alone."""
    from speakup.accounts.models import User

    reporter_keys(case, private_key)  # proves the reporter can open the case
    # Always a fresh identity key, sealed to whoever may know the identity now: a copy of
    # an earlier identity key (say, of a reader removed since) opens nothing written here.
    holders = reader_ids(case, KeyType.IDK) if case.identity_ct is not None else reader_ids(case)
    users = [db.session.get(User, uid) for uid in holders if uid is not None]
    db.session.execute(
        delete(CaseKey).where(CaseKey.case_id == case.id, CaseKey.key_type == str(KeyType.IDK))
    )
    idk = new_data_key()
    organisation = db.session.get_one(Organisation, case.organisation_id)
    _seal_everywhere(
        case, organisation, [u for u in users if u is not None and u.is_reader], KeyType.IDK, idk
    )
    case.identity_ct = encrypt_json(
        idk,
        {"name": name, "contact": contact},
        table="concern_case",
        row_id=case.id,
        field="identity",
    )
    if case.disclosure_mode == DisclosureMode.ANONYMOUS:
        case.disclosure_mode = str(DisclosureMode.CONFIDENTIAL)
    case.last_update_at = utcnow()
    record("case.identity_revealed", actor_kind="reporter", case_id=case.id)


def set_escalation_consent(case: Case, consent: bool) -> None:
    """Record whether the reporter allows escalation to the regional panel."""
    case.escalation_consent = consent
    record(
        "case.escalation_consent",
        actor_kind="reporter",
        case_id=case.id,
        detail="given" if consent else "withdrawn",
    )


def record_speak_up_again(case: Case, private_key: PrivateKey, answer: str, words: str) -> None:
    """The reporter answers "Given your experience, would you speak up again?"."""
    from speakup.cases.categories import SPEAK_UP_AGAIN_LABELS
    from speakup.cases.models import Status

    if case.status not in (Status.FEEDBACK_GIVEN, Status.CLOSED):
        raise ValidationError("You can answer this once you have had feedback.")
    if answer not in SPEAK_UP_AGAIN_LABELS:
        raise ValidationError("Choose an answer.")
    dek, _ = reporter_keys(case, private_key)
    case.speak_up_again_ct = encrypt_json(
        dek,
        {"answer": answer, "words": words},
        table="concern_case",
        row_id=case.id,
        field="speak_up_again",
    )
    record("case.speak_up_again_answered", actor_kind="reporter", case_id=case.id)
    if not case.counted_answer:
        case.counted_answer = True
        emit_fact("speak_up_again", case.organisation, utcnow(), answer=answer)


def read_speak_up_again(case: Case, dek: bytes) -> dict[str, str] | None:
    """The reporter's answer, if given."""
    if case.speak_up_again_ct is None:
        return None
    answer: dict[str, str] = decrypt_json(
        dek, case.speak_up_again_ct, table="concern_case", row_id=case.id, field="speak_up_again"
    )
    return answer


def report_detriment(case: Case, private_key: PrivateKey, text: str, policy: SlaPolicy) -> None:
    """A detriment check-in reply: added to the thread, and a finished case is reopened."""
    from speakup.cases.models import Status
    from speakup.cases.workflow import FINISHED, reporter_reopen

    dek, _ = reporter_keys(case, private_key)
    add_message(case, dek, author_kind="reporter", body="Detriment check-in: " + text.strip())
    record("case.detriment_reported", actor_kind="reporter", case_id=case.id)
    if not case.counted_detriment:
        # The statistic is cases in which detriment was reported: a reporter who tells us
        # again at a later check-in is still one case (the thread keeps every report).
        case.counted_detriment = True
        emit_fact("detriment", case.organisation, utcnow())
    if Status(case.status) in FINISHED:
        reporter_reopen(case, policy)


def set_identity_escalation_consent(case: Case, consent: bool) -> None:
    """Separate consent: may the panel learn who the reporter is if the case is escalated?
    Applies to future escalations; an identity already shared cannot be unshared."""
    case.identity_escalation_consent = consent
    record(
        "case.identity_escalation_consent",
        actor_kind="reporter",
        case_id=case.id,
        detail="given" if consent else "withdrawn",
    )
