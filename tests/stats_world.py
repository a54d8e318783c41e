"""The statistics world several test modules share: one region, two systems of two
organisations each, two released quarters (FY2025Q4, with the year table, and FY2026Q1) and
one quarter with facts but no release (FY2026Q2); accounts for every kind of person; and
reading what a page shows. The facts are synthetic (``demo_data.synthetic_facts``, fixed
seed), released through the real release job, disclosure control and audit included."""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pyotp
from flask.testing import FlaskClient
from sqlalchemy import insert

from speakup.accounts.models import Role
from speakup.accounts.services import create_user, new_totp_secret
from speakup.db import utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.organisations.services import (
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.stats.demo_data import synthetic_facts
from speakup.stats.models import Fact, Release, ReleaseTable, Workforce
from speakup.stats.periods import parse_quarter
from speakup.stats.release import release_period
from tests.conftest import PASSWORD, TEST_ARGON2

#: the quarters of the world; today is after all three (the suite runs in or after 2026/27 Q3)
RELEASED = ("FY2025Q4", "FY2026Q1")
UNRELEASED = "FY2026Q2"

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Account:
    """What a person types to sign in (plain values: safe to hand to another thread)."""

    email: str
    password: str
    totp_secret: str
    user_id: int

    def code(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


@dataclass
class StatsWorld:
    """Ids and accounts of the statistics world (plain values only)."""

    region_id: int
    systems: dict[str, int]
    orgs: dict[str, int]
    org_names: dict[str, str]
    system_names: dict[str, str]
    accounts: dict[str, Account]
    #: every fact inserted, as the dicts given to the database
    facts: list[dict[str, Any]] = field(default_factory=list)

    def scope_of(self, leader: str) -> tuple[str, int]:
        return {
            "region_leader": ("region", self.region_id),
            "system_leader": ("system", self.systems["A"]),
            "org_leader": ("organisation", self.orgs["A1"]),
            "system_b_leader": ("system", self.systems["B"]),
            "org_b_leader": ("organisation", self.orgs["B1"]),
        }[leader]


def make_account(email: str, name: str, role: Role, **kwargs: Any) -> Account:
    secret = new_totp_secret()
    user = create_user(
        email=email,
        display_name=name,
        role=role,
        password=PASSWORD,
        params=TEST_ARGON2,
        totp_secret=secret,
        **kwargs,
    )
    return Account(email, PASSWORD, secret, user.id)


def build_stats_world(config: dict[str, Any], *, seed: int = 2026) -> StatsWorld:
    """Geography, accounts, facts for three quarters and releases of two (app context)."""
    region = get_or_create_region("MIDLANDS", "Midlands")
    systems: dict[str, int] = {}
    system_names: dict[str, str] = {}
    orgs: dict[str, Organisation] = {}
    for letter in "AB":
        system = get_or_create_system(region, f"SYS{letter}", f"System {letter}")
        systems[letter] = system.id
        system_names[letter] = system.name
        for n in "12":
            code = f"{letter}{n}"
            orgs[code] = get_or_create_organisation(
                system, f"ORG{code}", f"Organisation {code} Hospitals"
            )
    db.session.flush()
    accounts = {
        "region_leader": make_account(
            "region.leader@example.test",
            "Rhea Region",
            Role.LEADER,
            scope=("region", region.id),
        ),
        "system_leader": make_account(
            "system.leader@example.test",
            "Sam System",
            Role.LEADER,
            scope=("system", systems["A"]),
        ),
        "org_leader": make_account(
            "org.leader@example.test",
            "Olu Organisation",
            Role.LEADER,
            scope=("organisation", orgs["A1"].id),
        ),
        "system_b_leader": make_account(
            "systemb.leader@example.test",
            "Bea System",
            Role.LEADER,
            scope=("system", systems["B"]),
        ),
        "org_b_leader": make_account(
            "orgb.leader@example.test",
            "Ben Organisation",
            Role.LEADER,
            scope=("organisation", orgs["B1"].id),
        ),
        "guardian": make_account(
            "guardian@example.test", "Gita Guardian", Role.GUARDIAN, organisation=orgs["A1"]
        ),
        "lead_guardian": make_account(
            "lead@example.test", "Lena Lead", Role.LEAD_GUARDIAN, organisation=orgs["A1"]
        ),
        "lead_guardian_b": make_account(
            "leadb@example.test", "Bo Lead", Role.LEAD_GUARDIAN, organisation=orgs["B1"]
        ),
        "panel": make_account("panel@example.test", "Pat Panel", Role.PANEL_MEMBER),
        "admin": make_account("admin@example.test", "Ada Admin", Role.ADMIN),
    }
    ordered = [orgs[c] for c in ("A1", "A2", "B1", "B2")]
    rng = random.Random(seed)  # noqa: S311 (made-up figures)
    for org in ordered:
        db.session.add(
            Workforce(organisation_id=org.id, year=2025, white=4000, bme=1500, not_stated=100)
        )
    facts: list[dict[str, Any]] = []
    for period in (*RELEASED, UNRELEASED):
        batch = synthetic_facts(rng, ordered, parse_quarter(period))
        db.session.execute(insert(Fact), batch)
        facts += batch
    _release(config, (seed, int(config["STATS_K"]), region.id, *(o.id for o in ordered)))
    db.session.commit()
    return StatsWorld(
        region_id=region.id,
        systems=systems,
        orgs={c: o.id for c, o in orgs.items()},
        org_names={c: o.name for c, o in orgs.items()},
        system_names=system_names,
        accounts=accounts,
        facts=[dict(f) for f in facts],
    )


#: what the release job made of a world, by its seed, k and ids: the job takes seconds (the
#: audit's linear programmes and the charts), and the same facts always give the same tables
_RELEASES: dict[tuple[int, ...], list[dict[str, Any]]] = {}


def _release(config: dict[str, Any], key: tuple[int, ...]) -> None:
    """Release the world's quarters through the real job — once per test session; later
    worlds (with the same facts) get a copy of exactly what it published."""
    if key not in _RELEASES:
        releases = [
            release_period(parse_quarter(period), config, utcnow(), force=True)
            for period in RELEASED
        ]
        _RELEASES[key] = [
            {
                "release": {
                    "period": r.period,
                    "k": r.k,
                    "audited_cells": r.audited_cells,
                    "created_at": r.created_at,
                },
                "tables": [
                    {
                        "scope_kind": t.scope_kind,
                        "scope_id": t.scope_id,
                        "table_key": t.table_key,
                        "payload": copy.deepcopy(t.payload),
                        "svg": t.svg,
                    }
                    for t in r.tables
                ],
            }
            for r in releases
        ]
        return
    for frozen in _RELEASES[key]:
        release = Release(**frozen["release"])
        db.session.add(release)
        db.session.flush()
        db.session.execute(
            insert(ReleaseTable),
            [
                t | {"release_id": release.id, "payload": copy.deepcopy(t["payload"])}
                for t in frozen["tables"]
            ],
        )


def sign_in_as(client: FlaskClient, account: Account, *, csrf: bool = False) -> None:
    """The real password and code pages; with ``csrf``, tokens are read from each page."""
    data: dict[str, str] = {"email": account.email, "password": account.password}
    if csrf:
        data["csrf_token"] = csrf_token(client.get("/staff/sign-in"))
    response = client.post("/staff/sign-in", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    data = {"code": account.code()}
    if csrf:
        data["csrf_token"] = csrf_token(client.get("/staff/sign-in/code"))
    response = client.post("/staff/sign-in/code", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def csrf_token(response: Any) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


class Cells(HTMLParser):
    """The text of every <td> and <th> of a page, and the text outside any table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.td: list[str] = []
        self.th: list[str] = []
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self._open, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            text = " ".join("".join(self._text).split())
            (self.td if tag == "td" else self.th).append(text)
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)


def cells_of(html: str) -> Cells:
    parser = Cells()
    parser.feed(html)
    return parser
