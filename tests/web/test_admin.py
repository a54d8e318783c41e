"""Administration and oversight pages: who may see them, and that none shows case content.
Administrators see who accessed what; a case's readers see its audit trail; the lead
guardian sees the organisation's open cases and their deadlines."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.audit.services import record
from speakup.cases.models import Case, DisclosureMode
from speakup.extensions import db
from tests.conftest import PASSWORD

CANARY = "zq_admin_canary the consultant called me a diversity hire"
NAME = "Zq Canary Reporter"
CONTACT = "zq_canary_contact 07700 900555"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN_PAGES = ("/staff/admin/users", "/staff/admin/audit", "/staff/admin/audit?case=1&user=1")


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def audit_count(**where) -> int:
    query = select(func.count()).select_from(AuditEvent)
    for key, value in where.items():
        query = query.where(getattr(AuditEvent, key) == value)
    return db.session.scalar(query)


@pytest.fixture
def org(make_org):
    return make_org("RRK")


@pytest.fixture
def team(org, make_org, make_staff):
    other = make_org("OTHER")
    return {
        "admin": make_staff(Role.ADMIN, name="Ada Admin"),
        "lead": make_staff(Role.LEAD_GUARDIAN, org, name="Lena Lead"),
        "guardian": make_staff(Role.GUARDIAN, org, name="Gita Guardian"),
        "outsider": make_staff(Role.GUARDIAN, other, name="Otto Outsider"),
        "panel": make_staff(Role.PANEL_MEMBER, name="Pat Panel"),
    }


@pytest.fixture
def guardian_client(team, staff_client):
    """The guardian's one signed-in client (a second sign-in within 30 s reuses the code)."""
    return staff_client(team["guardian"])


@pytest.fixture
def canary_case(org, submit, guardian_client, app):
    """A confidential report full of canaries, opened and answered by its guardian, with a
    reporter message: every kind of content the audit could be tempted to record."""
    sub = submit(
        org,
        what_happened=CANARY,
        desired_outcome=f"{CANARY} outcome",
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name=NAME,
        contact=CONTACT,
    )
    client = guardian_client
    assert CANARY in page(client.get(f"/staff/cases/{sub.case.reference}"))
    reply = client.post(
        f"/staff/cases/{sub.case.reference}/messages", data={"body": f"{CANARY} reply"}
    )
    assert reply.status_code == 302
    reporter = app.test_client()
    reporter.post("/follow-up", data={"receipt": sub.receipt})
    sent = reporter.post("/follow-up/case/messages", data={"body": f"{CANARY} from reporter"})
    assert sent.status_code == 302
    return sub.case


def assert_no_content(text: str) -> None:
    for secret in (CANARY, NAME, CONTACT, "zq_"):
        assert secret not in text


# Who may see the administration pages -------------------------------------------------------


@pytest.mark.parametrize("role", ["lead", "guardian", "panel"])
def test_administration_is_for_administrators_only(role, team, staff_client):
    client = staff_client(team[role])
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403, path
    target = team["outsider"].user
    assert client.post(f"/staff/admin/users/{target.id}/disable").status_code == 403
    assert (
        client.post(
            f"/staff/admin/users/{target.id}/reset", data={"password": "x" * 20}
        ).status_code
        == 403
    )
    db.session.refresh(target)
    assert not target.disabled and audit_count(action="user.reset") == 0


def test_signed_out_visitors_are_sent_to_sign_in(app, team):
    client = app.test_client()
    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    response = client.post(f"/staff/admin/users/{team['guardian'].user.id}/disable")
    assert response.location.endswith("/staff/sign-in")
    db.session.refresh(team["guardian"].user)
    assert not team["guardian"].user.disabled


def test_the_users_page_lists_every_account_and_its_state(app, org, team, staff_client, cli):
    assert cli("user", "disable", team["outsider"].user.email).exit_code == 0
    # Wrong passwords lock the account itself only when they come from many clients.
    app.config["AUTH_ACCOUNT_LOCK_CLIENTS"] = 2
    for address in ("192.0.2.1", "192.0.2.2"):
        locked = app.test_client()
        locked.environ_base["REMOTE_ADDR"] = address
        for _ in range(int(app.config["AUTH_MAX_FAILED_LOGINS"])):
            locked.post(
                "/staff/sign-in",
                data={"email": team["panel"].user.email, "password": "wrong " * 3},
            )
    db.session.refresh(team["panel"].user)
    assert team["panel"].user.locked_until is not None

    response = staff_client(team["admin"]).get("/staff/admin/users")
    assert response.status_code == 200
    text = page(response)
    for staff in team.values():
        assert staff.user.display_name in text and staff.user.email in text
    row = {
        name: re.search(rf"{name}.*?</tr>", text, re.S).group(0)
        for name in ("Gita Guardian", "Otto Outsider", "Pat Panel")
    }
    assert "Active" in row["Gita Guardian"] and "Disable" in row["Gita Guardian"]
    assert "Disabled" in row["Otto Outsider"] and "Reset" not in row["Otto Outsider"]
    assert "Locked" in row["Pat Panel"]


# The audit log: who accessed what, never content ---------------------------------------------


def test_the_audit_log_shows_who_accessed_what_and_never_content(canary_case, team, staff_client):
    client = staff_client(team["admin"])
    response = client.get("/staff/admin/audit")
    assert response.status_code == 200
    text = page(response)
    assert_no_content(text)
    # Reporter actions are never listed to administrators (their times could identify her).
    total = audit_count() - audit_count(actor_kind="reporter")
    assert audit_count(actor_kind="reporter") > 0
    assert f"{total} events" in text
    assert "case.opened" in text and "case.message_sent" in text
    assert "case.submitted" not in text and "Reporter" not in text
    assert "Gita Guardian" in text and f"#{canary_case.id}" in text
    for event in db.session.scalars(select(AuditEvent)):
        assert "zq_" not in event.detail and "zq_" not in event.action


def test_the_audit_log_filters_by_case_and_by_user(org, canary_case, team, submit, staff_client):
    other = submit(org, what_happened=CANARY).case
    staff_client(team["lead"]).get(f"/staff/cases/{other.reference}")
    client = staff_client(team["admin"])

    by_case = page(client.get(f"/staff/admin/audit?case={canary_case.id}"))
    expected = audit_count(case_id=canary_case.id) - audit_count(
        case_id=canary_case.id, actor_kind="reporter"
    )
    assert f"{expected} events for case #{canary_case.id}" in by_case
    assert f">#{canary_case.id}<" in by_case and f">#{other.id}<" not in by_case
    assert_no_content(by_case)

    guardian = team["guardian"].user
    by_user = page(client.get(f"/staff/admin/audit?user={guardian.id}"))
    expected = audit_count(actor_user_id=guardian.id)
    assert f"{expected} events by Gita Guardian" in by_user
    assert "Lena Lead" not in by_user
    assert_no_content(by_user)

    both = page(client.get(f"/staff/admin/audit?case={other.id}&user={guardian.id}"))
    assert "0 events" in both


def test_the_audit_log_pages_through_many_events(canary_case, team, staff_client):
    client = staff_client(team["admin"])
    for n in range(60):
        record("test.filler", actor_kind="system", detail=f"n={n}")
    db.session.commit()
    pages = -(-audit_count() // 50)
    assert pages >= 2
    first = page(client.get("/staff/admin/audit"))
    assert f"Page 2 of {pages}" in first and "(n=59)" in first and "(n=0)" not in first
    last = page(client.get(f"/staff/admin/audit?page={pages}"))
    assert "(n=59)" not in last and f"Page {pages - 1} of {pages}" in last
    # A page beyond the end shows the last page.
    assert page(client.get("/staff/admin/audit?page=99")).count("<tr") == last.count("<tr")


# A case's own audit trail, for its readers ---------------------------------------------------


def test_a_reader_sees_the_case_audit_trail_without_content(
    canary_case, team, guardian_client, staff_client
):
    for client in (guardian_client, staff_client(team["lead"])):
        response = client.get(f"/staff/cases/{canary_case.reference}/audit")
        assert response.status_code == 200
        text = page(response)
        assert_no_content(text)
        assert "case.submitted" in text and "case.opened" in text
        assert "Gita Guardian" in text and "Reporter" in text


def test_the_case_audit_trail_is_hidden_from_everyone_else(
    org, canary_case, team, make_staff, submit, staff_client
):
    reference = canary_case.reference
    assert staff_client(team["outsider"]).get(f"/staff/cases/{reference}/audit").status_code == 404
    assert staff_client(team["panel"]).get(f"/staff/cases/{reference}/audit").status_code == 404
    # Not even an organisation's own guardian named as involved.
    involved = make_staff(Role.GUARDIAN, org, name="Ivan Involved")
    about = submit(org, what_happened=CANARY, excluded_guardian_ids=[involved.user.id]).case
    client = staff_client(involved)
    assert client.get(f"/staff/cases/{about.reference}/audit").status_code == 404
    assert client.get("/staff/cases/SU-0000-0000/audit").status_code == 404
    # Administrators hold no key: they see who accessed what only on their own page.
    assert staff_client(team["admin"]).get(f"/staff/cases/{reference}/audit").status_code == 403


# The lead guardian's overview ----------------------------------------------------------------


def test_the_lead_guardian_overview_lists_open_cases_without_content(
    org, canary_case, team, submit, staff_client
):
    elsewhere = submit(team["outsider"].user.organisation, what_happened=CANARY).case
    response = staff_client(team["lead"]).get("/staff/cases/overview")
    assert response.status_code == 200
    text = page(response)
    assert canary_case.reference in text and elsewhere.reference not in text
    assert "Acknowledge by" in text and "Overdue" not in text
    assert_no_content(text)


@pytest.mark.parametrize("role", ["guardian", "outsider", "panel", "admin"])
def test_the_overview_is_for_lead_guardians_only(role, team, staff_client):
    assert staff_client(team[role]).get("/staff/cases/overview").status_code == 403


def test_overdue_cases_are_marked_on_the_overview(
    app, org, team, submit, staff_client, time_machine
):
    time_machine.move_to(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), tick=True)  # a Monday
    late = submit(org, what_happened=CANARY).case
    time_machine.move_to(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), tick=True)
    fresh = submit(org, what_happened=CANARY).case
    time_machine.move_to(datetime(2026, 11, 26, 9, 30, tzinfo=UTC), tick=True)  # Thursday

    text = page(staff_client(team["lead"]).get("/staff/cases/overview"))
    rows = {
        case.reference: re.search(rf"{case.reference}.*?</tr>", text, re.S).group(0)
        for case in (late, fresh)
    }
    assert "Overdue" in rows[late.reference]
    assert "Overdue" not in rows[fresh.reference] and "Due soon" in rows[fresh.reference]
    # Most urgent first.
    assert text.index(late.reference) < text.index(fresh.reference)


def test_closed_cases_leave_the_overview(app, org, team, submit, staff_client):
    case = submit(org, what_happened=CANARY).case
    db.session.get(Case, case.id).status = "closed"
    db.session.commit()
    text = page(staff_client(team["lead"]).get("/staff/cases/overview"))
    assert case.reference not in text and "There are no open cases." in text


# CSRF on the administrator's forms -----------------------------------------------------------


def test_the_administrator_forms_need_their_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        admin = make_staff(Role.ADMIN)
        guardian = make_staff(Role.GUARDIAN, make_org())
        client = app.test_client()
        token = CSRF.search(client.get("/staff/sign-in").get_data(as_text=True)).group(1)
        client.post(
            "/staff/sign-in",
            data={"email": admin.user.email, "password": PASSWORD, "csrf_token": token},
        )
        token = CSRF.search(client.get("/staff/sign-in/code").get_data(as_text=True)).group(1)
        client.post("/staff/sign-in/code", data={"code": admin.code(), "csrf_token": token})
        disable = f"/staff/admin/users/{guardian.user.id}/disable"
        reset = f"/staff/admin/users/{guardian.user.id}/reset"

        assert client.post(disable).status_code == 400
        assert client.post(reset).status_code == 400
        db.session.refresh(guardian.user)
        assert not guardian.user.disabled and audit_count(action="user.reset") == 0

        token = CSRF.search(client.get(reset).get_data(as_text=True)).group(1)
        done = client.post(reset, data={"csrf_token": token})
        assert done.status_code == 200 and audit_count(action="user.reset") == 1
        assert client.post(disable, data={"csrf_token": token}).status_code == 302
        db.session.refresh(guardian.user)
        assert guardian.user.disabled


def test_a_reset_asks_first_and_never_takes_a_password(team, staff_client):
    client = staff_client(team["admin"])
    target = team["guardian"].user
    wrapped = target.wrapped_private_key
    confirm = client.get(f"/staff/admin/users/{target.id}/reset")
    assert confirm.status_code == 200
    text = page(confirm)
    assert f"Reset {target.display_name}’s account?" in text
    assert 'type="password"' not in text  # the administrator never types a password
    db.session.refresh(target)
    assert target.wrapped_private_key == wrapped and audit_count(action="user.reset") == 0
    assert client.get("/staff/admin/users/999999/reset").status_code == 404
    assert client.post("/staff/admin/users/999999/reset").status_code == 404


def test_the_audit_log_records_administrator_actions(app, team, staff_client):
    client = staff_client(team["admin"])
    target = team["guardian"].user
    done = client.post(f"/staff/admin/users/{target.id}/reset")
    code = re.search(r'id="enrolment-code">([^<]+)<', page(done)).group(1)
    client.post(f"/staff/admin/users/{target.id}/disable")
    text = page(client.get(f"/staff/admin/audit?user={team['admin'].user.id}"))
    assert f"user.reset (user={target.id} pending=0)" in text
    assert f"user.disabled (user={target.id})" in text
    assert code not in text
    # Resetting an account leaves its old password useless.
    fresh = app.test_client()
    refused = fresh.post("/staff/sign-in", data={"email": target.email, "password": PASSWORD})
    assert refused.status_code == 400
