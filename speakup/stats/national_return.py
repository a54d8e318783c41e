"""The national quarterly return per organisation, through a versioned field mapping.

Counts are exact (the return goes to the national collection, which applies its own
disclosure rules) and are shown only to the organisation's lead guardian for sign-off.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from speakup.extensions import db
from speakup.stats.facts import elements_mask
from speakup.stats.models import Fact

MAPPINGS = Path(__file__).resolve().parent.parent.parent / "config" / "national_return"
CURRENT_VERSION = "2025-26"


@dataclass(frozen=True)
class ReturnLine:
    """One field of the return."""

    name: str
    label: str
    value: int


@lru_cache(maxsize=8)
def load_mapping(version: str = CURRENT_VERSION) -> dict[str, Any]:
    """The field mapping of one collection version."""
    path = MAPPINGS / f"{version}.toml"
    if not path.is_file():
        raise ValueError(f"no national return mapping for version {version!r}")
    with open(path, "rb") as fh:
        mapping: dict[str, Any] = tomllib.load(fh)
    return mapping


def _count(field: dict[str, Any], organisation_id: int, period: str) -> int:
    query = (
        select(func.count())
        .select_from(Fact)
        .where(
            Fact.kind == field["kind"],
            Fact.period == period,
            Fact.organisation_id == organisation_id,
            # Concerns sent to the regional pool or panel exist to avoid the trust: its
            # return counts only those its own guardians received. (Facts written before
            # answers and detriment carried their route have none, and still count.)
            or_(Fact.route.is_(None), Fact.route == "organisation"),
        )
    )
    for column, wanted in field.get("where", {}).items():
        attr = getattr(Fact, column)
        options = wanted if isinstance(wanted, list) else [wanted]
        conditions = [attr.is_(None) if value == "" else attr == value for value in options]
        query = query.where(or_(*conditions))
    if "element" in field:
        bit = elements_mask([field["element"]])
        query = query.where(Fact.elements_mask.op("&")(bit) != 0)
    return int(db.session.scalar(query) or 0)


def build_return(
    organisation_id: int, period: str, version: str = CURRENT_VERSION
) -> list[ReturnLine]:
    """Every field of the return for one organisation and quarter."""
    mapping = load_mapping(version)
    return [
        ReturnLine(field["name"], field["label"], _count(field, organisation_id, period))
        for field in mapping["fields"]
    ]


def return_csv(organisation_code: str, period: str, lines: list[ReturnLine], version: str) -> str:
    """The CSV file for upload to the national collection."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["organisation_code", "period", "mapping_version", "field", "label", "value"])
    for line in lines:
        writer.writerow([organisation_code, period, version, line.name, line.label, line.value])
    return out.getvalue()
