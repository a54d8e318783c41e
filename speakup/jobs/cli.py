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
from speakup.jobs.leases import LeaseLostError, lease
from speakup.jobs.retention import purge_due_cases

jobs_cli = AppGroup(
    "jobs", help="Scheduled jobs (digest, retention purge, housekeeping, facts, release)."
)


@jobs_cli.command("digest")
def digest() -> None:
    """Queue today's guardian digest and send every pending one (retries earlier failures)."""
    with lease("digest") as mine:
        if not mine:
            click.echo("digest: another host is running it; nothing to do")
            return
        try:
            result = run_digest(current_app.config, os.environ.get("SPEAKUP_MAIL_PASSWORD"), mine)
        except LeaseLostError as exc:
            click.echo(f"digest: {exc}", err=True)
            sys.exit(75)  # the host that took over sends the rest
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


@jobs_cli.command("housekeeping")
def housekeeping() -> None:
    """Delete expired sessions and old digest records."""
    from speakup.jobs.housekeeping import run_housekeeping

    with lease("housekeeping") as mine:
        if not mine:
            click.echo("housekeeping: another host is running it; nothing to do")
            return
        result = run_housekeeping(utcnow(), current_app.config)
    click.echo(
        f"housekeeping: {result.sessions} expired session(s), "
        f"{result.digests} old digest record(s) deleted"
    )


@jobs_cli.command("facts")
@click.option("--flush", is_flag=True, help="Move every waiting fact even below the batch size")
def facts(flush: bool) -> None:
    """Move sealed inbox facts into the fact table in one shuffled batch with random keys."""
    from speakup.stats.facts import inbox_size, move_inbox

    with lease("facts") as mine:
        if not mine:
            click.echo("facts: another host is running it; nothing to do")
            return
        waiting = inbox_size()
        result = move_inbox(
            current_app.config,
            min_batch=int(current_app.config["STATS_FACTS_MIN_BATCH"]),
            flush=flush,
        )
    if result.moved:
        click.echo(f"facts: moved {result.moved} fact(s) in one shuffled batch")
    else:
        opens = waiting - result.unopened
        click.echo(f"facts: {opens} waiting, below the batch size; nothing moved")
    if result.unopened:
        click.echo(
            f"facts: {result.unopened} inbox fact(s) did not open with this installation's "
            "STATS_INBOX_KEY and were left in the inbox: the secrets do not match the "
            "database (restored without its own secrets? see docs/OPERATIONS.md, "
            "Backup and restore)",
            err=True,
        )
        sys.exit(1)


@jobs_cli.command("release")
@click.option("--period", help="Quarter to release, e.g. FY2026Q2 (default: the latest one due)")
def release(period: str | None) -> None:
    """Publish a closed quarter (once, frozen) after the disclosure-control audit."""
    from speakup.errors import SpeakupError
    from speakup.stats.disclosure import DisclosureAuditError
    from speakup.stats.release import parse_or_latest, release_period

    now = utcnow()
    try:
        quarter = parse_or_latest(period, now, int(current_app.config["STATS_RELEASE_LAG_DAYS"]))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with lease("release", seconds=3600) as mine:
        if not mine:
            click.echo("release: another host is running it; nothing to do")
            return
        from sqlalchemy import select

        from speakup.extensions import db
        from speakup.stats.models import Release

        if db.session.scalar(select(Release.id).where(Release.period == quarter.key)):
            click.echo(f"release: {quarter.label} is already released")
            return
        click.echo(f"release: {quarter.label}: counting, suppressing and auditing…")
        try:
            made = release_period(quarter, current_app.config, now)
            db.session.commit()
        except DisclosureAuditError as exc:
            db.session.rollback()
            raise click.ClickException(f"release blocked by the disclosure audit: {exc}") from None
        except SpeakupError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None
    click.echo(f"release: {quarter.label} published ({made.audited_cells} cells audited)")
