"""Operator CLI: ``flask --app speakup …`` (see README "Operator commands")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from speakup.accounts.models import Role
from speakup.errors import SpeakupError
from speakup.extensions import db
from speakup.settings import argon2_params

org_cli = AppGroup("org", help="Regions, systems, organisations and recovery keys.")
user_cli = AppGroup("user", help="Staff accounts.")
audit_cli = AppGroup("audit", help="The hash-chained audit log.")


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def read_password(password_stdin: bool, password_file: str | None) -> str:
    """A password from stdin, a file, or an interactive prompt (never an argument)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif password_file:
        password = Path(password_file).read_text().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@org_cli.command("create")
@click.option("--region", "region_code", default="MIDLANDS", show_default=True)
@click.option("--region-name", default="NHS England – Midlands", show_default=True)
@click.option("--system", "system_code", required=True, help="ICS code, e.g. BSOL")
@click.option("--system-name", help="ICS name (needed the first time a system is used)")
@click.option("--code", required=True, help="Organisation code, e.g. RRK")
@click.option("--name", required=True)
@click.option(
    "--kind", type=click.Choice(["trust", "icb", "primary_care", "social_care"]), default="trust"
)
def org_create(
    region_code: str,
    region_name: str,
    system_code: str,
    system_name: str | None,
    code: str,
    name: str,
    kind: str,
) -> None:
    """Create an organisation (and its region/system if new)."""
    from speakup.organisations.services import (
        get_or_create_organisation,
        get_or_create_region,
        get_or_create_system,
    )

    region = get_or_create_region(region_code, region_name)
    system = get_or_create_system(region, system_code, system_name or system_code)
    org = get_or_create_organisation(system, code, name, kind)
    db.session.commit()
    click.echo(f"organisation {org.code}: {org.name} (system {system.code})")


@org_cli.command("recovery-key")
@click.argument("code")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="File for the custodian; must not exist",
)
@click.option("--replace", is_flag=True, help="Replace an existing recovery key")
def org_recovery_key(code: str, out_path: str, replace: bool) -> None:
    """Generate an organisation's recovery keypair; the private half goes only to --out."""
    from speakup.organisations.services import create_recovery_key, find_organisation

    try:
        key_id = create_recovery_key(find_organisation(code), Path(out_path), replace=replace)
    except FileExistsError:
        _fail(f"{out_path} already exists; choose a new file.")
    except SpeakupError as exc:
        _fail(exc.message)
    db.session.commit()
    click.echo(f"recovery key {key_id} for {code} written to {out_path}.")
    click.echo("Move it to offline storage for the recovery custodian; the server keeps no copy.")


@org_cli.command("settings")
@click.argument("code")
@click.option(
    "--ack-working-days", type=click.IntRange(1, 30), help="Acknowledge within (working days)"
)
@click.option("--ack-ceiling-days", type=click.IntRange(1, 60), help="Hard ceiling (calendar days)")
@click.option("--feedback-days", type=click.IntRange(1, 365), help="Feedback within (days)")
@click.option("--update-days", type=click.IntRange(1, 90), help="Updates at least every (days)")
@click.option("--retention-months", type=click.IntRange(1, 120), help="Keep after monitoring ends")
@click.option("--default", "reset", is_flag=True, help="Go back to the configured defaults")
def org_settings(
    code: str,
    ack_working_days: int | None,
    ack_ceiling_days: int | None,
    feedback_days: int | None,
    update_days: int | None,
    retention_months: int | None,
    reset: bool,
) -> None:
    """Show or change an organisation's service levels and retention. New deadlines apply
    to cases from now on; a new retention period also re-dates finished cases' purge."""
    from speakup.organisations.services import find_organisation, update_service_levels

    try:
        org = find_organisation(code)
        changed = update_service_levels(
            org,
            reset=reset,
            acknowledge_working_days=ack_working_days,
            acknowledge_ceiling_days=ack_ceiling_days,
            feedback_days=feedback_days,
            update_days=update_days,
            retention_months=retention_months,
            config=current_app.config,
        )
    except SpeakupError as exc:
        _fail(exc.message)
    db.session.commit()
    from speakup.cases.policy import policy_for

    policy = policy_for(org, current_app.config)
    click.echo(
        f"{org.code}: acknowledge within {policy.acknowledge_working_days} working days "
        f"(ceiling {policy.acknowledge_ceiling_days} days), feedback within "
        f"{policy.feedback_days} days, updates every {policy.update_days} days, kept "
        f"{policy.retention_months} months after monitoring"
        + (f"; {changed} finished case(s) re-dated" if changed else "")
    )


@user_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--org", "org_code", help="Organisation code (guardians and lead guardians)")
@click.option("--pool", is_flag=True, help="Offer this guardian in the regional pool")
@click.option("--languages", default="English", show_default=True)
@click.option("--bio", default="", help="Short self-description shown in the pool")
@click.option(
    "--scope",
    help="Leaders: region:CODE, system:CODE or organisation:CODE (what their statistics cover)",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False))
def user_create(
    email: str,
    display_name: str,
    role: str,
    org_code: str | None,
    pool: bool,
    languages: str,
    bio: str,
    scope: str | None,
    password_stdin: bool,
    password_file: str | None,
) -> None:
    """Create a staff account with its own keypair. TOTP is enrolled at first sign-in."""
    from speakup.accounts.services import create_user
    from speakup.organisations.services import find_organisation, find_scope

    try:
        org = find_organisation(org_code) if org_code else None
        leader_scope = find_scope(scope) if scope else None
        user = create_user(
            email=email,
            display_name=display_name,
            role=Role(role),
            password=read_password(password_stdin, password_file),
            params=argon2_params(current_app.config),
            organisation=org,
            in_pool=pool,
            languages=languages,
            bio=bio,
            scope=leader_scope,
        )
    except SpeakupError as exc:
        _fail(exc.message)
    db.session.commit()
    click.echo(f"created {user.role} {user.email} (id {user.id})")


@audit_cli.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.File("r"),
    help="A file of lines printed by `audit checkpoint`; each must still be in the chain.",
)
def audit_verify(checkpoint_file: TextIO | None) -> None:
    """Verify the whole hash chain; exit 1 and name the first broken event if any."""
    from speakup.audit.services import missing_checkpoints, parse_checkpoints, verify_chain

    report = verify_chain()
    if not report.ok:
        _fail(
            f"audit chain broken at event #{report.first_broken_seq} "
            f"(after {report.events} good events)"
        )
    click.echo(f"audit chain intact: {report.events} events")
    if checkpoint_file is not None:
        try:
            checkpoints = parse_checkpoints(checkpoint_file)
        except ValueError as exc:
            _fail(f"checkpoint file: {exc}")
        missing = missing_checkpoints(checkpoints)
        if missing:
            _fail(
                "audit chain does not contain checkpoint "
                + ", ".join(f"#{c.seq}" for c in missing)
                + ": history up to it was rewritten or cut"
            )
        click.echo(f"all {len(checkpoints)} checkpoints found in the chain")


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the chain's head (position and hash) to ship off this host, e.g. appended to a
    file a database writer cannot change; `audit verify --checkpoint FILE` checks it."""
    from speakup.audit.services import current_checkpoint

    click.echo(current_checkpoint().line())


def register_cli(app: Flask) -> None:
    """Attach every command group to the app."""
    from speakup.demo import demo_cli
    from speakup.jobs.cli import jobs_cli
    from speakup.stats.cli import stats_cli

    app.cli.add_command(org_cli)
    app.cli.add_command(user_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(recovery_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(stats_cli)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)


@user_cli.command("reset")
@click.argument("email")
def user_reset(email: str) -> None:
    """Administrator reset: the account's key and second factor are destroyed and a one-time
    enrolment code is printed, to be given to the user in person (they choose their own
    password at /staff/enrol). Case access comes back only when a reader of each case
    restores it, or the recovery custodian runs `recovery restore`."""
    from speakup.accounts.services import find_user
    from speakup.admin.services import reset_staff_account

    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No account {email}.")
    result = reset_staff_account(user, by=None, config=current_app.config)
    db.session.commit()
    click.echo(
        f"reset {email}: {result.pending} case key(s) waiting to be restored\n"
        f"enrolment code (valid {result.expires_hours} hours, give it in person): {result.code}"
    )


@user_cli.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Disable an account; its sessions end at once."""
    from speakup.accounts.lifecycle import disable_account
    from speakup.accounts.services import find_user

    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No account {email}.")
    disable_account(user, by=None)
    db.session.commit()
    click.echo(f"disabled {email}")


recovery_cli = AppGroup("recovery", help="Recovery custodian commands (offline recovery key).")


@recovery_cli.command("restore")
@click.argument("org_code")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "email", help="Only restore this account's access")
def recovery_restore(org_code: str, key_file: str, email: str | None) -> None:
    """Re-seal the organisation's cases to reset accounts, using the offline recovery key.
    The key file is read in this process only; nothing of it is stored."""
    from pathlib import Path

    from speakup.accounts.services import find_user
    from speakup.cases.custody import restore_with_recovery_key
    from speakup.organisations.services import find_organisation, load_recovery_key

    try:
        org = find_organisation(org_code)
        key = load_recovery_key(Path(key_file), org)
        user = None
        if email:
            user = find_user(email)
            if user is None:
                _fail(f"No account {email}.")
        count = restore_with_recovery_key(org.id, key, user)
    except SpeakupError as exc:
        _fail(exc.message)
    db.session.commit()
    click.echo(f"restored {count} case key(s) for {org_code}")


@click.command("backup")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="New (or empty) directory for this backup",
)
@click.option(
    "--to",
    "org_code",
    required=True,
    help="Organisation whose recovery public key the secrets are sealed to",
)
@with_appcontext
def backup_command(out_dir: str, org_code: str) -> None:
    """Back up the database (SQLite online backup or pg_dump) and, sealed to an
    organisation's recovery key, the secrets it needs; plus a manifest with nothing secret."""
    from speakup.backup import make_backup
    from speakup.organisations.services import find_organisation

    try:
        org = find_organisation(org_code)
        result = make_backup(db.engine, current_app.config, Path(out_dir), org)
    except FileExistsError as exc:
        _fail(f"{exc.filename} already exists; give each backup a new directory.")
    except SpeakupError as exc:
        _fail(exc.message)
    from speakup.audit.services import record

    record("database.backed_up", actor_kind="system", detail=f"backup={result.backup_id}")
    db.session.commit()
    click.echo(
        f"backup of the {result.database} database ({result.cases} case(s)) written to "
        f"{result.directory}; secrets sealed to {org_code}'s recovery key {result.key_id}."
    )
    click.echo("Keep the custodian's key file apart from the backup: the two together restore.")


@click.command("restore")
@click.option(
    "--from",
    "backup_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A directory written by `flask backup`",
)
@click.option(
    "--key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The custodian's offline recovery key file the backup was sealed to",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite a non-empty database and different secrets in the instance folder",
)
@with_appcontext
def restore_command(backup_dir: str, key_file: str, replace: bool) -> None:
    """Restore a backup into the configured database and the instance folder. Checks first
    that the key opens the secrets and that they match the dump; changes nothing otherwise.
    Stop the app and the scheduled jobs on every host first."""
    from speakup.backup import restore_backup

    db.session.remove()
    try:
        result = restore_backup(
            db.engine,
            Path(current_app.instance_path),
            Path(backup_dir),
            Path(key_file),
            replace=replace,
        )
    except SpeakupError as exc:
        _fail(exc.message)
    from speakup.audit.services import record

    # This process started without secrets: the audit chain needs the restored key.
    current_app.config.update(result.values)
    record("database.restored", actor_kind="system", detail=f"backup={result.backup_id}")
    db.session.commit()
    written = ", ".join(result.secrets_written) or "none (the same ones were there)"
    click.echo(
        f"restored the {result.database} database ({result.cases} case(s)); secrets written "
        f"to {current_app.instance_path}: {written}."
    )
    click.echo("Start the app and the scheduled jobs again.")
