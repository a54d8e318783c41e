"""The whole loop through the web layer, in one pass (detailed tests live beside it)."""

from speakup.accounts.models import Role
from speakup.cases.models import Case
from speakup.extensions import db
from tests.conftest import sign_in


def test_reporter_to_guardian_and_back(app, client, make_org, make_staff):
    org = make_org()
    guardian = make_staff(Role.GUARDIAN, org)
    page = client.get("/report")
    assert page.status_code == 200
    response = client.post(
        "/report",
        data={
            "organisation": str(org.id),
            "route": "organisation",
            "what_happened": "My manager said something racist in handover.",
            "when": "",
            "disclosure_mode": "anonymous",
            "escalation_consent": "no",
            "submission_token": "abc123",
        },
    )
    assert response.status_code == 200, response.data.decode()[:3000]
    html = response.data.decode()
    assert "Your receipt" in html
    import re

    receipt = re.search(r'data-testid="receipt">([0-9A-Z-]+)<', html).group(1)
    case = db.session.scalars(db.select(Case)).one()

    staff = app.test_client()
    sign_in(staff, guardian)
    inbox = staff.get("/staff/cases/")
    assert case.reference in inbox.data.decode()
    page = staff.get(f"/staff/cases/{case.reference}")
    assert "My manager said something racist" in page.data.decode()
    reply = staff.post(
        f"/staff/cases/{case.reference}/messages", data={"body": "Thank you, I will call."}
    )
    assert reply.status_code == 302

    follow = client.post("/follow-up", data={"receipt": receipt.lower()})
    assert follow.status_code == 302, follow.data.decode()[:2000]
    mine = client.get("/follow-up/case")
    assert "Thank you, I will call." in mine.data.decode()
