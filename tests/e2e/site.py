"""The pieces of a browser test that are not fixtures: the served site and its watch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyotp
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Request,
    Response,
    WebError,
)
from werkzeug.serving import make_server


@dataclass(frozen=True)
class Login:
    """What a person types to sign in as a staff account (plain values, safe across threads)."""

    email: str
    password: str
    totp_secret: str | None

    def code(self) -> str:
        assert self.totp_secret, f"{self.email} has not set up a security code"
        return pyotp.TOTP(self.totp_secret).now()


@dataclass(frozen=True)
class Site:
    """A running app with one organisation, its guardian and a regional pool guardian."""

    base_url: str
    app: Flask
    #: the organisation as the report form's drop-down shows it
    organisation_label: str
    guardian: Login
    pool_guardian: Login


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 until the block ends; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # so shutdown() returns at once, not after 0.5 s
        name="e2e-server",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Watch:
    """Records what the pages of one browser context did that no page of ours may do."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.found: list[str] = []
        #: document URL -> status: a page we answer with 400/404 on purpose is no failure
        self.documents: dict[str, int] = {}

    def same_origin(self, url: str) -> bool:
        return url == self.base_url or url.startswith(self.base_url + "/")

    def on_request(self, request: Request) -> None:
        if not self.same_origin(request.url):
            self.found.append(f"request to another origin: {request.method} {request.url}")

    def on_request_failed(self, request: Request) -> None:
        # Chromium aborts the favicon fetch when a test navigates on straight after a load;
        # that is the browser changing its mind, not the page failing.
        if request.failure == "net::ERR_ABORTED" and "/images/favicon" in request.url:
            return
        self.found.append(f"request failed ({request.failure}): {request.url}")

    def on_response(self, response: Response) -> None:
        if response.request.resource_type == "document":
            self.documents[response.url] = response.status
        if response.status >= 500:
            self.found.append(f"server error {response.status}: {response.url}")
        elif response.status >= 400 and response.request.resource_type != "document":
            self.found.append(f"{response.status} for a page resource: {response.url}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        document = url.split("#", 1)[0]
        # Chromium logs a page we answer with 400 (form errors) or 404 as a failed resource.
        deliberate = self.documents.get(document) in (400, 404, 409)
        if deliberate and message.text.startswith("Failed to load resource: the server "):
            return
        self.found.append(f"console error: {message.text} ({url})")

    def on_web_error(self, error: WebError) -> None:
        self.found.append(f"uncaught script error: {error.error}")

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self.on_request)
        context.on("requestfailed", self.on_request_failed)
        context.on("response", self.on_response)
        context.on("console", self.on_console)
        context.on("weberror", self.on_web_error)
        # Chromium reports CSP violations on the console itself; this listener repeats them
        # there in case that report ever changes (it runs only where JavaScript is on).
        context.add_init_script(
            script="document.addEventListener('securitypolicyviolation', (e) =>"
            " console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));"
        )

    def take_problems(self) -> list[str]:
        """Everything wrong so far, each reported once."""
        problems, self.found = self.found, []
        return problems


class Browsing:
    """Watched browser contexts: each is a separate person or device, with its own cookies."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[tuple[BrowserContext, Watch]] = []

    def open(self, site: Site, **options: Any) -> BrowserContext:
        """``options`` go to ``Browser.new_context`` (viewport, java_script_enabled…)."""
        context = self.browser.new_context(base_url=site.base_url, **options)
        # Every page is local and small: a step that takes this long is stuck, not slow.
        context.set_default_timeout(10_000)
        watch = Watch(site.base_url)
        watch.attach(context)
        self.opened.append((context, watch))
        return context

    def assert_clean(self) -> None:
        """No other-origin or failed request, console error, script error or 5xx so far."""
        problems = [p for _, watch in self.opened for p in watch.take_problems()]
        assert not problems, "the browser saw:\n  " + "\n  ".join(problems)

    def close(self) -> None:
        for context, _ in self.opened:
            context.close()
        self.opened = []
