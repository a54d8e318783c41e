"""The administrator-reset attack (DESIGN §3 promise 10), end to end in the test client.

The attack as found from outside: an administrator resets a guardian, choosing the new
password; enrols their own authenticator at the next sign-in; waits for a colleague on the
same cases to sign in (which used to re-seal the case keys automatically) and then reads the
reports and reporter names as that guardian. Every step must fail.
"""

from __future__ import annotations

import html
import re

import pyotp
from sqlalchemy import select

from speakup.accounts.models import Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import CaseKey, DisclosureMode, RecipientKind
from speakup.extensions import db
from tests.conftest import PASSWORD

CANARY = "zq_reset_attack the charge nurse called me a name"
NAME = "Zq Reset Attack Reporter"
CODE = re.compile(r'id="enrolment-code">([^<]+)<')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
ADMIN_CHOSEN = "the administrator's own choice"


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def held(user_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(CaseKey.key_type).where(
                CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user_id
            )
        )
    )


def test_an_administrator_gains_nothing_from_a_reset(
    app, make_org, make_staff, submit, staff_client
):
    org = make_org("ORGA")
    victim = make_staff(Role.GUARDIAN, org, name="Grace Mensah")
    colleague = make_staff(Role.GUARDIAN, org, name="Colleague Guardian")
    admin = make_staff(Role.ADMIN)
    case = submit(
        org,
        what_happened=CANARY,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name=NAME,
        contact="07700 900123",
    ).case
    admin_client = staff_client(admin)

    # 1. The administrator cannot choose the password: the form has none, and one sent anyway
    #    is ignored.
    form = page(admin_client.get(f"/staff/admin/users/{victim.user.id}/reset"))
    assert 'type="password"' not in form
    done = admin_client.post(
        f"/staff/admin/users/{victim.user.id}/reset", data={"password": ADMIN_CHOSEN}
    )
    assert done.status_code == 200
    code = CODE.search(page(done)).group(1)
    for password in (ADMIN_CHOSEN, PASSWORD):
        refused = app.test_client().post(
            "/staff/sign-in", data={"email": victim.user.email, "password": password}
        )
        assert refused.status_code == 400
    db.session.expire_all()
    assert held(victim.user.id) == []  # the key copies are gone with the old key

    # 2. The administrator uses the code and enrols their own authenticator.
    attacker = app.test_client()
    enrolled = attacker.post(
        "/staff/enrol",
        data={
            "email": victim.user.email,
            "code": code,
            "password": ADMIN_CHOSEN,
            "confirm": ADMIN_CHOSEN,
        },
    )
    assert enrolled.status_code == 302
    secret = SECRET.search(attacker.get("/staff/sign-in/code").get_data(as_text=True)).group(1)
    signed_in = attacker.post("/staff/sign-in/code", data={"code": pyotp.TOTP(secret).now()})
    assert signed_in.status_code == 302

    # 3. Signed in as the guardian, they see nothing of her cases.
    inbox = page(attacker.get("/staff/cases/"))
    assert f'href="/staff/cases/{case.reference}"' not in inbox
    assert attacker.get(f"/staff/cases/{case.reference}").status_code == 404

    # 4. A colleague on the same case signs in: nothing is restored by itself. The colleague is
    #    asked, and told to check in person first.
    colleague_client = staff_client(colleague)
    db.session.expire_all()
    assert held(victim.user.id) == []
    prompt = page(colleague_client.get(f"/staff/cases/{case.reference}"))
    assert "Grace Mensah’s access was reset. Restore it?" in prompt
    assert "check with them in person first" in prompt

    # 5. Content stays unreadable to the account the administrator now controls.
    for url in ("/staff/cases/", f"/staff/cases/{case.reference}"):
        text = page(attacker.get(url))
        assert CANARY not in text and NAME not in text
    assert attacker.get(f"/staff/cases/{case.reference}/audit").status_code == 404

    # The reset is on record, with who did it.
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.reset")).all()
    assert event.actor_user_id == admin.user.id
