"""Integers from URLs and query strings, bounded to what the database can compare.

SQLite raises ``OverflowError`` for an integer past 64 bits, PostgreSQL a numeric-range
error past its column's type (``INTEGER``, 32 bits, for every id here): either way a request
like ``/attachments/99999999999999999999`` answered 500. No row can have such an id, so such
a value is simply no match: 404 in a path, ignored in a filter.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

#: The largest PostgreSQL INTEGER, the type of every id column: no id can be larger. (Should
#: an id column become BIGINT, raise this to 2**63 - 1, SQLite's limit too.)
MAX_ID = 2**31 - 1


class DatabaseIntConverter(IntegerConverter):
    """``<int:…>`` that refuses (404) any value the database cannot hold."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def bounded_int(value: str) -> int:
    """For ``request.args.get(name, type=bounded_int)``: a ``ValueError`` makes Werkzeug
    return the default, exactly as for a value that is not a number at all."""
    number = int(value)
    if not -MAX_ID - 1 <= number <= MAX_ID:
        raise ValueError("out of range")
    return number
