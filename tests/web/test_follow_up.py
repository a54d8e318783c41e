"""Following up with a receipt: sign-in, the case page, messages, identity, consent, sign-out."""

from __future__ import annotations

import html
import io
import re
import secrets

import pytest
from PIL import Image
from sqlalchemy import func, select

import speakup.reporting.services as reporting_services
from speakup.accounts.models import AuthSession, Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import (
    Attachment,
    Case,
    CaseKey,
    DisclosureMode,
    KeyType,
    Message,
    RecipientKind,
)
from speakup.extensions import db
from speakup.reporting.attachments import sanitise_attachment
from speakup.reporting.services import ReportInput, submit_report
from speakup.settings import argon2_params

#: Contains every look-alike Crockford folds: 0 (O) and 1 (I, L).
FIXED_RECEIPT = "01AB-CD1E-F0GH-JK10"
NEUTRAL = "We could not find a case with that receipt. Check it and try again."
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def png_bytes(colour=(0, 90, 180)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def sanitised(name: str, data: bytes):
    return sanitise_attachment(name, data, max_bytes=10 * 1024 * 1024)


def follow_up(client, receipt: str):
    return client.post("/follow-up", data={"receipt": receipt})


def signed_in(app, receipt: str):
    reporter = app.test_client()
    response = follow_up(reporter, receipt)
    assert response.status_code == 302, page(response)[:2000]
    assert response.location.endswith("/follow-up/case")
    return reporter


def audit_details(action: str, case_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == action, AuditEvent.case_id == case_id)
            .order_by(AuditEvent.seq)
        )
    )


@pytest.fixture
def org(make_org, tmp_path):
    return make_org(recovery_dir=tmp_path)


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Grace Guardian")


# Signing in with a receipt ---------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        FIXED_RECEIPT,
        FIXED_RECEIPT.lower(),
        FIXED_RECEIPT.replace("-", " "),
        FIXED_RECEIPT.replace("-", ""),
        "  01ab cd1e-f0gh_jk10  ",
        "OIAB-CDLE-FOGH-JKIO",  # O for 0, I and L for 1
        "oiab cdle fogh jklo",
    ],
)
def test_receipt_sign_in_is_tolerant(app, guardian, org, submit, monkeypatch, typed):
    monkeypatch.setattr(reporting_services, "generate_receipt", lambda: FIXED_RECEIPT)
    submission = submit(org)
    assert submission.receipt == FIXED_RECEIPT
    reporter = signed_in(app, typed)
    assert reporter.get("/follow-up/case").status_code == 200


def _normalised(response) -> str:
    # The CSP nonce differs on every response; nothing else may.
    return re.sub(r'nonce="[^"]*"', "", response.get_data(as_text=True))


def test_wrong_and_malformed_receipts_get_the_same_answer(client, guardian, org, submit):
    real = submit(org).receipt
    wrong = "-".join(["ZZZZ"] * 4) if not real.startswith("ZZZZ") else "-".join(["YYYY"] * 4)
    candidates = [
        wrong,  # well-formed, no such case
        real[:-1] + ("0" if real[-1] != "0" else "1"),  # one character off
        "hello",  # too short
        "01AB-CD1E-F0GH-JK1U",  # U is not in the alphabet
        "01AB-CD1E-F0GH-JK10-0000",  # too long
        "x" * 80,  # longer than the field allows
    ]
    responses = [follow_up(client, typed) for typed in candidates]
    assert {r.status_code for r in responses} == {400}
    for response in responses:
        assert NEUTRAL in page(response)
        assert not any("speakup_reporter=" in c for c in response.headers.getlist("Set-Cookie"))
    bodies = {_normalised(r) for r in responses}
    assert len(bodies) == 1, "a wrong receipt must be indistinguishable from a malformed one"
    assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0


def test_an_empty_receipt_asks_for_one(client):
    response = follow_up(client, "")
    assert response.status_code == 400
    assert "Enter your receipt" in page(response)


def test_a_wrong_receipt_costs_no_argon2_work(client, guardian, org, submit, monkeypatch):
    real = submit(org).receipt
    calls = []
    original = reporting_services.derive_key

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(reporting_services, "derive_key", counting)
    wrong = real[:-1] + ("0" if real[-1] != "0" else "1")
    assert follow_up(client, wrong).status_code == 400
    assert follow_up(client, "not a receipt").status_code == 400
    assert calls == []
    # The counter is wired to the real path: the right receipt costs exactly one derivation.
    assert follow_up(client, real).status_code == 302
    assert calls == [1]


# The case page ---------------------------------------------------------------------------


def test_case_page_shows_status_deadline_and_thread(app, guardian, org, submit, staff_client):
    submission = submit(org, what_happened="Nobody on the ward will sit with me at lunch.")
    case = submission.case
    staff = staff_client(guardian)
    assert (
        staff.post(
            f"/staff/cases/{case.reference}/messages",
            data={"body": "Thank you for telling me. Can we talk on Tuesday?"},
        ).status_code
        == 302
    )

    reporter = signed_in(app, submission.receipt)
    body = page(reporter.get("/follow-up/case"))

    assert "Received – waiting for a guardian to acknowledge it" in body
    assert "You should hear from a guardian by" in body
    assert case.acknowledge_by.strftime("%-d %B %Y") in body
    assert "Nobody on the ward will sit with me at lunch." in body
    assert "Thank you for telling me. Can we talk on Tuesday?" in body
    assert "Grace Guardian (guardian)" in body
    assert "Anonymous" in body


def test_reporter_sends_a_message_with_an_attachment(app, guardian, org, submit, staff_client):
    submission = submit(org)
    reporter = signed_in(app, submission.receipt)
    photo = png_bytes()

    response = reporter.post(
        "/follow-up/case/messages",
        data={
            "body": "Here is the photo of the notice.",
            "attachments": [(io.BytesIO(photo), "n.png")],
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 302
    message = db.session.scalars(select(Message)).one()
    assert message.author_kind == "reporter"
    assert message.author_user_id is None
    assert b"Here is the photo" not in message.body_ct
    attachment = db.session.scalars(select(Attachment)).one()
    assert attachment.message_id == message.id
    assert photo not in attachment.data_ct
    assert "Here is the photo of the notice." in page(reporter.get("/follow-up/case"))
    assert audit_details("case.reporter_message", submission.case.id) == [""]

    guardian_view = page(staff_client(guardian).get(f"/staff/cases/{submission.case.reference}"))
    assert "Here is the photo of the notice." in guardian_view
    assert "n.png" in guardian_view


def test_an_empty_message_is_refused(app, guardian, org, submit):
    reporter = signed_in(app, submit(org).receipt)
    response = reporter.post("/follow-up/case/messages", data={"body": "  "})
    assert response.status_code == 400
    assert "Enter a message" in page(response)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


def test_a_refused_attachment_on_a_message_stores_nothing(app, guardian, org, submit):
    reporter = signed_in(app, submit(org).receipt)
    response = reporter.post(
        "/follow-up/case/messages",
        data={"body": "See attached", "attachments": [(io.BytesIO(b"<html>x</html>"), "a.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "can't be attached" in page(response)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 0


# Identity and consent --------------------------------------------------------------------


def test_revealing_identity_seals_it_to_current_readers_only(
    app, org, make_org, make_staff, submit, staff_client
):
    reader = make_staff(Role.GUARDIAN, org, name="Reading Guardian")
    involved = make_staff(Role.GUARDIAN, org, name="Involved Guardian")
    elsewhere = make_staff(Role.GUARDIAN, make_org(), name="Other Trust Guardian")
    submission = submit(org, excluded_guardian_ids=[involved.user.id])
    case = submission.case
    assert case.identity_ct is None

    reporter = signed_in(app, submission.receipt)
    response = reporter.post(
        "/follow-up/case/identity", data={"name": "Adaeze Obi", "contact": "07700 900456"}
    )
    assert response.status_code == 302

    db.session.expire_all()
    case = db.session.get(Case, case.id)
    assert case.disclosure_mode == DisclosureMode.CONFIDENTIAL
    assert case.identity_ct is not None and b"Adaeze" not in case.identity_ct
    idk = db.session.scalars(
        select(CaseKey).where(CaseKey.case_id == case.id, CaseKey.key_type == str(KeyType.IDK))
    ).all()
    assert sorted((k.recipient_kind, k.user_id or 0) for k in idk) == sorted(
        [
            (str(RecipientKind.USER), reader.user.id),
            (str(RecipientKind.RECOVERY), 0),
            (str(RecipientKind.REPORTER), 0),
        ]
    )
    assert involved.user.id not in {k.user_id for k in idk}
    assert elsewhere.user.id not in {k.user_id for k in idk}
    assert audit_details("case.identity_revealed", case.id) == [""]

    guardian_view = page(staff_client(reader).get(f"/staff/cases/{case.reference}"))
    assert "Adaeze Obi" in guardian_view and "07700 900456" in guardian_view
    assert "Confidential" in guardian_view
    assert "Adaeze Obi" in page(reporter.get("/follow-up/case"))
    assert staff_client(involved).get(f"/staff/cases/{case.reference}").status_code == 404


def test_revealing_identity_needs_name_and_contact(app, guardian, org, submit):
    submission = submit(org)
    reporter = signed_in(app, submission.receipt)
    response = reporter.post("/follow-up/case/identity", data={"name": "Only A Name"})
    assert response.status_code == 400
    assert "Enter how the guardian can contact you" in page(response)
    db.session.expire_all()
    case = db.session.get(Case, submission.case.id)
    assert case.identity_ct is None
    assert case.disclosure_mode == DisclosureMode.ANONYMOUS


def test_escalation_consent_is_given_and_withdrawn(app, guardian, org, submit):
    submission = submit(org)
    case_id = submission.case.id
    reporter = signed_in(app, submission.receipt)

    assert reporter.post("/follow-up/case/consent", data={"consent": "yes"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case_id).escalation_consent is True
    body = reporter.get("/follow-up/case").get_data(as_text=True)
    assert re.search(r'value="yes"[^>]*checked|checked[^>]*value="yes"', body)

    assert reporter.post("/follow-up/case/consent", data={"consent": "no"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case_id).escalation_consent is False
    assert audit_details("case.escalation_consent", case_id) == ["given", "withdrawn"]


def test_consent_needs_an_answer(app, guardian, org, submit):
    submission = submit(org, escalation_consent=True)
    reporter = signed_in(app, submission.receipt)
    response = reporter.post("/follow-up/case/consent", data={})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Case, submission.case.id).escalation_consent is True
    assert audit_details("case.escalation_consent", submission.case.id) == []


# Sessions and isolation ------------------------------------------------------------------


def reporter_sessions() -> int:
    return db.session.scalar(
        select(func.count()).select_from(AuthSession).where(AuthSession.kind == "reporter")
    )


def test_sign_out_destroys_the_session(app, guardian, org, submit):
    reporter = signed_in(app, submit(org).receipt)
    assert reporter_sessions() == 1
    cookie = reporter.get_cookie("speakup_reporter", path="/follow-up")
    assert cookie is not None

    response = reporter.post("/follow-up/sign-out")
    assert response.status_code == 302
    assert reporter_sessions() == 0
    after = reporter.get("/follow-up/case")
    assert after.status_code == 302 and after.location.endswith("/follow-up")

    replay = app.test_client()
    replay.set_cookie("speakup_reporter", cookie.value, path="/follow-up")
    again = replay.get("/follow-up/case")
    assert again.status_code == 302 and again.location.endswith("/follow-up")


def test_signing_in_again_replaces_the_session(app, guardian, org, submit):
    receipt = submit(org).receipt
    reporter = signed_in(app, receipt)
    assert follow_up(reporter, receipt).status_code == 302
    assert reporter_sessions() == 1


def test_without_a_session_the_case_pages_send_you_to_sign_in(client):
    for method, url in [
        ("get", "/follow-up/case"),
        ("post", "/follow-up/case/messages"),
        ("post", "/follow-up/case/identity"),
        ("post", "/follow-up/case/consent"),
        ("get", "/follow-up/case/attachments/1"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.location.endswith("/follow-up"), url


def test_a_reporter_sees_only_their_own_case(app, guardian, org, submit):
    mine = submit(org, what_happened="Mine: the locker room comments.")
    theirs = submit(
        org,
        what_happened="Theirs: the rota was changed.",
        attachments=[sanitised("theirs.txt", b"their evidence\n")],
    )
    other_attachment = db.session.scalars(
        select(Attachment).where(Attachment.case_id == theirs.case.id)
    ).one()

    reporter = signed_in(app, mine.receipt)
    body = page(reporter.get("/follow-up/case"))
    assert "Mine: the locker room comments." in body
    assert "Theirs" not in body
    response = reporter.get(f"/follow-up/case/attachments/{other_attachment.id}")
    assert response.status_code == 404
    assert b"their evidence" not in response.data


def test_reporter_attachment_download_is_a_safe_download(app, guardian, org, submit):
    photo = png_bytes()
    submission = submit(
        org, attachments=[sanitised("ward.png", photo), sanitised("notes.txt", b"notes\n")]
    )
    rows = db.session.scalars(
        select(Attachment).where(Attachment.case_id == submission.case.id).order_by(Attachment.id)
    ).all()
    reporter = signed_in(app, submission.receipt)

    image = reporter.get(f"/follow-up/case/attachments/{rows[0].id}")
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    assert image.headers["Content-Disposition"].startswith("attachment")
    assert "ward.png" in image.headers["Content-Disposition"]
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in image.headers["Content-Security-Policy"]
    assert image.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(image.data)).size == (8, 8)

    note = reporter.get(f"/follow-up/case/attachments/{rows[1].id}")
    assert note.mimetype == "text/plain"
    assert note.headers["Content-Disposition"].startswith("attachment")
    assert note.data == b"notes\n"


# CSRF ------------------------------------------------------------------------------------


def test_follow_up_forms_need_their_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_staff(Role.GUARDIAN, org)
        submission = submit_report(
            ReportInput(
                organisation_id=org.id,
                route="organisation",
                disclosure_mode=DisclosureMode.ANONYMOUS,
                what_happened="Something happened.",
                submission_token=secrets.token_urlsafe(16),
            ),
            pepper=app.config["RECEIPT_PEPPER"],
            params=argon2_params(app.config),
            sla={"acknowledge_working_days": 2, "acknowledge_ceiling_days": 7},
        )
        db.session.commit()
        reporter = app.test_client()

        assert follow_up(reporter, submission.receipt).status_code == 400
        token = CSRF.search(reporter.get("/follow-up").get_data(as_text=True)).group(1)
        signed = reporter.post(
            "/follow-up", data={"receipt": submission.receipt, "csrf_token": token}
        )
        assert signed.status_code == 302

        refused = reporter.post("/follow-up/case/messages", data={"body": "No token"})
        assert refused.status_code == 400
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0

        case_page = reporter.get("/follow-up/case").get_data(as_text=True)
        token = CSRF.search(case_page).group(1)
        sent = reporter.post(
            "/follow-up/case/messages", data={"body": "With a token", "csrf_token": token}
        )
        assert sent.status_code == 302
        assert db.session.scalar(select(func.count()).select_from(Message)) == 1

        # Signing out is a state change too.
        assert reporter.post("/follow-up/sign-out").status_code == 400
        assert reporter.get("/follow-up/case").status_code == 200
