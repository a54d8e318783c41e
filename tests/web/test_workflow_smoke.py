"""The guardian workflow end to end through the web layer (detailed tests beside it)."""

from speakup.accounts.models import Role
from speakup.cases.models import CaseKey
from speakup.extensions import db


def _version(case):
    db.session.refresh(case)
    return case.version


def test_acknowledge_triage_feedback_close(app, make_org, make_staff, submit, staff_client):
    org = make_org()
    lead = make_staff(Role.LEAD_GUARDIAN, org)
    other = make_staff(Role.GUARDIAN, org)
    sub = submit(org, escalation_consent=True)
    case = sub.case
    c = staff_client(lead)
    ref = case.reference
    page = c.get(f"/staff/cases/{ref}")
    assert page.status_code == 200, page.data.decode()[:3000]
    r = c.post(
        f"/staff/cases/{ref}/status",
        data={"target": "acknowledged", "version": _version(case), "message": "Got it."},
    )
    assert r.status_code == 302, r.data.decode()[:3000]
    db.session.refresh(case)
    assert case.status == "acknowledged" and case.feedback_by and case.next_update_by
    r = c.post(
        f"/staff/cases/{ref}/triage",
        data={
            "version": _version(case),
            "elements": ["bullying_harassment"],
            "race_codes": ["racism_manager"],
            "flags": ["protected_act"],
            "priority": "high",
        },
    )
    assert r.status_code == 302, r.data.decode()[:3000]
    db.session.refresh(case)
    assert case.status == "assessing" and case.priority == "high"
    # stale version → 409 with the new state
    r = c.post(
        f"/staff/cases/{ref}/status", data={"target": "in_progress", "version": 1, "message": ""}
    )
    assert r.status_code == 409
    # illegal transition
    r = c.post(
        f"/staff/cases/{ref}/status",
        data={"target": "closed", "version": _version(case), "message": ""},
    )
    assert r.status_code == 400 and "“Close” is not possible now" in r.data.decode()
    for target, msg in (
        ("in_progress", ""),
        ("feedback_given", "We changed the rota policy."),
        ("closed", "Closing."),
    ):
        r = c.post(
            f"/staff/cases/{ref}/status",
            data={"target": target, "version": _version(case), "message": msg},
        )
        assert r.status_code == 302, (target, r.data.decode()[:2000])
    db.session.refresh(case)
    assert case.status == "closed" and case.closed_at and case.purge_after and case.next_checkin_at
    # assignment + removal rotates the key
    r = c.post(
        f"/staff/cases/{ref}/status",
        data={"target": "reopened", "version": _version(case), "message": ""},
    )
    assert r.status_code == 302
    before = db.session.scalars(
        db.select(CaseKey.sealed).where(CaseKey.case_id == case.id, CaseKey.user_id == lead.user.id)
    ).all()
    r = c.post(
        f"/staff/cases/{ref}/readers/remove",
        data={"version": _version(case), "user_id": str(other.user.id)},
    )
    assert r.status_code == 302, r.data.decode()[:2000]
    after = db.session.scalars(
        db.select(CaseKey.sealed).where(CaseKey.case_id == case.id, CaseKey.user_id == lead.user.id)
    ).all()
    assert before != after
    assert not db.session.scalars(
        db.select(CaseKey).where(CaseKey.case_id == case.id, CaseKey.user_id == other.user.id)
    ).all()
    assert c.get(f"/staff/cases/{ref}").status_code == 200
    assert staff_client(other).get(f"/staff/cases/{ref}").status_code == 404
    assert c.get(f"/staff/cases/{ref}/audit").status_code == 200
    assert c.get("/staff/cases/overview").status_code == 200
    assert c.get("/staff/cases/?filter=overdue&sort=due").status_code == 200
    panel = make_staff(Role.PANEL_MEMBER)
    r = c.post(
        f"/staff/cases/{ref}/status",
        data={"target": "assessing", "version": _version(case), "message": ""},
    )
    assert r.status_code == 302
    r = c.post(f"/staff/cases/{ref}/escalate", data={"version": _version(case)})
    assert r.status_code == 302, r.data.decode()[:2000]
    assert staff_client(panel).get(f"/staff/cases/{ref}").status_code == 200
