"""No 500 from input (issue 10 #5): ids past what an id column holds, text in a file field.

SQLite raised ``OverflowError`` for an id past 64 bits, PostgreSQL a numeric-range error for
one past its INTEGER id columns (32 bits); a text value under a file field's name reached
``.filename`` on a ``str``. Each test asks for the answer a well-formed but wrong value gets,
on whichever database the suite runs on.
"""

from __future__ import annotations

import pytest

from speakup.accounts.models import Role
from speakup.ids import MAX_ID, bounded_int

TOO_BIG = [str(MAX_ID + 1), str(2**63), "99999999999999999999", "9" * 400]


@pytest.fixture
def org(make_org, make_staff):
    organisation = make_org()
    make_staff(Role.GUARDIAN, organisation)
    return organisation


@pytest.fixture
def reporter(app, org, submit):
    submission = submit(org)
    client = app.test_client()
    response = client.post("/follow-up", data={"receipt": submission.receipt})
    assert response.status_code == 302
    client.case = submission.case  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize("value", TOO_BIG)
def test_a_reporter_attachment_id_too_large_for_an_id_column_is_not_found(reporter, value):
    assert reporter.get("/follow-up/case/attachments/1").status_code == 404  # control
    assert reporter.get(f"/follow-up/case/attachments/{value}").status_code == 404


@pytest.mark.parametrize("value", TOO_BIG)
def test_a_guardian_attachment_id_too_large_for_an_id_column_is_not_found(
    org, submit, make_staff, staff_client, value
):
    guardian = make_staff(Role.GUARDIAN, org)
    case = submit(org).case
    client = staff_client(guardian)
    url = f"/staff/cases/{case.reference}/attachments/"
    assert client.get(url + "1").status_code == 404  # control
    assert client.get(url + value).status_code == 404


@pytest.mark.parametrize("value", TOO_BIG)
def test_audit_filters_too_large_for_an_id_column_are_ignored_like_any_non_number(
    make_staff, staff_client, value
):
    admin = staff_client(make_staff(Role.ADMIN))
    for query in (f"case={value}", f"user={value}", f"page={value}", f"case={value}&page=2"):
        response = admin.get(f"/staff/admin/audit?{query}")
        assert response.status_code == 200, query
    assert admin.get("/staff/admin/audit?case=abc").status_code == 200  # the same treatment


@pytest.mark.parametrize("value", TOO_BIG)
def test_admin_user_ids_too_large_for_an_id_column_are_not_found(make_staff, staff_client, value):
    admin = staff_client(make_staff(Role.ADMIN))
    assert admin.post(f"/staff/admin/users/{value}/disable").status_code == 404
    assert admin.post(f"/staff/admin/users/{value}/reset").status_code == 404


def test_the_largest_id_the_database_holds_is_still_looked_up(reporter):
    # MAX_ID itself fits the id column: the route matches and the lookup answers 404.
    assert reporter.get(f"/follow-up/case/attachments/{MAX_ID}").status_code == 404


def test_bounded_int_refuses_what_the_database_cannot_hold():
    assert bounded_int(str(MAX_ID)) == MAX_ID
    assert bounded_int(str(-MAX_ID - 1)) == -MAX_ID - 1
    for value in (str(MAX_ID + 1), str(-MAX_ID - 2), "x"):
        with pytest.raises(ValueError):
            bounded_int(value)


def report(org_id: int) -> dict[str, str]:
    return {
        "organisation": str(org_id),
        "route": "organisation",
        "what_happened": "A colleague mocked my accent.",
        "disclosure_mode": "anonymous",
        "escalation_consent": "no",
        "submission_token": "token-text-in-file-field",
    }


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_text_posted_in_the_report_file_field_is_not_a_file(client, org, multipart):
    data = report(org.id) | {"attachments": "not a file at all"}
    kwargs = {"content_type": "multipart/form-data"} if multipart else {}
    response = client.post("/report", data=data, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert "Files you attached" not in response.get_data(as_text=True)


def test_text_posted_in_the_message_file_field_is_not_a_file(reporter):
    response = reporter.post(
        "/follow-up/case/messages", data={"body": "Hello", "attachments": "not a file"}
    )
    assert response.status_code == 302


def test_text_posted_in_the_guardian_message_file_field_is_not_a_file(
    org, submit, make_staff, staff_client
):
    guardian = make_staff(Role.GUARDIAN, org)
    case = submit(org).case
    response = staff_client(guardian).post(
        f"/staff/cases/{case.reference}/messages",
        data={"body": "Hello", "attachments": "not a file"},
    )
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:2000]
