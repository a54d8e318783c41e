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
#: four groups of four, with the same separator (or none) between every group
_RECEIPT = re.compile(r"\b[0-9A-Za-z]{4}([- ]?)[0-9A-Za-z]{4}\1[0-9A-Za-z]{4}\1[0-9A-Za-z]{4}\b")


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
