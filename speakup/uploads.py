"""A request class that never spools an upload to a temporary file.

Werkzeug writes uploads above 500 KB to a temporary file before our code sees them. A report's
attachment must never touch the disk unencrypted (DESIGN §3.1), so every file part is parsed
into memory; ``MAX_CONTENT_LENGTH`` bounds how much that can be.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request


class InMemoryUploadRequest(Request):
    """Flask request whose file parts live in :class:`io.BytesIO`."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()
