"""Guardian confirmation pages, kept words and refused template feedback (issue 9).

Hand-over, removing a reader, escalation and closing each show what will happen on a GET
that changes nothing; the page's button POSTs to the action's own endpoint. A conflict or a
refused move gives back what the guardian typed."""

from __future__ import annotations

import html
import re

import pytest

from speakup.audit.models import AuditEvent
from speakup.cases.models import Case, CaseKey, Message, Status
from speakup.cases.workflow import MESSAGE_TEMPLATES
from speakup.extensions import db
from tests.conftest import actor_for, move
from tests.web.test_workflow_access import Cast, cast, fresh, holds  # noqa: F401

ACTION = re.compile(r'<form method="post" action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def nothing_changed(case_id: int, version: int) -> None:
    case = fresh(case_id)
    assert case.version == version
    assert db.session.query(AuditEvent).filter_by(case_id=case_id, actor_kind="user").count() == 0


def press(client, page: str):
    """Press the confirmation page's button: POST its form with its hidden fields."""
    action = ACTION.search(page).group(1)
    fields = dict(HIDDEN.findall(page))
    return client.post(action, data=fields)


@pytest.fixture
def guardian(staff_client, cast):  # noqa: F811
    return staff_client(cast.g1)


def test_hand_over_is_confirmed_first(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    ref, version = case.reference, case.version
    page = guardian.get(
        f"/staff/cases/{ref}/hand-over/confirm?user_id={cast.pool.user.id}&version={version}"
    )
    assert page.status_code == 200
    body = text(page)
    assert "Hand this case over to Pool Guardian?" in body
    assert "will not see who the reporter is" in body or "anonymous" in body
    assert "You keep your access to this case." in body
    assert not holds(case.id, cast.pool)
    nothing_changed(case.id, version)

    done = press(guardian, body)
    assert done.status_code == 302
    assert holds(case.id, cast.pool) and holds(case.id, cast.g1)


def test_hand_over_with_removal_says_so_and_goes_to_the_inbox(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    body = text(
        guardian.get(
            f"/staff/cases/{case.reference}/hand-over/confirm?user_id={cast.pool.user.id}"
            "&remove_self=y"
        )
    )
    assert "You will no longer be able to open this case." in body
    done = press(guardian, body)
    assert done.status_code == 302 and done.location.endswith("/staff/cases/")
    assert not holds(case.id, cast.g1)


def test_hand_over_refuses_someone_not_offered(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    for who in (cast.g1, cast.not_pool):  # herself; a guardian not in the pool
        r = guardian.get(f"/staff/cases/{case.reference}/hand-over/confirm?user_id={who.user.id}")
        assert r.status_code == 400 and "Choose a guardian from the list." in text(r)


def test_removing_a_reader_is_confirmed_first(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    page = guardian.get(
        f"/staff/cases/{case.reference}/readers/remove/confirm?user_id={cast.g2.user.id}"
    )
    body = text(page)
    assert page.status_code == 200
    assert "Remove Guardian Two’s access?" in body
    assert "Guardian Two will no longer be able to open this case." in body
    assert holds(case.id, cast.g2)
    nothing_changed(case.id, case.version)
    assert press(guardian, body).status_code == 302
    assert not holds(case.id, cast.g2)


def test_escalation_is_confirmed_first(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org, escalation_consent=True).case
    move(app, case, actor_for(app, cast.g1), Status.ACKNOWLEDGED, Status.ASSESSING)
    page = guardian.get(f"/staff/cases/{case.reference}/escalate/confirm?version={case.version}")
    body = text(page)
    assert page.status_code == 200
    assert "Escalate this case to the regional panel?" in body
    assert "The panel will not see who the reporter is." in body
    assert not holds(case.id, cast.m1)
    assert press(guardian, body).status_code == 302
    assert holds(case.id, cast.m1) and fresh(case.id).status == Status.ESCALATED


def test_escalation_without_consent_has_no_confirmation(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    r = guardian.get(f"/staff/cases/{case.reference}/escalate/confirm")
    assert r.status_code == 400


def test_closing_is_confirmed_with_the_words_checkins_and_deletion(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    move(
        app,
        case,
        actor_for(app, cast.g1),
        Status.ACKNOWLEDGED,
        Status.ASSESSING,
        Status.IN_PROGRESS,
        Status.FEEDBACK_GIVEN,
    )
    page = guardian.get(f"/staff/cases/{case.reference}/close?version={case.version}")
    body = text(page)
    assert page.status_code == 200
    assert "Close this case?" in body
    assert "check in with the reporter about detriment on" in body
    assert "deleted for good on" in body
    assert MESSAGE_TEMPLATES[Status.CLOSED] in body
    nothing_changed_status = fresh(case.id).status
    assert nothing_changed_status == Status.FEEDBACK_GIVEN
    fields = dict(HIDDEN.findall(body))
    fields["message"] = "Closing now. Thank you."
    done = guardian.post(ACTION.search(body).group(1), data=fields)
    assert done.status_code == 302
    assert fresh(case.id).status == Status.CLOSED


def test_closing_is_not_offered_before_feedback(guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    assert guardian.get(f"/staff/cases/{case.reference}/close").status_code == 400


def test_the_case_page_asks_for_confirmation_instead_of_acting(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org, escalation_consent=True).case
    move(app, case, actor_for(app, cast.g1), Status.ACKNOWLEDGED, Status.ASSESSING)
    body = text(guardian.get(f"/staff/cases/{case.reference}"))
    for path in ("hand-over/confirm", "readers/remove/confirm", "escalate/confirm"):
        assert f'<form method="get" action="/staff/cases/{case.reference}/{path}"' in body


# Kept words and refused template feedback -------------------------------------------------


def test_a_conflict_keeps_the_words_being_typed(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    stale = case.version
    move(app, case, actor_for(app, cast.g2), Status.ACKNOWLEDGED)  # someone else acts first
    words = "Thank you – I will call you on Tuesday at 10."
    r = guardian.post(
        f"/staff/cases/{case.reference}/status",
        data={"target": "assessing", "version": stale, "message": words},
    )
    assert r.status_code == 409
    body = text(r)
    assert "What you wrote is kept below" in body
    assert f">{words}</textarea>" in body
    assert 'id="action-assessing" open' in body


def test_a_refused_move_keeps_the_words(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    words = "Here is what happened: the rota was changed."
    r = guardian.post(
        f"/staff/cases/{case.reference}/status",
        data={"target": "feedback_given", "version": case.version, "message": words},
    )
    assert r.status_code == 400
    body = text(r)
    assert "is not possible now" in body
    # Feedback is not offered now, so the words come back in the message box.
    assert f">{words}</textarea>" in body


@pytest.mark.parametrize("sent", ["template", "template_stripped", "colon_only"])
def test_feedback_unchanged_from_the_template_is_refused(app, guardian, cast, submit, sent):  # noqa: F811
    case = submit(cast.org).case
    move(
        app,
        case,
        actor_for(app, cast.g1),
        Status.ACKNOWLEDGED,
        Status.ASSESSING,
        Status.IN_PROGRESS,
    )
    template = MESSAGE_TEMPLATES[Status.FEEDBACK_GIVEN]
    message = {
        "template": template,
        "template_stripped": template.strip() + "   ",
        "colon_only": template.strip().rstrip(":") + " :",
    }[sent]
    r = guardian.post(
        f"/staff/cases/{case.reference}/status",
        data={"target": "feedback_given", "version": case.version, "message": message},
    )
    assert r.status_code == 400
    assert "only the opening words of the template" in text(r)
    assert fresh(case.id).status == Status.IN_PROGRESS
    assert db.session.query(Message).filter_by(case_id=case.id, author_kind="guardian").count() == 0


def test_feedback_written_after_the_template_is_sent(app, guardian, cast, submit):  # noqa: F811
    case = submit(cast.org).case
    move(
        app,
        case,
        actor_for(app, cast.g1),
        Status.ACKNOWLEDGED,
        Status.ASSESSING,
        Status.IN_PROGRESS,
    )
    message = MESSAGE_TEMPLATES[Status.FEEDBACK_GIVEN] + "the rota is now fair."
    r = guardian.post(
        f"/staff/cases/{case.reference}/status",
        data={"target": "feedback_given", "version": case.version, "message": message},
    )
    assert r.status_code == 302
    assert fresh(case.id).status == Status.FEEDBACK_GIVEN


_ = (Case, CaseKey)
