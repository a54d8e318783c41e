"""Who can act on a case, through the real pages (DESIGN §3.3–3.4, §4 re-sealing, §6).

Escalation needs the reporter's consent and gives the panel the identity only with separate
consent, never to an excluded member; only the lead guardian assigns; a transfer revokes the
previous owner and rotates the keys; a hand-over to the regional pool can take the guardian
off the case; the last reader cannot be removed; and every refused move says why.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password
from speakup.audit.models import AuditEvent
from speakup.cases.content import decrypt_json
from speakup.cases.custody import open_case_key
from speakup.cases.models import Case, CaseKey, DisclosureMode, KeyType, Message, Route, Status
from speakup.cases.policy import policy_for
from speakup.cases.workflow import (
    TRANSITIONS,
    IllegalTransitionError,
    change_status,
    illegal_move_message,
)
from speakup.crypto import DecryptionError, PrivateKey, decrypt_field, open_sealed
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from tests.conftest import PASSWORD, TEST_ARGON2, Staff, actor_for

NAME, CONTACT = "Grace Reporter", "grace@example.test"


@dataclass
class Cast:
    """Organisation A: lead L, guardians G1 and G2. Organisation B: pool guardian P and a
    guardian Q who is not in the pool. The regional panel: M1 and M2."""

    org: Organisation
    lead: Staff
    g1: Staff
    g2: Staff
    pool: Staff
    not_pool: Staff
    m1: Staff
    m2: Staff


@pytest.fixture
def cast(
    make_org: Callable[..., Organisation], make_staff: Callable[..., Staff], tmp_path: Path
) -> Cast:
    org = make_org("ORGA", recovery_dir=tmp_path / "recovery")
    other = make_org("ORGB")
    return Cast(
        org=org,
        lead=make_staff(Role.LEAD_GUARDIAN, org, name="Lead Guardian"),
        g1=make_staff(Role.GUARDIAN, org, name="Guardian One"),
        g2=make_staff(Role.GUARDIAN, org, name="Guardian Two"),
        pool=make_staff(Role.GUARDIAN, other, in_pool=True, name="Pool Guardian"),
        not_pool=make_staff(Role.GUARDIAN, other, name="Other Guardian"),
        m1=make_staff(Role.PANEL_MEMBER, name="Panel One"),
        m2=make_staff(Role.PANEL_MEMBER, name="Panel Two"),
    )


def key_of(app: Flask, staff: Staff) -> PrivateKey:
    user = db.session.get_one(User, staff.user.id)
    return check_password(user, PASSWORD, TEST_ARGON2, app.config).private_key


def fresh(case_id: int) -> Case:
    db.session.expire_all()
    return db.session.get_one(Case, case_id)


def holds(case_id: int, staff: Staff, key_type: KeyType = KeyType.DEK) -> bool:
    return bool(
        db.session.scalar(
            select(func.count())
            .select_from(CaseKey)
            .where(
                CaseKey.case_id == case_id,
                CaseKey.user_id == staff.user.id,
                CaseKey.key_type == str(key_type),
            )
        )
    )


def sealed_copy(case_id: int, staff: Staff, key_type: KeyType = KeyType.DEK) -> bytes:
    sealed = db.session.scalar(
        select(CaseKey.sealed).where(
            CaseKey.case_id == case_id,
            CaseKey.user_id == staff.user.id,
            CaseKey.key_type == str(key_type),
        )
    )
    assert sealed is not None
    return sealed


def opens(key: bytes, blob: bytes, *, table: str, row_id: int, field: str) -> bool:
    try:
        decrypt_field(key, blob, table=table, row_id=row_id, field=field)
    except DecryptionError:
        return False
    return True


def act(client: FlaskClient, case_id: int, path: str, **fields: object) -> tuple[int, str]:
    """POST one case action with the version the guardian has just seen."""
    case = fresh(case_id)
    response = client.post(
        f"/staff/cases/{case.reference}/{path}", data={"version": case.version, **fields}
    )
    return response.status_code, html.unescape(response.get_data(as_text=True))


def walk(client: FlaskClient, case_id: int, *targets: Status) -> None:
    for target in targets:
        message = "Here is what happened." if target == Status.FEEDBACK_GIVEN else ""
        status, page = act(client, case_id, "status", target=target.value, message=message)
        assert status == 302, page[:2000]


def page_status(client: FlaskClient, case_id: int) -> int:
    return client.get(f"/staff/cases/{fresh(case_id).reference}").status_code


def confidential(**fields: object) -> dict[str, object]:
    return {
        "disclosure_mode": DisclosureMode.CONFIDENTIAL,
        "name": NAME,
        "contact": CONTACT,
        **fields,
    }


def reporter_client(app: Flask, receipt: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/follow-up", data={"receipt": receipt})
    assert response.status_code == 302
    return client


# --- escalation ------------------------------------------------------------------------------


def test_escalation_without_consent_is_forbidden_and_gives_the_panel_nothing(
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, **confidential(escalation_consent=False)).case.id
    guardian = staff_client(cast.g1)
    walk(guardian, case_id, Status.ACKNOWLEDGED, Status.ASSESSING)

    status, page = act(guardian, case_id, "escalate")
    assert status == 403
    assert "The reporter has not consented to escalation to the panel." in page
    assert fresh(case_id).status == Status.ASSESSING
    for member in (cast.m1, cast.m2):
        assert not holds(case_id, member)
        assert not holds(case_id, member, KeyType.IDK)
        assert page_status(staff_client(member), case_id) == 404


def test_escalation_with_consent_gives_the_panel_the_case_but_not_who_the_reporter_is(
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """The reporter named panel member M2 as involved: M2 gets nothing, ever."""
    case_id = submit(
        cast.org,
        **confidential(escalation_consent=True, excluded_guardian_ids=[cast.m2.user.id]),
    ).case.id
    guardian = staff_client(cast.g1)
    walk(guardian, case_id, Status.ACKNOWLEDGED, Status.ASSESSING, Status.IN_PROGRESS)

    status, page = act(guardian, case_id, "escalate")
    assert status == 302, page[:2000]
    case = fresh(case_id)
    assert case.status == Status.ESCALATED and case.escalated_at is not None
    assert holds(case_id, cast.m1) and not holds(case_id, cast.m1, KeyType.IDK)
    assert not holds(case_id, cast.m2) and not holds(case_id, cast.m2, KeyType.IDK)

    panel = staff_client(cast.m1)
    page = panel.get(f"/staff/cases/{case.reference}").get_data(as_text=True)
    assert "Something happened on the ward." in page
    assert NAME not in page and CONTACT not in page
    assert page_status(staff_client(cast.m2), case_id) == 404


def test_the_panel_learns_who_the_reporter_is_only_with_the_separate_consent(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    submission = submit(
        cast.org, **confidential(escalation_consent=True, excluded_guardian_ids=[cast.m2.user.id])
    )
    case_id = submission.case.id
    reporter = reporter_client(app, submission.receipt)
    response = reporter.post(
        "/follow-up/case/consent", data={"consent": "yes", "identity_consent": "yes"}
    )
    assert response.status_code == 302
    assert fresh(case_id).identity_escalation_consent

    guardian = staff_client(cast.g1)
    walk(guardian, case_id, Status.ACKNOWLEDGED, Status.ASSESSING)
    status, page = act(guardian, case_id, "escalate")
    assert status == 302, page[:2000]
    assert holds(case_id, cast.m1, KeyType.IDK)
    assert not holds(case_id, cast.m2) and not holds(case_id, cast.m2, KeyType.IDK)
    page = staff_client(cast.m1).get(f"/staff/cases/{submission.case.reference}")
    assert NAME in page.get_data(as_text=True)


def test_escalation_is_refused_by_a_guardian_in_a_state_that_cannot_escalate(
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, escalation_consent=True).case.id
    guardian = staff_client(cast.g1)
    status, page = act(guardian, case_id, "escalate")
    assert status == 400
    assert "so “Escalate to the regional panel” is not possible now" in page
    assert not holds(case_id, cast.m1)


# --- assignment, transfer, hand-over ---------------------------------------------------------


def test_the_lead_assigns_a_guardian_who_joined_after_the_case_arrived(
    cast: Cast,
    submit: Callable[..., Submission],
    make_staff: Callable[..., Staff],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, **confidential()).case.id
    newcomer = make_staff(Role.GUARDIAN, cast.org, name="New Guardian")
    assert not holds(case_id, newcomer)
    newcomer_client = staff_client(newcomer)
    assert page_status(newcomer_client, case_id) == 404

    status, page = act(staff_client(cast.lead), case_id, "assign", user_id=newcomer.user.id)
    assert status == 302, page[:2000]
    assert fresh(case_id).owner_user_id == newcomer.user.id
    assert holds(case_id, newcomer) and holds(case_id, newcomer, KeyType.IDK)
    page = newcomer_client.get(f"/staff/cases/{fresh(case_id).reference}")
    assert page.status_code == 200 and NAME in page.get_data(as_text=True)


def test_the_lead_cannot_assign_an_excluded_guardian_or_someone_outside_the_organisation(
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, excluded_guardian_ids=[cast.g2.user.id]).case.id
    lead = staff_client(cast.lead)

    status, page = act(lead, case_id, "assign", user_id=cast.g2.user.id)
    assert status == 403
    assert "named this person as involved" in page
    assert not holds(case_id, cast.g2)

    for outsider in (cast.pool, cast.m1):
        status, page = act(lead, case_id, "assign", user_id=outsider.user.id)
        assert status == 400
        assert "only to the organisation's guardians" in page
        assert not holds(case_id, outsider)
    assert fresh(case_id).owner_user_id is None


def test_a_guardian_who_is_not_the_lead_cannot_assign(
    cast: Cast,
    submit: Callable[..., Submission],
    make_staff: Callable[..., Staff],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org).case.id
    newcomer = make_staff(Role.GUARDIAN, cast.org, name="New Guardian")
    guardian = staff_client(cast.g1)
    for target in (newcomer, cast.g1):
        status, page = act(guardian, case_id, "assign", user_id=target.user.id)
        assert status == 403
        assert "Only the organisation's lead guardian can assign its cases." in page
    assert not holds(case_id, newcomer)
    assert fresh(case_id).owner_user_id is None


def test_a_transfer_revokes_the_previous_owner_and_rotates_the_keys(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    make_staff: Callable[..., Staff],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, **confidential()).case.id
    newcomer = make_staff(Role.GUARDIAN, cast.org, name="New Guardian")
    lead = staff_client(cast.lead)
    assert act(lead, case_id, "assign", user_id=cast.g1.user.id)[0] == 302
    g1_key = key_of(app, cast.g1)
    copied = sealed_copy(case_id, cast.g1)
    copied_idk = sealed_copy(case_id, cast.g1, KeyType.IDK)
    old_dek = open_case_key(fresh(case_id), g1_key, KeyType.DEK, user_id=cast.g1.user.id)
    assert old_dek is not None

    status, page = act(lead, case_id, "assign", user_id=newcomer.user.id, transfer="y")
    assert status == 302, page[:2000]
    case = fresh(case_id)
    assert case.owner_user_id == newcomer.user.id
    assert not holds(case_id, cast.g1) and not holds(case_id, cast.g1, KeyType.IDK)
    assert page_status(staff_client(cast.g1), case_id) == 404

    # The copy G1 kept still opens — to the old keys, which open nothing the case now holds.
    assert open_sealed(g1_key, copied, purpose="case-dek", case_id=case_id) == old_dek
    old_idk = open_sealed(g1_key, copied_idk, purpose="case-idk", case_id=case_id)
    assert not opens(old_dek, case.report_ct, table="concern_case", row_id=case_id, field="report")
    assert case.identity_ct is not None
    assert not opens(
        old_idk, case.identity_ct, table="concern_case", row_id=case_id, field="identity"
    )
    reply = staff_client(newcomer).post(
        f"/staff/cases/{case.reference}/messages", data={"body": "Written after the transfer."}
    )
    assert reply.status_code == 302
    message = db.session.scalars(
        select(Message).where(Message.case_id == case_id, Message.author_kind == "guardian")
    ).one()
    assert not opens(old_dek, message.body_ct, table="message", row_id=message.id, field="body")
    new_dek = open_case_key(case, key_of(app, newcomer), KeyType.DEK, user_id=newcomer.user.id)
    assert new_dek is not None and new_dek != old_dek
    assert opens(new_dek, message.body_ct, table="message", row_id=message.id, field="body")
    # Everyone else who remains still reads the case under the new key.
    for staff in (cast.lead, cast.g2):
        assert (
            open_case_key(case, key_of(app, staff), KeyType.DEK, user_id=staff.user.id) == new_dek
        )


def test_a_guardian_hands_over_to_the_regional_pool_and_steps_away(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org, **confidential()).case.id
    guardian = staff_client(cast.g1)
    old_dek = open_case_key(
        fresh(case_id), key_of(app, cast.g1), KeyType.DEK, user_id=cast.g1.user.id
    )

    status, page = act(guardian, case_id, "hand-over", user_id=cast.not_pool.user.id)
    assert status == 400 and "Choose a guardian from the regional pool." in page
    assert not holds(case_id, cast.not_pool)

    response = guardian.post(
        f"/staff/cases/{fresh(case_id).reference}/hand-over",
        data={"version": fresh(case_id).version, "user_id": cast.pool.user.id, "remove_self": "y"},
    )
    assert response.status_code == 302 and response.location.endswith("/staff/cases/")
    case = fresh(case_id)
    assert case.owner_user_id == cast.pool.user.id
    # The reporter did not agree that a guardian it is passed to may know who she is.
    assert holds(case_id, cast.pool) and not holds(case_id, cast.pool, KeyType.IDK)
    assert not holds(case_id, cast.g1) and not holds(case_id, cast.g1, KeyType.IDK)
    assert page_status(guardian, case_id) == 404
    pool_page = staff_client(cast.pool).get(f"/staff/cases/{case.reference}")
    # Passed on without the reporter's consent to identity for later readers: no name.
    assert pool_page.status_code == 200 and NAME not in pool_page.get_data(as_text=True)
    assert old_dek is not None
    assert not opens(old_dek, case.report_ct, table="concern_case", row_id=case_id, field="report")


def test_the_last_reader_cannot_be_removed(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """A case sent to one pool guardian has one reader, who cannot remove themself."""
    case_id = submit(cast.org, route=Route.POOL, chosen_guardian_id=cast.pool.user.id).case.id
    pool = staff_client(cast.pool)
    before = sealed_copy(case_id, cast.pool)
    status, page = act(pool, case_id, "readers/remove", user_id=cast.pool.user.id)
    assert status == 400
    assert "A case must keep at least one reader." in page
    assert sealed_copy(case_id, cast.pool) == before
    assert page_status(pool, case_id) == 200

    # Nor can they step away by handing over to themself.
    status, page = act(pool, case_id, "hand-over", user_id=cast.pool.user.id, remove_self="y")
    assert status == 400
    assert "Choose another guardian: you already have this case." in page
    assert holds(case_id, cast.pool)


def test_a_reader_removed_by_someone_without_the_identity_key_cannot_read_identity_written_later(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """DESIGN §4: after a revocation "a copied old sealed key is worthless for anything
    written afterwards". A panel member who was not given the identity removes G2; G2's
    copied identity key must not open contact details the reporter writes afterwards."""
    submission = submit(cast.org, **confidential(escalation_consent=True))
    case_id = submission.case.id
    guardian = staff_client(cast.g1)
    walk(guardian, case_id, Status.ACKNOWLEDGED, Status.ASSESSING)
    assert act(guardian, case_id, "escalate")[0] == 302
    assert holds(case_id, cast.m1) and not holds(case_id, cast.m1, KeyType.IDK)
    copied_idk = sealed_copy(case_id, cast.g2, KeyType.IDK)

    status, page = act(staff_client(cast.m1), case_id, "readers/remove", user_id=cast.g2.user.id)
    assert status == 302, page[:2000]
    assert not holds(case_id, cast.g2, KeyType.IDK)

    reporter = reporter_client(app, submission.receipt)
    response = reporter.post(
        "/follow-up/case/identity", data={"name": NAME, "contact": "new number 07700 900456"}
    )
    assert response.status_code == 302
    case = fresh(case_id)
    assert case.identity_ct is not None
    old_idk = open_sealed(key_of(app, cast.g2), copied_idk, purpose="case-idk", case_id=case_id)
    try:
        leaked = decrypt_json(
            old_idk, case.identity_ct, table="concern_case", row_id=case_id, field="identity"
        )
    except DecryptionError:
        leaked = None
    assert leaked is None, f"a revoked guardian's old key opened identity written later: {leaked}"


# --- refused moves say why -------------------------------------------------------------------


def test_every_illegal_transition_is_refused_with_a_clear_message(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """From every state, every move the table does not allow is a 400 that names the state,
    the target and what is allowed — and changes nothing.

    Every (state, target) pair is asked of ``change_status`` itself, the one place that
    consults the table; the page, which shows any refusal's own message with its status,
    is asked once per state (each time a different target) and for escalation. Rendering
    the whole case page for all ~100 pairs checked that one table lookup 100 times over.
    """
    case_id = submit(cast.org).case.id
    guardian = staff_client(cast.g1)
    actor = actor_for(app, cast.g1)
    for index, current in enumerate(Status):
        case = fresh(case_id)
        case.status = str(current)
        db.session.commit()
        refused = [t for t in Status if t not in TRANSITIONS[current] or t == Status.ESCALATED]
        through_the_page = {refused[index % len(refused)]}
        if current == Status.ASSESSING:  # where escalation is a legal move, but not this way
            through_the_page.add(Status.ESCALATED)
        for target in refused:
            if target == Status.ESCALATED:
                said = "Use escalation to the regional panel to escalate a case."
            else:
                said = illegal_move_message(current, target)
            case = fresh(case_id)
            version = case.version
            with pytest.raises(IllegalTransitionError) as refusal:
                change_status(
                    case,
                    actor,
                    target,
                    policy=policy_for(case.organisation, app.config),
                    expected_version=version,
                    message="Hi.",
                )
            db.session.rollback()
            assert refusal.value.status_code == 400, (current, target)
            assert refusal.value.message == said, (current, target)
            if target in through_the_page:
                status, page = act(guardian, case_id, "status", target=target.value, message="Hi.")
                assert status == 400, (current, target)
                assert said in page, (current, target)
            case = fresh(case_id)
            assert case.status == current and case.version == version
    assert not db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.case_id == case_id, AuditEvent.action == "case.status_changed")
    )
    assert not db.session.scalar(
        select(func.count()).select_from(Message).where(Message.case_id == case_id)
    )


@pytest.mark.parametrize("target", ["archived", "", "RECEIVED"])
def test_an_unknown_target_is_refused(
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
    target: str,
) -> None:
    case_id = submit(cast.org).case.id
    status, page = act(staff_client(cast.g1), case_id, "status", target=target)
    assert status == 400
    assert "Check the form and try again." in page
    assert fresh(case_id).status == Status.RECEIVED


@pytest.mark.parametrize("message", ["", "   \n  "])
def test_feedback_without_a_message_is_refused(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
    message: str,
) -> None:
    submission = submit(cast.org)
    case_id = submission.case.id
    guardian = staff_client(cast.g1)
    walk(guardian, case_id, Status.ACKNOWLEDGED, Status.ASSESSING, Status.IN_PROGRESS)

    status, page = act(guardian, case_id, "status", target="feedback_given", message=message)
    assert status == 400
    assert "Write the feedback to the reporter." in page
    assert fresh(case_id).status == Status.IN_PROGRESS

    status, page = act(
        guardian, case_id, "status", target="feedback_given", message="We changed the rota."
    )
    assert status == 302
    assert fresh(case_id).status == Status.FEEDBACK_GIVEN
    reporter_page = reporter_client(app, submission.receipt).get("/follow-up/case")
    assert "We changed the rota." in reporter_page.get_data(as_text=True)


def test_status_changes_need_the_csrf_token(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case_id = submit(cast.org).case.id
    guardian = staff_client(cast.g1)
    app.config["WTF_CSRF_ENABLED"] = True
    reference = fresh(case_id).reference
    page = guardian.get(f"/staff/cases/{reference}").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token is not None

    data = {"target": "acknowledged", "version": fresh(case_id).version, "message": ""}
    assert guardian.post(f"/staff/cases/{reference}/status", data=data).status_code == 400
    assert fresh(case_id).status == Status.RECEIVED
    response = guardian.post(
        f"/staff/cases/{reference}/status", data={**data, "csrf_token": token.group(1)}
    )
    assert response.status_code == 302
    assert fresh(case_id).status == Status.ACKNOWLEDGED
