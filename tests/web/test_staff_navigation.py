"""Leaders and administrators: navigation that never leads to a 403, the accounts table with
each leader's real scope, and re-enabling a disabled account after a confirmation page."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from speakup.accounts.models import User
from speakup.audit.models import AuditEvent
from speakup.extensions import db
from tests.stats_world import StatsWorld, sign_in_as

STAFF = ("guardian", "lead_guardian", "panel", "org_leader", "region_leader", "admin")


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def layout_links(body: str) -> list[tuple[str, str]]:
    """(href, text) of the links in the page's header and footer."""
    chrome = body[: body.index('id="maincontent"')] + body[body.index("<footer") :]
    return [
        (href, " ".join(re.sub(r"<[^>]+>", " ", text).split()))
        for href, text in re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', chrome, re.S)
    ]


@pytest.mark.parametrize("who", STAFF)
def test_no_layout_link_leads_a_role_to_a_refusal(
    who: str, as_: Callable[[str], FlaskClient]
) -> None:
    client = as_(who)
    landing = {
        "admin": "/staff/admin/users",
        "org_leader": "/staff/statistics/",
        "region_leader": "/staff/statistics/",
    }.get(who, "/staff/cases/")
    body = page(client.get(landing))
    links = layout_links(body)
    assert links, body[:300]
    for href, text in links:
        if href.startswith("#"):
            continue
        status = client.get(href).status_code
        assert status == 200, (who, text, href, status)
    texts = {text for _, text in links}
    if who in ("admin", "org_leader", "region_leader"):
        assert "Case inbox" not in texts and "Your cases" not in texts, texts
    else:
        assert "Case inbox" in texts


def test_the_accounts_table_shows_each_leaders_scope(
    world: StatsWorld, as_: Callable[[str], FlaskClient]
) -> None:
    body = page(as_("admin").get("/staff/admin/users"))
    rows = {
        m.group(1): " ".join(re.sub(r"<[^>]+>", " ", m.group(0)).split())
        for m in re.finditer(
            r'<tr class="nhsuk-table__row" role="row">.*?([\w.]+@example\.test).*?</tr>', body, re.S
        )
    }
    assert "Organisation or scope Region: " in rows["region.leader@example.test"]
    assert (
        f"Integrated care system: {world.system_names['A']}" in rows["system.leader@example.test"]
    )
    assert f"Organisation: {world.org_names['A1']}" in rows["org.leader@example.test"]
    assert f"Organisation: {world.org_names['B1']}" in rows["orgb.leader@example.test"]
    assert world.org_names["A1"] in rows["guardian@example.test"]
    assert "Regional panel" in rows["panel@example.test"]


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_an_administrator_re_enables_an_account_after_confirming(
    world: StatsWorld, as_: Callable[[str], FlaskClient], app
) -> None:
    admin = as_("admin")
    guardian = db.session.scalar(select(User).where(User.email == "guardian@example.test"))
    assert guardian is not None
    assert admin.post(f"/staff/admin/users/{guardian.id}/disable").status_code == 302
    db.session.refresh(guardian)
    assert guardian.disabled

    listing = page(admin.get("/staff/admin/users"))
    assert f'href="/staff/admin/users/{guardian.id}/enable"' in listing

    # The link opens a confirmation page; looking at it changes nothing.
    confirm = admin.get(f"/staff/admin/users/{guardian.id}/enable")
    assert confirm.status_code == 200
    body = page(confirm)
    assert "<h1>Enable Gita Guardian's account?</h1>" in body
    assert "Enable account</button>" in body
    db.session.refresh(guardian)
    assert guardian.disabled and _events("user.enabled") == []

    done = admin.post(f"/staff/admin/users/{guardian.id}/enable")
    assert done.status_code == 302 and done.location.endswith("/staff/admin/users")
    db.session.refresh(guardian)
    assert not guardian.disabled
    [event] = _events("user.enabled")
    admin_id = db.session.scalar(select(User.id).where(User.email == "admin@example.test"))
    assert event.actor_user_id == admin_id and event.detail == f"user={guardian.id}"
    assert "Gita Guardian is enabled and can sign in again." in page(
        admin.get("/staff/admin/users")
    )
    # The account works again with its own password and code.
    sign_in_as(app.test_client(), world.accounts["guardian"])

    # Enabling an account that is not disabled does nothing and says so.
    again = admin.post(f"/staff/admin/users/{guardian.id}/enable", follow_redirects=True)
    assert "account is not disabled" in page(again)
    assert len(_events("user.enabled")) == 1


@pytest.mark.parametrize("who", ["guardian", "lead_guardian", "org_leader"])
def test_only_administrators_can_enable(who: str, as_: Callable[[str], FlaskClient]) -> None:
    target = db.session.scalar(select(User).where(User.email == "panel@example.test"))
    assert target is not None
    target.disabled = True
    db.session.commit()
    client = as_(who)
    assert client.get(f"/staff/admin/users/{target.id}/enable").status_code == 403
    assert client.post(f"/staff/admin/users/{target.id}/enable").status_code == 403
    db.session.refresh(target)
    assert target.disabled
    assert _events("user.enabled") == []
