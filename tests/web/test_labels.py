"""Every page's labels name a real control, and every id is unique (the consent bug: an
<h2 id="consent"> took the "Yes" radio's id, so "Yes" had no label).

Pages are found from the URL map — every GET page without arguments, as each kind of
visitor — plus the pages that need an argument or a state: a case (guardian and reporter),
error states of forms. Checked with html.parser, so it runs without a browser.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser

from flask import Flask
from flask.testing import FlaskClient

from speakup.cases.models import DisclosureMode
from speakup.extensions import db
from speakup.organisations.models import Organisation
from tests.stats_world import StatsWorld

#: elements a <label for> can name (HTML "labelable elements"; a hidden input is not one)
LABELABLE = {"button", "input", "meter", "output", "progress", "select", "textarea"}


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[tuple[str, str, str | None]] = []  # (id, tag, input type)
        self.label_for: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id") is not None:
            self.ids.append((attributes["id"] or "", tag, attributes.get("type")))
        if tag == "label" and "for" in attributes:
            self.label_for.append(attributes["for"] or "")


def label_problems(html: str) -> list[str]:
    """What is wrong with the page's ids and labels (empty when all is well)."""
    parser = _Ids()
    parser.feed(html)
    parser.close()
    problems = [
        f"id {i!r} is used {n} times"
        for i, n in Counter(i for i, *_ in parser.ids).items()
        if n > 1
    ]
    for target in parser.label_for:
        elements = [(tag, kind) for i, tag, kind in parser.ids if i == target]
        if len(elements) != 1:
            problems.append(f"<label for={target!r}> matches {len(elements)} elements")
            continue
        tag, kind = elements[0]
        if tag not in LABELABLE or (tag == "input" and kind == "hidden"):
            problems.append(f"<label for={target!r}> names a <{tag}>, not a form control")
    return problems


def test_the_checker_finds_the_consent_bug() -> None:
    bug = (
        '<h2 id="consent">Escalation</h2>'
        '<input id="consent" type="radio"><label for="consent">Yes</label>'
    )
    assert label_problems(bug) == [
        "id 'consent' is used 2 times",
        "<label for='consent'> matches 2 elements",
    ]
    assert label_problems('<h2 id="x">X</h2><label for="x">X</label>') == [
        "<label for='x'> names a <h2>, not a form control"
    ]
    assert label_problems('<input type="hidden" id="t"><label for="t">T</label>') == [
        "<label for='t'> names a <input>, not a form control"
    ]
    assert label_problems('<label for="gone">Gone</label>') == [
        "<label for='gone'> matches 0 elements"
    ]
    assert label_problems('<input id="a" type="radio"><label for="a">Yes</label>') == []


def _pages_without_arguments(app: Flask) -> list[str]:
    with app.test_request_context():
        return sorted(
            rule.rule
            for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or set())
            and not rule.arguments
            and rule.endpoint != "static"
            and not rule.rule.endswith(".csv")
        )


def test_every_reachable_page_labels_real_controls(
    app: Flask,
    world: StatsWorld,
    as_: Callable[[str], FlaskClient],
    submit: Callable[..., object],
) -> None:
    organisation = db.session.get_one(Organisation, world.orgs["A1"])
    submission = submit(
        organisation, disclosure_mode=DisclosureMode.CONFIDENTIAL, name="A", contact="B"
    )
    reference = submission.case.reference  # type: ignore[attr-defined]
    receipt = submission.receipt  # type: ignore[attr-defined]

    anonymous = app.test_client()
    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": receipt}).status_code == 302
    visitors: dict[str, FlaskClient] = {"anonymous": anonymous, "reporter": reporter}
    for who in ("guardian", "lead_guardian", "panel", "org_leader", "admin"):
        visitors[who] = as_(who)

    checked: list[tuple[str, str]] = []
    problems: list[str] = []

    def check(who: str, method: str, path: str, **data: object) -> None:
        client = visitors[who]
        response = client.open(path, method=method, data=data or None)
        if response.mimetype != "text/html" or response.status_code in (301, 302, 303):
            return
        checked.append((who, path))
        problems.extend(
            f"{who} {method} {path}: {p}" for p in label_problems(response.get_data(as_text=True))
        )

    paths = _pages_without_arguments(app)
    for who in visitors:
        for path in paths:
            check(who, "GET", path)
    # Pages that need an argument or a state.
    check("guardian", "GET", f"/staff/cases/{reference}")
    check("lead_guardian", "GET", f"/staff/cases/{reference}")
    check("guardian", "POST", f"/staff/cases/{reference}/messages", body="")
    check("reporter", "GET", "/follow-up/case")
    check("reporter", "POST", "/follow-up/case/messages", body="")
    check("reporter", "POST", "/follow-up/case/identity", name="", contact="")
    check("anonymous", "POST", "/report", what_happened="")
    check("anonymous", "POST", "/follow-up", receipt="AAAA-BBBB-CCCC-DDDD")
    check("anonymous", "POST", "/staff/sign-in", email="nobody@example.test", password="x")
    check("admin", "POST", "/staff/account/password", current="", new="", confirm="")
    check("anonymous", "GET", "/no-such-page")
    # Confirmation pages (issue 9): withdrawing, removing a reader, closing, escalating.
    check("reporter", "GET", "/follow-up/case/withdraw")
    me = world.accounts["guardian"].user_id
    check("guardian", "GET", f"/staff/cases/{reference}/readers/remove/confirm?user_id={me}")
    check("guardian", "GET", f"/staff/cases/{reference}/close")
    check("guardian", "GET", f"/staff/cases/{reference}/escalate/confirm")

    assert problems == []
    seen = {path for _, path in checked}
    for page in (
        "/",
        "/report",
        "/follow-up",
        "/follow-up/case",
        "/follow-up/case/withdraw",
        f"/staff/cases/{reference}/readers/remove/confirm?user_id={me}",
        "/privacy",
        "/staff/sign-in",
        "/staff/cases/",
        f"/staff/cases/{reference}",
        "/staff/admin/users",
        "/staff/statistics/",
        "/staff/national-return",
    ):
        assert page in seen, page
    assert len(checked) >= 40, len(checked)
