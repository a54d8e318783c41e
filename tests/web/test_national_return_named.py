"""Issue 10 finding 6: the national return is no side channel. It counts every concern of the
organisation, while the lead guardian's overview hides those naming her; so when she is named
in a concern received in the quarter, she sees no figure of that quarter's return, cannot
download or sign it off, and another guardian of the organisation prepares it instead. The
page says why without any count. A concern on the regional pool route, invisible to the
trust (DESIGN §3.11), changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient

from speakup.accounts.models import Role
from speakup.cases.models import Route
from speakup.db import utcnow
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from speakup.stats.models import ReturnSignoff
from speakup.stats.periods import latest_releasable
from tests.conftest import Staff, count

NAMED = (
    "You are named in a concern in this period, so another guardian of your organisation "
    "prepares this return."
)


def test_a_lead_guardian_named_in_the_quarter_sees_no_figure_of_its_return(
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    org, pool_org = make_org("ORGN"), make_org("ORGP")
    lead = make_staff(Role.LEAD_GUARDIAN, org, name="Lead Guardian")
    other = make_staff(Role.GUARDIAN, org, name="Other Guardian")
    pool = make_staff(Role.GUARDIAN, pool_org, in_pool=True, name="Pool Guardian")
    quarter = latest_releasable(utcnow(), 0)
    earlier = quarter.previous()

    # A pool concern naming her, in the earlier quarter: invisible to the trust, so her
    # return for that quarter is hers as usual (a refusal would itself tell her of it).
    pool_case = submit(
        org,
        route=Route.POOL,
        chosen_guardian_id=pool.user.id,
        excluded_guardian_ids=[lead.user.id],
    ).case
    pool_case.received_at = earlier.start + timedelta(days=3)
    # The concern naming her, received in the last finished quarter.
    case = submit(org, excluded_guardian_ids=[lead.user.id]).case
    case.received_at = quarter.start + timedelta(days=3)
    db.session.commit()

    client = staff_client(lead)
    page = client.get(f"/staff/national-return?period={quarter.key}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert NAMED in text
    assert "Download the return as CSV" not in text and "Sign off" not in text
    assert "<table" not in text and "Count" not in text

    # With no period the page opens on that same quarter, and says the same.
    assert NAMED in client.get("/staff/national-return").get_data(as_text=True)

    csv_file = client.get(f"/staff/national-return.csv?period={quarter.key}")
    assert csv_file.status_code == 403
    assert NAMED in csv_file.get_data(as_text=True)
    assert "organisation_code" not in csv_file.get_data(as_text=True)

    signed = client.post(f"/staff/national-return?period={quarter.key}")
    assert signed.status_code == 403
    assert NAMED in signed.get_data(as_text=True)
    assert count(ReturnSignoff) == 0

    # A quarter in which no concern of her organisation's route names her is hers as usual.
    own = client.get(f"/staff/national-return?period={earlier.key}").get_data(as_text=True)
    assert NAMED not in own and "Download the return as CSV" in own
    assert client.get(f"/staff/national-return.csv?period={earlier.key}").status_code == 200

    # Another guardian of the organisation prepares the quarter she may not see...
    deputy = staff_client(other)
    prepared = deputy.get(f"/staff/national-return?period={quarter.key}")
    assert prepared.status_code == 200
    assert NAMED not in prepared.get_data(as_text=True)
    assert "Download the return as CSV" in prepared.get_data(as_text=True)
    download = deputy.get(f"/staff/national-return.csv?period={quarter.key}")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    done = deputy.post(f"/staff/national-return?period={quarter.key}")
    assert done.status_code == 302
    signoff = db.session.scalar(db.select(ReturnSignoff))
    assert signoff is not None and signoff.signed_by == other.user.id
    # ... and only that one: the others stay the lead guardian's.
    assert deputy.get(f"/staff/national-return?period={earlier.key}").status_code == 403
    assert deputy.get(f"/staff/national-return.csv?period={earlier.key}").status_code == 403


def test_a_guardian_of_another_organisation_never_prepares_it(
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    submit: Callable[..., Submission],
    staff_client: Callable[[Staff], FlaskClient],
) -> None:
    org, elsewhere = make_org("ORGN"), make_org("ORGE")
    lead = make_staff(Role.LEAD_GUARDIAN, org)
    make_staff(Role.GUARDIAN, org)
    stranger = make_staff(Role.GUARDIAN, elsewhere)
    quarter = latest_releasable(utcnow(), 0)
    case = submit(org, excluded_guardian_ids=[lead.user.id]).case
    case.received_at = quarter.start + timedelta(days=3)
    db.session.commit()
    client = staff_client(stranger)
    assert client.get(f"/staff/national-return?period={quarter.key}").status_code == 403
    assert client.get(f"/staff/national-return.csv?period={quarter.key}").status_code == 403
    assert client.post(f"/staff/national-return?period={quarter.key}").status_code == 403
