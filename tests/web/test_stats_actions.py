"""“You said, we did” (DESIGN §7): leaders publish actions for their own scope, with a reason
whenever nothing changed, and any member of staff reads them without signing in. And the
lead guardian's national quarterly return: exact counts of their own organisation, CSV
through the versioned mapping, signed off once.

The world (geography, accounts, facts and releases) is the one of ``test_stats_access``.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import func, select

from speakup.audit.models import AuditEvent
from speakup.cases.categories import NATIONAL_ELEMENTS
from speakup.db import utcnow
from speakup.extensions import db
from speakup.stats.models import Action, ReturnSignoff
from speakup.stats.national_return import CURRENT_VERSION, load_mapping
from speakup.stats.periods import latest_releasable, parse_quarter, quarter_of
from tests.stats_world import (
    RELEASED,
    UNRELEASED,
    StatsWorld,
    build_stats_world,
    cells_of,
    csrf_token,
    sign_in_as,
)

NO_REASON = "Explain why nothing changed: staff are owed a reason"
ACTIONS = "/staff/statistics/actions"
PUBLIC = "/you-said-we-did"


def period_offered() -> str:
    """A quarter the form offers: the latest one due for release."""
    return latest_releasable(utcnow(), int(current_app.config["STATS_RELEASE_LAG_DAYS"])).key


def action_form(**overrides: str) -> dict[str, str]:
    data = {
        "period": period_offered(),
        "theme": "bullying_harassment",
        "title": "Staff told us bullying goes unchallenged on night shifts",
        "description": "We trained every night-shift manager and added a second guardian.",
        "status": "in_progress",
        "explanation": "",
    }
    return data | overrides


def actions() -> list[Action]:
    return list(db.session.scalars(select(Action).order_by(Action.id)))


def audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def page(response: Any) -> str:
    return response.get_data(as_text=True)


def publish(client: FlaskClient, **overrides: str) -> Action:
    before = {a.id for a in actions()}
    response = client.post(ACTIONS, data=action_form(**overrides))
    assert response.status_code == 302, page(response)[:2000]
    (created,) = [a for a in actions() if a.id not in before]
    return created


# Publishing -------------------------------------------------------------------------------


def test_a_leader_publishes_an_action_with_its_csrf_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        world = build_stats_world(app.config)
        client = app.test_client()
        sign_in_as(client, world.accounts["org_leader"], csrf=True)

        form = client.get(ACTIONS)
        assert form.status_code == 200
        data = action_form()
        refused = client.post(ACTIONS, data=data)
        assert refused.status_code == 400
        assert "Nothing was saved" in page(refused)
        assert actions() == [] and audit("stats.action_published") == []

        done = client.post(ACTIONS, data=data | {"csrf_token": csrf_token(form)})
        assert done.status_code == 302 and done.location.endswith(ACTIONS)
        (action,) = actions()
        assert (action.scope_kind, action.scope_id) == ("organisation", world.orgs["A1"])
        assert action.created_by == world.accounts["org_leader"].user_id
        assert (action.period, action.theme, action.status) == (
            data["period"],
            "bullying_harassment",
            "in_progress",
        )
        shown = page(client.get(ACTIONS))
        assert "Your action is published" in shown and data["title"] in shown

        # Changing its status needs the token too.
        update = f"{ACTIONS}/{action.id}"
        assert client.post(update, data={"status": "done"}).status_code == 400
        db.session.refresh(action)
        assert action.status == "in_progress"
        token = csrf_token(client.get(ACTIONS))
        assert client.post(update, data={"status": "done", "csrf_token": token}).status_code == 302
        db.session.refresh(action)
        assert action.status == "done"


def test_the_form_offers_the_recent_quarters_only(world, as_):
    client = as_("org_leader")
    html = page(client.get(ACTIONS))
    offered = re.findall(r'<option value="(FY\d{4}Q\d)"', html)
    latest = parse_quarter(period_offered())
    assert offered[0] == latest.next().key and latest.key in offered and len(offered) == 8
    response = client.post(ACTIONS, data=action_form(period="FY1999Q1"))
    assert response.status_code == 400 and actions() == []


def test_nothing_changed_needs_a_reason(world, as_):
    client = as_("system_leader")
    for explanation in ("", "   \n  "):
        response = client.post(
            ACTIONS, data=action_form(status="no_change", explanation=explanation)
        )
        assert response.status_code == 400
        html = page(response)
        assert "There is a problem" in html and NO_REASON in html
        assert 'href="#explanation"' in html, "the summary links to the field"
        assert "<title>Error: " in html
        # What was typed is kept, so nothing has to be written again.
        assert action_form()["title"] in html
    assert actions() == []
    assert audit("stats.action_published") == []

    action = publish(client, status="no_change", explanation="The rota is set nationally.")
    assert action.status == "no_change" and action.explanation == "The rota is set nationally."


def test_every_field_is_needed(world, as_):
    response = as_("org_leader").post(
        ACTIONS, data={"period": period_offered(), "theme": "other", "status": "planned"}
    )
    assert response.status_code == 400
    html = page(response)
    assert "Say what you heard" in html and "Say what you did" in html
    assert actions() == []


def test_a_status_update_follows_the_same_rule(world, as_):
    client = as_("org_leader")
    action = publish(client)
    update = f"{ACTIONS}/{action.id}"

    refused = client.post(update, data={"status": "no_change", "explanation": "  "})
    assert refused.status_code == 302
    db.session.refresh(action)
    assert action.status == "in_progress" and action.explanation == ""
    assert NO_REASON in page(client.get(ACTIONS))
    assert audit("stats.action_updated") == []

    moved = client.post(update, data={"status": "done", "explanation": ""})
    assert moved.status_code == 302
    db.session.refresh(action)
    assert action.status == "done"
    assert action.updated_at >= action.created_at

    stopped = client.post(update, data={"status": "no_change", "explanation": "No budget."})
    assert stopped.status_code == 302
    db.session.refresh(action)
    assert (action.status, action.explanation) == ("no_change", "No budget.")
    assert len(audit("stats.action_updated")) == 2

    bogus = client.post(update, data={"status": "abandoned"})
    assert bogus.status_code == 302
    db.session.refresh(action)
    assert action.status == "no_change"


def test_a_refused_update_is_not_announced_as_done(world, as_):
    """The refusal is an error, not a success banner titled "Done"."""
    client = as_("org_leader")
    action = publish(client)
    client.post(f"{ACTIONS}/{action.id}", data={"status": "no_change"})
    html = page(client.get(ACTIONS))
    assert NO_REASON in html
    banner = html[html.index(NO_REASON) - 1500 : html.index(NO_REASON)]
    assert "nhsuk-notification-banner--success" not in banner
    assert ">Done<" not in banner


@pytest.mark.parametrize(
    "other", ["org_b_leader", "system_b_leader", "system_leader", "region_leader"]
)
def test_another_scopes_leader_cannot_touch_an_action(other, world, as_):
    """Not even the leader of the system or region the organisation belongs to."""
    action = publish(as_("org_leader"))
    client = as_(other)
    response = client.post(
        f"{ACTIONS}/{action.id}", data={"status": "no_change", "explanation": "Hijacked"}
    )
    assert response.status_code == 404
    db.session.refresh(action)
    assert action.status == "in_progress" and action.explanation == ""
    assert action.title not in page(client.get(ACTIONS)), "their page lists their own only"
    assert client.post(f"{ACTIONS}/999999", data={"status": "done"}).status_code == 404


@pytest.mark.parametrize("who", ["guardian", "lead_guardian", "panel", "admin"])
def test_only_leaders_publish_or_update(who, world, as_):
    action = publish(as_("org_leader"))
    client = as_(who)
    assert client.post(ACTIONS, data=action_form()).status_code == 403
    assert client.post(f"{ACTIONS}/{action.id}", data={"status": "done"}).status_code == 403
    assert len(actions()) == 1
    db.session.refresh(action)
    assert action.status == "in_progress"


def test_the_audit_log_records_who_and_which_never_what(world, as_):
    client = as_("org_leader")
    secret_words = {
        "title": "Canary title qzx31 about ward 7",
        "description": "Canary description qzx32",
        "explanation": "Canary explanation qzx33",
    }
    action = publish(client, status="no_change", **secret_words)
    client.post(
        f"{ACTIONS}/{action.id}", data={"status": "no_change", "explanation": "Canary qzx34"}
    )
    (published,) = audit("stats.action_published")
    (updated,) = audit("stats.action_updated")
    leader = world.accounts["org_leader"].user_id
    for event in (published, updated):
        assert event.actor_kind == "user" and event.actor_user_id == leader
        assert event.detail == f"action={action.id}"
        assert event.case_id is None
    details = " ".join(db.session.scalars(select(AuditEvent.detail)))
    assert "qzx3" not in details


def test_every_label_names_its_own_field(world, as_):
    """Each action's status form has ids of its own: none may clash with the publishing
    form's (its radios are status, status-2 …), or a label would name the wrong control."""
    client = as_("org_leader")
    for _ in range(4):
        publish(client)
    html = page(client.get(ACTIONS))
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for target in re.findall(r'<label[^>]*\sfor="([^"]+)"', html):
        assert ids.count(target) == 1, target
    for action in actions():
        label = f"Change the status of “{action.title}”"
        assert label in html


# The public page --------------------------------------------------------------------------


@pytest.fixture
def published(world: StatsWorld, as_: Any) -> dict[str, Action]:
    """An action at each scope, one of which changed nothing."""
    return {
        "org": publish(as_("org_leader"), title="Org A1 heard about parking"),
        "system_b": publish(
            as_("system_b_leader"),
            title="System B heard about racism at handover",
            theme="racism_colleague",
            status="no_change",
            explanation="An independent review is already under way.",
        ),
        "region": publish(
            as_("region_leader"), title="The region heard about feedback", status="done"
        ),
    }


def test_anyone_reads_every_action_without_signing_in(app, world, published):
    client = app.test_client()
    response = client.get(PUBLIC)
    assert response.status_code == 200
    html = page(response)
    for action in published.values():
        assert action.title in html and action.description in html
    assert world.org_names["A1"] in html and world.system_names["B"] in html
    assert "Midlands" in html
    assert "Bullying or harassment" in html and "Racism from a colleague" in html
    assert parse_quarter(period_offered()).label in html
    assert "In progress" in html and "Nothing changed" in html and "Done" in html
    assert "Why nothing changed:" in html
    assert "An independent review is already under way." in html
    # Who wrote it is not published, and nothing here is a staff page.
    for name in ("Olu Organisation", "Bea System", "Rhea Region"):
        assert name not in html
    assert "Sign out" not in html and "/staff/" not in html.replace('href="/staff/sign-in"', "")


def test_the_public_page_filters_by_scope(app, world, published):
    client = app.test_client()
    only_a1 = page(client.get(f"{PUBLIC}?scope=organisation:{world.orgs['A1']}"))
    assert published["org"].title in only_a1
    assert published["system_b"].title not in only_a1
    assert published["region"].title not in only_a1

    only_b = page(client.get(f"{PUBLIC}?scope=system:{world.systems['B']}"))
    assert published["system_b"].title in only_b and "Why nothing changed:" in only_b
    assert published["org"].title not in only_b

    empty = page(client.get(f"{PUBLIC}?scope=organisation:{world.orgs['B2']}"))
    assert "No actions have been published here yet." in empty
    assert not any(a.title in empty for a in published.values())

    # The filter keeps what was chosen selected.
    assert f'value="system:{world.systems["B"]}" selected' in only_b
    for nonsense in ("nonsense", "system:", "case:1", "organisation:abc", "system:1 OR 1=1"):
        everything = page(client.get(f"{PUBLIC}?scope={nonsense}"))
        assert all(a.title in everything for a in published.values()), nonsense


def test_the_public_page_escapes_what_leaders_wrote(app, world, as_):
    publish(as_("org_leader"), title='<script>alert("x")</script>', description="<b>bold</b>")
    html = page(app.test_client().get(PUBLIC))
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html


def test_why_nothing_changed_is_shown_only_while_nothing_changed(app, world, as_):
    """An action that later got done must not still say "Why nothing changed"."""
    client = as_("org_leader")
    action = publish(client, status="no_change", explanation="Waiting for the new rota system.")
    assert "Why nothing changed:" in page(app.test_client().get(PUBLIC))
    client.post(f"{ACTIONS}/{action.id}", data={"status": "done", "explanation": ""})
    db.session.refresh(action)
    assert action.status == "done"
    html = page(app.test_client().get(PUBLIC))
    assert action.title in html
    assert "Why nothing changed:" not in html


# The national return ----------------------------------------------------------------------


def expected_return(world: StatsWorld, org: str, period: str) -> dict[str, int]:
    """Each field of the mapping, counted in Python from the facts as they were inserted."""
    bits = {code: i for i, (code, _) in enumerate(NATIONAL_ELEMENTS)}
    # Concerns the organisation's own guardians received: pool and panel routes are not the
    # trust's to return (facts without a route predate the route on every kind).
    facts = [
        f
        for f in world.facts
        if f["organisation_id"] == world.orgs[org]
        and f["period"] == period
        and f.get("route") in (None, "organisation")
    ]
    out = {}
    for field in load_mapping(CURRENT_VERSION)["fields"]:
        chosen = [f for f in facts if f["kind"] == field["kind"]]
        for column, wanted in field.get("where", {}).items():
            options = wanted if isinstance(wanted, list) else [wanted]
            options = [None if o == "" else o for o in options]
            chosen = [f for f in chosen if f.get(column) in options]
        if "element" in field:
            bit = 1 << bits[field["element"]]
            chosen = [f for f in chosen if (f.get("elements_mask") or 0) & bit]
        out[field["label"]] = len(chosen)
    return out


def shown_return(html: str) -> dict[str, int]:
    cells = cells_of(html)
    labels = cells.th[2:]  # after the two column headers
    return dict(zip(labels, map(int, cells.td), strict=True))


@pytest.mark.parametrize("period", [RELEASED[-1], UNRELEASED])
def test_the_lead_guardian_sees_exact_counts_of_their_organisation(period, world, as_):
    client = as_("lead_guardian")
    response = client.get(f"/staff/national-return?period={period}")
    assert response.status_code == 200
    html = page(response)
    assert world.org_names["A1"] in html and world.org_names["B1"] not in html
    expected = expected_return(world, "A1", period)
    assert shown_return(html) == expected
    assert expected["Total number of cases brought to Freedom to Speak Up guardians"] > 0
    # Exact, not disclosure-controlled: the national collection applies its own rules.
    assert any(1 <= n < 8 for n in expected.values())


def test_the_return_defaults_to_the_last_quarter_that_ended(world, as_):
    html = page(as_("lead_guardian").get("/staff/national-return"))
    last = quarter_of(utcnow()).previous()
    assert f"for {last.label}" in html
    assert shown_return(html) == expected_return(world, "A1", last.key)


def test_the_return_downloads_as_csv_through_the_versioned_mapping(world, as_):
    period = RELEASED[-1]
    response = as_("lead_guardian").get(f"/staff/national-return.csv?period={period}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"ftsu-return-ORGA1-{period}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(page(response))))
    assert rows[0] == ["organisation_code", "period", "mapping_version", "field", "label", "value"]
    mapping = load_mapping(CURRENT_VERSION)
    assert mapping["version"] == CURRENT_VERSION
    assert [r[3] for r in rows[1:]] == [f["name"] for f in mapping["fields"]]
    expected = expected_return(world, "A1", period)
    for code, quarter, version, _, label, value in rows[1:]:
        assert (code, quarter, version) == ("ORGA1", period, CURRENT_VERSION)
        assert int(value) == expected[label]


def test_the_lead_guardian_signs_off_once(world, as_):
    client = as_("lead_guardian")
    period = RELEASED[-1]
    url = f"/staff/national-return?period={period}"
    assert "Sign off this return" in page(client.get(url))

    signed = client.post(url)
    assert signed.status_code == 302 and period in signed.location
    (signoff,) = db.session.scalars(select(ReturnSignoff)).all()
    assert (signoff.organisation_id, signoff.period) == (world.orgs["A1"], period)
    assert signoff.mapping_version == CURRENT_VERSION
    assert signoff.signed_by == world.accounts["lead_guardian"].user_id
    html = page(client.get(url))
    assert "Signed off on" in html and "Sign off this return" not in html

    again = client.post(url)
    assert again.status_code in (200, 302)
    assert db.session.scalar(select(func.count()).select_from(ReturnSignoff)) == 1
    (event,) = audit("stats.return_signed_off")
    assert event.detail == f"organisation={world.orgs['A1']} period={period}"
    # Another quarter is a separate sign-off.
    assert "Sign off this return" in page(client.get(f"/staff/national-return?period={UNRELEASED}"))


def test_the_sign_off_needs_its_csrf_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        world = build_stats_world(app.config)
        client = app.test_client()
        sign_in_as(client, world.accounts["lead_guardian"], csrf=True)
        url = f"/staff/national-return?period={RELEASED[-1]}"
        shown = client.get(url)
        assert client.post(url).status_code in (200, 400)
        assert db.session.scalar(select(func.count()).select_from(ReturnSignoff)) == 0
        done = client.post(url, data={"csrf_token": csrf_token(shown)})
        assert done.status_code == 302
        assert db.session.scalar(select(func.count()).select_from(ReturnSignoff)) == 1


def test_a_sign_off_for_a_quarter_still_running_signs_off_nothing(world, as_):
    """Posting for a quarter that has not ended must not sign off some other quarter."""
    client = as_("lead_guardian")
    running = quarter_of(utcnow()).key
    client.post(f"/staff/national-return?period={running}")
    assert db.session.scalar(select(func.count()).select_from(ReturnSignoff)) == 0


def test_the_csv_of_a_quarter_still_running_is_refused(world, as_):
    """The page refuses a quarter that has not ended; its CSV must not offer partial counts."""
    client = as_("lead_guardian")
    running = quarter_of(utcnow())
    assert running.end > utcnow() + timedelta(seconds=1)
    html = page(client.get(f"/staff/national-return?period={running.key}"))
    assert "That quarter has not ended yet." in html
    assert client.get(f"/staff/national-return.csv?period={running.key}").status_code == 404


def test_made_up_periods_are_not_found(world, as_):
    client = as_("lead_guardian")
    for period in ("nonsense", "FY2026Q5", "2026Q1"):
        assert client.get(f"/staff/national-return?period={period}").status_code == 404
        assert client.get(f"/staff/national-return.csv?period={period}").status_code == 404
    assert client.get("/staff/national-return.csv").status_code == 404


@pytest.mark.parametrize("who", ["guardian", "panel", "admin", "org_leader", "region_leader"])
def test_only_a_lead_guardian_has_a_national_return(who, world, as_):
    client = as_(who)
    period = RELEASED[-1]
    assert client.get("/staff/national-return").status_code == 403
    assert client.get(f"/staff/national-return?period={period}").status_code == 403
    assert client.get(f"/staff/national-return.csv?period={period}").status_code == 403
    assert client.post(f"/staff/national-return?period={period}").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(ReturnSignoff)) == 0


def test_a_lead_guardian_gets_only_their_own_organisations_return(world, as_):
    period = RELEASED[-1]
    b1 = world.orgs["B1"]
    mine = expected_return(world, "A1", period)
    theirs = expected_return(world, "B1", period)
    assert mine != theirs, "the two organisations' returns differ, so a mix-up would show"
    client = as_("lead_guardian")
    for tampered in (
        f"&organisation={b1}",
        f"&organisation_id={b1}",
        "&org=ORGB1&code=ORGB1",
        f"&scope=organisation:{b1}",
    ):
        html = page(client.get(f"/staff/national-return?period={period}{tampered}"))
        assert shown_return(html) == mine and world.org_names["B1"] not in html
        rows = list(
            csv.reader(
                io.StringIO(
                    page(client.get(f"/staff/national-return.csv?period={period}{tampered}"))
                )
            )
        )
        assert {r[0] for r in rows[1:]} == {"ORGA1"}
        assert {r[4]: int(r[5]) for r in rows[1:]} == mine
        client.post(f"/staff/national-return?period={period}{tampered}")
    (signoff,) = db.session.scalars(select(ReturnSignoff)).all()
    assert signoff.organisation_id == world.orgs["A1"]

    other = as_("lead_guardian_b")
    assert shown_return(page(other.get(f"/staff/national-return?period={period}"))) == theirs
    assert "Sign off this return" in page(other.get(f"/staff/national-return?period={period}"))
