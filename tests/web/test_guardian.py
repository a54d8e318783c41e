"""The guardian's side: inbox, opening a case, replying and downloading attachments."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import delete, func, select

import speakup.cases.custody as case_keys
import speakup.crypto.aead as aead
import speakup.crypto.sealing as sealing
from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import Attachment, CaseKey, DisclosureMode, KeyType, Message
from speakup.db import utcnow
from speakup.extensions import db
from speakup.reporting.attachments import sanitise_attachment
from tests.conftest import recorded_queries, sign_in

REFERENCE = re.compile(r'href="/staff/cases/(SU-[0-9A-Z]{4}-[0-9A-Z]{4})"')
SAFE_TYPES = {"application/pdf", "image/jpeg", "image/png", "text/plain"}


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def references(response) -> list[str]:
    return REFERENCE.findall(response.get_data(as_text=True))


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 180)).save(out, "PNG")
    return out.getvalue()


def sanitised(name: str, data: bytes):
    return sanitise_attachment(name, data, max_bytes=10 * 1024 * 1024)


def audited(action: str, **where) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    for key, value in where.items():
        query = query.where(getattr(AuditEvent, key) == value)
    return list(db.session.scalars(query))


@pytest.fixture
def org(make_org):
    return make_org()


@pytest.fixture
def guardian(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Grace Guardian")


# The inbox -------------------------------------------------------------------------------


def test_inbox_lists_only_my_cases_newest_first_in_pages(make_app, make_org, make_staff, submit):
    app = make_app(INBOX_PAGE_SIZE=2)
    with app.app_context():
        org, elsewhere = make_org(), make_org()
        guardian = make_staff(Role.GUARDIAN, org)
        colleague = make_staff(Role.GUARDIAN, org)
        make_staff(Role.GUARDIAN, elsewhere)
        # Received times deliberately out of id order: "newest" means received, not created.
        now = utcnow()
        offsets = [3, 1, 4, 0, 2]  # hours ago
        mine = []
        for hours in offsets:
            case = submit(org).case
            case.received_at = now - timedelta(hours=hours)
            mine.append((hours, case.reference))
        not_mine = [
            submit(elsewhere).case.reference,
            submit(org, excluded_guardian_ids=[guardian.user.id]).case.reference,
        ]
        db.session.commit()
        newest_first = [ref for _hours, ref in sorted(mine)]

        client = app.test_client()
        sign_in(client, guardian)
        pages = [references(client.get(f"/staff/cases/?page={n}")) for n in (1, 2, 3)]
        assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
        listed = {ref for refs in pages for ref in refs}
        assert not listed & set(not_mine)

        first = page(client.get("/staff/cases/"))
        assert "5 cases, newest first." in first
        assert "Page 2 of 3" in first
        # Out-of-range and nonsense page numbers are clamped, not errors.
        for value, expected in (("0", 0), ("-4", 0), ("99", 2), ("abc", 0), ("", 0)):
            response = client.get(f"/staff/cases/?page={value}")
            assert response.status_code == 200, value
            assert references(response) == pages[expected], value

        # A colleague on the same route sees the excluded-from-me case; I do not.
        other = app.test_client()
        sign_in(other, colleague)
        assert not_mine[1] in {
            ref for n in (1, 2, 3) for ref in references(other.get(f"/staff/cases/?page={n}"))
        }


def test_an_empty_inbox_says_so(client, guardian):
    sign_in(client, guardian)
    assert "No cases have been sealed to you yet." in page(client.get("/staff/cases/"))


def _inbox_queries(client) -> int:
    db.session.expire_all()
    with recorded_queries() as statements:
        response = client.get("/staff/cases/")
    assert response.status_code == 200
    return len(statements)


def test_the_inbox_query_count_does_not_grow_with_cases(client, org, guardian, submit):
    for _ in range(2):
        submit(org)
    sign_in(client, guardian)
    client.get("/staff/cases/")  # warm up: templates, connections
    with_two = _inbox_queries(client)
    assert len(references(client.get("/staff/cases/"))) == 2

    for _ in range(18):
        submit(org)
    with_twenty = _inbox_queries(client)
    assert len(references(client.get("/staff/cases/"))) == 20

    assert with_twenty == with_two
    assert with_two <= 10  # session, user, count, page, organisations — and some slack


def test_opening_the_inbox_decrypts_nothing(client, org, guardian, submit, monkeypatch):
    for _ in range(3):
        submit(org, attachments=[sanitised("a.txt", b"evidence\n")])
    sign_in(client, guardian)
    calls: list[str] = []

    def counting(name, original):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(aead, "decrypt", counting("decrypt", aead.decrypt))
    monkeypatch.setattr(sealing, "open_sealed", counting("open_sealed", sealing.open_sealed))
    monkeypatch.setattr(case_keys, "open_sealed", counting("open_sealed", case_keys.open_sealed))

    response = client.get("/staff/cases/")
    assert response.status_code == 200
    assert len(references(response)) == 3
    assert calls == []

    # The counters do see decryption when there is some: opening a case.
    assert client.get(f"/staff/cases/{references(response)[0]}").status_code == 200
    assert "open_sealed" in calls and "decrypt" in calls


# A case ----------------------------------------------------------------------------------


def test_case_page_shows_the_decrypted_report(client, org, guardian, submit):
    case = submit(
        org,
        what_happened="My manager keeps giving me the worst shifts.",
        desired_outcome="A fair rota.",
        categories=["work_allocation"],
    ).case
    sign_in(client, guardian)
    response = client.get(f"/staff/cases/{case.reference}")
    assert response.status_code == 200
    body = page(response)
    assert "My manager keeps giving me the worst shifts." in body
    assert "A fair rota." in body
    assert "Unfair allocation of work, shifts or rotas" in body
    assert "Anonymous" in body
    assert org.name in body
    assert len(audited("case.opened", case_id=case.id, actor_user_id=guardian.user.id)) == 1


def test_identity_is_shown_only_when_its_key_is_sealed_to_me(client, org, guardian, submit):
    case = submit(
        org,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name="Chidi Okeke",
        contact="chidi@example.test",
    ).case
    sign_in(client, guardian)
    body = page(client.get(f"/staff/cases/{case.reference}"))
    assert "Chidi Okeke" in body and "chidi@example.test" in body

    db.session.execute(
        delete(CaseKey).where(
            CaseKey.case_id == case.id,
            CaseKey.user_id == guardian.user.id,
            CaseKey.key_type == str(KeyType.IDK),
        )
    )
    db.session.commit()
    body = page(client.get(f"/staff/cases/{case.reference}"))
    assert "Chidi Okeke" not in body and "chidi@example.test" not in body
    assert "Not shared with you" in body
    assert "Something happened on the ward." in body  # the report itself is still readable


def test_a_case_not_sealed_to_me_is_not_found(client, org, guardian, make_org, make_staff, submit):
    outsider = make_staff(Role.GUARDIAN, make_org())
    case = submit(org).case
    sign_in(client, outsider)
    hidden = client.get(f"/staff/cases/{case.reference}")
    missing = client.get("/staff/cases/SU-0000-0000")
    assert hidden.status_code == missing.status_code == 404
    assert "Something happened" not in page(hidden)
    refused = client.post(f"/staff/cases/{case.reference}/messages", data={"body": "hello"})
    assert refused.status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    assert audited("case.opened", case_id=case.id) == []


def test_a_reply_reaches_the_reporter(app, client, org, guardian, submit):
    submission = submit(org)
    staff = app.test_client()
    sign_in(staff, guardian)
    response = staff.post(
        f"/staff/cases/{submission.case.reference}/messages",
        data={"body": "Thank you. I have read this and will call you on Monday."},
    )
    assert response.status_code == 302
    message = db.session.scalars(select(Message)).one()
    assert message.author_kind == "guardian"
    assert message.author_user_id == guardian.user.id
    assert b"Thank you" not in message.body_ct
    assert audited("case.message_sent", case_id=submission.case.id)

    assert client.post("/follow-up", data={"receipt": submission.receipt}).status_code == 302
    body = page(client.get("/follow-up/case"))
    assert "Thank you. I have read this and will call you on Monday." in body
    assert "Grace Guardian (guardian)" in body


def test_an_empty_reply_is_refused(client, org, guardian, submit):
    case = submit(org).case
    sign_in(client, guardian)
    response = client.post(f"/staff/cases/{case.reference}/messages", data={"body": " "})
    assert response.status_code == 400
    assert "Enter a message" in page(response)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0


# Downloads -------------------------------------------------------------------------------


def test_attachment_downloads_are_safe(client, org, guardian, submit):
    photo = png_bytes()
    case = submit(
        org,
        attachments=[
            sanitised("ward.png", photo),
            sanitised("notes.txt", b"notes: 2 < 3 & 4 > 1\n"),
        ],
    ).case
    other = submit(org, attachments=[sanitised("other.txt", b"other case\n")]).case
    rows = db.session.scalars(
        select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id)
    ).all()
    other_row = db.session.scalars(select(Attachment).where(Attachment.case_id == other.id)).one()
    sign_in(client, guardian)

    image = client.get(f"/staff/cases/{case.reference}/attachments/{rows[0].id}")
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    note = client.get(f"/staff/cases/{case.reference}/attachments/{rows[1].id}")
    assert note.mimetype == "text/plain"
    assert note.data == b"notes: 2 < 3 & 4 > 1\n"
    for response, name in ((image, "ward.png"), (note, "notes.txt")):
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert name in response.headers["Content-Disposition"]
        assert response.mimetype in SAFE_TYPES and "html" not in response.content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "sandbox" in response.headers["Content-Security-Policy"]
    assert [e.detail for e in audited("case.attachment_downloaded", case_id=case.id)] == [
        f"attachment={rows[0].id}",
        f"attachment={rows[1].id}",
    ]

    # Another case's attachment cannot be fetched through this case's reference.
    crossed = client.get(f"/staff/cases/{case.reference}/attachments/{other_row.id}")
    assert crossed.status_code == 404
    assert b"other case" not in crossed.data
