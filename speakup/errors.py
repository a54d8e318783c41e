"""Domain exceptions and their mapping to HTTP responses, in one place."""

from __future__ import annotations

import contextlib
import logging
import re

from flask import Flask, render_template
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("speakup.errors")


class SpeakupError(Exception):
    """Base class for domain errors shown to the user with a safe message."""

    status_code = 400
    public_message = "Something went wrong with that request."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.public_message)
        self.message = message or self.public_message


class NotFoundError(SpeakupError):
    """The object does not exist or the caller may not know it exists."""

    status_code = 404
    public_message = "Page not found."


class ForbiddenError(SpeakupError):
    """The caller is signed in but may not do this."""

    status_code = 403
    public_message = "You do not have access to this page."


class ValidationError(SpeakupError):
    """Input that a form could not catch (for example, a routing rule)."""

    status_code = 400


class ConflictError(SpeakupError):
    """Someone else changed the object first."""

    status_code = 409
    public_message = "This case was changed by someone else. Here is its latest state."


DATABASE_DOWN = (
    "The service cannot reach its database at the moment, so what you just did may not have "
    "been saved. Please wait a few minutes and try again. If you were sending a report and "
    "did not see a receipt, please send it again."
)


def _in_words(class_name: str) -> str:
    """``OperationalError`` -> ``operational error``: the redaction filter would take a
    16-letter class name for a receipt and hide it."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", class_name).lower()


def _discard_session() -> None:
    """Drop the failed transaction; a dead connection may refuse even that."""
    from speakup.extensions import db

    # The connection may be gone; the pool replaces it on the next checkout.
    with contextlib.suppress(Exception):
        db.session.rollback()


def register_error_handlers(app: Flask) -> None:
    """Render errors with our templates; never leak a traceback or request detail."""

    @app.errorhandler(SpeakupError)
    def handle_domain_error(error: SpeakupError):  # type: ignore[no-untyped-def]
        return (
            render_template("errors/error.html", status=error.status_code, message=error.message),
            error.status_code,
        )

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        status = error.code or 500
        messages = {
            400: "The request could not be understood. Nothing was saved; please try again.",
            403: "You do not have access to this page.",
            404: "Page not found.",
            405: "That action is not allowed here.",
            413: "What you sent is too large. Attachments can be at most 10 MB each.",
            429: "Too many attempts. Please wait a few minutes and try again.",
        }
        message = messages.get(status, "Sorry, there is a problem with the service.")
        return render_template("errors/error.html", status=status, message=message), status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeoutError)
    def handle_database_down(error: Exception):  # type: ignore[no-untyped-def]
        # The database went away (restart, failover, network) or the pool is exhausted: a
        # temporary outage, not a bug, so 503 with our own page, also in tests. The request's
        # transaction never committed, so nothing half-written remains.
        log.error("database unavailable (%s)", _in_words(type(error).__name__))
        _discard_session()
        return render_template("errors/error.html", status=503, message=DATABASE_DOWN), 503

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):  # type: ignore[no-untyped-def]
        if app.testing:
            raise error  # let tests see the real failure
        # Log the type only: the message could quote user input.
        log.error("unhandled %s", type(error).__name__)
        message = "Sorry, there is a problem with the service. Please try again later."
        return render_template("errors/error.html", status=500, message=message), 500
