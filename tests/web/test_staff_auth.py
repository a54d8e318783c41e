"""Staff sign-in: password then TOTP, enrolment, lockout, sessions and default-deny access."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pyotp
import pytest
from flask import url_for
from sqlalchemy import func, select, update

import speakup.accounts.services as account_services
import speakup.accounts.views as account_views
from speakup.accounts.models import AuthSession, Role
from speakup.accounts.services import create_user
from speakup.accounts.views import SIGN_IN_ERROR
from speakup.audit.models import AuditEvent
from speakup.db import utcnow
from speakup.extensions import db
from tests.conftest import PASSWORD, TEST_ARGON2, sign_in

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Endpoints under /staff that must be reachable without a session.
STAFF_PUBLIC = {
    "accounts.sign_in",
    "accounts.second_factor",
    "accounts.sign_out",
    "accounts.enrol",
}


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def sessions(**where) -> int:
    query = select(func.count()).select_from(AuthSession)
    for key, value in where.items():
        query = query.where(getattr(AuthSession, key) == value)
    return db.session.scalar(query)


def fresh_code(secret: str, user) -> str:
    """A valid code the account has not used yet (codes cannot be replayed)."""
    db.session.refresh(user)
    totp = pyotp.TOTP(secret)
    while True:
        now_step = int(time.time()) // totp.interval
        step = max(now_step, user.totp_last_step + 1)
        if step <= now_step + 1:
            return totp.generate_otp(step)
        time.sleep(1)


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    now = int(time.time())
    valid = {totp.at(now + offset * totp.interval) for offset in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def password_step(client, email: str, password: str = PASSWORD):
    return client.post("/staff/sign-in", data={"email": email, "password": password})


def locked(user) -> bool:
    db.session.refresh(user)
    return user.locked_until is not None and user.locked_until > utcnow()


@pytest.fixture
def guardian(make_org, make_staff):
    return make_staff(Role.GUARDIAN, make_org())


@pytest.fixture
def derivations(monkeypatch):
    """Count Argon2id derivations made by the sign-in view and the account service."""
    calls: list[str] = []

    def counting(module):
        original = module.derive_key

        def derive(*args, **kwargs):
            calls.append(module.__name__)
            return original(*args, **kwargs)

        return derive

    monkeypatch.setattr(account_views, "derive_key", counting(account_views))
    monkeypatch.setattr(account_services, "derive_key", counting(account_services))
    return calls


# Signing in ------------------------------------------------------------------------------


def test_sign_in_with_password_and_code(client, guardian):
    assert client.get("/staff/sign-in").status_code == 200
    first = password_step(client, guardian.user.email.upper())
    assert first.status_code == 302 and first.location.endswith("/staff/sign-in/code")
    cookie = first.headers.get("Set-Cookie")
    assert "speakup_staff=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/staff" in cookie
    assert sessions(stage="password") == 1

    code_page = client.get("/staff/sign-in/code")
    assert code_page.status_code == 200
    assert "Enter your security code" in page(code_page)
    assert "QR code" not in page(code_page)

    second = client.post("/staff/sign-in/code", data={"code": guardian.code()})
    assert second.status_code == 302 and second.location.endswith("/staff/cases/")
    assert sessions(stage="active") == 1
    inbox = client.get("/staff/cases/")
    assert inbox.status_code == 200
    assert "Your cases" in page(inbox)
    assert db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "user.signed_in", AuditEvent.actor_user_id == guardian.user.id)
    )


def test_wrong_password_and_unknown_email_look_the_same(client, guardian, derivations):
    typed = "wrong password, long enough"
    unknown = password_step(client, "nobody@example.test", typed)
    assert derivations == ["speakup.accounts.views"], "unknown emails must cost one derivation"
    derivations.clear()
    wrong = password_step(client, guardian.user.email, typed)
    assert derivations == ["speakup.accounts.services"]

    assert unknown.status_code == wrong.status_code == 400
    for response in (unknown, wrong):
        assert SIGN_IN_ERROR in page(response)

    def normalised(response, email):
        body = re.sub(r'nonce="[^"]*"', "", response.get_data(as_text=True))
        return body.replace(email, "EMAIL")

    assert normalised(unknown, "nobody@example.test") == normalised(wrong, guardian.user.email)
    assert sessions() == 0


def test_a_typed_password_is_never_sent_back(client, guardian):
    # A refused sign-in re-shows the form: the email may be kept, the password never.
    for email in (guardian.user.email, "nobody@example.test"):
        response = password_step(client, email, "my secret Passw0rd, typed wrongly")
        assert response.status_code == 400
        assert "my secret Passw0rd" not in page(response)
    response = client.post("/staff/sign-in", data={"email": "", "password": "only the password"})
    assert response.status_code == 400
    assert "only the password" not in page(response)


def test_a_wrong_code_gives_the_same_message(client, guardian):
    password_step(client, guardian.user.email)
    response = client.post("/staff/sign-in/code", data={"code": wrong_code(guardian.totp_secret)})
    assert response.status_code == 400
    assert SIGN_IN_ERROR in page(response)
    assert client.get("/staff/cases/").status_code == 302


def client_from(app, address: str):
    """A browser on its own network address."""
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = address
    return other


def test_wrong_passwords_make_that_client_wait_but_not_the_real_user(app, client, guardian):
    limit = int(app.config["AUTH_MAX_FAILED_LOGINS"])
    for attempt in range(limit):
        response = password_step(client, guardian.user.email, f"wrong password number {attempt}")
        assert response.status_code == 400
    # This client now waits, even with the right password …
    response = password_step(client, guardian.user.email)  # the right password
    assert response.status_code == 400
    assert SIGN_IN_ERROR in page(response)
    assert sessions() == 0
    assert db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == "user.sign_in_throttled",
            AuditEvent.actor_user_id == guardian.user.id,
        )
    )
    # … but someone typing wrong passwords for her name does not keep her out.
    assert not locked(guardian.user)
    own_device = client_from(app, "198.51.100.7")
    sign_in(own_device, guardian)
    assert own_device.get("/staff/cases/").status_code == 200


def test_the_wait_grows_and_many_clients_lock_the_account(app, guardian):
    app.config["AUTH_ACCOUNT_LOCK_CLIENTS"] = 3
    limit = int(app.config["AUTH_MAX_FAILED_LOGINS"])
    for n in range(3):
        attacker = client_from(app, f"203.0.113.{n + 1}")
        for attempt in range(limit):
            password_step(attacker, guardian.user.email, f"wrong password {attempt}")
    assert locked(guardian.user)
    [event] = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "user.locked", AuditEvent.actor_user_id == guardian.user.id
        )
    ).all()
    assert event.detail == "many clients"
    assert password_step(client_from(app, "198.51.100.7"), guardian.user.email).status_code == 400


def test_a_locked_account_still_costs_a_derivation(app, client, guardian, derivations):
    # Otherwise a fast answer tells an attacker "this email exists and is locked".
    guardian.user.locked_until = utcnow() + timedelta(minutes=15)
    db.session.commit()
    derivations.clear()
    response = password_step(client, guardian.user.email)
    assert response.status_code == 400
    assert len(derivations) == 1


def test_wrong_codes_lock_the_account(app, client, guardian):
    limit = int(app.config["AUTH_MAX_FAILED_LOGINS"])
    assert password_step(client, guardian.user.email).status_code == 302
    bad = wrong_code(guardian.totp_secret)
    for _ in range(limit - 1):
        assert client.post("/staff/sign-in/code", data={"code": bad}).status_code == 400
    assert not locked(guardian.user)
    assert client.post("/staff/sign-in/code", data={"code": bad}).status_code == 400
    assert locked(guardian.user)
    # Locking ends the half-finished session, and even a right code or password is refused.
    assert sessions() == 0
    gone = client.post("/staff/sign-in/code", data={"code": guardian.code()})
    assert gone.status_code == 302 and gone.location.endswith("/staff/sign-in")
    assert password_step(client, guardian.user.email).status_code == 400
    assert client.get("/staff/cases/").status_code == 302


def test_a_second_half_signed_in_session_cannot_finish_once_codes_locked_the_account(app, guardian):
    """The attack: two sessions pass the password step; the first guesses codes until the
    account locks; the second then enters the right code. It must be refused."""
    first, second = client_from(app, "203.0.113.1"), client_from(app, "203.0.113.2")
    assert password_step(first, guardian.user.email).status_code == 302
    assert password_step(second, guardian.user.email).status_code == 302
    assert sessions(stage="password") == 2
    bad = wrong_code(guardian.totp_secret)
    for _ in range(int(app.config["AUTH_MAX_FAILED_LOGINS"])):
        first.post("/staff/sign-in/code", data={"code": bad})
    assert locked(guardian.user)
    assert sessions() == 0  # every half-finished session of the account ended at once
    response = second.post("/staff/sign-in/code", data={"code": guardian.code()})
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    assert second.get("/staff/cases/").status_code == 302
    # Even a session that survived somehow is checked at the code step.
    guardian.user.locked_until = None
    db.session.commit()
    assert password_step(second, guardian.user.email).status_code == 302
    guardian.user.locked_until = utcnow() + timedelta(minutes=15)
    db.session.commit()
    refused = second.post("/staff/sign-in/code", data={"code": guardian.code()})
    assert refused.status_code == 302 and refused.location.endswith("/staff/sign-in")
    assert second.get("/staff/cases/").status_code == 302


def test_a_code_cannot_be_replayed(client, guardian):
    sign_in(client, guardian)
    db.session.refresh(guardian.user)
    used_step = guardian.user.totp_last_step
    used_code = pyotp.TOTP(guardian.totp_secret).generate_otp(used_step)
    assert client.post("/staff/sign-out").status_code == 302

    assert password_step(client, guardian.user.email).status_code == 302
    replay = client.post("/staff/sign-in/code", data={"code": used_code})
    assert replay.status_code == 400
    assert SIGN_IN_ERROR in page(replay)
    assert client.get("/staff/cases/").status_code == 302

    fresh = fresh_code(guardian.totp_secret, guardian.user)
    assert client.post("/staff/sign-in/code", data={"code": fresh}).status_code == 302
    assert client.get("/staff/cases/").status_code == 200


def test_first_sign_in_enrols_a_second_factor(app, client, make_org):
    user = create_user(
        email="new.guardian@example.test",
        display_name="New Guardian",
        role=Role.GUARDIAN,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=make_org(),
    )
    db.session.commit()
    assert user.totp_wrapped is None

    assert password_step(client, user.email).status_code == 302
    assert sessions(stage="enrol") == 1
    enrol = client.get("/staff/sign-in/code")
    assert enrol.status_code == 200
    body = enrol.get_data(as_text=True)
    assert "Set up your security code" in body
    # An inline SVG QR code: nothing is fetched from anywhere else.
    qr = re.search(r'class="speakup-qr">(.*?)</div>', body, re.S).group(1)
    assert "<svg" in qr and "QR code for your authenticator app" in qr
    assert "<img" not in qr and "href" not in qr
    secret = re.search(r'id="totp-secret">\s*([A-Z2-7 ]+?)\s*<', body).group(1).replace(" ", "")
    assert len(secret) >= 32
    # The same secret on a reload: it is held in the pending session, not regenerated.
    assert secret in client.get("/staff/sign-in/code").get_data(as_text=True).replace(" ", "")

    refused = client.post("/staff/sign-in/code", data={"code": wrong_code(secret)})
    assert refused.status_code == 400
    db.session.refresh(user)
    assert user.totp_wrapped is None

    confirmed = client.post("/staff/sign-in/code", data={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 302 and confirmed.location.endswith("/staff/cases/")
    db.session.refresh(user)
    assert user.totp_wrapped is not None
    assert secret.encode() not in user.totp_wrapped
    assert client.get("/staff/cases/").status_code == 200

    # Next time the code is asked for, not set up again.
    client.post("/staff/sign-out")
    assert password_step(client, user.email).status_code == 302
    again = page(client.get("/staff/sign-in/code"))
    assert "Enter your security code" in again and "QR code" not in again
    assert secret not in again
    code = fresh_code(secret, user)
    assert client.post("/staff/sign-in/code", data={"code": code}).status_code == 302


# Sessions --------------------------------------------------------------------------------


def test_sign_out_destroys_the_session(app, client, guardian):
    sign_in(client, guardian)
    cookie = client.get_cookie("speakup_staff", path="/staff")
    assert cookie is not None and sessions() == 1

    assert client.get("/staff/sign-out").status_code == 405  # never a link
    response = client.post("/staff/sign-out")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    assert sessions() == 0
    assert client.get("/staff/cases/").status_code == 302

    stolen = app.test_client()
    stolen.set_cookie("speakup_staff", cookie.value, path="/staff")
    response = stolen.get("/staff/cases/")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")


def _age_session(**changes) -> None:
    db.session.execute(update(AuthSession).values(**changes))
    db.session.commit()


def test_idle_timeout_ends_the_session(client, guardian):
    sign_in(client, guardian)
    _age_session(last_seen_at=utcnow() - timedelta(minutes=29))
    assert client.get("/staff/cases/").status_code == 200

    _age_session(last_seen_at=utcnow() - timedelta(minutes=31))
    response = client.get("/staff/cases/")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    assert sessions() == 0


def test_absolute_timeout_ends_the_session(client, guardian):
    sign_in(client, guardian)
    _age_session(created_at=utcnow() - timedelta(hours=13), last_seen_at=utcnow())
    response = client.get("/staff/cases/")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")
    assert sessions() == 0


def test_a_disabled_account_is_signed_out_at_once(client, guardian):
    sign_in(client, guardian)
    assert client.get("/staff/cases/").status_code == 200
    guardian.user.disabled = True
    db.session.commit()
    response = client.get("/staff/cases/")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")


def test_an_admin_has_no_case_inbox(client, make_staff):
    admin = make_staff(Role.ADMIN)
    sign_in(client, admin)
    assert client.get("/staff/cases/").status_code == 403


# Default deny ----------------------------------------------------------------------------


def _requests_for(app, rule):
    with app.test_request_context():
        url = url_for(rule.endpoint, **{name: 1 for name in rule.arguments})
    return [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


def test_every_non_public_endpoint_sends_anonymous_users_to_sign_in(app, client):
    checked = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        public = getattr(app.view_functions[rule.endpoint], "_speakup_public", False)
        if rule.rule.startswith("/staff"):
            assert public is (rule.endpoint in STAFF_PUBLIC), rule.endpoint
        if public:
            continue
        for method, url in _requests_for(app, rule):
            response = client.open(url, method=method)
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.location.endswith("/staff/sign-in"), (method, url)
            checked.add(rule.endpoint)
    assert {"cases.inbox", "cases.show", "cases.reply", "cases.download"} <= checked


def test_the_password_step_alone_opens_nothing(client, guardian, make_org, submit):
    case = submit(guardian.user.organisation).case
    assert password_step(client, guardian.user.email).status_code == 302
    for url in (
        "/staff/cases/",
        f"/staff/cases/{case.reference}",
        f"/staff/cases/{case.reference}/attachments/1",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location.endswith("/staff/sign-in"), url
    response = client.post(f"/staff/cases/{case.reference}/messages", data={"body": "hello"})
    assert response.status_code == 302


def test_the_enrolment_step_alone_opens_nothing(client, make_org):
    user = create_user(
        email="enrolling@example.test",
        display_name="Enrolling",
        role=Role.GUARDIAN,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=make_org(),
    )
    db.session.commit()
    assert password_step(client, user.email).status_code == 302
    assert client.get("/staff/cases/").status_code == 302


def test_the_code_page_without_a_password_step_goes_back_to_sign_in(client):
    response = client.get("/staff/sign-in/code")
    assert response.status_code == 302 and response.location.endswith("/staff/sign-in")


# CSRF ------------------------------------------------------------------------------------


def test_sign_in_forms_need_their_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        guardian = make_staff(Role.GUARDIAN, make_org())
        client = app.test_client()

        refused = password_step(client, guardian.user.email)
        assert refused.status_code == 400
        assert sessions() == 0

        token = CSRF.search(client.get("/staff/sign-in").get_data(as_text=True)).group(1)
        accepted = client.post(
            "/staff/sign-in",
            data={"email": guardian.user.email, "password": PASSWORD, "csrf_token": token},
        )
        assert accepted.status_code == 302

        no_token = client.post("/staff/sign-in/code", data={"code": guardian.code()})
        assert no_token.status_code == 400
        assert sessions(stage="active") == 0

        token = CSRF.search(client.get("/staff/sign-in/code").get_data(as_text=True)).group(1)
        code = fresh_code(guardian.totp_secret, guardian.user)
        done = client.post("/staff/sign-in/code", data={"code": code, "csrf_token": token})
        assert done.status_code == 302
        assert sessions(stage="active") == 1

        assert client.post("/staff/sign-out").status_code == 400
        assert sessions() == 1
