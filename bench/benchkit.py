"""What the benchmarks share: errors, process CPU and memory, the app's configuration with
fresh secrets, and a throwaway PostgreSQL database. Imported by the scripts next to it."""

from __future__ import annotations

import resource
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL


class BenchError(RuntimeError):
    """The benchmark could not run, or a check failed."""


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / (1024 * 1024)


def app_config(database_url: str, instance: Path, **extra: Any) -> dict[str, Any]:
    """The real app's configuration with fresh random secrets; no rate limits, CSRF or
    secure cookies (the benchmarks drive the app through its test client), quiet logs."""
    config: dict[str, Any] = {
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": secrets.token_bytes(32),
        "RECEIPT_PEPPER": secrets.token_bytes(32),
        "RATELIMIT_SALT": secrets.token_bytes(32),
        "STATS_INBOX_KEY": secrets.token_bytes(32),
        "AUDIT_KEY": secrets.token_bytes(32),
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "LOG_LEVEL": "WARNING",  # one line per request otherwise
    }
    config.update(extra)
    return config


def psycopg_url(url: URL) -> URL:
    """A PostgreSQL URL with the driver the app uses."""
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


@dataclass(frozen=True)
class Throwaway:
    """A PostgreSQL database made for one run."""

    url: str
    name: str
    server_version: str


@contextmanager
def throwaway_postgres(url: URL) -> Iterator[Throwaway]:
    """Create a database next to the one ``url`` names (``postgres`` if none), and drop it
    afterwards (``WITH (FORCE)``). The named database is not touched."""
    import psycopg

    url = psycopg_url(url)
    admin = url.set(drivername="postgresql", database=url.database or "postgres")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"speakup_bench_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        server = conn.info.parameter_status("server_version") or "?"
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Throwaway(url.set(database=name).render_as_string(hide_password=False), name, server)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
