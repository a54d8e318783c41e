"""Migrations are code: ``upgrade head`` builds exactly the models' schema, and every revision
goes down and up again (STYLE §10).

Each test gets an empty database of its own — a SQLite file, or, when
SPEAKUP_TEST_DATABASE_URL is set, a PostgreSQL database created on that server for the test
and dropped afterwards — and never uses ``make_app`` (which would ``create_all()``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import make_url

from speakup import create_app
from speakup.accounts.models import Role
from speakup.accounts.services import create_user, new_totp_secret
from speakup.audit.services import record
from speakup.cases.models import Case, DisclosureMode, Route
from speakup.extensions import db
from speakup.organisations.services import (
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.reporting.services import ReportInput, submit_report
from tests.conftest import PASSWORD, PG_URL, SLA, TEST_ARGON2
from tests.conftest import test_config as base_config


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = make_url(PG_URL)
    name = f"speakup_migrations_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def _keep_logging() -> Iterator[None]:
    """migrations/env.py runs ``logging.config.fileConfig``, which by default disables every
    logger that already exists and replaces the root handlers. Put them back so later tests
    (that check what the app logs) see the logging they expect."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {
        name: (logger.disabled, logger.level)
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (disabled, logger_level) in loggers.items():
        logger = logging.getLogger(name)
        logger.disabled = disabled
        logger.setLevel(logger_level)


@pytest.fixture
def migration_app(tmp_path: Path, database_url: str, _keep_logging: None) -> Iterator[Flask]:
    """An app on the empty database, with its context pushed. Nothing creates tables."""
    app = create_app(base_config(tmp_path, SQLALCHEMY_DATABASE_URI=database_url))
    with app.app_context():
        assert _tables() == set()
        yield app
        db.session.remove()
        db.engine.dispose()


def _tables() -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _schema_differences() -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, db.metadata)


def _revisions(app: Flask) -> list:
    """Revisions from the first to head."""
    script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
    return list(reversed(list(script.walk_revisions("base", "heads"))))


def test_upgrade_head_builds_exactly_the_models(migration_app):
    upgrade()
    assert _tables() == {t.name for t in db.metadata.sorted_tables} | {"alembic_version"}
    assert _schema_differences() == []


def test_there_is_one_head(migration_app):
    script = ScriptDirectory.from_config(migration_app.extensions["migrate"].migrate.get_config())
    assert len(script.get_heads()) == 1


def test_every_revision_goes_down_and_up(migration_app):
    revisions = _revisions(migration_app)
    assert revisions, "there is at least one migration"
    for revision in revisions:
        upgrade(revision=revision.revision)
        before = _tables()
        downgrade(revision=revision.down_revision or "base")
        if revision.down_revision is None:
            assert _tables() <= {"alembic_version"}
        upgrade(revision=revision.revision)
        assert _tables() == before

    downgrade(revision="base")
    assert _tables() <= {"alembic_version"}
    upgrade()
    assert _schema_differences() == []


def test_counting_detriment_per_case_starts_from_what_was_already_counted(migration_app):
    """5e1f0c2a9d47 adds ``concern_case.counted_detriment``. A case whose detriment report
    already wrote a statistics fact (its audit trail says so) starts counted, so a later
    report does not count it twice; a case without one does not."""
    upgrade()
    region = get_or_create_region("MIDLANDS", "Midlands")
    system = get_or_create_system(region, "SYS1", "Test System")
    org = get_or_create_organisation(system, "ORG1", "Test Organisation")
    create_user(
        email="guardian@example.test",
        display_name="Gita Guardian",
        role=Role.GUARDIAN,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=org,
        totp_secret=new_totp_secret(),
    )
    db.session.commit()
    cases = []
    for n in range(2):
        data = ReportInput(
            organisation_id=org.id,
            route=Route.ORGANISATION,
            disclosure_mode=DisclosureMode.ANONYMOUS,
            what_happened="Something happened on the ward.",
            submission_token=f"migration-{n}",
        )
        cases.append(
            submit_report(
                data, pepper=migration_app.config["RECEIPT_PEPPER"], params=TEST_ARGON2, sla=SLA
            ).case.id
        )
    reported, not_reported = cases
    record("case.detriment_reported", actor_kind="reporter", case_id=reported)
    db.session.commit()

    downgrade(revision="ceddc6b1ae02")
    upgrade()
    db.session.expire_all()
    counted = dict(db.session.execute(select(Case.id, Case.counted_detriment)).all())
    assert counted == {reported: True, not_reported: False}
