"""Turning a form's uploaded files into sanitised, size-checked files (in memory only)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flask import current_app
from werkzeug.datastructures import FileStorage

from speakup.reporting.attachments import AttachmentError, SanitisedFile, sanitise_attachment
from speakup.reporting.pdf_rebuild import RenderLimits

MEGA = 1_000_000


def pdf_limits(config: Mapping[str, Any]) -> RenderLimits:
    """The PDF renderer's limits from ``[attachments]``."""
    return RenderLimits(
        max_pages=int(config["ATTACHMENTS_MAX_PDF_PAGES"]),
        dpi=float(config["ATTACHMENTS_PDF_DPI"]),
        max_page_pixels=int(float(config["ATTACHMENTS_PDF_MAX_PAGE_MEGAPIXELS"]) * MEGA),
        cpu_seconds=int(config["ATTACHMENTS_PDF_CPU_SECONDS"]),
        memory_bytes=int(config["ATTACHMENTS_PDF_MEMORY_MB"]) * 1024 * 1024,
        timeout_seconds=float(config["ATTACHMENTS_PDF_TIMEOUT_SECONDS"]),
    )


def sanitise_uploads(files: list[FileStorage] | None) -> list[SanitisedFile]:
    """Check count, size and type of each uploaded file and strip its metadata."""
    # A text value posted under a file field's name arrives as a string, not a FileStorage.
    present = [f for f in files or [] if isinstance(f, FileStorage) and f.filename]
    max_count = int(current_app.config["ATTACHMENTS_MAX_COUNT"])
    if len(present) > max_count:
        raise AttachmentError(f"You can attach up to {max_count} files at a time.")
    max_bytes = int(current_app.config["ATTACHMENTS_MAX_BYTES"])
    max_pixels = int(float(current_app.config["ATTACHMENTS_MAX_IMAGE_MEGAPIXELS"]) * MEGA)
    limits = pdf_limits(current_app.config)
    # One wall-time budget for all the PDFs of a request, not one each: five slow PDFs must
    # not hold a worker past its timeout (gunicorn's is 30 s by default).
    deadline = time.monotonic() + limits.timeout_seconds
    cleaned = []
    for upload in present:
        data = upload.stream.read(max_bytes + 1)
        remaining = max(0.1, deadline - time.monotonic())
        limits = replace(limits, timeout_seconds=min(limits.timeout_seconds, remaining))
        cleaned.append(
            sanitise_attachment(
                upload.filename or "file",
                data,
                max_bytes=max_bytes,
                max_image_pixels=max_pixels,
                pdf_limits=limits,
            )
        )
    return cleaned
