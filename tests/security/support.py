"""Helpers for the security tests: canaries, scanning stored bytes, logs and temp files,
and driving the reporter and guardian through the real web forms."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin
from sqlalchemy import inspect, text

from speakup.cases.models import Case
from speakup.extensions import db

RECEIPT_RE = re.compile(r'data-testid="receipt">([0-9A-Z-]+)<')


def new_canary(label: str) -> str:
    """A unique marker. Underscores keep it clear of the log filter's receipt pattern
    (four groups of four letters or digits), so a leak cannot hide behind redaction."""
    return f"zq_canary_{label}_{secrets.token_hex(6)}"


# --- encodings ----------------------------------------------------------------------------


def _base64_fragments(value: bytes, encoder: Any) -> Iterator[bytes]:
    """The part of the base64 text fully determined by ``value``, at each of the three byte
    alignments it can have inside a longer encoded string."""
    for offset in range(3):
        encoded = encoder(b"\0" * offset + value).rstrip(b"=")
        start = -(-offset * 8 // 6)  # first character whose bits all come from ``value``
        end = (offset + len(value)) * 8 // 6  # last complete character
        yield encoded[start:end]


def encoded_forms(value: str) -> dict[str, bytes]:
    """The byte strings a stored or logged copy of ``value`` could look like."""
    raw = value.encode()
    forms = {
        "utf-8": raw,
        "utf-16-le": value.encode("utf-16-le"),
        "utf-16-be": value.encode("utf-16-be"),
        "hex": binascii.hexlify(raw),
        "HEX": binascii.hexlify(raw).upper(),
    }
    for i, fragment in enumerate(_base64_fragments(raw, base64.b64encode)):
        forms[f"base64@{i}"] = fragment
    for i, fragment in enumerate(_base64_fragments(raw, base64.urlsafe_b64encode)):
        forms[f"base64url@{i}"] = fragment
    return forms


def find_leaks(blob: bytes, needles: dict[str, str], where: str) -> list[str]:
    """Every (needle, encoding) found in ``blob``, described for an assertion message."""
    hits = []
    for name, value in needles.items():
        for form, encoded in encoded_forms(value).items():
            if encoded and encoded in blob:
                hits.append(f"{name} ({form}) in {where}")
    return hits


# --- what is stored -------------------------------------------------------------------------


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes | bytearray):
        return bytes(value) + b"\n" + repr(bytes(value)).encode()
    return str(value).encode() + b"\n" + repr(value).encode()


def dump_database() -> bytes:
    """Every value of every row of every table the database holds (not only our models),
    as raw bytes and as ``repr``."""
    chunks = []
    preparer = db.engine.dialect.identifier_preparer
    for table in inspect(db.engine).get_table_names():
        rows = db.session.execute(text(f"SELECT * FROM {preparer.quote(table)}"))  # noqa: S608
        for row in rows:
            chunks.append(f"[{table}]".encode())
            chunks.extend(_value_bytes(value) for value in row)
    return b"\n".join(chunks)


def all_byte_values() -> list[bytes]:
    """Every binary value in the database: candidate keys for an attacker holding a dump."""
    values: set[bytes] = set()
    preparer = db.engine.dialect.identifier_preparer
    for table in inspect(db.engine).get_table_names():
        rows = db.session.execute(text(f"SELECT * FROM {preparer.quote(table)}"))  # noqa: S608
        for row in rows:
            for value in row:
                if isinstance(value, memoryview):
                    value = value.tobytes()
                if isinstance(value, bytes) and value:
                    values.add(value)
                elif isinstance(value, str) and value:
                    values.add(value.encode())
    return sorted(values)


def sqlite_files(app: Flask) -> list[Path]:
    """The SQLite database file and its WAL and shared-memory files (if present)."""
    with app.app_context():
        database = db.engine.url.database
    assert database, "not an on-disk SQLite database"
    main = Path(database)
    return [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def is_sqlite(app: Flask) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "sqlite"


def read_tree(root: Path) -> Iterator[tuple[Path, bytes]]:
    """(path, bytes) of every regular file under ``root``."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path, path.read_bytes()


class TempDirWatch:
    """Which files in the system temp directory appeared or changed while a test ran."""

    MAX_BYTES = 64 * 1024 * 1024

    def __init__(self) -> None:
        self.root = Path(tempfile.gettempdir())
        self.started = time.time() - 1  # mtime granularity on some filesystems
        self.before = set(self._listing())

    def _listing(self) -> Iterator[Path]:
        for dirpath, _dirs, files in os.walk(self.root, onerror=lambda _e: None):
            for name in files:
                yield Path(dirpath) / name

    def changed_files(self) -> Iterator[tuple[Path, bytes]]:
        """New files, and files modified since the watch started."""
        for path in self._listing():
            try:
                stat = path.lstat()
            except OSError:
                continue
            if not _is_regular(stat.st_mode) or stat.st_size > self.MAX_BYTES:
                continue
            if path in self.before and stat.st_mtime < self.started:
                continue
            try:
                yield path, path.read_bytes()
            except OSError:
                continue


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


# --- logs -------------------------------------------------------------------------------------


class RawRecords(logging.Handler):
    """Records every message before any filter (including the app's redaction backstop)
    can rewrite it: the code itself must not log secrets, not merely have them redacted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still evidence
            message = f"{record.msg!r} {record.args!r}"
        self.messages.append(f"{record.name} {record.levelname} {message} {record.exc_text}")


@dataclass
class LogCapture:
    """Everything logged at any level by any logger during a test."""

    raw: RawRecords
    restored: list[tuple[logging.Logger, int]] = field(default_factory=list)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.raw)
        for logger, level in self.restored:
            logger.setLevel(level)


def capture_all_logs(caplog: Any) -> LogCapture:
    """caplog at DEBUG on the root and every named logger, plus a raw pre-filter handler."""
    caplog.set_level(logging.DEBUG)
    capture = LogCapture(RawRecords())
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        capture.restored.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.handlers.insert(0, capture.raw)
    return capture


def log_text(caplog: Any, capture: LogCapture) -> bytes:
    """Everything the logs and captured records hold, as one blob."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    parts.extend(capture.raw.messages)
    return "\n".join(parts).encode(errors="backslashreplace")


# --- files to attach ----------------------------------------------------------------------------


def png_with_text(marker: str) -> bytes:
    """A small PNG carrying ``marker`` in text chunks (which must be stripped and encrypted)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", marker)
    info.add_text("Comment", marker, zip=False)
    info.add_itxt("Description", marker)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


# --- driving the web forms -------------------------------------------------------------------


def report_form(org_id: int, **fields: Any) -> dict[str, Any]:
    """The report form's fields, with sensible defaults."""
    data: dict[str, Any] = {
        "organisation": str(org_id),
        "route": "organisation",
        "what_happened": "Something happened at handover.",
        "when": "",
        "disclosure_mode": "anonymous",
        "escalation_consent": "no",
        "submission_token": secrets.token_urlsafe(16),
    }
    data.update(fields)
    return data


def post_report(client: FlaskClient, data: dict[str, Any], **kwargs: Any) -> Any:
    """POST the report form as a browser would (multipart)."""
    return client.post("/report", data=data, content_type="multipart/form-data", **kwargs)


def receipt_from(response: Any) -> str:
    """The receipt shown on the confirmation page."""
    assert response.status_code == 200, response.data.decode()[:3000]
    match = RECEIPT_RE.search(response.data.decode())
    assert match, "no receipt on the confirmation page"
    return match.group(1)


def only_case() -> Case:
    """The single case in the database."""
    return db.session.scalars(db.select(Case)).one()


def attachment_links(html: str, prefix: str) -> list[str]:
    """Attachment download links under ``prefix`` on a case page."""
    return sorted(set(re.findall(rf'href="({re.escape(prefix)}[^"]*/attachments/\d+)"', html)))


def strip_nonce(body: bytes) -> bytes:
    """Remove the per-response CSP nonce so two pages can be compared byte for byte."""
    return re.sub(rb"nonce(?:-|=\")[A-Za-z0-9_\-]+", b"nonce", body)


def table_counts(models: Iterable[Any]) -> dict[str, int]:
    """Row counts of the given models."""
    return {
        m.__name__: db.session.scalar(db.select(db.func.count()).select_from(m)) or 0
        for m in models
    }


# --- files opened for writing ------------------------------------------------------------------


class WriteWatch:
    """Records every file Python opens for writing (including anonymous temporary files,
    which no directory listing can see) while active.

    Audit hooks cannot be removed, so one hook is installed per process and does nothing
    unless a watch is active. SQLite writes from C and is not seen here (the database files
    are scanned separately).
    """

    _installed = False
    _active: WriteWatch | None = None

    def __init__(self) -> None:
        self.opened: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        watch = cls._active
        if watch is None:
            return
        if event == "open":
            path, mode, flags = args
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(flags, int):
                writing = writing or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing:
                watch.opened.append(f"open {path!r} mode={mode!r} flags={flags!r}")
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "os.mkdir", "os.rename"):
            watch.opened.append(f"{event} {args!r}")

    def __enter__(self) -> WriteWatch:
        if not WriteWatch._installed:
            import sys

            sys.addaudithook(WriteWatch._hook)
            WriteWatch._installed = True
        WriteWatch._active = self
        return self

    def __exit__(self, *_exc: object) -> None:
        WriteWatch._active = None


def multipart(fields: dict[str, Any]) -> tuple[bytes, str]:
    """Encode a multipart body in memory (the test client would spool a large one to a
    temporary file of its own, which would hide the server's behaviour)."""
    from werkzeug.datastructures import FileStorage, MultiDict
    from werkzeug.test import encode_multipart

    items = MultiDict()
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, tuple):
                data, filename = item
                item = FileStorage(io.BytesIO(data), filename=filename)
            items.add(name, item)
    boundary, body = encode_multipart(items)
    return body, f"multipart/form-data; boundary={boundary}"
