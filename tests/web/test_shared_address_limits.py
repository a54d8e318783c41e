"""Limits that a shared address does not share (issue 10, findings 1 and 3).

Behind a configured one-hop proxy the app limits the real client address (ProxyFix), and
even the real address is shared by a hospital's Wi-Fi: report Send is limited per form
token, so a flood from the address uses up only its own forms; the per-address limits are
a coarse outer guard. A reporter's follow-up messages are limited per case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from speakup.accounts.models import Role
from speakup.cases.models import Case, Message
from speakup.extensions import db, limiter
from speakup.organisations.models import Organisation
from speakup.reporting.services import Submission
from tests.conftest import Staff

HOSPITAL = "203.0.113.7"  # one NAT address shared by a whole hospital
TOKEN = re.compile(r'name="submission_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app as deployed behind one TLS proxy, limits on, default numbers."""
    application = make_app(RATELIMIT_ENABLED=True, WEB_PROXY_HOPS=1)
    with application.app_context():
        limiter.reset()
        yield application
        limiter.reset()


@pytest.fixture
def org(make_org: Callable[..., Organisation], make_staff: Callable[..., Staff]) -> Organisation:
    organisation = make_org()
    make_staff(Role.GUARDIAN, organisation)
    return organisation


def behind_proxy(app: Flask, address: str) -> FlaskClient:
    """A client whose requests reach the app through the proxy, which adds its address."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=address)
    return client


def report(org: Organisation, token: str, **overrides: str) -> dict[str, str]:
    return {
        "organisation": str(org.id),
        "route": "organisation",
        "what_happened": "The rota is unsafe at night.",
        "when": "",
        "desired_outcome": "More staff.",
        "disclosure_mode": "anonymous",
        "escalation_consent": "no",
        "submission_token": token,
        **overrides,
    }


def form_token(client: FlaskClient) -> str:
    response = client.get("/report")
    assert response.status_code == 200
    match = TOKEN.search(response.get_data(as_text=True))
    assert match, "the form carries no token"
    return match.group(1)


def cases() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Case)) or 0


def test_two_reporters_on_one_address_send_while_an_attacker_floods_it(
    app: Flask, org: Organisation
) -> None:
    attacker = behind_proxy(app, HOSPITAL)
    # The attacker replays one real form, and forges tokens, as fast as it can.
    replayed = form_token(attacker)
    flood: list[int] = []
    for i in range(40):
        flood.append(
            attacker.post("/report", data=report(org, replayed, what_happened="")).status_code
        )
        flood.append(attacker.post("/report", data=report(org, f"forged-{i}")).status_code)
    assert flood.count(429) >= 70, flood  # each of its buckets ran dry after a few tries
    sent_before = cases()  # the forged-token posts let through before their bucket emptied
    assert sent_before <= 5

    for name in ("Alice", "Bob"):
        reporter = behind_proxy(app, HOSPITAL)
        response = reporter.post("/report", data=report(org, form_token(reporter)))
        assert response.status_code == 200, (name, response.status_code)
        assert "Your receipt" in response.get_data(as_text=True)
    assert cases() == sent_before + 2


def test_the_address_limited_is_the_one_the_trusted_proxy_saw(
    app: Flask, org: Organisation
) -> None:
    app.config["RATELIMIT_REPORT_SUBMIT"] = "2 per minute"
    elsewhere = behind_proxy(app, "198.51.100.1")
    statuses = [
        elsewhere.post(
            "/report", data=report(org, form_token(elsewhere), what_happened="")
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
    # Adding a made-up address in front does not help: only the proxy's entry counts.
    spoofing = app.test_client()
    spoofing.environ_base.update(HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.1")
    assert spoofing.post("/report", data=report(org, form_token(spoofing))).status_code == 429
    # Another address behind the same proxy is not affected.
    hospital = behind_proxy(app, HOSPITAL)
    assert hospital.post("/report", data=report(org, form_token(hospital))).status_code == 200


def _sign_in(app: Flask, receipt: str) -> FlaskClient:
    reporter = behind_proxy(app, HOSPITAL)
    assert reporter.post("/follow-up", data={"receipt": receipt}).status_code == 302
    return reporter


def _messages(case_id: int) -> int:
    db.session.expire_all()
    return (
        db.session.scalar(
            select(func.count()).select_from(Message).where(Message.case_id == case_id)
        )
        or 0
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [("/follow-up/case/messages", "body"), ("/follow-up/case/detriment", "text")],
)
def test_a_reporters_messages_are_limited_per_case(
    app: Flask,
    org: Organisation,
    submit: Callable[..., Submission],
    path: str,
    field: str,
) -> None:
    app.config["RATELIMIT_REPORTER_MESSAGE"] = "3 per minute"
    mine, theirs = submit(org), submit(org)
    before = _messages(mine.case.id)
    reporter = _sign_in(app, mine.receipt)
    statuses = [reporter.post(path, data={field: f"note {i}"}).status_code for i in range(5)]
    assert statuses == [302, 302, 302, 429, 429]
    assert _messages(mine.case.id) == before + 3
    # Signing in again is the same case: still limited.
    again = _sign_in(app, mine.receipt)
    assert again.post(path, data={field: "once more"}).status_code == 429
    # Another reporter at the same address writes to her own case.
    other = _sign_in(app, theirs.receipt)
    assert other.post(path, data={field: "hello"}).status_code == 302


def test_a_reporters_attachments_count_one_each(
    app: Flask, org: Organisation, submit: Callable[..., Submission]
) -> None:
    import io

    from PIL import Image

    app.config["RATELIMIT_REPORTER_ATTACHMENTS"] = "4 per minute"
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 180)).save(out, "PNG")
    png = out.getvalue()

    def files(n: int) -> dict[str, Any]:
        return {"body": "photos", "attachments": [(io.BytesIO(png), f"{i}.png") for i in range(n)]}

    reporter = _sign_in(app, submit(org).receipt)
    first = reporter.post(
        "/follow-up/case/messages", data=files(3), content_type="multipart/form-data"
    )
    assert first.status_code == 302
    second = reporter.post(
        "/follow-up/case/messages", data=files(2), content_type="multipart/form-data"
    )
    assert second.status_code == 429
    text_only = reporter.post("/follow-up/case/messages", data={"body": "no files"})
    assert text_only.status_code == 302
