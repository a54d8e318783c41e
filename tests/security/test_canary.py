"""DESIGN §3 promise 1: no case can be read from what is stored.

A whole report — text, identity, attachments and a two-way conversation — goes through the
real web forms carrying unique canary strings. Afterwards the canaries must be nowhere at
rest: not in any table, not in the SQLite file or its WAL/shared-memory files, not in the
instance folder, not in a temporary file, not in any log line or on stdout/stderr. Then an
attacker holding the database and every server secret tries every decryption path the server
has, and fails; the rightful password and receipt succeed, so the failures mean something.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from speakup.accounts.models import AuthSession, Role, User
from speakup.accounts.sessions import _aad as session_aad
from speakup.cases.models import Attachment, Case, CaseKey, KeyType, Message, RecipientKind
from speakup.crypto import (
    Argon2Params,
    DecryptionError,
    PrivateKey,
    decrypt,
    decrypt_field,
    derive_key,
    generate_keypair,
    open_sealed,
)
from speakup.crypto.receipt import normalise_receipt
from speakup.crypto.sealing import SUITE, seal_info
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.organisations.services import load_recovery_key
from speakup.reporting.services import reporter_keys, unlock_reporter_key
from tests.conftest import PASSWORD, Staff, sign_in
from tests.security.support import (
    TempDirWatch,
    WriteWatch,
    all_byte_values,
    attachment_links,
    capture_all_logs,
    dump_database,
    find_leaks,
    is_sqlite,
    log_text,
    multipart,
    new_canary,
    only_case,
    png_with_text,
    post_report,
    read_tree,
    receipt_from,
    report_form,
    sqlite_files,
)

SECRET_NAMES = ("SECRET_KEY", "RECEIPT_PEPPER", "RATELIMIT_SALT", "STATS_INBOX_KEY", "AUDIT_KEY")


@dataclass
class Loop:
    """What one full report → reply → follow-up round left behind."""

    case_id: int
    reference: str
    receipt: str
    guardian: Staff
    guardian_client: FlaskClient
    reporter_client: FlaskClient
    canaries: dict[str, str]
    recovery_file: Path


@pytest.fixture
def full_loop(
    app: Flask,
    client: FlaskClient,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    tmp_path: Path,
) -> Callable[[], Loop]:
    """Run the whole loop through the web layer, checking each step really happened (so
    that finding no canary later is not because nothing was written)."""

    def run() -> Loop:
        canaries = {
            label: new_canary(label)
            for label in (
                "what",
                "outcome",
                "name",
                "contact",
                "textfile",
                "textname",
                "pngtext",
                "pngname",
                "reply",
                "followup",
                "followfile",
            )
        }
        recovery_dir = tmp_path / "recovery"
        org = make_org("CAN", recovery_dir=recovery_dir)
        guardian = make_staff(Role.GUARDIAN, org)

        data = report_form(
            org.id,
            disclosure_mode="confidential",
            what_happened=f"My manager said {canaries['what']} in front of everyone.",
            desired_outcome=f"I would like {canaries['outcome']}.",
            name=canaries["name"],
            contact=canaries["contact"],
            categories=["racism_manager"],
            attachments=[
                (
                    io.BytesIO(f"notes: {canaries['textfile']}\n".encode()),
                    f"{canaries['textname']}.txt",
                ),
                (io.BytesIO(png_with_text(canaries["pngtext"])), f"{canaries['pngname']}.png"),
            ],
        )
        receipt = receipt_from(post_report(client, data))
        case = only_case()
        reference, case_id = case.reference, case.id
        assert db.session.scalar(select(db.func.count()).select_from(Attachment)) == 2

        staff = client.application.test_client()
        sign_in(staff, guardian)
        page = staff.get(f"/staff/cases/{reference}").data.decode()
        for label in ("what", "outcome", "name", "contact", "textname", "pngname"):
            assert canaries[label] in page, f"the guardian should see the {label} canary"
        links = attachment_links(page, f"/staff/cases/{reference}")
        assert len(links) == 2
        downloads = [staff.get(link).data for link in links]
        assert any(canaries["textfile"].encode() in body for body in downloads)
        # The PNG's text chunks are metadata: stripped before storage, not just encrypted.
        assert not any(canaries["pngtext"].encode() in body for body in downloads)

        reply = staff.post(
            f"/staff/cases/{reference}/messages",
            data={"body": f"Thank you. {canaries['reply']}"},
        )
        assert reply.status_code == 302

        follow = client.post("/follow-up", data={"receipt": receipt})
        assert follow.status_code == 302, follow.data.decode()[:2000]
        mine = client.get("/follow-up/case").data.decode()
        assert canaries["reply"] in mine and canaries["what"] in mine
        sent = client.post(
            "/follow-up/case/messages",
            data={
                "body": f"Thanks, {canaries['followup']}",
                "attachments": [(io.BytesIO(canaries["followfile"].encode()), "more.txt")],
            },
            content_type="multipart/form-data",
        )
        assert sent.status_code == 302, sent.data.decode()[:2000]
        page = staff.get(f"/staff/cases/{reference}").data.decode()
        assert canaries["followup"] in page
        assert db.session.scalar(select(db.func.count()).select_from(Message)) == 2
        return Loop(
            case_id,
            reference,
            receipt,
            guardian,
            staff,
            client,
            canaries,
            recovery_dir / "CAN.json",
        )

    return run


def receipt_forms(receipt: str) -> dict[str, str]:
    normalised = normalise_receipt(receipt)
    assert normalised
    return {
        "receipt (display)": receipt,
        "receipt (normalised)": normalised,
        "receipt (lower case)": receipt.lower(),
        "receipt (normalised, lower case)": normalised.lower(),
    }


# --- promise 1a: nothing readable at rest, in logs or in temp files ------------------------


def test_canaries_are_nowhere_at_rest_or_in_logs(
    app: Flask,
    full_loop: Callable[[], Loop],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    logs = capture_all_logs(caplog)
    temp = TempDirWatch()
    try:
        loop = full_loop()
        out, err = capfd.readouterr()
    finally:
        logs.close()
    needles = {**loop.canaries, **receipt_forms(loop.receipt)}
    leaks: list[str] = []

    # Every row of every table, on whichever database the tests run.
    db.session.expire_all()
    dump = dump_database()
    assert loop.reference.encode() in dump, "the dump should hold the case's plaintext metadata"
    leaks += find_leaks(dump, needles, "a database row")

    if is_sqlite(app):
        # The raw files, un-checkpointed: recent pages are still in the WAL.
        files = sqlite_files(app)
        assert any(p.name.endswith("-wal") for p in files), "expected a WAL file to scan"
        raw = b"".join(path.read_bytes() for path in files)
        assert loop.reference.encode() in raw, "the files scanned should hold the case"
        for path in files:
            leaks += find_leaks(path.read_bytes(), needles, str(path))

    for path, body in read_tree(tmp_path):
        leaks += find_leaks(body, needles, str(path))
    scanned_temp = 0
    for path, body in temp.changed_files():
        scanned_temp += 1
        leaks += find_leaks(body, needles, str(path))
    assert scanned_temp > 0, "the database files should at least have changed"

    logged = log_text(caplog, logs)
    # The capture saw the journey's own requests (their SQL), and reporter routes log nothing
    # of their own: a log line's time would say when a reporter acted.
    assert b"INSERT INTO concern_case" in logged, "log capture did not see the journey"
    assert b"speakup.reporting" not in logged
    leaks += find_leaks(logged, needles, "the logs")
    leaks += find_leaks((out + err).encode(), needles, "stdout/stderr")

    assert leaks == []


def test_scanner_finds_a_planted_canary(tmp_path: Path) -> None:
    """The scanner itself works: plain, UTF-16 and base64 copies at any alignment."""
    canary = new_canary("planted")
    for prefix in (b"", b"x", b"xy"):
        assert find_leaks(b"..." + canary.encode() + b"...", {"c": canary}, "t")
        assert find_leaks(canary.encode("utf-16-le"), {"c": canary}, "t")
        blob = base64.b64encode(prefix + canary.encode() + b"tail")
        assert any("base64" in hit for hit in find_leaks(blob, {"c": canary}, "t"))
    assert find_leaks(b"nothing here", {"c": canary}, "t") == []


# --- promise 1b: the database plus every server secret opens nothing ------------------------


def _hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def _server_secrets(app: Flask) -> dict[str, bytes]:
    found = {name: bytes(app.config[name]) for name in SECRET_NAMES}
    assert all(len(value) >= 32 for value in found.values())
    return found


def _candidate_keys(server_secrets: dict[str, bytes], stored: list[bytes]) -> list[bytes]:
    """Every 32-byte key an attacker could make from the secrets and the database."""
    keys: set[bytes] = set()
    material = list(server_secrets.values()) + [b""]
    for secret in material:
        keys.add(hashlib.sha256(secret).digest())
        keys.add(hmac.new(secret, b"", hashlib.sha256).digest())
        if len(secret) >= 32:
            keys.add(secret[:32])
        for info in (b"", b"speakup", b"dek", b"idk", b"case", b"report", b"session"):
            keys.add(_hkdf(secret, info))
    for value in stored:
        if len(value) == 32:
            keys.add(value)  # e.g. the receipt's blind index, hashes in the audit chain
        keys.add(hashlib.sha256(value).digest())
        for secret in server_secrets.values():
            keys.add(hmac.new(secret, value, hashlib.sha256).digest())
    return sorted(keys)


def _candidate_private_keys(server_secrets: dict[str, bytes]) -> list[PrivateKey]:
    """Hybrid private keys an attacker could build from the secrets (or at random)."""
    keys = [generate_keypair(), generate_keypair()]
    for secret in list(server_secrets.values()) + [b""]:
        keys.append(PrivateKey.from_bytes(_hkdf(secret, b"speakup-private-key", 96)))
        keys.append(
            PrivateKey.from_bytes(hashlib.sha512(secret).digest() + hashlib.sha256(secret).digest())
        )
    return keys


def _assert_sealed_does_not_open(private: PrivateKey, row: CaseKey) -> None:
    purpose = f"case-{row.key_type}"
    with pytest.raises(DecryptionError):
        open_sealed(private, row.sealed, purpose=purpose, case_id=row.case_id)
    # Also with the info string naming the real recipient's key id, as an attacker would.
    info = seal_info(purpose, row.case_id, row.recipient_key_id)
    with pytest.raises((InvalidTag, ValueError)):
        SUITE.decrypt(row.sealed, private.to_hpke(), info=info)


def _field_ciphertexts() -> list[tuple[bytes, dict[str, Any]]]:
    """Every encrypted field in the database with the binding it was written under."""
    out: list[tuple[bytes, dict[str, Any]]] = []
    for case in db.session.scalars(select(Case)):
        out.append(
            (case.report_ct, {"table": "concern_case", "row_id": case.id, "field": "report"})
        )
        if case.identity_ct is not None:
            out.append(
                (
                    case.identity_ct,
                    {"table": "concern_case", "row_id": case.id, "field": "identity"},
                )
            )
    for message in db.session.scalars(select(Message)):
        out.append((message.body_ct, {"table": "message", "row_id": message.id, "field": "body"}))
    for attachment in db.session.scalars(select(Attachment)):
        binding = {"table": "attachment", "row_id": attachment.id}
        out.append((attachment.meta_ct, {**binding, "field": "meta"}))
        out.append((attachment.data_ct, {**binding, "field": "data"}))
    return out


def test_database_and_every_server_secret_open_nothing(
    app: Flask, full_loop: Callable[[], Loop]
) -> None:
    loop = full_loop()
    db.session.expire_all()
    server_secrets = _server_secrets(app)
    stored = all_byte_values()
    keys = _candidate_keys(server_secrets, stored)
    assert len(keys) > 50

    # 1. Every encrypted field, under every key the secrets and the dump suggest.
    ciphertexts = _field_ciphertexts()
    assert len(ciphertexts) >= 1 + 1 + 2 + 2 * 3  # report, identity, 2 messages, 3 files
    for blob, binding in ciphertexts:
        for key in keys:
            with pytest.raises(DecryptionError):
                decrypt_field(key, blob, **binding)

    # 2. Every sealed case key, with private keys made from the secrets or at random.
    rows = db.session.scalars(select(CaseKey)).all()
    kinds = {(row.recipient_kind, row.key_type) for row in rows}
    assert {(k, t) for k in ("user", "reporter", "recovery") for t in ("dek", "idk")} <= kinds
    for private in _candidate_private_keys(server_secrets):
        for row in rows:
            _assert_sealed_does_not_open(private, row)

    # 3. Every wrapped private key (staff and reporter), by Argon2id of each secret and of
    #    what the database itself holds about the account or case.
    guesses = [*server_secrets.values(), b""]
    for user in db.session.scalars(select(User)):
        params = Argon2Params(user.kdf_time_cost, user.kdf_memory_kib, user.kdf_parallelism)
        for guess in [*guesses, user.email.encode(), user.display_name.encode()]:
            kek = derive_key(guess, user.kdf_salt, params)
            for value, field in (
                (user.wrapped_private_key, "private_key"),
                (user.totp_wrapped, "totp"),
            ):
                assert value is not None
                with pytest.raises(DecryptionError):
                    decrypt_field(kek, value, table="staff_user", row_id=user.id, field=field)
    for case in db.session.scalars(select(Case)):
        params = Argon2Params(
            case.reporter_kdf_time_cost, case.reporter_kdf_memory_kib, case.reporter_kdf_parallelism
        )
        index = case.receipt_index
        for guess in [*guesses, index, index.hex().encode(), case.reference.encode()]:
            kek = derive_key(guess, case.reporter_kdf_salt, params)
            with pytest.raises(DecryptionError):
                decrypt_field(
                    kek,
                    case.reporter_wrapped_private_key,
                    table="concern_case",
                    row_id=case.id,
                    field="reporter_private_key",
                )

    # The negative results are not vacuous: the rightful secrets open the same rows.
    case = db.session.get_one(Case, loop.case_id)
    guardian = db.session.get_one(User, loop.guardian.user.id)
    params = Argon2Params(guardian.kdf_time_cost, guardian.kdf_memory_kib, guardian.kdf_parallelism)
    kek = derive_key(PASSWORD.encode(), guardian.kdf_salt, params)
    private = PrivateKey.from_bytes(
        decrypt_field(
            kek,
            guardian.wrapped_private_key,
            table="staff_user",
            row_id=guardian.id,
            field="private_key",
        )
    )
    _assert_opens(case, private, RecipientKind.USER, guardian.id, loop.canaries)

    reporter_private = unlock_reporter_key(case, loop.receipt, 1)
    assert reporter_private is not None
    dek, idk = reporter_keys(case, reporter_private)
    assert idk is not None
    assert loop.canaries["what"].encode() in decrypt_field(
        dek, case.report_ct, table="concern_case", row_id=case.id, field="report"
    )
    assert unlock_reporter_key(case, "0000-0000-0000-0000", 1) is None

    # The offline recovery key (never on the server) opens it too.
    organisation = db.session.get_one(Organisation, case.organisation_id)
    recovery = load_recovery_key(loop.recovery_file, organisation)
    _assert_opens(case, recovery, RecipientKind.RECOVERY, None, loop.canaries)


def _assert_opens(
    case: Case,
    private: PrivateKey,
    kind: RecipientKind,
    user_id: int | None,
    canaries: dict[str, str],
) -> None:
    opened = {}
    for key_type in (KeyType.DEK, KeyType.IDK):
        row = db.session.scalar(
            select(CaseKey).where(
                CaseKey.case_id == case.id,
                CaseKey.recipient_kind == str(kind),
                CaseKey.key_type == str(key_type),
                CaseKey.user_id.is_(None) if user_id is None else CaseKey.user_id == user_id,
            )
        )
        assert row is not None
        opened[key_type] = open_sealed(
            private, row.sealed, purpose=f"case-{key_type}", case_id=case.id
        )
    report = decrypt_field(
        opened[KeyType.DEK], case.report_ct, table="concern_case", row_id=case.id, field="report"
    )
    assert canaries["what"].encode() in report
    assert case.identity_ct is not None
    identity = json.loads(
        decrypt_field(
            opened[KeyType.IDK],
            case.identity_ct,
            table="concern_case",
            row_id=case.id,
            field="identity",
        )
    )
    assert identity["name"] == canaries["name"]


# --- sessions: the store alone unlocks nothing; sign-out destroys it -------------------------


def _cookie_parts(client: FlaskClient, name: str, path: str) -> tuple[bytes, bytes]:
    cookie = client.get_cookie(name, path=path)
    assert cookie is not None, f"no {name} cookie"
    token_b64, key_b64 = cookie.value.split(".", 1)
    return base64.urlsafe_b64decode(token_b64), base64.urlsafe_b64decode(key_b64)


def _sessions_for(token: bytes) -> list[AuthSession]:
    token_hash = hashlib.sha256(token).digest()
    return list(db.session.scalars(select(AuthSession).where(AuthSession.token_hash == token_hash)))


@pytest.mark.parametrize(
    ("kind", "cookie", "path", "sign_out"),
    [
        ("staff", "speakup_staff", "/staff", "/staff/sign-out"),
        ("reporter", "speakup_reporter", "/follow-up", "/follow-up/sign-out"),
    ],
)
def test_session_store_alone_unlocks_nothing_and_sign_out_deletes_it(
    app: Flask,
    full_loop: Callable[[], Loop],
    kind: str,
    cookie: str,
    path: str,
    sign_out: str,
) -> None:
    loop = full_loop()
    client = loop.guardian_client if kind == "staff" else loop.reporter_client
    token, session_key = _cookie_parts(client, cookie, path)
    db.session.expire_all()
    (row,) = _sessions_for(token)
    assert row.kind == kind and row.stage == "active"
    aad = session_aad(row.token_hash)

    keys = _candidate_keys(_server_secrets(app), all_byte_values())
    for key in keys:
        with pytest.raises(DecryptionError):
            decrypt(key, row.wrapped_secret, aad)
    # The cookie's key does open it (so the failures above are meaningful).
    held = json.loads(decrypt(session_key, row.wrapped_secret, aad))
    assert set(held) >= {"pk"}

    response = client.post(sign_out, data={})
    assert response.status_code == 302
    db.session.expire_all()
    assert _sessions_for(token) == []
    assert client.get_cookie(cookie, path=path) is None
    # And the old cookie is worthless even if replayed.
    replay = client.application.test_client()
    replay.set_cookie(
        cookie,
        base64.urlsafe_b64encode(token).decode()
        + "."
        + base64.urlsafe_b64encode(session_key).decode(),
        path=path,
    )
    if kind == "staff":
        assert replay.get("/staff/cases/").status_code == 302
    else:
        again = replay.get("/follow-up/case")
        assert again.status_code == 302 and "/follow-up" in again.location


# --- uploads are never spooled to disk --------------------------------------------------------


def _noise_png(marker: str, side: int = 700) -> bytes:
    """A PNG far above Werkzeug's 500 KB spooling threshold (random pixels do not compress)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", marker)
    image = Image.frombytes("RGB", (side, side), secrets.token_bytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_large_uploads_are_never_written_to_disk(
    app: Flask,
    client: FlaskClient,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    canary = new_canary("bigfile")
    org = make_org()
    guardian = make_staff(Role.GUARDIAN, org)
    big_text = (f"{canary} line of notes\n" * 40000).encode()
    big_png = _noise_png(canary)
    assert len(big_text) > 600 * 1024 and len(big_png) > 600 * 1024
    fields = report_form(org.id, what_happened=canary)
    fields["attachments"] = [(big_text, "notes.txt"), (big_png, "photo.png")]
    body, content_type = multipart(fields)
    temp = TempDirWatch()
    with WriteWatch() as writes:
        response = client.post("/report", data=body, content_type=content_type)
    receipt = receipt_from(response)
    assert writes.opened == [], "an upload was written to a file before being encrypted"

    reference = only_case().reference
    staff = staff_client(guardian)
    page = staff.get(f"/staff/cases/{reference}").data.decode()
    links = attachment_links(page, f"/staff/cases/{reference}")
    assert len(links) == 2
    assert any(staff.get(link).data == big_text for link in links)

    assert client.post("/follow-up", data={"receipt": receipt}).status_code == 302
    body, content_type = multipart({"body": canary, "attachments": [(big_text, "more.txt")]})
    with WriteWatch() as writes:
        sent = client.post("/follow-up/case/messages", data=body, content_type=content_type)
    assert sent.status_code == 302
    assert writes.opened == []

    leaks = []
    for path, data in temp.changed_files():
        leaks += find_leaks(data, {"bigfile": canary}, str(path))
    assert leaks == []


def test_write_watch_sees_anonymous_temporary_files() -> None:
    import tempfile

    with WriteWatch() as writes, tempfile.TemporaryFile() as fh:
        fh.write(b"x")
    assert writes.opened
