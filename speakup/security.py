"""Response headers, Content Security Policy, and default-deny access control.

Every endpoint needs a signed-in, fully authenticated staff user unless it is registered as
public with :func:`public_endpoint`. Pages load nothing from another origin: the CSP allows
only our own origin, plus one per-request nonce for the NHS.UK "js-enabled" snippet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, redirect, request, url_for
from flask_login import current_user

F = TypeVar("F", bound=Callable[..., Any])

_PUBLIC_ATTR = "_speakup_public"


def public_endpoint(view: F) -> F:
    """Mark a view as reachable without a staff session (reporter pages, sign-in)."""
    setattr(view, _PUBLIC_ATTR, True)
    return view


def csp_nonce() -> str:
    """The nonce for this response's one inline script."""
    nonce: str = request.environ.setdefault("speakup.csp_nonce", secrets.token_urlsafe(18))
    return nonce


def _content_security_policy() -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' 'nonce-{csp_nonce()}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "manifest-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def set_security_headers(response: Response) -> Response:
    """Headers on every response: no third-party loads, no referrer, no caching of pages."""
    # A response may carry a stricter policy of its own (attachment downloads are sandboxed).
    response.headers.setdefault("Content-Security-Policy", _content_security_policy())
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = (
        "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    )
    response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.endpoint != "static":
        # Case pages and receipts must not linger in a shared device's cache.
        response.headers["Cache-Control"] = "no-store"
    return response


def enforce_default_deny() -> Any:
    """Before every request: public endpoints pass, everything else needs a staff session."""
    if request.endpoint is None or request.endpoint == "static":
        return None
    from flask import current_app

    view = current_app.view_functions.get(request.endpoint)
    if view is not None and getattr(view, _PUBLIC_ATTR, False):
        return None
    if current_user.is_authenticated:
        return None
    return redirect(url_for("accounts.sign_in"))


def init_security(app: Flask) -> None:
    """Install the default-deny check and the headers."""
    app.before_request(enforce_default_deny)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
