"""Independent routes stay independent (DESIGN §3 promise 11): a concern sent to the regional
pool or panel appears in no overview, inbox or national return of the trust's staff unless
they are one of its readers."""

from __future__ import annotations

import html

from speakup.accounts.models import Role
from speakup.cases.models import Route
from speakup.db import utcnow
from speakup.extensions import db
from speakup.stats.facts import shuffle_inbox
from speakup.stats.national_return import build_return
from speakup.stats.periods import quarter_of


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_pool_and_panel_concerns_are_invisible_to_the_trust(
    app, make_org, make_staff, submit, staff_client
):
    trust = make_org("TRUST")
    lead = make_staff(Role.LEAD_GUARDIAN, trust, name="Trust Lead")
    make_staff(Role.GUARDIAN, trust, name="Trust Guardian")
    pool = make_staff(Role.GUARDIAN, make_org("ELSEWHERE"), in_pool=True, name="Pool Guardian")
    make_staff(Role.PANEL_MEMBER, name="Panel Member")
    own = submit(trust).case
    to_pool = submit(trust, route=Route.POOL, chosen_guardian_id=pool.user.id).case
    to_panel = submit(trust, route=Route.PANEL).case

    client = staff_client(lead)
    overview = page(client.get("/staff/cases/overview"))
    assert own.reference in overview
    assert to_pool.reference not in overview and to_panel.reference not in overview
    inbox = page(client.get("/staff/cases/"))
    assert to_pool.reference not in inbox and to_panel.reference not in inbox
    assert client.get(f"/staff/cases/{to_panel.reference}").status_code == 404

    shuffle_inbox(app.config, min_batch=0, flush=True)
    db.session.commit()
    lines = {line.name: line.value for line in build_return(trust.id, quarter_of(utcnow()).key)}
    assert lines["total_cases"] == 1  # the trust's own concern only
    assert lines["anonymous_cases"] == 1
