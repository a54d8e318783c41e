"""Per-connection database settings (SQLite pragmas) and private SQLite files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

#: Owner read/write only, like the secrets beside the database (issue 10 #8).
PRIVATE_MODE = 0o600


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL for concurrent readers, foreign keys on, and secure_delete so deleted rows
    # (crypto-shredded case keys) are overwritten rather than left in free pages.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def sqlite_files(database: str) -> list[Path]:
    """The database file and the WAL and shared-memory files SQLite keeps beside it."""
    main = Path(database)
    return [main, Path(f"{main}-wal"), Path(f"{main}-shm")]


def make_sqlite_files_private(database: str) -> None:
    """Create the database file 0600 if it is missing, and narrow any of its files to 0600.

    SQLite creates a new database with the process umask (0644 under the usual 022) and
    gives its -wal and -shm files the database file's mode. So the file is created here,
    private, before SQLite first opens it; files made earlier (or by another tool) are
    narrowed. Neither changes the umask, which is shared by every thread of the process.
    """
    main, *companions = sqlite_files(database)
    if not main.exists():
        main.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(main, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
    for path in (main, *companions):
        try:
            if path.stat().st_mode & 0o777 != PRIVATE_MODE:
                path.chmod(PRIVATE_MODE)
        except FileNotFoundError:
            continue


def configure_engines(app: Flask) -> None:
    """Install connection hooks on the app's engine."""
    from speakup.extensions import db

    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):

                def private_files(*_args: Any) -> None:
                    make_sqlite_files_private(database)

                # Just before SQLite opens the file (so a new one is created 0600, and nothing
                # is created merely by building the app), and again before the pragmas: WAL
                # mode creates -wal and -shm with the main file's mode.
                event.listen(engine, "do_connect", private_files)
                event.listen(engine, "connect", private_files)
            event.listen(engine, "connect", _sqlite_pragmas)
