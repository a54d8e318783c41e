"""Inbox flags (issue 9): "Reporter wrote" and "Detriment reported", from message metadata
only — no decryption, and a constant number of queries however many cases there are."""

from __future__ import annotations

import re

import pytest

import speakup.cases.custody as case_keys
import speakup.crypto.aead as aead
from speakup.accounts.models import Role
from speakup.cases.models import Status
from speakup.extensions import db
from tests.conftest import actor_for, move, recorded_queries, sign_in
from tests.web.test_follow_up import page, signed_in

REFERENCE = re.compile(r'href="/staff/cases/(SU-[0-9A-Z]{4}-[0-9A-Z]{4})"')


@pytest.fixture
def org(make_org, tmp_path):
    return make_org(recovery_dir=tmp_path)


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Grace Guardian")


def refs(response) -> list[str]:
    return REFERENCE.findall(response.get_data(as_text=True))


def reporter_writes(app, receipt: str, text: str = "Any news?") -> None:
    reporter = signed_in(app, receipt)
    assert reporter.post("/follow-up/case/messages", data={"body": text}).status_code == 302


def guardian_replies(client, reference: str) -> None:
    r = client.post(f"/staff/cases/{reference}/messages", data={"body": "I am on it."})
    assert r.status_code == 302


@pytest.fixture
def three(app, org, guardian, submit, client):
    """wrote: the reporter wrote last; answered: a guardian replied after her; harmed: a
    closed case in which she reported detriment (which reopened it)."""
    wrote, answered, harmed = submit(org), submit(org), submit(org)
    sign_in(client, guardian)
    reporter_writes(app, wrote.receipt)
    reporter_writes(app, answered.receipt)
    guardian_replies(client, answered.case.reference)
    actor = actor_for(app, guardian)
    move(
        app,
        harmed.case,
        actor,
        Status.ACKNOWLEDGED,
        Status.ASSESSING,
        Status.IN_PROGRESS,
        Status.FEEDBACK_GIVEN,
        Status.CLOSED,
    )
    reporter = signed_in(app, harmed.receipt)
    r = reporter.post("/follow-up/case/detriment", data={"text": "I was moved off the ward."})
    assert r.status_code == 302
    return wrote.case.reference, answered.case.reference, harmed.case.reference


def test_the_inbox_flags_what_changed(client, three):
    wrote, answered, harmed = three
    body = page(client.get("/staff/cases/"))
    rows = {ref: body[body.index(f">{ref}</a>") :][:1500] for ref in three}
    assert "Reporter wrote" in rows[wrote]
    assert "Reporter wrote" not in rows[answered]
    assert "Detriment reported" in rows[harmed] and "since " in rows[harmed]
    assert "Detriment reported" not in rows[wrote]


def test_the_inbox_filters_by_flag(client, three):
    wrote, answered, harmed = three
    assert set(refs(client.get("/staff/cases/?filter=reporter_wrote"))) == {wrote, harmed}
    assert refs(client.get("/staff/cases/?filter=detriment")) == [harmed]
    body = page(client.get("/staff/cases/?filter=detriment"))
    assert '<option value="detriment" selected>Detriment reported</option>' in body
    # A guardian reply clears "Reporter wrote"; detriment stays reported.
    guardian_replies(client, harmed)
    assert refs(client.get("/staff/cases/?filter=reporter_wrote")) == [wrote]
    assert refs(client.get("/staff/cases/?filter=detriment")) == [harmed]


def test_the_guardian_thread_marks_a_detriment_report(client, three):
    _, _, harmed = three
    assert "Reporter – detriment reported" in page(client.get(f"/staff/cases/{harmed}"))


def test_flags_decrypt_nothing_and_cost_constant_queries(
    app, client, org, guardian, submit, monkeypatch
):
    sign_in(client, guardian)

    def add_cases(n: int) -> None:
        for _ in range(n):
            s = submit(org)
            reporter_writes(app, s.receipt)

    def inbox_queries() -> int:
        db.session.expire_all()
        with recorded_queries() as statements:
            assert client.get("/staff/cases/?filter=reporter_wrote").status_code == 200
        return len(statements)

    add_cases(2)
    client.get("/staff/cases/")
    with_two = inbox_queries()
    add_cases(8)
    with_ten = inbox_queries()
    assert with_ten == with_two

    calls: list[str] = []
    monkeypatch.setattr(aead, "decrypt", lambda *a, **k: calls.append("decrypt"))
    monkeypatch.setattr(case_keys, "open_sealed", lambda *a, **k: calls.append("open"))
    response = client.get("/staff/cases/")
    assert len(refs(response)) == 10 and "Reporter wrote" in page(response)
    assert calls == []
