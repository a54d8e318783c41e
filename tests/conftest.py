"""Shared fixtures: an app per test on a fresh database (SQLite by default, PostgreSQL when
SPEAKUP_TEST_DATABASE_URL is set), factories, and guards against real network and mail."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, text

from speakup import create_app
from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password, create_user, new_totp_secret
from speakup.cases.models import Case, DisclosureMode, Route, Status
from speakup.cases.policy import policy_for
from speakup.cases.workflow import Actor, change_status
from speakup.crypto import Argon2Params
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.organisations.services import (
    create_recovery_key,
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.reporting.services import ReportInput, Submission, submit_report

PG_URL = os.environ.get("SPEAKUP_TEST_DATABASE_URL", "")
TEST_ARGON2 = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1, max_concurrency=2)
PASSWORD = "correct horse battery staple"
SLA = {"acknowledge_working_days": 2, "acknowledge_ceiling_days": 7}


def test_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """The configuration every test app starts from."""
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "TESTING": True,
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": PG_URL or f"sqlite:///{instance / 'speakup.db'}",
        "SECRET_KEY": secrets.token_bytes(32),
        "RECEIPT_PEPPER": secrets.token_bytes(32),
        "RATELIMIT_SALT": secrets.token_bytes(32),
        "STATS_INBOX_KEY": secrets.token_bytes(32),
        "AUDIT_KEY": secrets.token_bytes(32),
        "ARGON2_TIME_COST": TEST_ARGON2.time_cost,
        "ARGON2_MEMORY_KIB": TEST_ARGON2.memory_kib,
        "ARGON2_PARALLELISM": TEST_ARGON2.parallelism,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
    }
    config.update(extra)
    return config


def reset_postgres() -> None:
    db.session.remove()
    tables = ", ".join(f'"{t.name}"' for t in reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def _postgres_schema(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not PG_URL:
        return
    app = create_app(test_config(tmp_path_factory.mktemp("pg")))
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()


@pytest.fixture
def make_app(tmp_path: Path, _postgres_schema: None) -> Iterator[Callable[..., Flask]]:
    """Build an app with extra config; its database is fresh and emptied afterwards."""
    apps: list[Flask] = []

    def factory(**extra: Any) -> Flask:
        app = create_app(test_config(tmp_path, **extra))
        with app.app_context():
            if PG_URL:
                reset_postgres()
            else:
                db.create_all()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            if PG_URL:
                reset_postgres()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The default test app, with an application context pushed."""
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the default app."""
    return app.test_client()


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a connection beyond this machine, or sends real mail."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in ("::1", "localhost") or host.startswith("/")
        ):
            raise RuntimeError(f"test tried to connect to {host!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)

    def no_smtp(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("test tried to send real mail")

    monkeypatch.setattr("smtplib.SMTP.__init__", no_smtp)


# Factories -------------------------------------------------------------------------------


@dataclass
class Staff:
    """A created account and what a test needs to sign in as it."""

    user: User
    password: str
    totp_secret: str

    def code(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


@pytest.fixture
def make_org(app: Flask) -> Callable[..., Organisation]:
    """Create an organisation (with a recovery key written under tmp) in a default system."""
    counter = {"n": 0}

    def factory(code: str | None = None, *, recovery_dir: Path | None = None) -> Organisation:
        counter["n"] += 1
        region = get_or_create_region("MIDLANDS", "Midlands")
        system = get_or_create_system(region, "SYS1", "Test System")
        code = code or f"ORG{counter['n']}"
        org = get_or_create_organisation(system, code, f"Test Organisation {code}")
        if recovery_dir is not None:
            create_recovery_key(org, recovery_dir / f"{code}.json")
        db.session.commit()
        return org

    return factory


@pytest.fixture
def make_staff(app: Flask) -> Callable[..., Staff]:
    """Create a staff account, pre-enrolled in TOTP."""
    counter = {"n": 0}

    def factory(
        role: Role = Role.GUARDIAN,
        organisation: Organisation | None = None,
        *,
        in_pool: bool = False,
        name: str | None = None,
    ) -> Staff:
        counter["n"] += 1
        secret = new_totp_secret()
        user = create_user(
            email=f"staff{counter['n']}@example.test",
            display_name=name or f"Staff Member {counter['n']}",
            role=role,
            password=PASSWORD,
            params=TEST_ARGON2,
            organisation=organisation,
            in_pool=in_pool,
            totp_secret=secret,
        )
        db.session.commit()
        return Staff(user, PASSWORD, secret)

    return factory


@pytest.fixture
def submit(app: Flask) -> Callable[..., Submission]:
    """Submit a report through the service layer and commit."""
    counter = {"n": 0}

    def factory(organisation: Organisation, **fields: Any) -> Submission:
        counter["n"] += 1
        data = ReportInput(
            organisation_id=organisation.id,
            route=fields.pop("route", Route.ORGANISATION),
            disclosure_mode=fields.pop("disclosure_mode", DisclosureMode.ANONYMOUS),
            what_happened=fields.pop("what_happened", "Something happened on the ward."),
            submission_token=f"token-{counter['n']}-{secrets.token_hex(8)}",
            **fields,
        )
        submission = submit_report(
            data, pepper=app.config["RECEIPT_PEPPER"], params=TEST_ARGON2, sla=SLA
        )
        db.session.commit()
        return submission

    return factory


def sign_in(client: FlaskClient, staff: Staff) -> None:
    """Sign a test client in as ``staff`` through the real password + TOTP pages."""
    response = client.post(
        "/staff/sign-in", data={"email": staff.user.email, "password": staff.password}
    )
    assert response.status_code == 302, response.data[:500]
    response = client.post("/staff/sign-in/code", data={"code": staff.code()})
    landing = "/staff/cases" if staff.user.is_reader else "/staff/admin/users"
    assert response.status_code == 302 and landing in response.location, response.data[:500]


@pytest.fixture
def staff_client(app: Flask) -> Callable[[Staff], FlaskClient]:
    """A new client signed in as the given staff member."""

    def factory(staff: Staff) -> FlaskClient:
        c = app.test_client()
        sign_in(c, staff)
        return c

    return factory


@pytest.fixture
def cli(app: Flask) -> Callable[..., Any]:
    """Run a ``flask`` command in the test's app, with optional standard input."""
    runner = app.test_cli_runner()

    def invoke(*args: str, stdin: str | None = None) -> Any:
        result = runner.invoke(args=list(args), input=stdin)
        # A real command runs in its own app context, whose teardown rolls back whatever a
        # failed command left uncommitted; here the test's context is shared, so do the same.
        db.session.rollback()
        return result

    return invoke


def count(model: type, **where: Any) -> int:
    """Rows of ``model`` (whose columns equal ``where``, if given)."""
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.session.scalar(query) or 0


@contextmanager
def recorded_queries() -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    statements: list[str] = []

    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before_cursor_execute)


def actor_for(app: Flask, staff: Staff) -> Actor:
    """A staff member as the case services see them: their account and unlocked key."""
    user = db.session.get_one(User, staff.user.id)
    unlocked = check_password(user, staff.password, TEST_ARGON2, app.config)
    return Actor(user, unlocked.private_key)


def move(app: Flask, case: Case, actor: Actor, *targets: Status, message: str = "") -> Case:
    """Walk a case through ``targets`` as a guardian, committing each step; feedback gets a
    standard message unless ``message`` is given."""
    for target in targets:
        text = message or ("Here is what happened." if target == Status.FEEDBACK_GIVEN else "")
        change_status(
            case,
            actor,
            target,
            policy=policy_for(case.organisation, app.config),
            expected_version=case.version,
            message=text or None,
        )
        db.session.commit()
    return case
