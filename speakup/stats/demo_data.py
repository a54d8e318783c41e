"""Synthetic statistics for the demo, so the leaders' dashboard has something to show.

Clearly demo: generated from a fixed seed (not from cases), for the last few quarters that
are due, with workforce headcounts; each quarter is then released through the real release
job, disclosure control and audit included. Never run against a production database.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from speakup.cases.categories import NATIONAL_ELEMENTS, RACE_EQUALITY_CODES
from speakup.extensions import db
from speakup.organisations.models import Organisation
from speakup.stats.facts import elements_mask, race_mask
from speakup.stats.models import Fact, Release, Workforce
from speakup.stats.periods import Quarter, latest_releasable
from speakup.stats.release import release_period
from speakup.stats.vocab import ETHNIC_GROUPS, PAY_BANDS, STAFF_GROUPS

_TTC = ["under_1_month", "1_to_3_months", "3_to_6_months", "6_to_12_months"]
_CODES = [c for c, _, _ in ETHNIC_GROUPS]


def _workforce(rng: random.Random, orgs: list[Organisation], year: int) -> None:
    for org in orgs:
        exists = db.session.scalar(
            select(Workforce.id).where(Workforce.organisation_id == org.id, Workforce.year == year)
        )
        if exists is not None:
            continue
        size = rng.randint(2500, 9000)
        bme = int(size * rng.uniform(0.18, 0.45))
        db.session.add(
            Workforce(
                organisation_id=org.id,
                year=year,
                white=size - bme,
                bme=bme,
                not_stated=rng.randint(50, 300),
            )
        )


def _one_concern(rng: random.Random, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The facts one made-up concern would produce."""
    route = rng.choices(["organisation", "pool", "panel"], [70, 22, 8])[0]
    mode = rng.choices(["anonymous", "confidential", "open"], [35, 45, 20])[0]
    said = rng.random() < 0.7
    where = base | {"route": route, "disclosure_mode": mode}
    facts = [
        where
        | {
            "kind": "submitted",
            "ethnicity": rng.choice(_CODES) if said else None,
            "staff_group": rng.choice(STAFF_GROUPS)[0] if said else None,
            "pay_band": rng.choice(PAY_BANDS)[0] if said else None,
        }
    ]
    if rng.random() < 0.85:
        elements = [c for c, _ in NATIONAL_ELEMENTS if rng.random() < 0.3]
        races = [c for c, _ in RACE_EQUALITY_CODES if rng.random() < 0.15]
        facts.append(
            where
            | {
                "kind": "triaged",
                "elements_mask": elements_mask(elements),
                "race_mask": race_mask(races),
            }
        )
    if rng.random() < 0.6:
        facts.append(
            where
            | {
                "kind": "closed",
                "outcome": rng.choices(["closed", "withdrawn"], [9, 1])[0],
                "ttc_bucket": rng.choice(_TTC),
                "ack_met": rng.random() < 0.8,
                "feedback_met": rng.choice([True, True, False, None]),
            }
        )
    if rng.random() < 0.4:
        answer = rng.choices(["yes", "no", "maybe", "dont_know"], [55, 15, 20, 10])[0]
        facts.append(base | {"kind": "speak_up_again", "answer": answer})
    if rng.random() < 0.05:
        facts.append(base | {"kind": "detriment"})
    return facts


def synthetic_facts(rng: random.Random, orgs: list[Organisation], quarter: Quarter) -> list[dict]:
    """A quarter of made-up facts, shuffled, with random keys."""
    facts: list[dict[str, Any]] = []
    for org in orgs:
        base = {"period": quarter.key, "organisation_id": org.id, "system_id": org.system_id}
        volume = rng.randint(6, 40) if org.kind == "trust" else rng.randint(1, 8)
        for _ in range(volume):
            facts += _one_concern(rng, base)
    rng.shuffle(facts)
    for fact in facts:
        fact["id"] = secrets.token_hex(16)
    return facts


def load_demo_statistics(
    now: datetime, config: Mapping[str, Any], quarters: int = 4, seed: int = 2026
) -> list[str]:
    """Facts, workforce and a release for each of the last ``quarters`` due quarters."""
    rng = random.Random(seed)  # noqa: S311  # nosec B311 (made-up demo figures, not security)
    orgs = list(db.session.scalars(select(Organisation).order_by(Organisation.id)))
    latest = latest_releasable(now, int(config["STATS_RELEASE_LAG_DAYS"]))
    wanted = [latest]
    while len(wanted) < quarters:
        wanted.append(wanted[-1].previous())
    for year in sorted({q.year for q in wanted}):
        _workforce(rng, orgs, year)
    done = []
    for quarter in sorted(wanted):
        if db.session.scalar(select(Release.id).where(Release.period == quarter.key)):
            continue
        db.session.execute(insert(Fact), synthetic_facts(rng, orgs, quarter))
        # Made-up figures: the insider audit (one more audit per organisation, 33 in the
        # demo region) would make `make run` take many minutes for nothing to protect.
        release_period(quarter, config, now, audit_insiders=False)
        db.session.commit()
        done.append(quarter.label)
    return done
