"""Facts, not cases (DESIGN §7): the real flows — submit, triage, close, "would you speak up
again?", detriment — write coarse facts sealed into the inbox and nowhere else; the shuffle
job moves them in batches; and nothing links a fact to its case: not an id, a timestamp, the
insertion order or the transaction, and not the "about you" answers, which never reach the
case at all.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import DateTime, select, text

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.cases.content import decrypt_json
from speakup.cases.custody import open_case_key
from speakup.cases.models import Case, DisclosureMode, KeyType, Status
from speakup.cases.policy import policy_for
from speakup.cases.triage import Triage, record_triage
from speakup.cases.workflow import Actor
from speakup.crypto import DecryptionError, open_sealed
from speakup.db import utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import (
    Submission,
    record_speak_up_again,
    report_detriment,
    unlock_reporter_key,
)
from speakup.stats.facts import PURPOSE, shuffle_inbox, stats_private_key
from speakup.stats.models import Fact, FactInbox
from speakup.stats.periods import quarter_of
from speakup.stats.vocab import ETHNIC_GROUPS, PAY_BANDS, STAFF_GROUPS
from tests.conftest import PG_URL, Staff, actor_for, count, move

HEX32 = re.compile(r"[0-9a-f]{32}")
#: every field a fact may carry (DESIGN §7); nothing else
FACT_FIELDS = {
    "kind",
    "period",
    "organisation_id",
    "system_id",
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
ABOUT_YOU = {
    "ethnicity": "black_african",
    "staff_group": "nursing_midwifery",
    "pay_band": "band_5_7",
}


@pytest.fixture
def org(make_org: Callable[..., Organisation]) -> Organisation:
    return make_org("FACTS")


@pytest.fixture
def guardian(make_staff: Callable[..., Staff], org: Organisation) -> Staff:
    return make_staff(Role.GUARDIAN, org, name="Facts Guardian")


def triage(case: Case, actor: Actor, elements: list[str], race_codes: list[str]) -> None:
    record_triage(
        case,
        actor,
        Triage(elements=elements, race_codes=race_codes, about=["manager"]),
        expected_version=case.version,
    )
    db.session.commit()


def inbox_payloads(app: Flask) -> list[dict[str, Any]]:
    private = stats_private_key(bytes(app.config["STATS_INBOX_KEY"]))
    return [
        json.loads(open_sealed(private, row.sealed, purpose=PURPOSE, case_id=0))
        for row in db.session.scalars(select(FactInbox))
    ]


def database_bytes(app: Flask) -> bytes:
    """Everything the database holds on disk (SQLite: the file and its write-ahead log)."""
    path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def kendall_tau(sequence: list[int]) -> float:
    """Kendall's τ between ``sequence`` and sorted order (no ties)."""
    n = len(sequence)
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if sequence[i] < sequence[j]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


# --- the real flows write sealed facts to the inbox only ------------------------------------


def test_every_event_writes_one_sealed_coarse_fact_to_the_inbox(
    app: Flask,
    org: Organisation,
    guardian: Staff,
    submit: Callable[..., Submission],
) -> None:
    period = quarter_of(utcnow()).key
    where = {"period": period, "organisation_id": org.id, "system_id": org.system_id}
    submission = submit(
        org,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name="Ann Example",
        contact="ann@example.test",
        **ABOUT_YOU,
    )
    case = submission.case
    assert inbox_payloads(app) == [
        {
            "kind": "submitted",
            **where,
            "route": "organisation",
            "disclosure_mode": "confidential",
            **ABOUT_YOU,
        }
    ]

    actor = actor_for(app, guardian)
    move(app, case, actor, Status.ACKNOWLEDGED)
    assert count(FactInbox) == 1  # acknowledging is not a fact of its own
    triage(case, actor, ["patient_safety_quality", "detriment"], ["racism_manager"])
    triaged = [p for p in inbox_payloads(app) if p["kind"] == "triaged"]
    assert triaged == [
        {
            "kind": "triaged",
            **where,
            "route": "organisation",
            "disclosure_mode": "confidential",
            "elements_mask": 0b10001,  # patient safety (bit 0), detriment (bit 4)
            "race_mask": 0b10,  # racism from a manager (bit 1)
        }
    ]
    # Re-triaging recodes the case but does not count it twice.
    triage(case, actor, ["bullying_harassment"], [])
    assert [p["kind"] for p in inbox_payloads(app)].count("triaged") == 1

    move(app, case, actor, Status.IN_PROGRESS, Status.FEEDBACK_GIVEN, Status.CLOSED)
    closed = [p for p in inbox_payloads(app) if p["kind"] == "closed"]
    assert closed == [
        {
            "kind": "closed",
            **where,
            "route": "organisation",
            "disclosure_mode": "confidential",
            "outcome": "closed",
            "ttc_bucket": "under_1_month",
            "ack_met": True,
            "feedback_met": True,
        }
    ]

    reporter_key = unlock_reporter_key(case, submission.receipt, 2)
    assert reporter_key is not None
    record_speak_up_again(case, reporter_key, "yes", "Yes, because I was listened to.")
    db.session.commit()
    record_speak_up_again(case, reporter_key, "maybe", "Changed my mind.")
    db.session.commit()
    answers = [p for p in inbox_payloads(app) if p["kind"] == "speak_up_again"]
    # The route lets a trust's national return leave out pool and panel concerns.
    assert answers == [
        {"kind": "speak_up_again", **where, "answer": "yes", "route": "organisation"}
    ]

    policy = policy_for(org, app.config)
    report_detriment(case, reporter_key, "I was taken off the rota.", policy)
    db.session.commit()
    assert case.status == Status.REOPENED
    detriment = [p for p in inbox_payloads(app) if p["kind"] == "detriment"]
    assert detriment == [{"kind": "detriment", **where, "route": "organisation"}]

    # The reopened case is worked and closed again: still one closure, one triage; and a
    # second detriment report at a later check-in is still one case with detriment.
    move(app, case, actor, Status.IN_PROGRESS)
    triage(case, actor, ["worker_safety_wellbeing"], [])
    move(app, case, actor, Status.FEEDBACK_GIVEN, Status.CLOSED)
    report_detriment(case, reporter_key, "Still off the rota.", policy)
    db.session.commit()
    assert case.status == Status.REOPENED
    move(app, case, actor, Status.IN_PROGRESS, Status.FEEDBACK_GIVEN, Status.CLOSED)
    kinds = Counter(p["kind"] for p in inbox_payloads(app))
    assert kinds == {"submitted": 1, "triaged": 1, "closed": 1, "speak_up_again": 1, "detriment": 1}

    # Nothing went to the fact table: only the shuffle job writes there.
    assert count(Fact) == 0
    for payload in inbox_payloads(app):
        assert set(payload) <= FACT_FIELDS
        flat = json.dumps(payload)
        for secret in (case.reference, submission.receipt, "Ann Example", "rota", "listened"):
            assert secret not in flat


def test_a_withdrawal_is_counted_as_the_closure(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    case = submit(org).case
    move(app, case, actor_for(app, guardian), Status.WITHDRAWN)
    move(app, case, actor_for(app, guardian), Status.REOPENED, Status.WITHDRAWN)
    closed = [p for p in inbox_payloads(app) if p["kind"] == "closed"]
    assert len(closed) == 1
    assert closed[0]["outcome"] == "withdrawn"
    assert closed[0]["ack_met"] is False
    assert "feedback_met" not in closed[0]  # no feedback was given: the field is absent


def test_the_inbox_is_sealed_and_the_database_holds_no_readable_fact(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    submit(org, **ABOUT_YOU)
    submit(org, ethnicity="white_irish", staff_group="admin_clerical", pay_band="band_8_9")
    for row in db.session.scalars(select(FactInbox)):
        assert HEX32.fullmatch(row.id)
        for plain in (b'"kind"', b"submitted", b"black_african", b"nursing_midwifery"):
            assert plain not in row.sealed
    if not PG_URL:
        raw = database_bytes(app)
        assert raw, "the SQLite database file was not found"
        for plain in (b'"kind"', b'"period"', b"black_african", b"white_irish", b"band_8_9"):
            assert plain not in raw, plain


def test_the_inbox_opens_only_with_the_statistics_inbox_key(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    submit(org, **ABOUT_YOU)
    sealed = db.session.scalars(select(FactInbox.sealed)).one()
    for name in ("SECRET_KEY", "RECEIPT_PEPPER", "RATELIMIT_SALT"):
        wrong = stats_private_key(bytes(app.config[name]))
        with pytest.raises(DecryptionError):
            open_sealed(wrong, sealed, purpose=PURPOSE, case_id=0)
    right = stats_private_key(bytes(app.config["STATS_INBOX_KEY"]))
    with pytest.raises(DecryptionError):  # and it is not bound to the case either
        open_sealed(right, sealed, purpose=PURPOSE, case_id=1)
    assert json.loads(open_sealed(right, sealed, purpose=PURPOSE, case_id=0))["kind"] == "submitted"


def test_about_you_answers_never_reach_the_case(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    submission = submit(
        org,
        disclosure_mode=DisclosureMode.OPEN,
        name="Ann Example",
        contact="ann@example.test",
        **ABOUT_YOU,
    )
    case = submission.case
    columns = {c.name for c in Case.__table__.columns}
    for word in ("ethnic", "staff_group", "pay_band", "about"):
        assert not [c for c in columns if word in c], columns

    actor = actor_for(app, guardian)
    dek = open_case_key(case, actor.private_key, KeyType.DEK, user_id=guardian.user.id)
    idk = open_case_key(case, actor.private_key, KeyType.IDK, user_id=guardian.user.id)
    assert dek is not None and idk is not None
    report = decrypt_json(dek, case.report_ct, table="concern_case", row_id=case.id, field="report")
    identity = decrypt_json(
        idk, case.identity_ct, table="concern_case", row_id=case.id, field="identity"
    )
    assert set(report) == {"what_happened", "when", "categories", "desired_outcome"}
    assert set(identity) == {"name", "contact"}
    everything = json.dumps([report, identity])
    for answer in ABOUT_YOU.values():
        assert answer not in everything
    for event in db.session.scalars(select(AuditEvent)):
        assert not any(answer in (event.detail or "") for answer in ABOUT_YOU.values())


def test_about_you_answers_outside_the_vocabulary_never_reach_a_fact(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    """Facts carry coarse codes, never free text (DESIGN §7). The service checks the
    ethnicity against its vocabulary; staff group and pay band must be checked too, or any
    caller of submit_report other than the form can put words into a fact."""
    submit(
        org,
        ethnicity="Ward 7 night staff",
        staff_group="Ward 7 night sister",
        pay_band="Band 6, the only one on nights",
    )
    (payload,) = inbox_payloads(app)
    assert "ethnicity" not in payload
    assert "staff_group" not in payload, payload
    assert "pay_band" not in payload, payload


# --- the shuffle job ------------------------------------------------------------------------


def test_shuffle_waits_for_a_batch_unless_flushed(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    for _ in range(3):
        submit(org, **ABOUT_YOU)
    before = sorted(db.session.scalars(select(FactInbox.id)))
    assert shuffle_inbox(app.config, min_batch=4) == 0
    assert sorted(db.session.scalars(select(FactInbox.id))) == before
    assert count(Fact) == 0
    assert shuffle_inbox(app.config, min_batch=3) == 3  # a full batch moves
    assert (count(FactInbox), count(Fact)) == (0, 3)
    submit(org)
    assert shuffle_inbox(app.config, min_batch=20) == 0
    assert shuffle_inbox(app.config, min_batch=20, flush=True) == 1
    assert (count(FactInbox), count(Fact)) == (0, 4)
    assert shuffle_inbox(app.config, min_batch=1, flush=True) == 0  # nothing left to move
    facts = db.session.scalars(select(Fact)).all()
    assert Counter((f.kind, f.ethnicity, f.staff_group, f.pay_band) for f in facts) == {
        ("submitted", "black_african", "nursing_midwifery", "band_5_7"): 3,
        ("submitted", None, None, None): 1,
    }


# --- unlinkability ---------------------------------------------------------------------------


def test_the_fact_tables_have_no_case_id_timestamp_or_foreign_key() -> None:
    for model in (Fact, FactInbox):
        for column in model.__table__.columns:
            assert not column.foreign_keys, column
            assert not isinstance(column.type, DateTime), column
            assert not re.search(r"case|reference|receipt|_at$|time|date|created", column.name)
    assert {c.name for c in Fact.__table__.columns} == FACT_FIELDS | {"id"}
    assert {c.name for c in FactInbox.__table__.columns} == {"id", "sealed"}


N = 40


def test_nothing_links_a_fact_to_its_case(
    app: Flask, org: Organisation, guardian: Staff, submit: Callable[..., Submission]
) -> None:
    """Forty reports in a known order, each with its own "about you" answers so that we (not
    an attacker) can tell which fact came from which report. In the fact table neither the
    storage order, nor the order of the keys, nor the transaction says which is which."""
    combos = list(
        itertools.product(
            [c for c, _, _ in ETHNIC_GROUPS],
            [c for c, _ in STAFF_GROUPS],
            [c for c, _ in PAY_BANDS],
        )
    )
    random.Random(7).shuffle(combos)
    answers = combos[:N]
    cases = []
    for ethnicity, staff_group, pay_band in answers:
        cases.append(
            submit(org, ethnicity=ethnicity, staff_group=staff_group, pay_band=pay_band).case
        )
    # The facts are still sealed in the inbox: none was written in a submission's transaction.
    assert (count(FactInbox), count(Fact)) == (N, 0)
    inbox_ids = set(db.session.scalars(select(FactInbox.id)))

    assert shuffle_inbox(app.config, min_batch=N) == N
    db.session.expire_all()
    position = {answer: i for i, answer in enumerate(answers)}

    def order(facts: list[Fact]) -> list[int]:
        return [position[(f.ethnicity, f.staff_group, f.pay_band)] for f in facts]

    unordered = order(db.session.scalars(select(Fact)).all())
    by_id = order(db.session.scalars(select(Fact).order_by(Fact.id)).all())
    assert sorted(unordered) == sorted(by_id) == list(range(N))
    for seen in (unordered, by_id):
        assert abs(kendall_tau(seen)) < 0.5, seen

    ids = list(db.session.scalars(select(Fact.id)))
    assert len(set(ids)) == N and all(HEX32.fullmatch(i) for i in ids)
    assert not set(ids) & inbox_ids  # fresh keys, not the inbox's
    references = {c.reference for c in cases} | {str(c.id) for c in cases}
    assert not set(ids) & references
    assert {f.period for f in db.session.scalars(select(Fact))} == {quarter_of(utcnow()).key}

    if PG_URL:
        # Physical order is the shuffled order, and every fact has the same inserting
        # transaction (the shuffle job's), so neither points back to a submission.
        rows = db.session.execute(
            text("SELECT ethnicity, staff_group, pay_band, xmin::text FROM fact ORDER BY ctid")
        ).all()
        physical = [position[(r[0], r[1], r[2])] for r in rows]
        assert abs(kendall_tau(physical)) < 0.5, physical
        assert len({r[3] for r in rows}) == 1
        case_xmins = set(db.session.scalars(text("SELECT xmin::text FROM concern_case")))
        assert not case_xmins & {r[3] for r in rows}
