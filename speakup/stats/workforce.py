"""Importing workforce headcounts (for relative likelihood) from CSV: all or nothing.

Expected columns: ``organisation_code,year,white,bme,not_stated`` (``year`` is the year the
financial year starts in, e.g. 2026 for 2026/27; ``not_stated`` may be empty). Every row is
checked before anything is written; any error rejects the whole file with every problem
listed by line, so nothing is ever half-imported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select

from speakup.audit.services import record
from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.stats.models import Workforce

REQUIRED = ("organisation_code", "year", "white", "bme")


class WorkforceImportError(ValidationError):
    """The file was rejected; ``problems`` lists every error found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("The workforce file was not imported: " + "; ".join(problems[:20]))
        self.problems = problems


@dataclass(frozen=True)
class ImportResult:
    """How many rows were created or replaced."""

    created: int
    updated: int


def _count(value: str, name: str, line: int, problems: list[str], *, optional: bool = False) -> int:
    text = (value or "").strip().replace(",", "")
    if not text and optional:
        return 0
    if not text.isdigit():
        problems.append(f"line {line}: {name} must be a whole number, not {value!r}")
        return 0
    return int(text)


def import_workforce(data: bytes) -> ImportResult:
    """Validate the whole file, then create or replace each (organisation, year) row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkforceImportError(["the file is not UTF-8 text (save it as CSV UTF-8)"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise WorkforceImportError([f"missing column(s): {', '.join(missing)}"])
    orgs = {o.code: o for o in db.session.scalars(select(Organisation))}
    problems: list[str] = []
    rows: dict[tuple[int, int], tuple[int, int, int]] = {}
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "") for k, v in raw.items() if k}
        code = row.get("organisation_code", "").strip()
        org = orgs.get(code)
        if org is None:
            problems.append(f"line {line}: unknown organisation code {code!r}")
            continue
        year = _count(row.get("year", ""), "year", line, problems)
        if year and not 2000 <= year <= 2100:
            problems.append(f"line {line}: year {year} is out of range")
        white = _count(row.get("white", ""), "white", line, problems)
        bme = _count(row.get("bme", ""), "bme", line, problems)
        not_stated = _count(row.get("not_stated", ""), "not_stated", line, problems, optional=True)
        if (org.id, year) in rows:
            problems.append(f"line {line}: {code} {year} appears twice")
        rows[(org.id, year)] = (white, bme, not_stated)
    if not rows and not problems:
        problems.append("the file has no rows")
    if problems:
        raise WorkforceImportError(problems)
    created = updated = 0
    for (org_id, year), (white, bme, not_stated) in rows.items():
        existing = db.session.scalar(
            select(Workforce).where(Workforce.organisation_id == org_id, Workforce.year == year)
        )
        if existing is None:
            db.session.add(
                Workforce(
                    organisation_id=org_id, year=year, white=white, bme=bme, not_stated=not_stated
                )
            )
            created += 1
        else:
            existing.white, existing.bme, existing.not_stated = white, bme, not_stated
            updated += 1
    record("stats.workforce_imported", actor_kind="system", detail=f"rows={len(rows)}")
    return ImportResult(created, updated)
