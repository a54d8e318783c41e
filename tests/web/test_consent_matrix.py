"""The consent matrix (DESIGN §3 promise 9): way of speaking up × route × what happens next →
exactly who holds the data key and who holds the identity key.

The expected holders are written out below by hand, from the consent rules in plain words —
never computed by the code under test:

- the route's readers see who she is when she gave her identity (confidential or open, or
  shared later);
- a guardian the case is passed to later reads it, and sees who she is only with her
  "later readers" consent;
- the panel reads it only with her consent to escalation, and sees who she is only with its
  own separate consent;
- an account reset takes nothing away for good, and gives nothing new: a restore gives back
  only what the consents allow, and only a key the restorer holds.

Cast: L (lead guardian), G1, G2 (guardians) of the case's organisation, G3 (joins it after the
case arrives), P (pool guardian of another organisation), P2 (another pool guardian), M1, M2
(panel members).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from speakup.accounts.models import Role, User
from speakup.accounts.services import check_password, complete_enrolment
from speakup.admin.services import reset_staff_account
from speakup.cases import custody
from speakup.cases.access import (
    assign_case,
    claim_case,
    escalate_case,
    hand_over_to_pool,
    restore_reader,
    revoke_reader,
    transfer_case,
)
from speakup.cases.models import (
    Case,
    CaseKey,
    DisclosureMode,
    KeyType,
    RecipientKind,
    Route,
    Status,
)
from speakup.cases.policy import policy_for
from speakup.cases.workflow import Actor
from speakup.errors import SpeakupError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.organisations.services import load_recovery_key
from speakup.reporting.services import reveal_identity, unlock_reporter_key, update_consents
from tests.conftest import PASSWORD, TEST_ARGON2, Staff, move

ORG = frozenset({"L", "G1", "G2"})
ROUTE_READERS = {
    Route.ORGANISATION: ORG,
    Route.POOL: frozenset({"P"}),
    Route.PANEL: frozenset({"M1", "M2"}),
}

#: (route, action) → (data-key holders, identity-key holders when she gave her identity).
#: "refused" actions change nothing.
EXPECTED: dict[tuple[Route, str], tuple[set[str], set[str]]] = {
    # Her organisation's guardians ------------------------------------------------------
    (Route.ORGANISATION, "none"): ({"L", "G1", "G2"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "take"): ({"L", "G1", "G2"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "assign"): ({"L", "G1", "G2", "G3"}, {"L", "G1", "G2", "G3"}),
    (Route.ORGANISATION, "transfer"): ({"L", "G2", "G3"}, {"L", "G2", "G3"}),
    (Route.ORGANISATION, "hand_over"): ({"L", "G1", "G2", "P"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "hand_over_later"): ({"L", "G1", "G2", "P"}, {"L", "G1", "G2", "P"}),
    (Route.ORGANISATION, "escalate"): ({"L", "G1", "G2", "M1", "M2"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "escalate_identity"): (
        {"L", "G1", "G2", "M1", "M2"},
        {"L", "G1", "G2", "M1", "M2"},
    ),
    (Route.ORGANISATION, "escalate_then_share"): (
        {"L", "G1", "G2", "M1", "M2"},
        {"L", "G1", "G2"},
    ),
    (Route.ORGANISATION, "hand_over_then_share"): ({"L", "G1", "G2", "P"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "reset_restore"): ({"L", "G1", "G2"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "recovery_restore"): ({"L", "G1", "G2"}, {"L", "G1", "G2"}),
    (Route.ORGANISATION, "revoke"): ({"L", "G2"}, {"L", "G2"}),
    # A guardian of the regional pool she chose -----------------------------------------
    (Route.POOL, "none"): ({"P"}, {"P"}),
    (Route.POOL, "take"): ({"P"}, {"P"}),
    (Route.POOL, "assign"): ({"P"}, {"P"}),  # refused: the trust's lead is no reader
    (Route.POOL, "transfer"): ({"P"}, {"P"}),  # refused
    (Route.POOL, "hand_over"): ({"P", "P2"}, {"P"}),
    (Route.POOL, "hand_over_later"): ({"P", "P2"}, {"P", "P2"}),
    (Route.POOL, "escalate"): ({"P", "M1", "M2"}, {"P"}),
    (Route.POOL, "escalate_identity"): ({"P", "M1", "M2"}, {"P", "M1", "M2"}),
    (Route.POOL, "escalate_then_share"): ({"P", "M1", "M2"}, {"P"}),
    (Route.POOL, "hand_over_then_share"): ({"P", "P2"}, {"P"}),
    # P is reset after handing over to P2, who restores: P2 holds no identity key, so P's
    # waits (for the custodian, or a reader who holds it).
    (Route.POOL, "reset_restore"): ({"P", "P2"}, set()),
    (Route.POOL, "recovery_restore"): ({"P"}, {"P"}),
    (Route.POOL, "revoke"): ({"P2"}, set()),  # after a hand-over, P2 removes P
    # The regional panel she chose ------------------------------------------------------
    (Route.PANEL, "none"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "take"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "assign"): ({"M1", "M2"}, {"M1", "M2"}),  # refused
    (Route.PANEL, "transfer"): ({"M1", "M2"}, {"M1", "M2"}),  # refused
    (Route.PANEL, "hand_over"): ({"M1", "M2", "P"}, {"M1", "M2"}),
    (Route.PANEL, "hand_over_later"): ({"M1", "M2", "P"}, {"M1", "M2", "P"}),
    (Route.PANEL, "escalate"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "escalate_identity"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "escalate_then_share"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "hand_over_then_share"): ({"M1", "M2", "P"}, {"M1", "M2"}),
    (Route.PANEL, "reset_restore"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "recovery_restore"): ({"M1", "M2"}, {"M1", "M2"}),
    (Route.PANEL, "revoke"): ({"M2"}, {"M2"}),
}
ACTIONS = sorted({action for _, action in EXPECTED})
REFUSED = {(Route.POOL, "assign"), (Route.POOL, "transfer")} | {
    (Route.PANEL, "assign"),
    (Route.PANEL, "transfer"),
}


@dataclass
class World:
    app: Flask
    org: Organisation
    key_file: Path
    staff: dict[str, Staff]
    keys: dict[str, object]

    def actor(self, name: str) -> Actor:
        user = db.session.get_one(User, self.staff[name].user.id)
        return Actor(user, self.keys[name])  # type: ignore[arg-type]

    def user(self, name: str) -> User:
        return db.session.get_one(User, self.staff[name].user.id)


@pytest.fixture
def world(app: Flask, make_org, make_staff, tmp_path: Path) -> World:
    org = make_org("ORGA", recovery_dir=tmp_path)
    org_b, org_c = make_org("ORGB"), make_org("ORGC")
    staff = {
        "L": make_staff(Role.LEAD_GUARDIAN, org, name="Lead"),
        "G1": make_staff(Role.GUARDIAN, org, name="Guardian One"),
        "G2": make_staff(Role.GUARDIAN, org, name="Guardian Two"),
        "P": make_staff(Role.GUARDIAN, org_b, in_pool=True, name="Pool Guardian"),
        "P2": make_staff(Role.GUARDIAN, org_c, in_pool=True, name="Pool Guardian Two"),
        "M1": make_staff(Role.PANEL_MEMBER, name="Panel One"),
        "M2": make_staff(Role.PANEL_MEMBER, name="Panel Two"),
    }
    keys = {
        name: check_password(s.user, PASSWORD, TEST_ARGON2, app.config).private_key
        for name, s in staff.items()
    }
    return World(app, org, tmp_path / "ORGA.json", staff, keys)


def holders(world: World, case_id: int, key_type: KeyType) -> set[str]:
    names = {s.user.id: name for name, s in world.staff.items()}
    ids = db.session.scalars(
        select(CaseKey.user_id).where(
            CaseKey.case_id == case_id,
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.key_type == str(key_type),
        )
    )
    return {names[uid] for uid in ids}


def reset_and_enrol(world: World, name: str) -> None:
    user = world.user(name)
    result = reset_staff_account(user, by=None, config=world.app.config)
    unlocked = complete_enrolment(user, result.code, PASSWORD, TEST_ARGON2)
    db.session.commit()
    world.keys[name] = unlocked.private_key


def run(world: World, route: Route, mode: DisclosureMode, action: str, submit) -> int:
    """Submit one case and carry out ``action``; returns the case id."""
    readers = sorted(ROUTE_READERS[route])
    first, second = readers[0], readers[-1]
    identity = {"name": "Ada Reporter", "contact": "07700 900123"}
    submission = submit(
        world.org,
        route=route,
        chosen_guardian_id=world.staff["P"].user.id if route == Route.POOL else None,
        disclosure_mode=mode,
        escalation_consent=True,
        identity_later_consent=action == "hand_over_later",
        **(identity if mode != DisclosureMode.ANONYMOUS else {}),
    )
    case = submission.case
    reporter = unlock_reporter_key(case, submission.receipt, 2)
    assert reporter is not None
    if action == "hand_over_later" and mode == DisclosureMode.ANONYMOUS:
        # Only a reporter who gives her identity is asked; the consent is still hers to give.
        update_consents(
            case, reporter, escalation=True, identity_to_panel=False, identity_to_later=True
        )
    if action == "escalate_identity":
        update_consents(
            case, reporter, escalation=True, identity_to_panel=True, identity_to_later=False
        )
    db.session.commit()
    policy = policy_for(case.organisation, world.app.config)
    pool_target = "P2" if route == Route.POOL else "P"

    def fresh() -> Case:
        return db.session.get_one(Case, case.id)

    def hand_over(by: str) -> None:
        hand_over_to_pool(
            fresh(),
            world.actor(by),
            world.user(pool_target),
            remove_self=False,
            expected_version=fresh().version,
        )
        db.session.commit()

    def escalate(by: str) -> None:
        move(world.app, fresh(), world.actor(by), Status.ACKNOWLEDGED, Status.ASSESSING)
        escalate_case(fresh(), world.actor(by), policy=policy, expected_version=fresh().version)
        db.session.commit()

    try:
        if action == "take":
            claim_case(fresh(), world.actor(first), expected_version=fresh().version)
        elif action == "assign":
            world.staff["G3"] = _joins_later(world)
            assign_case(fresh(), world.actor("L"), world.user("G3"), expected_version=None)
        elif action == "transfer":
            world.staff["G3"] = _joins_later(world)
            claim_case(
                fresh(),
                world.actor(first if route != Route.ORGANISATION else "G1"),
                expected_version=None,
            )
            db.session.commit()
            transfer_case(fresh(), world.actor("L"), world.user("G3"), expected_version=None)
        elif action in ("hand_over", "hand_over_later"):
            hand_over(first)
        elif action in ("escalate", "escalate_identity"):
            escalate(first)
        elif action == "escalate_then_share":
            escalate(first)
            reveal_identity(fresh(), reporter, "Ada Reporter", "07700 900123")
        elif action == "hand_over_then_share":
            hand_over(first)
            reveal_identity(fresh(), reporter, "Ada Reporter", "07700 900123")
        elif action == "reset_restore":
            target, restorer = ("G1", "G2") if route == Route.ORGANISATION else (first, second)
            if route == Route.POOL:
                hand_over("P")
                target, restorer = "P", "P2"
            reset_and_enrol(world, target)
            restore_reader(fresh(), world.actor(restorer), world.user(target))
        elif action == "recovery_restore":
            target = "G1" if route == Route.ORGANISATION else first
            reset_and_enrol(world, target)
            key = load_recovery_key(world.key_file, world.org)
            custody.restore_with_recovery_key(world.org.id, key, world.user(target))
        elif action == "revoke":
            if route == Route.ORGANISATION:
                revoke_reader(fresh(), world.actor("G2"), world.user("G1"))
            elif route == Route.POOL:
                hand_over("P")
                revoke_reader(fresh(), world.actor("P2"), world.user("P"))
            else:
                revoke_reader(fresh(), world.actor("M2"), world.user("M1"))
        db.session.commit()
    except SpeakupError:
        db.session.rollback()
        assert (route, action) in REFUSED, f"{route} {action} refused"
    else:
        assert (route, action) not in REFUSED or action == "none", f"{route} {action} allowed"
    return case.id


def _joins_later(world: World) -> Staff:
    from speakup.accounts.services import create_user, new_totp_secret

    if "G3" in world.staff:
        return world.staff["G3"]
    user = create_user(
        email="g3@example.test",
        display_name="Guardian Three",
        role=Role.GUARDIAN,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=world.org,
        totp_secret=new_totp_secret(),
    )
    db.session.commit()
    world.keys["G3"] = check_password(user, PASSWORD, TEST_ARGON2, world.app.config).private_key
    return Staff(user, PASSWORD, "")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("route", list(Route))
def test_exactly_who_holds_each_key(world: World, route: Route, action: str, submit) -> None:
    for mode in DisclosureMode:
        case_id = run(world, route, mode, action, submit)
        dek, idk = EXPECTED[(route, action)]
        shared = mode != DisclosureMode.ANONYMOUS or action.endswith("_then_share")
        db.session.expire_all()
        assert holders(world, case_id, KeyType.DEK) == dek, (mode, "data key")
        assert holders(world, case_id, KeyType.IDK) == (idk if shared else set()), (
            mode,
            "identity",
        )
        # Each holder really opens the current keys.
        case = db.session.get_one(Case, case_id)
        for name in dek:
            opened = custody.open_case_key(
                case, world.keys[name], KeyType.DEK, user_id=world.staff[name].user.id
            )
            assert opened is not None, (mode, name)
        # Reset the world's people for the next mode: a fresh case each time.
        for name in list(world.staff):
            world.staff[name].user = db.session.get_one(User, world.staff[name].user.id)
