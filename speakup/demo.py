"""Demo data for ``make run``: the Midlands, its 11 integrated care systems, demo
organisations, guardians (some in the regional pool) and a regional panel.

Loading is idempotent: running it again adds nothing. Demo accounts share one published
password and are pre-enrolled in TOTP; ``flask demo code EMAIL`` prints the current code.
Never load demo data into a production database.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pyotp
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.engine import make_url

from speakup.accounts.models import Role, User
from speakup.accounts.services import (
    SignInError,
    check_password,
    create_user,
    find_user,
    new_totp_secret,
)
from speakup.db import utcnow
from speakup.extensions import db
from speakup.organisations.services import (
    create_recovery_key,
    describe_scope,
    find_scope,
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.settings import argon2_params

demo_cli = AppGroup("demo", help="Demo data for trying Speakup locally.")

#: published on purpose: demo accounts guard nothing real
DEMO_PASSWORD = "speakup-demo-password"  # noqa: S105  # nosec B105
RECOVERY_DIR = Path(__file__).resolve().parent.parent / "demo-recovery-keys"

#: (code, name) of the 11 Midlands integrated care systems
SYSTEMS = [
    ("BSOL", "Birmingham and Solihull"),
    ("BC", "Black Country"),
    ("CW", "Coventry and Warwickshire"),
    ("DDICS", "Derby and Derbyshire"),
    ("HW", "Herefordshire and Worcestershire"),
    ("LLR", "Leicester, Leicestershire and Rutland"),
    ("LINCS", "Lincolnshire"),
    ("NHANTS", "Northamptonshire"),
    ("NOTTS", "Nottingham and Nottinghamshire"),
    ("STW", "Shropshire, Telford and Wrekin"),
    ("SSOT", "Staffordshire and Stoke-on-Trent"),
]

#: (email local part, display name, role, org code or None, in pool, languages, bio)
DEMO_USERS = [
    (
        "amara.okafor",
        "Amara Okafor",
        Role.LEAD_GUARDIAN,
        "BSOL-H",
        True,
        "English, Igbo",
        "Lead guardian. I was a staff nurse for 15 years and know how hard it is to speak up.",
    ),
    ("tom.hughes", "Tom Hughes", Role.GUARDIAN, "BSOL-H", False, "English", ""),
    (
        "priya.sharma",
        "Priya Sharma",
        Role.GUARDIAN,
        "BC-H",
        True,
        "English, Hindi, Punjabi",
        "Guardian and former pharmacist. I listen first and act on what you tell me.",
    ),
    (
        "grace.mensah",
        "Grace Mensah",
        Role.GUARDIAN,
        "CW-H",
        True,
        "English, Twi",
        "I support international recruits and anyone who feels unheard.",
    ),
    (
        "li.wei",
        "Li Wei",
        Role.GUARDIAN,
        "NOTTS-H",
        True,
        "English, Mandarin",
        "Guardian for community and mental health services.",
    ),
    ("james.patel", "James Patel", Role.GUARDIAN, "LLR-H", False, "English, Gujarati", ""),
    ("sarah.jones", "Sarah Jones", Role.GUARDIAN, "STW-H", False, "English, Welsh", ""),
    ("yusuf.ali", "Yusuf Ali", Role.PANEL_MEMBER, None, False, "English, Urdu", ""),
    ("ruth.campbell", "Ruth Campbell", Role.PANEL_MEMBER, None, False, "English", ""),
    ("admin", "Demo Administrator", Role.ADMIN, None, False, "English", ""),
]
EMAIL_DOMAIN = "demo.speakup.test"

#: (email local part, display name, scope)
DEMO_LEADERS = [
    ("region.leader", "Rhea Region (regional leader)", "region:MIDLANDS"),
    ("bsol.leader", "Bola Adeyemi (Birmingham and Solihull system leader)", "system:BSOL"),
    ("bsolh.leader", "Harpreet Kaur (trust chief people officer)", "organisation:BSOL-H"),
]


def recovery_dir_for(database_uri: str) -> Path:
    """Where this database's demo recovery keys go: a folder named after the database
    (``sqlite-speakup``, ``postgresql-speakup_ops``), so demo data loaded into a second
    database never overwrites the keys of the first."""
    url = make_url(database_uri)
    backend = url.get_backend_name()
    name = url.database or "memory"
    if backend == "sqlite":
        name = Path(name).stem or "memory"
    return RECOVERY_DIR / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{backend}-{name}")


def load_demo() -> list[str]:
    """Create anything missing; return a line per thing created."""
    created: list[str] = []
    keys_dir = recovery_dir_for(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    region = get_or_create_region("MIDLANDS", "NHS England – Midlands")
    for code, name in SYSTEMS:
        system = get_or_create_system(region, code, f"{name} Integrated Care System")
        for suffix, org_name, kind in (
            ("H", f"{name} Demo Hospitals NHS Trust", "trust"),
            ("C", f"{name} Demo Community and Mental Health NHS Trust", "trust"),
            ("ICB", f"NHS {name} Demo Integrated Care Board", "icb"),
        ):
            org = get_or_create_organisation(system, f"{code}-{suffix}", org_name, kind)
            if org.recovery_public_key is None:
                path = keys_dir / f"{org.code}.recovery-key.json"
                if path.exists():
                    path.unlink()  # a stale demo file from a deleted database
                create_recovery_key(org, path)
                created.append(f"recovery key {org.code}")
    params = argon2_params(current_app.config)
    from speakup.organisations.services import find_organisation

    for local, name, role, org_code, pool, languages, bio in DEMO_USERS:
        email = f"{local}@{EMAIL_DOMAIN}"
        if find_user(email) is not None:
            continue
        create_user(
            email=email,
            display_name=name,
            role=role,
            password=DEMO_PASSWORD,
            params=params,
            organisation=find_organisation(org_code) if org_code else None,
            in_pool=pool,
            languages=languages,
            bio=bio,
            totp_secret=new_totp_secret(),
        )
        created.append(f"user {email}")
    for local, name, scope_text in DEMO_LEADERS:
        email = f"{local}@{EMAIL_DOMAIN}"
        if find_user(email) is not None:
            continue
        create_user(
            email=email,
            display_name=name,
            role=Role.LEADER,
            password=DEMO_PASSWORD,
            params=params,
            totp_secret=new_totp_secret(),
            scope=find_scope(scope_text),
        )
        created.append(f"user {email}")
    return created


def demo_totp_code(email: str) -> str:
    """The current TOTP code of a demo account (needs the published demo password)."""
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No account {email}.")
    try:
        unlocked = check_password(
            user, DEMO_PASSWORD, argon2_params(current_app.config), current_app.config
        )
    except SignInError:
        raise click.ClickException(f"{email} is not a demo account (or is locked).") from None
    if unlocked.totp_secret is None:
        raise click.ClickException(f"{email} has not enrolled a second factor yet.")
    return pyotp.TOTP(unlocked.totp_secret).now()


def _where(user: User) -> str:
    """What an account covers, for the listing: a leader's real scope, a guardian's
    organisation (and the pool), the panel, or the whole service for an administrator."""
    if user.role == Role.LEADER:
        return describe_scope(user.scope_kind, user.scope_id)
    if user.role == Role.ADMIN:
        return "administrator: accounts and audit, no case access"
    where = user.organisation.code if user.organisation else "regional panel"
    return where + (", in the regional pool" if user.in_pool else "")


@demo_cli.command("load")
def demo_load() -> None:
    """Load demo data (idempotent) and print how to sign in."""
    created = load_demo()
    db.session.commit()
    click.echo(f"demo data: {len(created)} new item(s)" if created else "demo data already loaded")
    keys_dir = recovery_dir_for(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    click.echo(f"Demo recovery keys of this database: {keys_dir}/")
    accounts = db.session.scalars(select(User).order_by(User.id)).all()
    click.echo("")
    click.echo(f"Demo staff accounts (password for all: {DEMO_PASSWORD}):")
    for user in accounts:
        click.echo(f"  {user.email:40} {user.role} ({_where(user)})")
    click.echo("")
    click.echo("Second factor: get the current 6-digit code with")
    click.echo(f"  .venv/bin/flask --app speakup demo code amara.okafor@{EMAIL_DOMAIN}")
    click.echo(
        "Staff sign in at http://127.0.0.1:5000/staff/sign-in ; reporters start at http://127.0.0.1:5000/"
    )


@demo_cli.command("code")
@click.argument("email")
def demo_code(email: str) -> None:
    """Print the current TOTP code of a demo account."""
    code = demo_totp_code(email)
    db.session.commit()
    click.echo(code)
    sys.exit(0)


@demo_cli.command("stats")
def demo_stats() -> None:
    """Synthetic demo statistics and releases for the last four quarters (idempotent)."""
    from speakup.stats.demo_data import load_demo_statistics

    done = load_demo_statistics(utcnow(), current_app.config)
    db.session.commit()
    if done:
        click.echo("demo statistics released for: " + ", ".join(done))
    else:
        click.echo("demo statistics already released")
    click.echo(f"Leaders sign in as region.leader@{EMAIL_DOMAIN} (and bsol.leader, bsolh.leader).")
