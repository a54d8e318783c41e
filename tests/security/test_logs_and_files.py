"""Logs keep the cause of an outage and lose receipts; SQLite files are private (issue 10 #8).

The old receipt pattern matched any 16 letters, so "unhandled OperationalError" was logged as
"unhandled [redacted]"; and SQLite created the database, -wal and -shm files 0644 (with the
usual umask 022) beside secrets kept 0600.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg.errors
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from speakup import create_app
from speakup.crypto.receipt import generate_receipt, normalise_receipt
from speakup.db_setup import sqlite_files
from speakup.extensions import db
from speakup.logging_setup import RedactionFilter
from tests.conftest import test_config as base_config


def redacted(message: str, *args: object) -> str:
    record = logging.LogRecord("speakup.test", logging.ERROR, __file__, 1, message, args, None)
    assert RedactionFilter().filter(record)
    return record.getMessage()


# --- the receipt's real shape ------------------------------------------------------------------


@pytest.mark.parametrize("_", range(50))
def test_a_receipt_is_redacted_in_every_form_it_is_shown_or_typed(_: int) -> None:
    shown = generate_receipt()
    normalised = normalise_receipt(shown)
    assert normalised is not None
    for form in (shown, shown.lower(), shown.replace("-", " "), normalised, normalised.lower()):
        assert redacted("signed in with %s today", form) == "signed in with [redacted] today"


ERROR_NAMES = sorted(
    {
        name
        for module in (sqlalchemy.exc, psycopg.errors, builtins)
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
)


def test_error_class_names_are_never_redacted() -> None:
    assert {"OperationalError", "ProgrammingError", "InvalidTextRepresentation"} <= set(ERROR_NAMES)
    for name in ERROR_NAMES:
        assert redacted("unhandled %s", name) == f"unhandled {name}"


def test_the_unhandled_error_line_names_the_class() -> None:
    # speakup.errors logs exactly this on a 500.
    for error in (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):
        assert redacted("unhandled %s", error.__name__) == f"unhandled {error.__name__}"


@pytest.mark.parametrize(
    "message",
    [
        "have been sent from the ward",  # four words of four letters
        "case 0123 was 4567 days old",
        "ModuleNotFoundErr",
        "ThisIsSixteenChr",
    ],
)
def test_ordinary_text_is_left_alone(message: str) -> None:
    assert redacted(message) == message


def test_addresses_are_still_redacted() -> None:
    assert redacted("from 192.0.2.7") == "from [addr]"


# --- SQLite file modes ---------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sqlite_app(tmp_path: Path, database: Path):
    return create_app(base_config(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}"))


def test_a_new_sqlite_database_and_its_wal_and_shm_files_are_0600(
    tmp_path: Path, umask_022: None
) -> None:
    database = tmp_path / "fresh" / "speakup.db"
    app = sqlite_app(tmp_path, database)
    with app.app_context():
        db.create_all()
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        files = [p for p in sqlite_files(str(database)) if p.exists()]
        assert [p.name for p in files] == ["speakup.db", "speakup.db-wal", "speakup.db-shm"]
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        db.engine.dispose()
    # Control: with the same umask, a file made the ordinary way is world-readable.
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")
    assert mode(ordinary) == 0o644


def test_an_existing_world_readable_database_is_narrowed_to_0600(
    tmp_path: Path, umask_022: None
) -> None:
    database = tmp_path / "old.db"
    for path in sqlite_files(str(database)):
        path.write_bytes(b"")
        path.chmod(0o644)
    database.unlink()  # an empty file is fine for SQLite; companions of nothing are too
    database.write_bytes(b"")
    database.chmod(0o644)
    app = sqlite_app(tmp_path, database)
    with app.app_context():
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        for path in sqlite_files(str(database)):
            if path.exists():
                assert mode(path) == 0o600, path
        db.engine.dispose()
