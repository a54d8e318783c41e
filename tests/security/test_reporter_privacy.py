"""DESIGN §3 promise 2: no reporter is identified by the service itself.

Reporter routes never store or log an address or user agent (the only derivative is a salted,
in-memory rate-limit key); nothing on any page loads from another origin; the staff session
never reaches reporter pages; cookies are HttpOnly, SameSite=Strict and (when configured)
Secure; the public forms are rate limited without keeping an address.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from speakup.accounts.models import Role
from speakup.accounts.services import create_user, new_totp_secret
from speakup.cases.models import Attachment
from speakup.extensions import db, limiter
from speakup.organisations.models import Organisation
from speakup.organisations.services import (
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.reporting.pages import QUICK_EXIT_URL
from tests.conftest import PASSWORD, TEST_ARGON2, Staff, sign_in
from tests.security.support import (
    capture_all_logs,
    dump_database,
    find_leaks,
    is_sqlite,
    log_text,
    only_case,
    png_with_text,
    post_report,
    receipt_from,
    report_form,
    sqlite_files,
)

REMOTE_ADDR = "203.0.113.77"
FORWARDED_FOR = "198.51.100.99"
REAL_IP = "192.0.2.61"
USER_AGENT = "CanaryAgent/9.9 (UA-CANARY-7781)"
NEEDLES = {
    "REMOTE_ADDR": REMOTE_ADDR,
    "X-Forwarded-For": FORWARDED_FOR,
    "X-Real-IP": REAL_IP,
    "User-Agent": USER_AGENT,
    "user agent token": "UA-CANARY-7781",
    "user agent product": "CanaryAgent",
}
PRIVACY_ENVIRON = {
    "REMOTE_ADDR": REMOTE_ADDR,
    "HTTP_X_FORWARDED_FOR": FORWARDED_FOR,
    "HTTP_X_REAL_IP": REAL_IP,
    "HTTP_USER_AGENT": USER_AGENT,
}


class RecordingClient(FlaskClient):
    """A test client that keeps every (method, path, response) it saw."""

    seen: list[tuple[str, str, TestResponse]]

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:  # type: ignore[override]
        response = super().open(*args, **kwargs)
        environ = response.request.environ
        self.application.extensions.setdefault("security_test_seen", []).append(
            (environ["REQUEST_METHOD"], environ["PATH_INFO"], response)
        )
        return response


def seen(app: Flask) -> list[tuple[str, str, TestResponse]]:
    return list(app.extensions.get("security_test_seen", []))


def reporter_client(app: Flask) -> FlaskClient:
    """A client whose every request carries a distinctive address and user agent."""
    client = app.test_client()
    client.environ_base.update(PRIVACY_ENVIRON)
    return client


@dataclass
class Journey:
    """Every reporter route, exercised once with the distinctive headers."""

    receipt: str
    reference: str


@pytest.fixture
def journey(
    app: Flask,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
    tmp_path: Path,
) -> Callable[[], Journey]:
    app.test_client_class = RecordingClient

    def run() -> Journey:
        org = make_org("PRIV", recovery_dir=tmp_path / "recovery")
        guardian = make_staff(Role.GUARDIAN, org)
        client = reporter_client(app)
        assert client.get("/").status_code == 200
        for page in ("/privacy", "/accessibility", "/help", "/other-routes"):
            assert client.get(page).status_code == 200
        assert client.get("/report").status_code == 200
        assert post_report(client, {"what_happened": ""}).status_code == 400
        data = report_form(org.id, disclosure_mode="confidential", name="A", contact="07700")
        files = [(b"what I saw\n", "notes.txt"), (png_with_text("photo"), "photo.png")]
        receipt = receipt_from(
            post_report(client, {**data, "attachments": [(io.BytesIO(b), n) for b, n in files]})
        )
        reference = only_case().reference
        # The same form posted again (a refresh) is refused, with no second case.
        assert post_report(client, data).status_code == 409

        assert client.get("/follow-up").status_code == 200
        assert client.post("/follow-up", data={"receipt": ""}).status_code == 400
        assert client.post("/follow-up", data={"receipt": "0000-0000-0000-0000"}).status_code == 400
        assert client.get("/follow-up/case").status_code == 302
        assert client.post("/follow-up", data={"receipt": receipt}).status_code == 302
        assert client.get("/follow-up/case").status_code == 200
        sent = client.post(
            "/follow-up/case/messages",
            data={"body": "More detail", "attachments": [(io.BytesIO(b"more\n"), "more.txt")]},
            content_type="multipart/form-data",
        )
        assert sent.status_code == 302
        assert client.post("/follow-up/case/messages", data={"body": ""}).status_code == 400
        assert (
            client.post(
                "/follow-up/case/identity", data={"name": "A Nurse", "contact": "ward 3"}
            ).status_code
            == 302
        )
        assert client.post("/follow-up/case/consent", data={"consent": "yes"}).status_code == 302
        attachment_id = db.session.scalars(select(Attachment.id)).first()
        download = client.get(f"/follow-up/case/attachments/{attachment_id}")
        assert download.status_code == 200
        assert client.get("/follow-up/case/attachments/999999").status_code == 404
        assert client.get("/follow-up/case/messages").status_code == 405
        assert client.get("/no-such-page").status_code == 404
        assert client.post("/follow-up/sign-out", data={}).status_code == 302
        assert client.get("/follow-up/case").status_code == 302

        # The guardian's side too, so staff pages and their errors are checked as well.
        staff = app.test_client()
        staff.get("/staff/sign-in")
        staff.post("/staff/sign-in", data={"email": "nobody@example.test", "password": "x" * 12})
        sign_in(staff, guardian)
        assert staff.get("/staff/cases/").status_code == 200
        assert staff.get(f"/staff/cases/{reference}").status_code == 200
        assert staff.get("/staff/cases/SU-0000-0000").status_code == 404
        staff.post(f"/staff/cases/{reference}/messages", data={"body": "Thank you"})
        staff.post(f"/staff/cases/{reference}/messages", data={"body": ""})
        # The enrolment page (first sign-in, QR code) of a fresh account.
        fresh = make_staff(Role.GUARDIAN, org)
        fresh.user.totp_wrapped = None
        db.session.commit()
        enrol = app.test_client()
        enrol.post("/staff/sign-in", data={"email": fresh.user.email, "password": PASSWORD})
        assert enrol.get("/staff/sign-in/code").status_code == 200
        return Journey(receipt, reference)

    return run


# --- nothing about the client is stored or logged ------------------------------------------


def test_reporter_routes_keep_no_address_or_user_agent(
    app: Flask,
    journey: Callable[[], Journey],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    logs = capture_all_logs(caplog)
    try:
        journey()
        out, err = capfd.readouterr()
    finally:
        logs.close()
    leaks: list[str] = []
    db.session.expire_all()
    leaks += find_leaks(dump_database(), NEEDLES, "a database row")
    if is_sqlite(app):
        for path in sqlite_files(app):
            leaks += find_leaks(path.read_bytes(), NEEDLES, str(path))
    logged = log_text(caplog, logs)
    assert b"INSERT INTO concern_case" in logged  # the capture saw the journey
    assert b"speakup.reporting" not in logged  # reporter routes log nothing of their own
    leaks += find_leaks(logged, NEEDLES, "the logs")
    leaks += find_leaks((out + err).encode(), NEEDLES, "stdout/stderr")
    for method, path, response in seen(app):
        where = f"the response to {method} {path}"
        leaks += find_leaks(response.get_data(), NEEDLES, where)
        leaks += find_leaks(str(response.headers).encode(), NEEDLES, where)
    assert leaks == []


# --- response headers ------------------------------------------------------------------------

_ALLOWED_SOURCES = {"'self'", "'none'"}


def _check_csp(policy: str, where: str, *, page: bool = True) -> list[str]:
    problems = []
    directives = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0]] = tokens[1:]
    if directives.get("default-src") != ["'none'"]:
        problems.append(f"{where}: default-src is not 'none'")
    if page and directives.get("frame-ancestors") != ["'none'"]:
        problems.append(f"{where}: frame-ancestors is not 'none'")
    for name, sources in directives.items():
        for source in sources:
            if source in _ALLOWED_SOURCES or re.fullmatch(r"'nonce-[A-Za-z0-9_\-+/=]+'", source):
                continue
            if source == "data:" and name == "img-src":
                continue
            problems.append(f"{where}: {name} allows {source}")
    return problems


def test_every_response_has_the_security_headers(
    app: Flask, journey: Callable[[], Journey]
) -> None:
    journey()
    client = app.test_client()
    # Every asset the pages link to is served from here, with the same headers.
    assets = set()
    for _method, _path, response in seen(app):
        if response.mimetype == "text/html":
            assets |= {
                u for u in _page_urls(response.get_data(as_text=True)) if u.startswith("/static/")
            }
    assert assets, "the pages should link their own styles and scripts"
    for asset in sorted(assets):
        fetched = client.get(asset)
        fetched.close()
        assert fetched.status_code == 200, asset

    responses = seen(app)
    assert len(responses) > 30
    problems: list[str] = []
    for method, path, response in responses:
        where = f"{method} {path} ({response.status_code})"
        headers = response.headers
        problems += _check_csp(
            headers.get("Content-Security-Policy", ""),
            where,
            page=response.mimetype == "text/html",
        )
        for name, value in (
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
        ):
            if headers.get(name) != value:
                problems.append(f"{where}: {name} is {headers.get(name)!r}")
        if not path.startswith("/static/") and "no-store" not in headers.get("Cache-Control", ""):
            problems.append(f"{where}: Cache-Control is {headers.get('Cache-Control')!r}")
    assert problems == []


def test_attachment_downloads_keep_their_sandboxing_policy(
    app: Flask, journey: Callable[[], Journey]
) -> None:
    """speakup.cases.downloads gives a decrypted file ``default-src 'none'; sandbox`` so
    that even a browser that rendered it would run nothing in our origin; the generic
    header hook must not replace that with the page policy (which allows scripts)."""
    journey()
    downloads = [
        (path, r) for _m, path, r in seen(app) if "/attachments/" in path and r.status_code == 200
    ]
    assert downloads
    for path, response in downloads:
        assert response.headers.get("Content-Disposition", "").startswith("attachment"), path
        policy = response.headers.get("Content-Security-Policy", "")
        directives = [d.split()[0] for d in policy.split(";") if d.strip()]
        assert "sandbox" in directives, (path, policy)
        assert "script-src" not in directives, (path, policy)


# --- nothing on any page comes from another origin -------------------------------------------

_URL_ATTRIBUTES = {
    "src",
    "href",
    "action",
    "formaction",
    "poster",
    "data",
    "xlink:href",
    "background",
}
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
_CSS_IMPORT = re.compile(r"@import\s+['\"]([^'\"]+)")


def _is_quick_exit(tag: str, name: str, value: str, attrs: list[tuple[str, str | None]]) -> bool:
    """The one other-origin address a page may hold: the "Exit this page" link. It is a link
    the reporter follows, never a resource the page loads (nothing is fetched from that site
    unless she presses it), and it sends no referrer. Any other element, attribute or
    address — or the same link without rel="noreferrer" — still counts as foreign."""
    rel = (dict(attrs).get("rel") or "").split()
    return tag == "a" and name == "href" and value == QUICK_EXIT_URL and "noreferrer" in rel


class _UrlCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if _is_quick_exit(tag, name, value, attrs):
                continue
            if name in _URL_ATTRIBUTES:
                self.urls.append(value.strip())
            elif name in ("srcset", "imagesrcset"):
                self.urls += [c.strip().split()[0] for c in value.split(",") if c.strip()]
            elif name == "style":
                self.urls += _CSS_URL.findall(value)
            elif name == "content" and tag == "meta" and "url=" in value.lower():
                self.urls.append(value.lower().split("url=", 1)[1].strip())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += _CSS_URL.findall(data) + _CSS_IMPORT.findall(data)


def _page_urls(html: str) -> list[str]:
    collector = _UrlCollector()
    collector.feed(html)
    collector.close()
    return collector.urls


def _foreign(url: str) -> bool:
    """True if loading or following ``url`` would reach another origin."""
    parts = urlsplit(url)
    if parts.netloc or url.startswith("//") or url.startswith("\\\\"):
        return True
    return parts.scheme not in ("", "data")


def test_no_page_refers_to_another_origin(app: Flask, journey: Callable[[], Journey]) -> None:
    journey()
    pages = [(m, p, r) for m, p, r in seen(app) if r.mimetype == "text/html"]
    statuses = {r.status_code for _m, _p, r in pages}
    assert {200, 400, 404, 405, 409} <= statuses, "error pages should be among those checked"
    assert any(p.startswith("/staff") for _m, p, _r in pages)
    problems = []
    checked = 0
    for method, path, response in pages:
        for url in _page_urls(response.get_data(as_text=True)):
            checked += 1
            if _foreign(url):
                problems.append(f"{method} {path}: {url}")
    assert checked > 100
    assert problems == []


def test_stylesheets_load_nothing_from_another_origin(app: Flask) -> None:
    client = app.test_client()
    css = client.get("/static/dist/speakup.css")
    text = css.get_data(as_text=True)
    css.close()
    assert css.status_code == 200
    foreign = [u for u in _CSS_URL.findall(text) + _CSS_IMPORT.findall(text) if _foreign(u)]
    assert foreign == []


def test_foreign_url_detector() -> None:
    for url in ("https://fonts.example/x.css", "//cdn.example/x.js", "http://x", "javascript:x"):
        assert _foreign(url), url
    for url in ("/static/x.css", "#main", "?page=2", "data:text/plain,hi", "case/1"):
        assert not _foreign(url), url
    assert _page_urls('<div style="background: url(//evil.example/a.png)"></div>') == [
        "//evil.example/a.png"
    ]
    assert "https://x.example/1x.png" in _page_urls('<img srcset="https://x.example/1x.png 1x">')
    exit_link = f'<a href="{QUICK_EXIT_URL}" rel="nofollow noreferrer">Exit this page</a>'
    assert _page_urls(exit_link) == []
    for near_miss in (
        f'<a href="{QUICK_EXIT_URL}">Exit this page</a>',  # would send a referrer
        f'<img src="{QUICK_EXIT_URL}" rel="noreferrer">',  # a load, not a link
        '<a href="https://elsewhere.example/" rel="noreferrer">x</a>',
    ):
        assert [_foreign(u) for u in _page_urls(near_miss)] == [True], near_miss


# --- cookies -------------------------------------------------------------------------------


def _set_cookies(response: TestResponse) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def _cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    name = header.split("=", 1)[0].strip()
    attributes = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value
    return name, attributes


def test_staff_session_never_reaches_reporter_pages(
    app: Flask,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
) -> None:
    org = make_org()
    guardian = make_staff(Role.GUARDIAN, org)
    client = app.test_client()
    sign_in(client, guardian)
    staff_cookie = client.get_cookie("speakup_staff", path="/staff")
    assert staff_cookie is not None and staff_cookie.path == "/staff"
    assert staff_cookie.http_only and staff_cookie.same_site == "Strict"

    for path in ("/", "/report", "/follow-up", "/follow-up/case", "/no-such-page"):
        with client:
            response = client.get(path)
            assert "speakup_staff" not in request.cookies, path
            assert "speakup_staff" not in (request.headers.get("Cookie") or ""), path
        assert not any(h.startswith("speakup_staff=") for h in _set_cookies(response)), path
    # The staff pages do still get it (so the check above is meaningful).
    with client:
        assert client.get("/staff/cases/").status_code == 200
        assert "speakup_staff" in request.cookies


def test_reporter_session_is_scoped_to_follow_up(
    app: Flask,
    make_org: Callable[..., Organisation],
    make_staff: Callable[..., Staff],
) -> None:
    org = make_org()
    make_staff(Role.GUARDIAN, org)
    client = app.test_client()
    receipt = receipt_from(post_report(client, report_form(org.id)))
    response = client.post("/follow-up", data={"receipt": receipt})
    assert response.status_code == 302
    cookie = client.get_cookie("speakup_reporter", path="/follow-up")
    assert cookie is not None and cookie.path == "/follow-up"
    assert cookie.http_only and cookie.same_site == "Strict"
    for path in ("/", "/report", "/staff/sign-in"):
        with client:
            client.get(path)
            assert "speakup_reporter" not in request.cookies, path


def _make_reader(role: Role, org: Organisation | None) -> Staff:
    secret = new_totp_secret()
    user = create_user(
        email=f"{role}@example.test",
        display_name=str(role),
        role=role,
        password=PASSWORD,
        params=TEST_ARGON2,
        organisation=org,
        totp_secret=secret,
    )
    db.session.commit()
    return Staff(user, PASSWORD, secret)


@pytest.mark.parametrize("secure", [True, False])
def test_cookies_are_httponly_strict_and_secure_when_configured(
    make_app: Callable[..., Flask], secure: bool
) -> None:
    app = make_app(SESSION_COOKIE_SECURE=secure)
    app.test_client_class = RecordingClient
    with app.app_context():
        region = get_or_create_region("MIDLANDS", "Midlands")
        system = get_or_create_system(region, "SYS1", "Test System")
        org = get_or_create_organisation(system, "SEC", "Secure Trust")
        db.session.commit()
        guardian = _make_reader(Role.GUARDIAN, org)

        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        client.get("/report")
        receipt = receipt_from(post_report(client, report_form(org.id)))
        client.post("/follow-up", data={"receipt": receipt})
        client.get("/follow-up/case")
        client.post("/follow-up/sign-out", data={})
        sign_in(client, guardian)
        client.post("/staff/sign-out", data={})

    headers = [h for _m, _p, r in seen(app) for h in _set_cookies(r)]
    names = {_cookie_attributes(h)[0] for h in headers}
    assert {"speakup_staff", "speakup_reporter"} <= names
    for header in headers:
        name, attributes = _cookie_attributes(header)
        assert "httponly" in attributes, header
        assert attributes.get("samesite") == "Strict", header
        assert ("secure" in attributes) is secure, header
        if name == "speakup_staff":
            assert attributes.get("path") == "/staff", header
        if name == "speakup_reporter":
            assert attributes.get("path") == "/follow-up", header


# --- rate limits ---------------------------------------------------------------------------


def _limiter_keys() -> set[str]:
    storage = limiter.storage
    keys: set[str] = set()
    for attribute in ("storage", "events", "expirations"):
        keys |= set(getattr(storage, attribute, {}) or {})
    return keys


@pytest.fixture
def limited_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_FOLLOW_UP_SIGN_IN="3 per minute",
        RATELIMIT_REPORT_SUBMIT="3 per minute",
    )
    yield app
    with app.app_context():
        limiter.reset()


@pytest.mark.parametrize(
    ("path", "data"),
    [("/report", {"what_happened": "x"}), ("/follow-up", {"receipt": "0000-0000-0000-0000"})],
)
def test_public_forms_are_rate_limited_without_keeping_the_address(
    limited_app: Flask,
    caplog: pytest.LogCaptureFixture,
    path: str,
    data: dict[str, str],
) -> None:
    logs = capture_all_logs(caplog)
    try:
        client = reporter_client(limited_app)
        statuses = [client.post(path, data=data).status_code for _ in range(4)]
        assert statuses[:3] == [400, 400, 400]
        assert statuses[3] == 429
        blocked = client.post(path, data=data)
        assert blocked.status_code == 429
        assert not _check_csp(blocked.headers.get("Content-Security-Policy", ""), "429")
        # GET is not limited, and another address has its own allowance.
        assert client.get(path).status_code == 200
        other = limited_app.test_client()
        other.environ_base.update({**PRIVACY_ENVIRON, "REMOTE_ADDR": "192.0.2.200"})
        assert other.post(path, data=data).status_code == 400
    finally:
        logs.close()

    keys = _limiter_keys()
    assert keys, "the limiter should hold keys for the two clients"
    with limited_app.test_request_context(path, environ_base={"REMOTE_ADDR": REMOTE_ADDR}):
        from speakup.ratelimit import rate_limit_key

        token = rate_limit_key()
    assert any(token in key for key in keys), "keys are the salted token"
    leaks = []
    for key in keys:
        leaks += find_leaks(key.encode(), NEEDLES, f"limiter key {key!r}")
        leaks += find_leaks(key.encode(), {"other address": "192.0.2.200"}, f"limiter key {key!r}")
    leaks += find_leaks(log_text(caplog, logs), NEEDLES, "the logs")
    assert leaks == []
