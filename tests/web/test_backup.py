"""Backup and restore as commands (issue 12): a restore drill — reports and a guardian, back
up, wipe the database and the secrets, restore on a fresh host with the custodian's key —
and the refusals that keep a wrong restore from locking every reporter out."""

from __future__ import annotations

import json
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from speakup import create_app
from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.backup import BUNDLE, MANIFEST, make_backup
from speakup.cases.models import Case
from speakup.db import utcnow
from speakup.extensions import db
from speakup.settings import SECRETS, restoring_from_cli
from speakup.stats.facts import emit_fact
from speakup.stats.models import Fact, FactInbox
from tests.conftest import PG_URL, count, reset_postgres
from tests.conftest import test_config as config_for

SECRET_KEYS = [key for _env, (key, _file, _min) in SECRETS.items()]
SECRET_FILES = [file_name for _env, (_key, file_name, _min) in SECRETS.items()]
CANARY = "zq_backup_canary the night shift rota was changed again"


def file_like_secrets() -> dict[str, bytes]:
    """Secrets as `dev_secrets` and operators make them (text that survives a file)."""
    return {key: secrets.token_urlsafe(48).encode() for key in SECRET_KEYS}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app(**file_like_secrets())
    with application.app_context():
        yield application


def host(tmp_path: Path, name: str, **extra: Any) -> Flask:
    """A fresh host: its own instance folder and no secrets in its configuration (they come
    from the instance folder, as in production); the same PostgreSQL database if in use."""
    (tmp_path / name).mkdir(exist_ok=True)
    config = config_for(tmp_path / name, **extra)
    for key in SECRET_KEYS:
        del config[key]
    return create_app(config)


def run(app: Flask, *args: str) -> Any:
    """A ``flask`` command in ``app``'s own context (as a separate process would run it)."""
    with app.app_context():
        result = app.test_cli_runner().invoke(args=list(args))
        db.session.remove()
        db.engine.dispose()
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def world(app: Flask, make_org, make_staff, submit, tmp_path: Path) -> dict[str, Any]:
    """One trust with a recovery key, a guardian, three reports (receipts kept)."""
    keys = tmp_path / "custodian"
    org = make_org("DRILL", recovery_dir=keys)
    guardian = make_staff(Role.GUARDIAN, org)
    subs = [submit(org, what_happened=f"{CANARY} #{i}") for i in range(3)]
    emit_fact("submitted", org, subs[0].case.received_at, route="organisation")
    db.session.commit()
    return {
        "org": org,
        "guardian": guardian,
        "guardian_email": guardian.user.email,
        "receipts": {s.receipt: (s.case.reference, f"{CANARY} #{i}") for i, s in enumerate(subs)},
        "key_file": keys / "DRILL.json",
    }


def backup(app: Flask, out: Path, org: str = "DRILL") -> Any:
    result = app.test_cli_runner().invoke(args=["backup", "--out", str(out), "--to", org])
    db.session.rollback()
    return result


def wipe(app: Flask) -> None:
    """Lose the database (and this host's secrets): what a restore starts from."""
    db.session.remove()
    if PG_URL:
        reset_postgres()
    else:
        database = Path(db.engine.url.database or "")
        db.engine.dispose()
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
    for name in SECRET_FILES:
        (Path(app.instance_path) / name).unlink(missing_ok=True)


def test_restore_drill(app: Flask, world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "backups" / "tonight"
    result = backup(app, out)
    assert result.exit_code == 0, result.output
    assert "3 case(s)" in result.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["cases"] == 3
    assert manifest["database"] == ("postgresql" if PG_URL else "sqlite")
    assert manifest["sealed_to"]["organisation"] == "DRILL"
    dump = out / manifest["dump_file"]
    for path in (dump, out / BUNDLE, out / MANIFEST):
        assert mode(path) == 0o600, path
    # Nothing secret in clear next to the dump.
    backup_bytes = b"".join(p.read_bytes() for p in out.iterdir())
    for key in SECRET_KEYS:
        assert app.config[key] not in backup_bytes, key

    wipe(app)
    fresh = host(tmp_path, "host2", RESTORE_MODE=True)
    assert fresh.config.get("RECEIPT_PEPPER") is None
    result = run(fresh, "restore", "--from", str(out), "--key-file", str(world["key_file"]))
    assert result.exit_code == 0, result.output
    assert "3 case(s)" in result.output
    instance = Path(fresh.instance_path)
    for key, name in zip(SECRET_KEYS, SECRET_FILES, strict=True):
        assert mode(instance / name) == 0o600
        assert (instance / name).read_bytes() == app.config[key]

    # The restored host starts normally from its instance folder, and everyone gets back in.
    restored = host(tmp_path, "host2")
    with restored.app_context():
        assert count(Case) == 3
        for receipt, (_reference, words) in world["receipts"].items():
            reporter = restored.test_client()
            assert reporter.post("/follow-up", data={"receipt": receipt}).status_code == 302
            page = reporter.get("/follow-up/case")
            assert page.status_code == 200
            assert words in page.get_data(as_text=True)  # its own case, not another
        staff = restored.test_client()
        guardian = world["guardian"]
        signed = staff.post(
            "/staff/sign-in", data={"email": world["guardian_email"], "password": guardian.password}
        )
        assert signed.status_code == 302
        signed = staff.post("/staff/sign-in/code", data={"code": guardian.code()})
        assert signed.status_code == 302 and "/staff/cases" in signed.location
        for reference, words in world["receipts"].values():
            page = staff.get(f"/staff/cases/{reference}")
            assert page.status_code == 200
            assert words in page.get_data(as_text=True)
        # the audit chain is intact and says the database was restored, from which backup
        audit = restored.test_cli_runner().invoke(args=["audit", "verify"])
        assert audit.exit_code == 0 and "audit chain intact" in audit.output
        restored_events = db.session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "database.restored")
        ).all()
        assert restored_events == [f"backup={manifest['backup_id']}"]
        # and the statistics inbox opens under the restored inbox key
        facts = restored.test_cli_runner().invoke(args=["jobs", "facts", "--flush"])
        assert facts.exit_code == 0, facts.output
        assert count(FactInbox) == 0 and count(Fact) >= 1
        db.session.remove()
        db.engine.dispose()


def test_backup_refuses_a_used_directory_and_an_organisation_without_key(
    app: Flask, world: dict[str, Any], make_org, tmp_path: Path
) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "something").write_text("x")
    result = backup(app, out)
    assert result.exit_code == 1 and "not empty" in result.output
    make_org("NOKEY")
    result = backup(app, tmp_path / "c", org="NOKEY")
    assert result.exit_code == 1 and "no recovery key" in result.output


def _refused(fresh: Flask, out: Path, key_file: Path, *extra: str) -> str:
    result = run(fresh, "restore", "--from", str(out), "--key-file", str(key_file), *extra)
    assert result.exit_code == 1, result.output
    instance = Path(fresh.instance_path)
    assert not any((instance / name).exists() for name in SECRET_FILES)
    return result.output


def test_restore_refuses_a_wrong_key_file(
    app: Flask, world: dict[str, Any], make_org, tmp_path: Path
) -> None:
    make_org("OTHER", recovery_dir=tmp_path / "custodian")
    out = tmp_path / "b"
    assert backup(app, out).exit_code == 0
    fresh = host(tmp_path, "host2", RESTORE_MODE=True)
    output = _refused(fresh, out, tmp_path / "custodian" / "OTHER.json")
    assert "Wrong key file" in output and "OTHER" in output
    # DRILL's key replaced after the backup: the new key file cannot open the old bundle.
    from speakup.organisations.services import create_recovery_key

    create_recovery_key(world["org"], tmp_path / "new-DRILL.json", replace=True)
    db.session.commit()
    output = _refused(fresh, out, tmp_path / "new-DRILL.json")
    assert "Wrong key file" in output and "sealed to key" in output
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    assert "not a Speakup recovery key file" in _refused(fresh, out, not_a_key)


def test_restore_refuses_secrets_that_do_not_match_the_dump(
    app: Flask, world: dict[str, Any], tmp_path: Path
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert backup(app, ours).exit_code == 0
    # Another installation's secrets (and data), sealed to the same custodian's key.
    emit_fact("detriment", world["org"], utcnow())
    db.session.commit()
    other = {**app.config, **file_like_secrets()}
    make_backup(db.engine, other, theirs, world["org"])
    fresh = host(tmp_path, "host2", RESTORE_MODE=True)

    mixed = tmp_path / "mixed"
    shutil.copytree(ours, mixed)
    shutil.copy(theirs / BUNDLE, mixed / BUNDLE)  # their secrets, our manifest and dump
    output = _refused(fresh, mixed, world["key_file"])
    assert "does not belong to this manifest" in output and "Nothing was changed" in output

    mixed2 = tmp_path / "mixed2"
    shutil.copytree(theirs, mixed2)
    manifest = json.loads((ours / MANIFEST).read_text())
    (mixed2 / manifest["dump_file"]).unlink()
    shutil.copy(ours / manifest["dump_file"], mixed2 / manifest["dump_file"])  # our dump
    output = _refused(fresh, mixed2, world["key_file"])
    assert "not the dump these secrets were backed up with" in output

    kind = json.loads((ours / MANIFEST).read_text())
    kind["database"] = "sqlite" if PG_URL else "postgresql"
    (mixed / MANIFEST).write_text(json.dumps(kind))
    (mixed / BUNDLE).unlink()
    shutil.copy(ours / BUNDLE, mixed / BUNDLE)
    output = _refused(fresh, mixed, world["key_file"])
    assert f"backup is of a {kind['database']} database" in output


def test_restore_refuses_to_overwrite_different_instance_secrets(
    app: Flask, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    assert backup(app, out).exit_code == 0
    key = str(world["key_file"])

    # A host that already has secrets of its own (e.g. `make run` made development ones).
    wipe(app)
    fresh = host(tmp_path, "host2", RESTORE_MODE=True)
    own = Path(fresh.instance_path) / "receipt_pepper"
    own.write_bytes(secrets.token_urlsafe(48).encode())
    result = run(fresh, "restore", "--from", str(out), "--key-file", key)
    assert result.exit_code == 1
    assert "instance/receipt_pepper holds a different secret" in result.output
    assert not (Path(fresh.instance_path) / "secret_key").exists()
    own.unlink()
    result = run(fresh, "restore", "--from", str(out), "--key-file", key)
    assert result.exit_code == 0, result.output  # nothing was left half-done by the refusal


def test_restore_over_a_database_with_data_needs_replace(
    app: Flask, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    assert backup(app, out).exit_code == 0
    facts_at_backup = count(FactInbox)
    # Data written after the backup: restoring without --replace would lose it silently.
    emit_fact("detriment", world["org"], utcnow())
    db.session.commit()
    db.session.remove()
    db.engine.dispose()
    target = host(
        tmp_path,
        "same",
        RESTORE_MODE=True,
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
    )
    result = run(target, "restore", "--from", str(out), "--key-file", str(world["key_file"]))
    assert result.exit_code == 1, result.output
    assert "not empty (3 case(s)" in result.output and "--replace" in result.output
    result = run(
        target, "restore", "--from", str(out), "--key-file", str(world["key_file"]), "--replace"
    )
    assert result.exit_code == 0, result.output
    with target.app_context():
        assert count(Case) == 3
        assert count(FactInbox) == facts_at_backup  # the later fact is gone, as asked
        db.session.remove()
        db.engine.dispose()


def test_facts_job_skips_what_it_cannot_open(app: Flask, world: dict[str, Any], cli) -> None:
    waiting = count(FactInbox)
    assert waiting >= 1
    app.config["STATS_INBOX_KEY"] = secrets.token_urlsafe(48).encode()  # not the data's
    emit_fact("detriment", world["org"], utcnow())  # sealed to the new key: opens
    db.session.commit()
    result = cli("jobs", "facts", "--flush")
    assert result.exit_code == 1
    assert f"{waiting} inbox fact(s) did not open" in result.output
    assert "moved 1 fact(s)" in result.output
    assert count(FactInbox) == waiting  # kept, not deleted
    assert count(Fact) == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/flask", "--app", "speakup", "restore", "--from", "x"], True),
        (["/venv/bin/flask", "-A", "speakup", "restore"], True),
        (["/usr/lib/python3/site-packages/flask/__main__.py", "restore"], True),
        (["/venv/bin/flask", "--app", "speakup", "recovery", "restore", "RRK"], False),
        (["/venv/bin/flask", "--app", "restore", "run"], False),
        (["/venv/bin/gunicorn", "restore"], False),
        (["/venv/bin/flask", "backup", "--out", "restore"], False),
        ([], False),
    ],
)
def test_only_flask_restore_may_start_without_secrets(argv: list[str], expected: bool) -> None:
    assert restoring_from_cli(argv) is expected
