"""Account lifecycle: changing one's password (the private key is re-encrypted, nothing is
re-sealed) and disabling an account (its sessions end at once), through the web and the CLI."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from speakup.accounts.models import AuthSession, Role, SignInThrottle
from speakup.audit.models import AuditEvent
from speakup.cases.models import CaseKey
from speakup.extensions import db
from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase, long enough"
CANARY = "zq_lifecycle_canary the rota was changed without notice"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def fresh_code(staff) -> str:
    """A code the account has not used yet (a code's time step cannot be replayed)."""
    db.session.refresh(staff.user)
    totp = pyotp.TOTP(staff.totp_secret)
    now_step = int(datetime.now(UTC).timestamp()) // totp.interval
    step = max(now_step, staff.user.totp_last_step + 1)
    assert step <= now_step + 1, "shift the clock: this account used the next step already"
    return totp.generate_otp(step)


def second_client(app, staff):
    """Another signed-in client for an account that has just signed in elsewhere."""
    client = app.test_client()
    client.post("/staff/sign-in", data={"email": staff.user.email, "password": staff.password})
    response = client.post("/staff/sign-in/code", data={"code": fresh_code(staff)})
    assert response.status_code == 302, page(response)[:500]
    return client


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def sessions_of(user) -> int:
    return db.session.scalar(
        select(func.count()).select_from(AuthSession).where(AuthSession.user_id == user.id)
    )


def change(client, current: str, new: str = NEW_PASSWORD, confirm: str | None = None, **extra):
    data = {"current": current, "new": new, "confirm": new if confirm is None else confirm}
    return client.post("/staff/account/password", data={**data, **extra})


@pytest.fixture
def org(make_org):
    return make_org()


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org)


@pytest.fixture
def case(submit, org, guardian):
    return submit(org, what_happened=CANARY).case


# Password change -------------------------------------------------------------------------


def test_password_change_keeps_every_case_readable_and_retires_the_old_password(
    app, guardian, case, staff_client, time_machine
):
    time_machine.move_to(datetime.now(UTC), tick=True)
    keys_before = set(
        db.session.scalars(select(CaseKey.sealed).where(CaseKey.user_id == guardian.user.id))
    )
    wrapped_before = guardian.user.wrapped_private_key
    public_before = guardian.user.public_key.key_id
    client = staff_client(guardian)
    form = client.get("/staff/account/password")
    assert form.status_code == 200 and "Change your password" in page(form)

    done = change(client, PASSWORD)
    assert done.status_code == 302 and done.location.endswith("/staff/cases/")
    assert "Your password was changed." in page(client.get(done.location))
    db.session.refresh(guardian.user)
    # The same keypair, re-locked: nothing needed re-sealing.
    assert guardian.user.wrapped_private_key != wrapped_before
    assert guardian.user.public_key.key_id == public_before
    assert keys_before == set(
        db.session.scalars(select(CaseKey.sealed).where(CaseKey.user_id == guardian.user.id))
    )
    [event] = events("user.password_changed")
    assert event.actor_user_id == guardian.user.id and CANARY not in event.detail
    # The session that changed it carries on.
    assert CANARY in page(client.get(f"/staff/cases/{case.reference}"))

    client.post("/staff/sign-out")
    time_machine.shift(timedelta(seconds=31))
    again = app.test_client()
    old = again.post("/staff/sign-in", data={"email": guardian.user.email, "password": PASSWORD})
    assert old.status_code == 400 and sessions_of(guardian.user) == 0

    new = again.post(
        "/staff/sign-in", data={"email": guardian.user.email, "password": NEW_PASSWORD}
    )
    assert new.status_code == 302
    # The authenticator app keeps working: no re-enrolment after a password change.
    second = again.get("/staff/sign-in/code")
    assert "Enter your security code" in page(second) and 'id="totp-secret"' not in page(second)
    code = again.post("/staff/sign-in/code", data={"code": fresh_code(guardian)})
    assert code.status_code == 302 and code.location.endswith("/staff/cases/")
    shown = again.get(f"/staff/cases/{case.reference}")
    assert shown.status_code == 200 and CANARY in page(shown)


def test_a_password_change_ends_every_other_session(
    app, guardian, case, staff_client, time_machine
):
    """A session stolen or left open elsewhere does not outlive a password change."""
    time_machine.move_to(datetime.now(UTC), tick=True)
    elsewhere = staff_client(guardian)
    time_machine.shift(timedelta(seconds=31))  # a fresh security code for the second sign-in
    here = staff_client(guardian)
    assert elsewhere.get(f"/staff/cases/{case.reference}").status_code == 200
    assert change(here, PASSWORD).status_code == 302
    gone = elsewhere.get(f"/staff/cases/{case.reference}")
    assert gone.status_code == 302 and gone.location.endswith("/staff/sign-in")
    assert here.get(f"/staff/cases/{case.reference}").status_code == 200
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.user_id == guardian.user.id)
        )
        == 1
    )


def test_a_wrong_current_password_changes_nothing(app, guardian, case, staff_client):
    client = staff_client(guardian)
    wrapped = guardian.user.wrapped_private_key
    refused = change(client, "not my password at all")
    assert refused.status_code == 400
    assert "Your current password is not right." in page(refused)
    db.session.refresh(guardian.user)
    assert guardian.user.wrapped_private_key == wrapped
    # Counts against this client like a wrong password at sign-in.
    assert db.session.scalar(select(SignInThrottle.failures)) == 1
    assert events("user.password_changed") == []
    # Still signed in, and the old password still opens the key.
    assert client.get(f"/staff/cases/{case.reference}").status_code == 200
    fresh = app.test_client()
    ok = fresh.post("/staff/sign-in", data={"email": guardian.user.email, "password": PASSWORD})
    assert ok.status_code == 302


@pytest.mark.parametrize(
    ("new", "confirm", "message"),
    [
        ("short", "short", "Passwords must be at least 12 characters"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "The passwords do not match"),
    ],
)
def test_a_weak_or_mistyped_new_password_is_refused(guardian, staff_client, new, confirm, message):
    client = staff_client(guardian)
    wrapped = guardian.user.wrapped_private_key
    refused = change(client, PASSWORD, new, confirm)
    assert refused.status_code == 400 and message in page(refused)
    db.session.refresh(guardian.user)
    assert guardian.user.wrapped_private_key == wrapped


def test_the_password_page_needs_a_full_sign_in(app, guardian):
    anonymous = app.test_client()
    response = anonymous.get("/staff/account/password")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    response = change(anonymous, PASSWORD)
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    # Half-way through signing in (password given, no code yet) is not signed in.
    half = app.test_client()
    half.post("/staff/sign-in", data={"email": guardian.user.email, "password": PASSWORD})
    response = change(half, PASSWORD)
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    db.session.refresh(guardian.user)
    assert events("user.password_changed") == []


def test_an_administrator_changes_their_own_password(make_staff, staff_client):
    admin = make_staff(Role.ADMIN)
    client = staff_client(admin)
    done = change(client, PASSWORD)
    assert done.status_code == 302 and done.location.endswith("/staff/admin/users")


def test_the_password_form_needs_its_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        guardian = make_staff(Role.GUARDIAN, make_org())
        client = app.test_client()
        token = CSRF.search(client.get("/staff/sign-in").get_data(as_text=True)).group(1)
        client.post(
            "/staff/sign-in",
            data={"email": guardian.user.email, "password": PASSWORD, "csrf_token": token},
        )
        token = CSRF.search(client.get("/staff/sign-in/code").get_data(as_text=True)).group(1)
        signed_in = client.post(
            "/staff/sign-in/code", data={"code": guardian.code(), "csrf_token": token}
        )
        assert signed_in.status_code == 302
        wrapped = guardian.user.wrapped_private_key

        assert change(client, PASSWORD).status_code == 400
        db.session.refresh(guardian.user)
        assert guardian.user.wrapped_private_key == wrapped

        token = CSRF.search(client.get("/staff/account/password").get_data(as_text=True)).group(1)
        assert change(client, PASSWORD, csrf_token=token).status_code == 302
        db.session.refresh(guardian.user)
        assert guardian.user.wrapped_private_key != wrapped


# Disabling -------------------------------------------------------------------------------


def disable_by(how: str, target, admin_client, cli) -> None:
    if how == "web":
        response = admin_client.post(f"/staff/admin/users/{target.user.id}/disable")
        assert response.status_code == 302 and response.location.endswith("/staff/admin/users")
        assert "is disabled and signed out everywhere" in page(admin_client.get(response.location))
    else:
        result = cli("user", "disable", target.user.email)
        assert result.exit_code == 0, result.output
        assert f"disabled {target.user.email}" in result.output


@pytest.mark.parametrize("how", ["web", "cli"])
def test_disabling_ends_every_session_at_once(
    how, app, org, guardian, case, make_staff, staff_client, cli
):
    admin_client = staff_client(make_staff(Role.ADMIN))
    laptop = staff_client(guardian)
    phone = second_client(app, guardian) if how == "cli" else None
    assert laptop.get(f"/staff/cases/{case.reference}").status_code == 200
    # Another account's session is untouched.
    colleague = make_staff(Role.GUARDIAN, org)
    colleague_client = staff_client(colleague)

    disable_by(how, guardian, admin_client, cli)

    db.session.refresh(guardian.user)
    assert guardian.user.disabled
    assert sessions_of(guardian.user) == 0
    for client in filter(None, (laptop, phone)):
        for path in ("/staff/cases/", f"/staff/cases/{case.reference}", "/staff/account/password"):
            response = client.get(path)
            assert response.status_code == 302, path
            assert response.location.endswith("/staff/sign-in"), path
        posted = change(client, PASSWORD)
        assert posted.status_code == 302 and posted.location.endswith("/staff/sign-in")
    assert colleague_client.get("/staff/cases/").status_code == 200
    [event] = events("user.disabled")
    assert event.detail == f"user={guardian.user.id}"
    assert event.actor_kind == ("user" if how == "web" else "system")


@pytest.mark.parametrize("how", ["web", "cli"])
def test_a_disabled_account_cannot_sign_in(how, app, guardian, make_staff, staff_client, cli):
    disable_by(how, guardian, staff_client(make_staff(Role.ADMIN)), cli)
    client = app.test_client()
    response = client.post(
        "/staff/sign-in", data={"email": guardian.user.email, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "the account is locked" in page(response)
    assert sessions_of(guardian.user) == 0
    assert client.get("/staff/sign-in/code").location.endswith("/staff/sign-in")


def test_disabling_between_password_and_code_stops_the_sign_in(
    app, guardian, make_staff, staff_client, cli
):
    client = app.test_client()
    client.post("/staff/sign-in", data={"email": guardian.user.email, "password": PASSWORD})
    assert cli("user", "disable", guardian.user.email).exit_code == 0
    response = client.post("/staff/sign-in/code", data={"code": guardian.code()})
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    assert client.get("/staff/cases/").location.endswith("/staff/sign-in")


def test_administrators_cannot_disable_themselves(make_staff, staff_client):
    admin = make_staff(Role.ADMIN)
    client = staff_client(admin)
    response = client.post(f"/staff/admin/users/{admin.user.id}/disable")
    assert response.status_code == 302
    assert "You cannot disable your own account." in page(client.get(response.location))
    db.session.refresh(admin.user)
    assert not admin.user.disabled
    assert client.get("/staff/admin/users").status_code == 200


def test_disabling_an_unknown_account(make_staff, staff_client, cli):
    client = staff_client(make_staff(Role.ADMIN))
    assert client.post("/staff/admin/users/999999/disable").status_code == 404
    result = cli("user", "disable", "nobody@example.test")
    assert result.exit_code != 0 and "No account nobody@example.test." in result.output
