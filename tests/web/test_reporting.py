"""The public report form: choices, validation, what is stored, receipts and attachments."""

from __future__ import annotations

import html
import io
import re
import secrets
import tempfile
import time

import pikepdf
import pytest
from PIL import Image
from sqlalchemy import select, text
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from speakup.accounts.models import Role
from speakup.cases.models import Attachment, Case, CaseKey, DisclosureMode, KeyType
from speakup.extensions import db
from speakup.reporting import attachments
from tests.conftest import count

RECEIPT = re.compile(r'data-testid="receipt">\s*([0-9A-Z-]+)\s*<')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def report(org, **overrides):
    """Form data for a valid anonymous report to ``org``'s guardians."""
    data = {
        "organisation": str(org.id),
        "route": "organisation",
        "what_happened": "A colleague mocked my accent in the staff room.",
        "when": "",
        "desired_outcome": "I would like it to stop.",
        "disclosure_mode": "anonymous",
        "escalation_consent": "no",
        "submission_token": secrets.token_urlsafe(16),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def committed_cases() -> int:
    """Cases visible to a separate connection: what is really committed."""
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM concern_case")).scalar_one()


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def receipt_of(response) -> str:
    match = RECEIPT.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:3000]
    return match.group(1)


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (32, 24), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
def org(make_org, make_staff):
    """An organisation with one guardian, so the organisation route has a reader."""
    organisation = make_org()
    make_staff(Role.GUARDIAN, organisation)
    return organisation


# The form --------------------------------------------------------------------------------


def test_form_lists_every_organisation_and_the_pool_guardians(client, make_org, make_staff):
    first, second = make_org("ALPHA"), make_org("BETA")
    pooled = make_staff(Role.GUARDIAN, second, in_pool=True, name="Adaeze Pooled")
    pooled.user.languages = "English, Yoruba"
    pooled.user.bio = "Former midwife; I listen first."
    make_staff(Role.GUARDIAN, first, name="Not In Pool")
    db.session.commit()

    response = client.get("/report")
    assert response.status_code == 200
    body = page(response)
    for org in (first, second):
        assert f'value="{org.id}"' in body
        assert f"{org.name} (Test System)" in body
    pool_section = body.split('name="pool_guardian"', 1)[1].split(
        "Is a guardian or panel member involved", 1
    )[0]
    assert "Adaeze Pooled" in body
    assert f'value="{pooled.user.id}"' in body
    assert "Test Organisation BETA" in pool_section
    assert "English, Yoruba" in pool_section
    assert "Former midwife; I listen first." in pool_section
    assert "Not In Pool" not in pool_section


def test_a_disabled_pool_guardian_is_not_offered(client, make_org, make_staff):
    org = make_org()
    gone = make_staff(Role.GUARDIAN, org, in_pool=True, name="Left The Trust")
    gone.user.disabled = True
    db.session.commit()
    assert "Left The Trust" not in page(client.get("/report"))


# Validation ------------------------------------------------------------------------------

TYPED = "The rota is always unfair to the international nurses on ward nine."


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"organisation": ""}, "Choose the organisation where it happened"),
        ({"route": None}, "Choose who should receive your concern"),
        ({"what_happened": ""}, "Tell us what happened"),
        ({"what_happened": "   \n "}, "Tell us what happened"),
        ({"route": "pool"}, "Choose a guardian from the pool"),
        (
            {"disclosure_mode": "confidential", "contact": "07700 900123"},
            "Enter your name, or choose to speak up anonymously",
        ),
        (
            {"disclosure_mode": "open", "name": "Ngozi Example"},
            "Enter how the guardian can contact you",
        ),
    ],
)
def test_invalid_reports_are_refused_with_an_error_summary(client, org, overrides, message):
    fields = {"what_happened": TYPED, "desired_outcome": "Fair rotas please.", **overrides}
    data = report(org, **fields)  # a None value leaves the field out

    response = client.post("/report", data=data)

    assert response.status_code == 400
    body = page(response)
    assert "There is a problem" in body
    assert "<title>Error:" in body
    assert message in body
    # What the reporter typed is still there for them to correct.
    if data["what_happened"].strip():
        assert TYPED in body
    assert "Fair rotas please." in body
    for typed in ("07700 900123", "Ngozi Example"):
        if typed in data.values():
            assert typed in body
    assert committed_cases() == 0
    assert count(Case) == 0


def test_an_unknown_organisation_is_refused(client, org):
    response = client.post("/report", data=report(org, organisation="999999"))
    assert response.status_code == 400
    assert "There is a problem" in page(response)
    assert committed_cases() == 0


# What is stored --------------------------------------------------------------------------


def test_anonymous_reports_store_no_identity_even_if_typed(client, org):
    response = client.post(
        "/report",
        data=report(org, name="Typed Anyway", contact="typed@example.test"),
    )
    assert response.status_code == 200, page(response)[:2000]
    case = db.session.scalars(select(Case)).one()
    assert case.disclosure_mode == DisclosureMode.ANONYMOUS
    assert case.identity_ct is None
    idk_rows = db.session.scalars(select(CaseKey).where(CaseKey.key_type == str(KeyType.IDK)))
    assert idk_rows.all() == []
    # The typed values are not anywhere in the case row either.
    for column in Case.__table__.columns:
        value = getattr(case, column.key)
        if isinstance(value, bytes):
            assert b"Typed Anyway" not in value and b"typed@example.test" not in value


def test_confidential_reports_store_an_encrypted_identity(client, make_org, make_staff, tmp_path):
    org = make_org(recovery_dir=tmp_path)
    guardian = make_staff(Role.GUARDIAN, org)
    response = client.post(
        "/report",
        data=report(
            org, disclosure_mode="confidential", name="Kofi Mensah", contact="kofi@example.test"
        ),
    )
    assert response.status_code == 200, page(response)[:2000]
    case = db.session.scalars(select(Case)).one()
    assert case.disclosure_mode == DisclosureMode.CONFIDENTIAL
    assert case.identity_ct is not None
    assert b"Kofi" not in case.identity_ct
    idk = db.session.scalars(select(CaseKey).where(CaseKey.key_type == str(KeyType.IDK))).all()
    assert sorted((k.recipient_kind, k.user_id) for k in idk) == sorted(
        [("user", guardian.user.id), ("recovery", None), ("reporter", None)]
    )


# Receipts and commits --------------------------------------------------------------------


def test_the_receipt_is_shown_once_the_report_is_committed(client, org):
    response = client.post("/report", data=report(org))
    assert response.status_code == 200
    receipt = receipt_of(response)
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", receipt)
    assert committed_cases() == 1


def test_no_receipt_if_the_commit_fails(app, client, org, monkeypatch):
    app.testing = False  # render the error page as production would, instead of raising

    def broken_commit():
        raise RuntimeError("database went away")

    monkeypatch.setattr(db.session, "commit", broken_commit)
    response = client.post("/report", data=report(org))
    monkeypatch.undo()
    db.session.rollback()

    assert response.status_code == 500
    body = page(response)
    assert "Sorry, there is a problem with the service" in body
    assert 'data-testid="receipt"' not in body
    assert "Your receipt" not in body
    assert committed_cases() == 0
    assert count(Case) == 0


def test_a_duplicate_submission_token_is_one_case(client, org):
    data = report(org)
    first = client.post("/report", data=data)
    assert first.status_code == 200
    again = client.post("/report", data=data)
    assert again.status_code == 409
    body = page(again)
    assert "already received" in body
    assert not RECEIPT.search(body)
    assert committed_cases() == 1


def test_each_form_gets_a_fresh_submission_token(client, org):
    tokens = set()
    for _ in range(2):
        body = client.get("/report").get_data(as_text=True)
        match = re.search(r'name="submission_token"[^>]*value="([^"]+)"', body) or re.search(
            r'value="([^"]+)"[^>]*name="submission_token"', body
        )
        assert match, "the form carries a hidden submission token"
        tokens.add(match.group(1))
    assert len(tokens) == 2


# Attachments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            [(b"<html><body><script>alert(1)</script></body></html>", "evidence.pdf")],
            "can't be attached",
        ),
        (
            [(b"<!DOCTYPE html><p>hello</p>", "notes.txt")],
            "can't be attached",
        ),
        (
            [(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, "evidence.pdf")],
            "can't be attached",
        ),
        (
            [(f"note {n}\n".encode(), f"note{n}.txt") for n in range(6)],
            "You can attach up to 5 files",
        ),
        ([(b"", "empty.txt")], "is empty"),
    ],
    ids=["html-named-pdf", "html-named-txt", "zip-named-pdf", "six-files", "empty"],
)
def test_refused_attachments_store_nothing(client, org, files, message):
    data = report(org)
    data["attachments"] = [(io.BytesIO(content), name) for content, name in files]
    response = client.post("/report", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    body = page(response)
    assert "There is a problem" in body
    assert message in body
    assert not RECEIPT.search(body)
    assert committed_cases() == 0
    assert count(Attachment) == 0


def test_an_attachment_over_the_size_limit_is_refused(make_app, make_org, make_staff):
    app = make_app(ATTACHMENTS_MAX_BYTES=1000)
    with app.app_context():
        org = make_org()
        make_staff(Role.GUARDIAN, org)
        data = report(org)
        data["attachments"] = [(io.BytesIO(b"x" * 1001), "big.txt")]
        response = app.test_client().post("/report", data=data, content_type="multipart/form-data")
        assert response.status_code == 400
        body = page(response)
        assert '"big.txt" is too large' in body
        assert committed_cases() == 0
        assert count(Attachment) == 0

        data = report(org)
        data["attachments"] = [(io.BytesIO(b"x" * 1000), "fits.txt")]
        response = app.test_client().post("/report", data=data, content_type="multipart/form-data")
        assert response.status_code == 200, page(response)[:2000]
        assert count(Attachment) == 1


def test_attachments_are_stored_encrypted_and_metadata_removal_is_explained(client, org):
    photo = jpeg_with_exif()
    note = b"Shift pattern for March: nights every weekend.\n"
    data = report(org)
    data["attachments"] = [(io.BytesIO(photo), "IMG_0001.jpg"), (io.BytesIO(note), "rota.txt")]

    response = client.post("/report", data=data, content_type="multipart/form-data")

    assert response.status_code == 200, page(response)[:2000]
    body = page(response)
    assert "IMG_0001.jpg: we removed camera details (EXIF)" in body
    assert "rota.txt: nothing hidden needed removing" in body
    case = db.session.scalars(select(Case)).one()
    rows = db.session.scalars(select(Attachment).order_by(Attachment.id)).all()
    assert len(rows) == 2
    assert all(row.case_id == case.id and row.message_id is None for row in rows)
    for row, original in zip(rows, (photo, note), strict=True):
        assert row.data_ct != original
        assert original not in row.data_ct
        assert b"PhoneMaker" not in row.data_ct
        for name in (b"IMG_0001", b"rota", b"image/jpeg", b"text/plain"):
            assert name not in row.meta_ct


def hostile_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.OpenAction = pikepdf.Dictionary(
        S=pikepdf.Name.JavaScript, JS=pikepdf.String("CANARY_OPEN_JS()")
    )
    pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary(Author=pikepdf.String("CANARY")))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_a_pdf_is_rebuilt_and_the_receipt_says_so_truthfully(client, org):
    data = report(org)
    data["attachments"] = [(io.BytesIO(hostile_pdf()), "statement.pdf")]
    response = client.post("/report", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, page(response)[:2000]
    assert (
        "statement.pdf: we rebuilt it from images of its pages, so links, scripts, forms, "
        "attached files and hidden details such as the author are not kept"
    ) in page(response)
    assert count(Attachment) == 1


@pytest.mark.parametrize(
    "content",
    [b"%PDF-1.7\nnot really a pdf", b"%PDF-", b"%PDF-1.4\n" + b"\x00" * 5000],
    ids=["garbage", "header-only", "zeros"],
)
def test_a_malformed_pdf_is_refused_with_a_clear_message_not_an_error(client, org, content):
    data = report(org)
    data["attachments"] = [(io.BytesIO(content), "statement.pdf")]
    response = client.post("/report", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert '"statement.pdf" looks damaged and can\'t be opened as a PDF.' in page(response)
    assert committed_cases() == 0


def test_the_form_says_which_files_are_accepted_and_what_to_do_with_office_documents(client):
    body = page(client.get("/report"))
    assert "PDF (up to 50 pages), JPEG, PNG or plain text" in body
    assert "Office documents can't be attached: save them as PDF first" in body


def test_large_uploads_are_never_spooled_to_disk(client, org, monkeypatch):
    def no_disk(*_args, **_kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    import werkzeug.formparser

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
        if hasattr(werkzeug.formparser, name):
            monkeypatch.setattr(werkzeug.formparser, name, no_disk)

    line = b"The same thing happened again on the night shift.\n"
    big = line * (700 * 1024 // len(line) + 1)
    assert len(big) > 700 * 1024
    data = report(org)
    data["attachments"] = FileStorage(io.BytesIO(big), filename="diary.txt")
    # Encoded here in memory: the test client itself would spool a body this big to a file.
    boundary, body = encode_multipart(data)

    response = client.post(
        "/report", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert response.status_code == 200, page(response)[:2000]
    assert count(Attachment) == 1


# CSRF ------------------------------------------------------------------------------------


def test_report_form_needs_its_csrf_token(make_app, make_org, make_staff):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_staff(Role.GUARDIAN, org)
        client = app.test_client()

        refused = client.post("/report", data=report(org))
        assert refused.status_code == 400
        assert not RECEIPT.search(page(refused))
        assert committed_cases() == 0

        form = client.get("/report").get_data(as_text=True)
        token = CSRF.search(form).group(1)
        wrong = client.post("/report", data=report(org, csrf_token=token[:-4] + "AAAA"))
        assert wrong.status_code == 400
        assert committed_cases() == 0

        accepted = client.post("/report", data=report(org, csrf_token=token))
        assert accepted.status_code == 200, page(accepted)[:2000]
        receipt_of(accepted)
        assert committed_cases() == 1


def test_all_the_pdfs_of_one_request_share_one_time_budget(
    make_app, make_org, make_staff, monkeypatch
):
    # Five PDFs that each take 0.3 s within a 1 s budget: the later ones get what is left.
    budgets: list[float] = []

    def slow_rebuild(data, limits):
        budgets.append(limits.timeout_seconds)
        time.sleep(0.3)
        return data

    monkeypatch.setattr(attachments, "rebuild_pdf", slow_rebuild)
    app = make_app(ATTACHMENTS_PDF_TIMEOUT_SECONDS=1.0)
    with app.app_context():
        org = make_org()
        make_staff(Role.GUARDIAN, org)
        data = report(org)
        data["attachments"] = [(io.BytesIO(hostile_pdf()), f"p{n}.pdf") for n in range(5)]
        response = app.test_client().post("/report", data=data, content_type="multipart/form-data")
        assert response.status_code == 200, page(response)[:2000]
    assert len(budgets) == 5
    assert budgets[0] == pytest.approx(1.0, abs=0.05)
    assert budgets == sorted(budgets, reverse=True)
    assert budgets[-1] == pytest.approx(0.1)
