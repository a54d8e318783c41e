"""Operator commands: organisations, recovery keys, users, demo data and the audit chain."""

from __future__ import annotations

import base64
import json
import re
import stat

import pyotp
import pytest
from sqlalchemy import select

import speakup.demo as demo
from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password
from speakup.audit.models import AuditEvent
from speakup.crypto import PrivateKey
from speakup.extensions import db
from speakup.organisations.models import Organisation, Region, System
from speakup.settings import argon2_params
from tests.conftest import count

STRONG = "a long enough password\n"


@pytest.fixture
def trust(cli):
    result = cli(
        "org", "create", "--system", "BSOL", "--system-name", "Birmingham and Solihull",
        "--code", "RRK", "--name", "University Hospitals Birmingham",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return db.session.scalars(select(Organisation).where(Organisation.code == "RRK")).one()


def create_user(cli, email, *options, password=STRONG):
    return cli(
        "user", "create", "--email", email, "--name", email.split("@")[0].title(),
        *options, "--password-stdin", stdin=password,
    )  # fmt: skip


# Organisations ---------------------------------------------------------------------------


def test_org_create(cli, trust):
    assert trust.name == "University Hospitals Birmingham"
    assert trust.kind == "trust"
    assert trust.system.code == "BSOL" and trust.system.name == "Birmingham and Solihull"
    assert trust.system.region.code == "MIDLANDS"
    assert trust.recovery_public_key is None

    result = cli(
        "org", "create", "--system", "BSOL", "--code", "15E", "--name", "BSol ICB", "--kind", "icb"
    )
    assert result.exit_code == 0, result.output
    assert "organisation 15E" in result.output
    assert count(System) == 1 and count(Region) == 1 and count(Organisation) == 2


def test_org_create_twice_adds_nothing(cli, trust):
    result = cli(
        "org",
        "create",
        "--system",
        "BSOL",
        "--code",
        "RRK",
        "--name",
        "University Hospitals Birmingham",
    )
    assert result.exit_code == 0
    assert count(Organisation) == 1


def test_recovery_key_is_written_once_to_a_private_file(cli, trust, tmp_path):
    out = tmp_path / "custodian" / "rrk.json"
    result = cli("org", "recovery-key", "RRK", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "written to" in result.output and "offline" in result.output

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    payload = json.loads(out.read_text())
    assert payload["organisation"] == "RRK"
    private = PrivateKey.from_bytes(base64.b64decode(payload["private_key"]))
    db.session.refresh(trust)
    assert trust.recovery_public_key is not None
    assert private.public_key().key_id == trust.recovery_public_key.key_id == payload["key_id"]
    # The database holds the public half only.
    raw_private = private.to_bytes()
    for value in (trust.recovery_public_mlkem, trust.recovery_public_x25519):
        assert raw_private not in value
    assert any(
        e.action == "organisation.recovery_key_created"
        for e in db.session.scalars(select(AuditEvent))
    )


def test_recovery_key_refuses_to_overwrite_a_file(cli, trust, tmp_path):
    out = tmp_path / "existing.json"
    out.write_text("the custodian's earlier key\n")
    result = cli("org", "recovery-key", "RRK", "--out", str(out))
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert out.read_text() == "the custodian's earlier key\n"
    db.session.refresh(trust)
    assert trust.recovery_public_key is None


def test_a_second_recovery_key_needs_replace(cli, trust, tmp_path):
    assert cli("org", "recovery-key", "RRK", "--out", str(tmp_path / "one.json")).exit_code == 0
    db.session.refresh(trust)
    first_id = trust.recovery_public_key.key_id

    refused = cli("org", "recovery-key", "RRK", "--out", str(tmp_path / "two.json"))
    assert refused.exit_code == 1
    assert "already has a recovery key" in refused.output
    assert not (tmp_path / "two.json").exists()
    db.session.refresh(trust)
    assert trust.recovery_public_key.key_id == first_id

    replaced = cli("org", "recovery-key", "RRK", "--out", str(tmp_path / "two.json"), "--replace")
    assert replaced.exit_code == 0, replaced.output
    db.session.refresh(trust)
    assert trust.recovery_public_key.key_id != first_id
    assert (
        json.loads((tmp_path / "two.json").read_text())["key_id"]
        == trust.recovery_public_key.key_id
    )


def test_recovery_key_for_an_unknown_organisation(cli, tmp_path):
    result = cli("org", "recovery-key", "NOPE", "--out", str(tmp_path / "k.json"))
    assert result.exit_code == 1
    assert "No organisation has the code 'NOPE'" in result.output
    assert not (tmp_path / "k.json").exists()


# Users -----------------------------------------------------------------------------------


def test_user_create_for_each_role(app, cli, trust):
    results = [
        create_user(cli, "pool.guardian@example.test", "--role", "guardian", "--org", "RRK",
                    "--pool", "--languages", "English, Urdu", "--bio", "Ex-physio."),
        create_user(cli, "lead@example.test", "--role", "lead_guardian", "--org", "RRK"),
        create_user(cli, "panel@example.test", "--role", "panel_member"),
        create_user(cli, "admin@example.test", "--role", "admin"),
    ]  # fmt: skip
    for result in results:
        assert result.exit_code == 0, result.output
        assert result.output.startswith("created ")

    users = {u.email: u for u in db.session.scalars(select(User))}
    pool = users["pool.guardian@example.test"]
    assert pool.role == Role.GUARDIAN and pool.in_pool is True
    assert pool.organisation_id == trust.id
    assert pool.languages == "English, Urdu" and pool.bio == "Ex-physio."
    assert users["lead@example.test"].role == Role.LEAD_GUARDIAN
    assert users["lead@example.test"].in_pool is False
    assert users["panel@example.test"].role == Role.PANEL_MEMBER
    assert users["panel@example.test"].organisation_id is None
    assert users["admin@example.test"].role == Role.ADMIN
    for user in users.values():
        assert user.totp_wrapped is None  # enrolled at first sign-in
        assert b"a long enough password" not in user.wrapped_private_key
        # The password typed on stdin (without its newline) unlocks the account.
        check_password(user, STRONG.rstrip("\n"), argon2_params(app.config), app.config)


def test_user_create_refuses_a_duplicate_email(cli, trust):
    assert create_user(cli, "dup@example.test", "--role", "admin").exit_code == 0
    result = create_user(cli, "DUP@example.test", "--role", "panel_member")
    assert result.exit_code == 1
    assert "An account for dup@example.test already exists." in result.output
    assert count(User) == 1


def test_user_create_refuses_a_short_password(cli, trust):
    result = create_user(cli, "short@example.test", "--role", "admin", password="short\n")
    assert result.exit_code == 1
    assert "Passwords must be at least 12 characters." in result.output
    assert count(User) == 0


def test_user_create_guardian_needs_an_organisation(cli):
    result = create_user(cli, "g@example.test", "--role", "guardian")
    assert result.exit_code == 1
    assert "Guardians belong to an organisation." in result.output
    missing = create_user(cli, "g@example.test", "--role", "guardian", "--org", "NOPE")
    assert missing.exit_code == 1
    assert "No organisation has the code 'NOPE'" in missing.output
    assert count(User) == 0


# Demo data -------------------------------------------------------------------------------


@pytest.fixture
def demo_dir(tmp_path, monkeypatch):
    folder = tmp_path / "demo-recovery-keys"
    monkeypatch.setattr(demo, "RECOVERY_DIR", folder)
    return folder


def _demo_counts() -> dict[str, int]:
    return {
        model.__name__: count(model) for model in (Region, System, Organisation, User, AuditEvent)
    }


def test_demo_load_is_idempotent_and_explains_sign_in(cli, demo_dir):
    first = cli("demo", "load")
    assert first.exit_code == 0, first.output
    assert re.search(r"demo data: \d+ new item\(s\)", first.output)
    counts = _demo_counts()
    assert counts["System"] == 11
    assert counts["Organisation"] == 33
    assert counts["User"] == len(demo.DEMO_USERS) + len(demo.DEMO_LEADERS)
    assert len(list(demo_dir.glob("*/*.json"))) == 33
    assert all(org.recovery_public_key for org in db.session.scalars(select(Organisation)))

    second = cli("demo", "load")
    assert second.exit_code == 0, second.output
    assert "demo data already loaded" in second.output
    assert _demo_counts() == counts
    for text in (
        demo.DEMO_PASSWORD,
        "amara.okafor@demo.speakup.test",
        "demo code",
        "/staff/sign-in",
    ):
        assert text in second.output
    # Every account is listed, leaders with their own scope, and the administrator too.
    listed = [line.split() for line in second.output.splitlines() if line.startswith("  ")]
    lines = {w[0]: " ".join(w) for w in listed if w[0].endswith("@demo.speakup.test")}
    assert len(lines) == counts["User"]
    leaders = {
        "region.leader": "Region: NHS England – Midlands",
        "bsol.leader": "Integrated care system: Birmingham and Solihull Integrated Care System",
        "bsolh.leader": "Organisation: Birmingham and Solihull Demo Hospitals NHS Trust",
    }
    for local, scope in leaders.items():
        assert f"leader ({scope})" in lines[f"{local}@demo.speakup.test"]
    assert "admin (administrator" in lines["admin@demo.speakup.test"]
    assert "regional panel" not in "".join(lines[f"{k}@demo.speakup.test"] for k in leaders)


def test_demo_code_prints_a_code_that_verifies(app, cli, demo_dir):
    assert cli("demo", "load").exit_code == 0
    email = "amara.okafor@demo.speakup.test"
    result = cli("demo", "code", email)
    assert result.exit_code == 0, result.output
    code = result.output.strip()
    assert re.fullmatch(r"\d{6}", code)

    user = db.session.scalars(select(User).where(User.email == email)).one()
    unlocked = check_password(user, demo.DEMO_PASSWORD, argon2_params(app.config), app.config)
    assert pyotp.TOTP(unlocked.totp_secret).verify(code, valid_window=1)


def test_demo_code_for_an_unknown_account(cli, demo_dir):
    result = cli("demo", "code", "nobody@example.test")
    assert result.exit_code == 1
    assert "No account nobody@example.test." in result.output


# Audit -----------------------------------------------------------------------------------


def test_audit_verify(cli, trust, tmp_path):
    cli("org", "recovery-key", "RRK", "--out", str(tmp_path / "k.json"))
    create_user(cli, "admin@example.test", "--role", "admin")
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    events = count(AuditEvent)
    assert events >= 3
    assert f"audit chain intact: {events} events" in result.output


def test_audit_verify_reports_a_broken_chain(cli, trust):
    create_user(cli, "admin@example.test", "--role", "admin")
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).first()
    event.detail = "tampered"
    db.session.commit()
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"audit chain broken at event #{event.seq}" in result.output


def test_org_settings_change_service_levels_and_redate_purges(app, make_org, make_staff, submit):
    """Service levels are configurable per organisation from the CLI; a new retention
    period re-dates the purge of cases already finished."""
    from datetime import timedelta

    from speakup.accounts.models import Role as _Role
    from speakup.cases.models import Case
    from speakup.db import utcnow

    org = make_org("SETS")
    make_staff(_Role.GUARDIAN, org)
    case = submit(org).case
    closed = utcnow() - timedelta(days=10)
    case.status, case.closed_at = "closed", closed
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["org", "settings", "SETS", "--ack-working-days", "3", "--retention-months", "6"]
    )
    assert result.exit_code == 0, result.output
    assert "acknowledge within 3 working days" in result.output
    assert "1 finished case(s) re-dated" in result.output
    db.session.expire_all()
    org_row = db.session.get(type(org), org.id)
    assert org_row.sla_acknowledge_working_days == 3 and org_row.retention_months == 6
    stored = db.session.get(Case, case.id)
    # 12 months of check-ins plus 6 months kept
    assert stored.purge_after.year * 12 + stored.purge_after.month == (
        closed.year * 12 + closed.month + 18
    )
    assert runner.invoke(args=["org", "settings", "SETS", "--default"]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(type(org), org.id).retention_months is None
    bad = runner.invoke(args=["org", "settings", "SETS", "--feedback-days", "0"])
    assert bad.exit_code != 0 and "0" in bad.output
