"""DESIGN §3 promises 3 and 4: routing and exclusion are enforced by the server.

Only the readers of the chosen route receive a case's keys; a guardian the reporter named as
involved never does. Everyone else — the excluded guardian, another organisation's guardian,
an unchosen pool guardian, an administrator — gets the same answer as for a case that does
not exist.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.cases.custody import ExcludedReaderError
from speakup.cases.custody import grant as grant_case_key
from speakup.cases.models import Attachment, Case, CaseKey, Exclusion, KeyType, Message
from speakup.crypto import new_data_key
from speakup.errors import ForbiddenError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from tests.conftest import Staff
from tests.security.support import (
    attachment_links,
    only_case,
    post_report,
    receipt_from,
    report_form,
    strip_nonce,
    table_counts,
)

PAYLOAD_MODELS = (Case, CaseKey, Exclusion, Attachment, Message)


@dataclass
class Cast:
    """Organisation A (G1, G2), organisation B (G3 and pool guardian P), the panel, an
    administrator."""

    org_a: Organisation
    org_b: Organisation
    g1: Staff
    g2: Staff
    g3: Staff
    pool: Staff
    panel1: Staff
    panel2: Staff
    admin: Staff


@pytest.fixture
def cast(
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    tmp_path: Path,
) -> Cast:
    org_a = make_org("ORGA", recovery_dir=tmp_path / "recovery")
    org_b = make_org("ORGB", recovery_dir=tmp_path / "recovery")
    return Cast(
        org_a=org_a,
        org_b=org_b,
        g1=make_staff(Role.GUARDIAN, org_a, name="Guardian One"),
        g2=make_staff(Role.GUARDIAN, org_a, name="Guardian Two"),
        g3=make_staff(Role.GUARDIAN, org_b, name="Guardian Three"),
        pool=make_staff(Role.GUARDIAN, org_b, in_pool=True, name="Pool Guardian"),
        panel1=make_staff(Role.PANEL_MEMBER, name="Panel One"),
        panel2=make_staff(Role.PANEL_MEMBER, name="Panel Two"),
        admin=make_staff(Role.ADMIN, name="Administrator"),
    )


def key_holders(case_id: int) -> set[tuple[str, int | None, str]]:
    """(recipient kind, user id, key type) of every sealed copy of a case's keys."""
    rows = db.session.scalars(select(CaseKey).where(CaseKey.case_id == case_id)).all()
    return {(row.recipient_kind, row.user_id, row.key_type) for row in rows}


def expected_holders(
    user_ids: list[int], *, identity: bool, recovery: bool = True
) -> set[tuple[str, int | None, str]]:
    key_types = ["dek", "idk"] if identity else ["dek"]
    holders = {("user", uid, kt) for uid in user_ids for kt in key_types}
    holders |= {("reporter", None, kt) for kt in key_types}
    if recovery:
        holders |= {("recovery", None, kt) for kt in key_types}
    return holders


def submit_web(client: FlaskClient, org: Organisation, **fields: object) -> tuple[Case, str]:
    """Submit through the web form with one attachment; return the case and receipt."""
    data = report_form(
        org.id,
        attachments=[(io.BytesIO(b"rota for the week\n"), "rota.txt")],
        **fields,
    )
    receipt = receipt_from(post_report(client, data))
    return only_case(), receipt


# --- organisation route with an exclusion -------------------------------------------------


@pytest.mark.parametrize("mode", ["anonymous", "confidential"])
def test_organisation_route_seals_only_to_the_not_excluded_guardians(
    app: Flask,
    client: FlaskClient,
    cast: Cast,
    staff_client: Callable[[Staff], FlaskClient],
    mode: str,
) -> None:
    identity = {"name": "A Reporter", "contact": "a@example.test"} if mode != "anonymous" else {}
    case, _ = submit_web(
        client,
        cast.org_a,
        disclosure_mode=mode,
        excluded=[str(cast.g2.user.id)],
        **identity,
    )
    assert key_holders(case.id) == expected_holders([cast.g1.user.id], identity=mode != "anonymous")
    assert {e.user_id for e in db.session.scalars(select(Exclusion))} == {cast.g2.user.id}
    reference = case.reference
    attachment = db.session.scalars(select(Attachment)).one()

    g1 = staff_client(cast.g1)
    page = g1.get(f"/staff/cases/{reference}")
    assert page.status_code == 200
    links = attachment_links(page.data.decode(), f"/staff/cases/{reference}")
    assert links == [f"/staff/cases/{reference}/attachments/{attachment.id}"]
    assert g1.get(links[0]).status_code == 200

    unknown = f"SU-{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
    for outsider in (cast.g2, cast.g3, cast.pool, cast.panel1):
        c = staff_client(outsider)
        assert reference not in c.get("/staff/cases/").data.decode()
        real = c.get(f"/staff/cases/{reference}")
        fake = c.get(f"/staff/cases/{unknown}")
        assert real.status_code == fake.status_code == 404
        # Nothing tells a probe that the reference exists.
        assert strip_nonce(real.data) == strip_nonce(fake.data).replace(
            unknown.encode(), reference.encode()
        )
        assert _comparable_headers(real) == _comparable_headers(fake)
        assert c.get(links[0]).status_code == 404
        assert c.get(f"/staff/cases/{unknown}/attachments/{attachment.id}").status_code == 404
        before = table_counts([Message])
        reply = c.post(f"/staff/cases/{reference}/messages", data={"body": "Let me in"})
        assert reply.status_code == 404
        assert table_counts([Message]) == before

    # Nothing an outsider did gave them a key or recorded an open.
    assert key_holders(case.id) == expected_holders([cast.g1.user.id], identity=mode != "anonymous")
    opened_by = set(
        db.session.scalars(
            select(AuditEvent.actor_user_id).where(AuditEvent.action == "case.opened")
        )
    )
    assert opened_by == {cast.g1.user.id}


def _comparable_headers(response: object) -> list[tuple[str, str]]:
    headers = response.headers  # type: ignore[attr-defined]
    return sorted((name, strip_nonce(value.encode()).decode()) for name, value in headers.items())


def test_excluded_guardian_is_refused_a_key_by_the_service(
    app: Flask, cast: Cast, submit: Callable[..., Submission]
) -> None:
    submission = submit(cast.org_a, excluded_guardian_ids=[cast.g2.user.id])
    case = submission.case
    before = key_holders(case.id)
    for key_type in (KeyType.DEK, KeyType.IDK):
        with pytest.raises(ExcludedReaderError):
            grant_case_key(case, cast.g2.user, key_type, new_data_key())
    # Nor can an administrator be made a reader of any case.
    with pytest.raises(ForbiddenError):
        grant_case_key(case, cast.admin.user, KeyType.DEK, new_data_key())
    db.session.flush()
    assert key_holders(case.id) == before
    assert all(uid != cast.g2.user.id for _, uid, _ in key_holders(case.id))


# --- pool route ----------------------------------------------------------------------------


def test_pool_route_seals_only_to_the_chosen_pool_guardian(
    app: Flask,
    client: FlaskClient,
    cast: Cast,
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case, _ = submit_web(client, cast.org_a, route="pool", pool_guardian=str(cast.pool.user.id))
    assert key_holders(case.id) == expected_holders([cast.pool.user.id], identity=False)
    reference = case.reference
    assert staff_client(cast.pool).get(f"/staff/cases/{reference}").status_code == 200
    for outsider in (cast.g1, cast.g2, cast.g3, cast.panel1):
        assert staff_client(outsider).get(f"/staff/cases/{reference}").status_code == 404


def test_pool_guardian_who_is_also_excluded_is_refused_and_nothing_is_stored(
    app: Flask, client: FlaskClient, cast: Cast
) -> None:
    before = table_counts(PAYLOAD_MODELS)
    data = report_form(
        cast.org_a.id,
        route="pool",
        pool_guardian=str(cast.pool.user.id),
        excluded=[str(cast.pool.user.id)],
        attachments=[(io.BytesIO(b"notes\n"), "notes.txt")],
    )
    response = post_report(client, data)
    assert response.status_code == 400
    html = response.data.decode()
    assert "You chose a guardian you also named as involved" in html
    assert 'data-testid="receipt"' not in html
    assert table_counts(PAYLOAD_MODELS) == before == dict.fromkeys(before, 0)
    assert not db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "case.submitted"))


def test_pool_route_refuses_a_guardian_who_is_not_in_the_pool(
    app: Flask, client: FlaskClient, cast: Cast
) -> None:
    """A hand-edited form cannot route a case to an arbitrary guardian."""
    response = post_report(
        client, report_form(cast.org_a.id, route="pool", pool_guardian=str(cast.g3.user.id))
    )
    assert response.status_code == 400
    assert table_counts(PAYLOAD_MODELS) == dict.fromkeys([m.__name__ for m in PAYLOAD_MODELS], 0)


def test_organisation_route_with_every_guardian_excluded_is_refused(
    app: Flask, client: FlaskClient, cast: Cast
) -> None:
    data = report_form(
        cast.org_a.id,
        excluded=[str(cast.g1.user.id), str(cast.g2.user.id)],
        attachments=[(io.BytesIO(b"notes\n"), "notes.txt")],
    )
    response = post_report(client, data)
    assert response.status_code == 400
    html = response.data.decode()
    assert "Nobody on the route you chose can receive your concern" in html
    assert 'data-testid="receipt"' not in html
    assert table_counts(PAYLOAD_MODELS) == dict.fromkeys([m.__name__ for m in PAYLOAD_MODELS], 0)


# --- panel route ---------------------------------------------------------------------------


def test_panel_route_seals_only_to_panel_members(
    app: Flask,
    client: FlaskClient,
    cast: Cast,
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case, _ = submit_web(client, cast.org_a, route="panel", excluded=[str(cast.panel2.user.id)])
    assert key_holders(case.id) == expected_holders([cast.panel1.user.id], identity=False)
    reference = case.reference
    assert staff_client(cast.panel1).get(f"/staff/cases/{reference}").status_code == 200
    for outsider in (cast.panel2, cast.g1, cast.g2, cast.g3, cast.pool):
        assert staff_client(outsider).get(f"/staff/cases/{reference}").status_code == 404


# --- administrators ------------------------------------------------------------------------


def test_administrator_has_no_inbox_and_opens_no_case(
    app: Flask,
    client: FlaskClient,
    cast: Cast,
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    case, _ = submit_web(client, cast.org_a)
    reference = case.reference
    attachment = db.session.scalars(select(Attachment)).one()
    admin = staff_client(cast.admin)
    assert admin.get("/staff/cases/").status_code == 403
    assert admin.get(f"/staff/cases/{reference}").status_code == 403
    assert admin.get(f"/staff/cases/{reference}/attachments/{attachment.id}").status_code == 403
    before = table_counts([Message])
    assert admin.post(f"/staff/cases/{reference}/messages", data={"body": "hi"}).status_code == 403
    assert table_counts([Message]) == before
    assert not any(uid == cast.admin.user.id for _, uid, _ in key_holders(case.id))
    assert not db.session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.action == "case.opened", AuditEvent.actor_user_id == cast.admin.user.id
        )
    )


# --- HPKE binding: a sealed key cannot be moved to another case or purpose ------------------


def _sealed(case_id: int, user_id: int, key_type: str) -> bytes:
    return db.session.scalars(
        select(CaseKey.sealed).where(
            CaseKey.case_id == case_id, CaseKey.user_id == user_id, CaseKey.key_type == key_type
        )
    ).one()


def _overwrite(case_id: int, user_id: int | None, key_type: str, sealed: bytes) -> None:
    condition = CaseKey.user_id == user_id if user_id is not None else CaseKey.user_id.is_(None)
    db.session.execute(
        update(CaseKey)
        .where(
            CaseKey.case_id == case_id,
            condition,
            CaseKey.key_type == key_type,
            CaseKey.recipient_kind == ("user" if user_id is not None else "reporter"),
        )
        .values(sealed=sealed)
    )
    db.session.commit()


def test_sealed_key_copied_onto_another_case_does_not_open_it(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    a = submit(cast.org_a, what_happened="Case A text")
    b = submit(cast.org_a, what_happened="Case B text")
    a_id, a_ref, b_id, b_ref = a.case.id, a.case.reference, b.case.id, b.case.reference
    g1_id = cast.g1.user.id
    g1 = staff_client(cast.g1)
    assert g1.get(f"/staff/cases/{b_ref}").status_code == 200

    _overwrite(b_id, g1_id, "dek", _sealed(a_id, g1_id, "dek"))
    moved = g1.get(f"/staff/cases/{b_ref}")
    assert moved.status_code == 404
    assert b"Case A text" not in moved.data
    assert g1.get(f"/staff/cases/{a_ref}").status_code == 200

    # The reporter's copy is bound the same way: B's reporter cannot open A's key.
    _overwrite(b_id, None, "dek", _sealed_reporter(a_id, "dek"))
    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": b.receipt}).status_code == 302
    page = reporter.get("/follow-up/case")
    assert page.status_code < 500
    assert b"Case A text" not in page.data and b"Case B text" not in page.data


def _sealed_reporter(case_id: int, key_type: str) -> bytes:
    return db.session.scalars(
        select(CaseKey.sealed).where(
            CaseKey.case_id == case_id,
            CaseKey.recipient_kind == "reporter",
            CaseKey.key_type == key_type,
        )
    ).one()


def test_identity_key_copied_into_the_data_key_slot_does_not_open(
    app: Flask,
    cast: Cast,
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    """The purpose is bound too: the IDK sealed copy is not accepted as the DEK."""
    from speakup.cases.models import DisclosureMode

    sub = submit(cast.org_a, disclosure_mode=DisclosureMode.CONFIDENTIAL, name="N", contact="C")
    case_id, reference = sub.case.id, sub.case.reference
    g1_id = cast.g1.user.id
    _overwrite(case_id, g1_id, "dek", _sealed(case_id, g1_id, "idk"))
    assert staff_client(cast.g1).get(f"/staff/cases/{reference}").status_code == 404


def test_reporter_reaches_only_their_own_case(app: Flask, client: FlaskClient, cast: Cast) -> None:
    """A receipt opens one case: another case's attachment ids are simply not found."""
    _, receipt_a = submit_web(client, cast.org_a, what_happened="Case A text")
    other = app.test_client()
    data = report_form(
        cast.org_a.id,
        what_happened="Case B text",
        attachments=[(io.BytesIO(b"case B file\n"), "b.txt")],
    )
    receipt_from(post_report(other, data))
    ids = dict(
        db.session.execute(
            select(Case.reference, Attachment.id).join(Attachment, Attachment.case_id == Case.id)
        ).all()
    )
    a_case = db.session.scalars(select(Case).order_by(Case.id)).first()
    assert a_case is not None
    b_attachment = next(aid for ref, aid in ids.items() if ref != a_case.reference)

    assert client.post("/follow-up", data={"receipt": receipt_a}).status_code == 302
    page = client.get("/follow-up/case")
    assert b"Case A text" in page.data and b"Case B text" not in page.data
    stolen = client.get(f"/follow-up/case/attachments/{b_attachment}")
    assert stolen.status_code == 404
    assert b"case B file" not in stolen.data
