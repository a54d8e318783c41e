"""Facts, not cases (DESIGN §7).

An event writes a coarse fact to an inbox, sealed (HPKE) to the statistics inbox key, whose
private half is derived from a secret kept outside the database. The shuffle job opens the
inbox in batches, shuffles, and writes each fact to the fact table under a fresh random key
in its own transaction. A fact never holds a case id, a timestamp finer than a quarter, or
free text, so nothing links it back to a case: not its id, not its time, not its position.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, func, select

from speakup.cases.categories import NATIONAL_ELEMENTS, RACE_EQUALITY_CODES
from speakup.crypto import DecryptionError, PrivateKey, PublicKey, open_sealed, seal
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.stats.models import Fact, FactInbox
from speakup.stats.periods import quarter_of

PURPOSE = "stats-fact"
KINDS = ("submitted", "triaged", "closed", "speak_up_again", "detriment")
#: fields a fact may carry; anything else is refused
FIELDS = frozenset(
    {
        "route",
        "disclosure_mode",
        "elements_mask",
        "race_mask",
        "outcome",
        "ttc_bucket",
        "ack_met",
        "feedback_met",
        "ethnicity",
        "staff_group",
        "pay_band",
        "answer",
    }
)
_ELEMENT_BITS = {code: i for i, (code, _) in enumerate(NATIONAL_ELEMENTS)}
_RACE_BITS = {code: i for i, (code, _) in enumerate(RACE_EQUALITY_CODES)}


@lru_cache(maxsize=4)
def stats_private_key(secret: bytes) -> PrivateKey:
    """The inbox keypair, derived from the configured secret with HKDF."""
    seed = HKDF(SHA256(), 96, salt=b"speakup-stats-inbox-v1", info=b"hybrid-key").derive(secret)
    return PrivateKey(seed[:64], seed[64:])


def stats_public_key(config: Mapping[str, Any]) -> PublicKey:
    """The public half, used to seal facts."""
    return stats_private_key(bytes(config["STATS_INBOX_KEY"])).public_key()


def mask(codes: list[str], bits: dict[str, int]) -> int:
    """A bit mask of known codes."""
    value = 0
    for code in codes:
        if code in bits:
            value |= 1 << bits[code]
    return value


def elements_mask(codes: list[str]) -> int:
    return mask(codes, _ELEMENT_BITS)


def race_mask(codes: list[str]) -> int:
    return mask(codes, _RACE_BITS)


def ttc_bucket(received: datetime, closed: datetime) -> str:
    """Time-to-close bucket."""
    days = (closed - received).days
    for limit, name in (
        (30, "under_1_month"),
        (91, "1_to_3_months"),
        (182, "3_to_6_months"),
        (365, "6_to_12_months"),
    ):
        if days < limit:
            return name
    return "over_12_months"


def emit_fact(kind: str, organisation: Organisation, when: datetime, **fields: Any) -> None:
    """Seal a fact into the inbox (in the caller's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown fact kind {kind!r}")
    unknown = set(fields) - FIELDS
    if unknown:
        raise ValueError(f"facts cannot carry {sorted(unknown)}")
    payload = {
        "kind": kind,
        "period": quarter_of(when).key,
        "organisation_id": organisation.id,
        "system_id": organisation.system_id,
        **{key: value for key, value in fields.items() if value is not None},
    }
    sealed = seal(
        stats_public_key(current_app.config),
        json.dumps(payload, sort_keys=True).encode(),
        purpose=PURPOSE,
        case_id=0,
    )
    db.session.add(FactInbox(id=secrets.token_hex(16), sealed=sealed))


def inbox_size() -> int:
    """How many facts wait in the inbox."""
    return db.session.scalar(select(func.count()).select_from(FactInbox)) or 0


@dataclass(frozen=True)
class ShuffleResult:
    """What one run of the shuffle did: facts moved, and inbox rows it could not open
    (sealed to another inbox key: secrets that do not match the data), left in place."""

    moved: int
    unopened: int


def move_inbox(config: Mapping[str, Any], *, min_batch: int, flush: bool = False) -> ShuffleResult:
    """Move inbox facts to the fact table in one shuffled batch with fresh random keys.

    Waits (moves nothing) until at least ``min_batch`` facts that open are waiting, unless
    ``flush``: a batch of one would let its fact be matched to the one event that happened.
    A row that does not open with this installation's inbox key is skipped, counted and
    kept (never deleted): restoring the right secrets makes it readable again."""
    rows = db.session.scalars(select(FactInbox)).all()
    private = stats_private_key(bytes(config["STATS_INBOX_KEY"]))
    facts = []
    opened = []
    unopened = 0
    for row in rows:
        try:
            data = json.loads(open_sealed(private, row.sealed, purpose=PURPOSE, case_id=0))
        except (DecryptionError, ValueError):
            unopened += 1
            continue
        facts.append(Fact(id=secrets.token_hex(16), **data))
        opened.append(row.id)
    if not facts or (len(facts) < min_batch and not flush):
        db.session.rollback()
        return ShuffleResult(0, unopened)
    secrets.SystemRandom().shuffle(facts)
    db.session.execute(delete(FactInbox).where(FactInbox.id.in_(opened)))
    db.session.add_all(facts)
    db.session.commit()
    return ShuffleResult(len(facts), unopened)


def shuffle_inbox(config: Mapping[str, Any], *, min_batch: int, flush: bool = False) -> int:
    """:func:`move_inbox`, returning only how many facts moved."""
    return move_inbox(config, min_batch=min_batch, flush=flush).moved


def fact_digest(fact: Fact) -> str:
    """A content digest (used by tests to compare fact multisets, never stored)."""
    fields = {c.name: getattr(fact, c.name) for c in Fact.__table__.columns if c.name != "id"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
