"""Triage: the guardian's coding of a case, stored encrypted under the case's data key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from speakup.audit.services import record
from speakup.cases.categories import (
    CONCERN_ABOUT_LABELS,
    GUARDIAN_FLAG_LABELS,
    NATIONAL_ELEMENT_LABELS,
    PRIORITY_LABELS,
    RACE_EQUALITY_LABELS,
)
from speakup.cases.content import decrypt_json, encrypt_json
from speakup.cases.models import Case, Status
from speakup.cases.workflow import Actor, check_version, open_dek
from speakup.db import utcnow
from speakup.errors import ValidationError
from speakup.stats.facts import elements_mask, emit_fact, race_mask


@dataclass
class Triage:
    """What the guardian recorded."""

    elements: list[str] = field(default_factory=list)
    race_codes: list[str] = field(default_factory=list)
    about: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    priority: str = "normal"

    def validate(self) -> None:
        """Only known codes; anything else is a programming or tampering error."""
        for values, known in (
            (self.elements, NATIONAL_ELEMENT_LABELS),
            (self.race_codes, RACE_EQUALITY_LABELS),
            (self.about, CONCERN_ABOUT_LABELS),
            (self.flags, GUARDIAN_FLAG_LABELS),
        ):
            unknown = [v for v in values if v not in known]
            if unknown:
                raise ValidationError(f"Unknown triage codes: {', '.join(unknown)}")
        if self.priority not in PRIORITY_LABELS:
            raise ValidationError("Choose a priority.")


def read_triage(case: Case, dek: bytes) -> Triage | None:
    """The decrypted triage, if recorded."""
    if case.triage_ct is None:
        return None
    data: dict[str, Any] = decrypt_json(
        dek, case.triage_ct, table="concern_case", row_id=case.id, field="triage"
    )
    return Triage(**data)


def record_triage(
    case: Case, actor: Actor, triage: Triage, *, expected_version: int | None
) -> Case:
    """Store the triage; a case still only acknowledged moves on to assessing."""
    dek = open_dek(case, actor)
    check_version(case, expected_version)
    if Status(case.status) in (Status.RECEIVED, Status.CLOSED, Status.WITHDRAWN):
        raise ValidationError("Acknowledge the case (or reopen it) before triaging it.")
    triage.validate()
    case.triage_ct = encrypt_json(
        dek, asdict(triage), table="concern_case", row_id=case.id, field="triage"
    )
    case.priority = triage.priority
    if not case.counted_triage:
        case.counted_triage = True
        emit_fact(
            "triaged",
            case.organisation,
            utcnow(),
            route=case.route,
            disclosure_mode=case.disclosure_mode,
            elements_mask=elements_mask(triage.elements),
            race_mask=race_mask(triage.race_codes),
        )
    detail = ""
    if case.status == Status.ACKNOWLEDGED:
        case.status = str(Status.ASSESSING)
        detail = "acknowledged->assessing"
    record(
        "case.triaged",
        actor_kind="user",
        actor_user_id=actor.user.id,
        case_id=case.id,
        detail=detail,
    )
    return case
