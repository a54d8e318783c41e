"""A safe HTTP response for a decrypted attachment."""

from __future__ import annotations

from flask import Response

from speakup.cases.content import AttachmentView


def attachment_response(view: AttachmentView, data: bytes) -> Response:
    """Always a download with the real type; never rendered inline, never cached."""
    response = Response(data, mimetype=view.content_type)
    response.headers.set("Content-Disposition", "attachment", filename=view.filename)
    response.headers["Cache-Control"] = "no-store"
    # Even if a browser tried to render it, it would get no script and no origin.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; sandbox; frame-ancestors 'none'"
    )
    return response
