"""The sharing form's promise, "Only these people will see it: …", is exactly who gets the
identity key when she shares who she is later (DESIGN §3 promise 12)."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from speakup.accounts.models import Role, User
from speakup.cases.access import escalate_case, hand_over_to_pool
from speakup.cases.models import Case, CaseKey, KeyType, RecipientKind, Status
from speakup.cases.policy import policy_for
from speakup.extensions import db
from tests.conftest import actor_for, move

PROMISE = re.compile(r"Only these people will see it: (.*?)\. It becomes confidential")


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_people_named_before_sharing_are_exactly_those_who_can_see_it(
    app, make_org, make_staff, submit
):
    org = make_org("ORGA")
    guardian = make_staff(Role.GUARDIAN, org, name="Gita Guardian")
    pool = make_staff(Role.GUARDIAN, make_org("ORGB"), in_pool=True, name="Pool Guardian")
    make_staff(Role.PANEL_MEMBER, name="Panel Member")
    submission = submit(org, escalation_consent=True)  # anonymous, no later or panel consent
    case = submission.case
    actor = actor_for(app, guardian)
    hand_over_to_pool(case, actor, pool.user, remove_self=False, expected_version=case.version)
    db.session.commit()
    move(app, case, actor, Status.ACKNOWLEDGED, Status.ASSESSING)
    escalate_case(
        case, actor, policy=policy_for(case.organisation, app.config), expected_version=case.version
    )
    db.session.commit()

    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": submission.receipt}).status_code == 302
    promised = PROMISE.search(page(reporter.get("/follow-up/case"))).group(1)
    named = {part.split(",")[0] for part in promised.split("; ")}
    assert named == {"Gita Guardian"}  # not the pool guardian, not the panel

    shared = reporter.post(
        "/follow-up/case/identity", data={"name": "Ada Reporter", "contact": "07700 900123"}
    )
    assert shared.status_code == 302
    holders = db.session.scalars(
        select(User.display_name)
        .join(CaseKey, CaseKey.user_id == User.id)
        .where(
            CaseKey.case_id == case.id,
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.key_type == str(KeyType.IDK),
        )
    )
    assert set(holders) == named
    assert db.session.get(Case, case.id).disclosure_mode == "confidential"
