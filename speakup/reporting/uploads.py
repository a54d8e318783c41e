"""Turning a form's uploaded files into sanitised, size-checked files (in memory only)."""

from __future__ import annotations

from flask import current_app
from werkzeug.datastructures import FileStorage

from speakup.reporting.attachments import AttachmentError, SanitisedFile, sanitise_attachment


def sanitise_uploads(files: list[FileStorage] | None) -> list[SanitisedFile]:
    """Check count, size and type of each uploaded file and strip its metadata."""
    present = [f for f in files or [] if f is not None and f.filename]
    max_count = int(current_app.config["ATTACHMENTS_MAX_COUNT"])
    if len(present) > max_count:
        raise AttachmentError(f"You can attach up to {max_count} files at a time.")
    max_bytes = int(current_app.config["ATTACHMENTS_MAX_BYTES"])
    cleaned = []
    for upload in present:
        data = upload.stream.read(max_bytes + 1)
        cleaned.append(sanitise_attachment(upload.filename or "file", data, max_bytes=max_bytes))
    return cleaned
