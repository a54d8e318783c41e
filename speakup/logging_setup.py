"""Privacy-safe logging: named loggers, and a redaction filter as a backstop.

Code must never log an address, a user agent, a receipt or report text. The filter below is
the backstop: it drops anything shaped like an IP address or a receipt from every record.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b")
# The receipt's real shape (speakup.crypto.receipt): 16 characters of Crockford base32 — no I,
# L, O or U — shown as four groups of four. Matching "any 16 letters" redacted error class
# names such as OperationalError and ProgrammingError and hid the cause of outages, so:
# grouped with one separator throughout, in either case; or run together in a single case
# (as normalised, or typed in lower case). CamelCase words never match, and neither do words
# containing i, l, o or u. A receipt typed with the look-alike letters (O for 0) is not caught:
# the backstop favours readable logs there, and code must not log receipts at all.
_CROCKFORD = "0-9A-HJKMNP-TV-Z"
_GROUP = f"[{_CROCKFORD}]{{4}}"
_RECEIPT = re.compile(
    rf"\b(?:{_GROUP}([- ]){_GROUP}\1{_GROUP}\1{_GROUP}"
    rf"|(?-i:[{_CROCKFORD}]{{16}})|(?-i:[{_CROCKFORD.lower()}]{{16}}))\b",
    re.IGNORECASE,
)


class RedactionFilter(logging.Filter):
    """Replace address- and receipt-shaped text in every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for pattern, label in ((_IPV4, "[addr]"), (_IPV6, "[addr]"), (_RECEIPT, "[redacted]")):
            message = pattern.sub(label, message)
        record.msg = message
        record.args = None
        return True


def configure_logging(app: Flask) -> None:
    """Attach the redaction filter to every handler of the root and werkzeug loggers.

    Werkzeug's development-server access log prints the client address on every line, so it
    is silenced below WARNING; production runs gunicorn with its access log off.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    redaction = RedactionFilter()
    root = logging.getLogger()
    if not root.handlers:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, RedactionFilter) for f in handler.filters):
            handler.addFilter(redaction)
    # Our own loggers speak at INFO; libraries (Alembic, SQLAlchemy…) only when it matters.
    root.setLevel(app.config.get("LOG_LEVEL_LIBRARIES", "WARNING"))
    logging.getLogger("speakup").setLevel(app.config.get("LOG_LEVEL", "INFO"))
