"""Scheduled jobs, run by cron or systemd timers: ``flask --app speakup jobs …``.

Each job is idempotent and takes a lease first, so running it on two hosts at once is safe.
"""

from __future__ import annotations

import os
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from speakup.db import utcnow
from speakup.jobs.digest import run_digest
from speakup.jobs.leases import lease
from speakup.jobs.retention import purge_due_cases

jobs_cli = AppGroup("jobs", help="Scheduled jobs (digest, retention purge).")


@jobs_cli.command("digest")
def digest() -> None:
    """Queue today's guardian digest and send every pending one (retries earlier failures)."""
    with lease("digest") as mine:
        if not mine:
            click.echo("digest: another host is running it; nothing to do")
            return
        result = run_digest(current_app.config, os.environ.get("SPEAKUP_MAIL_PASSWORD"))
    click.echo(f"digest: queued {result.queued}, sent {result.sent}, still pending {result.failed}")
    if result.failed:
        sys.exit(75)  # EX_TEMPFAIL: cron/systemd can alert; the next run retries


@jobs_cli.command("purge")
def purge() -> None:
    """Crypto-shred finished cases whose retention period has ended."""
    with lease("purge") as mine:
        if not mine:
            click.echo("purge: another host is running it; nothing to do")
            return
        count = purge_due_cases(utcnow())
    click.echo(f"purge: {count} case(s) crypto-shredded")
