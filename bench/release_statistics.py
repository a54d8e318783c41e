"""Releasing a quarter of statistics over many facts, and the dashboard that reads it, as
ratios to a plain GROUP BY over the same facts.

The statistics release (DESIGN §7) counts a closed quarter's facts into the fixed table
catalogue for every scope, runs disclosure control and its linear-programming audit,
renders the charts and freezes the result. The dashboard then reads only the frozen tables.
This benchmark loads the Midlands demo geography, inserts N facts (default 1,000,000) for
one quarter, and measures in the same process:

1. the baseline: one plain ``SELECT organisation_id, kind, route, disclosure_mode, count(*)
   … WHERE period = ? GROUP BY …``, and the same set of GROUP BYs that
   ``count_by_organisation`` issues (one per catalogue table), run as plain SQL;
2. ``count_by_organisation`` itself (those GROUP BYs plus its Python);
3. the whole ``release_period`` plus its commit, broken down into counting, building the
   cells, suppression, the audit's integer programmes, the charts and writing;
4. ``GET /staff/statistics/`` for a signed-in region leader and organisation leader, and one
   chart ``.svg``, over R requests — for this quarter and for a demo-sized one;

and prints them side by side for SQLite and PostgreSQL, with release ÷ baseline and
dashboard ÷ baseline. It also lists the indexes on ``fact``, the query plans, and how the
catalogue's GROUP BYs fare with a forced full scan and with one extra composite index
(created in the throwaway database only).

Run from the repository root::

    .venv/bin/python bench/release_statistics.py [--facts N] [--both]
        [--database-url URL] [--requests R] [--repeats Q]

See bench/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable without an editable install
    sys.path.insert(0, str(ROOT))

import pyotp  # noqa: E402
from benchkit import (  # noqa: E402
    BenchError,
    app_config,
    cpu_seconds,
    peak_rss_mib,
    throwaway_postgres,
)
from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, event, func, inspect, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import speakup.demo  # noqa: E402
import speakup.stats.catalogue as catalogue  # noqa: E402
import speakup.stats.disclosure as disclosure  # noqa: E402
import speakup.stats.release as release_mod  # noqa: E402
from speakup import create_app  # noqa: E402
from speakup.accounts.models import Role  # noqa: E402
from speakup.accounts.services import create_user, new_totp_secret  # noqa: E402
from speakup.db import utcnow  # noqa: E402
from speakup.extensions import db  # noqa: E402
from speakup.organisations.models import Organisation, Region, System  # noqa: E402
from speakup.organisations.services import find_scope  # noqa: E402
from speakup.settings import argon2_params  # noqa: E402
from speakup.stats.demo_data import _one_concern  # noqa: E402
from speakup.stats.models import Fact, Release, ReleaseTable  # noqa: E402
from speakup.stats.periods import Quarter  # noqa: E402

#: the big quarter and a demo-sized one released before it (so both are on the dashboard)
BIG = Quarter(2025, 3)
SMALL = Quarter(2025, 2)
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench leader password"
#: a composite index tried in the throwaway database only
EXTRA_INDEX = ("bench_fact_period_kind_org", ("period", "kind", "organisation_id"))


# Small helpers -------------------------------------------------------------------------


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Sample:
    """Repeated wall-clock timings (seconds) and the process CPU they used."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @contextmanager
    def timed(self) -> Iterator[None]:
        t0, c0 = time.perf_counter(), cpu_seconds()
        yield
        self.wall.append(time.perf_counter() - t0)
        self.cpu.append(cpu_seconds() - c0)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.wall)

    @property
    def p95(self) -> float:
        return p95(self.wall)


class PhaseClock:
    """Wrap module functions so each call adds its wall-clock and process CPU time to a
    named phase."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._restore: list[tuple[Any, str, Any]] = []

    def add(self, phase: str, t0: float, c0: float) -> None:
        self.wall[phase] += time.perf_counter() - t0
        self.cpu[phase] += cpu_seconds() - c0

    def wrap(self, module: Any, attr: str, phase: str) -> None:
        original = getattr(module, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), cpu_seconds()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(phase, t0, c0)
                self.calls[phase] += 1

        setattr(module, attr, timed)
        self._restore.append((module, attr, original))

    def restore(self) -> None:
        for module, attr, original in reversed(self._restore):
            setattr(module, attr, original)
        self._restore.clear()


# Where the database lives ----------------------------------------------------------------


@dataclass
class Target:
    url: str
    name: str  # column heading
    label: str


@contextmanager
def database_target(arg: str | None, instance: Path) -> Iterator[Target]:
    """SQLite in the temporary folder, or a throwaway PostgreSQL database created next to
    the one named in ``arg`` and dropped afterwards (the named database is not touched)."""
    if not arg:
        version = _sqlite_version()
        yield Target(f"sqlite:///{instance / 'speakup.db'}", "SQLite", f"{version}, temp file")
        return
    url = make_url(arg)
    if not url.drivername.startswith("postgresql"):
        raise BenchError("--database-url must be a PostgreSQL URL (SQLite is the default)")
    with throwaway_postgres(url) as db_:
        yield Target(
            db_.url,
            "PostgreSQL",
            f"{db_.server_version.split()[0]}, throwaway database {db_.name} (dropped afterwards)",
        )


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


# The app, the geography, the leaders ------------------------------------------------------


def build_app(database_url: str, instance: Path) -> Flask:
    """The real app with fresh secrets. Argon2id is lowered (it only guards the bench
    leaders' accounts here, and is not what is measured), which ``validate`` allows only
    with ``TESTING``; nothing else that ``TESTING`` changes is on the measured path."""
    return create_app(
        app_config(
            database_url,
            instance,
            TESTING=True,
            ARGON2_TIME_COST=1,
            ARGON2_MEMORY_KIB=1024,
            ARGON2_PARALLELISM=1,
        )
    )


@dataclass
class Leader:
    email: str
    totp_secret: str
    scope: str


def make_leaders(app: Flask) -> list[Leader]:
    """A region leader and an organisation leader, pre-enrolled in TOTP."""
    leaders = []
    for scope in ("region:MIDLANDS", "organisation:BSOL-H"):
        secret = new_totp_secret()
        email = f"bench.{scope.split(':')[0]}.leader@example.test"
        create_user(
            email=email,
            display_name=f"Bench {scope} leader",
            role=Role.LEADER,
            password=PASSWORD,
            params=argon2_params(app.config),
            totp_secret=secret,
            scope=find_scope(scope),
        )
        leaders.append(Leader(email, secret, scope))
    db.session.commit()
    return leaders


def signed_in_client(app: Flask, leader: Leader) -> Any:
    client = app.test_client()
    response = client.post("/staff/sign-in", data={"email": leader.email, "password": PASSWORD})
    if response.status_code != 302:
        raise BenchError(f"sign-in as {leader.email} → {response.status_code}")
    code = pyotp.TOTP(leader.totp_secret).now()
    response = client.post("/staff/sign-in/code", data={"code": code})
    if response.status_code != 302 or "/staff/statistics/" not in response.location:
        raise BenchError(f"second factor for {leader.email} → {response.status_code}")
    return client


# Facts ----------------------------------------------------------------------------------


@dataclass
class Loaded:
    facts: int
    concerns: int
    seconds: float


def generate_facts(
    rng: random.Random, orgs: list[tuple[int, int, str]], quarter: Quarter, total: int, chunk: int
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Exactly ``total`` facts in chunks, from made-up concerns drawn like the demo's
    (``speakup.stats.demo_data._one_concern``), each from an organisation picked with a
    weight drawn from the demo's per-quarter volumes: 6–40 for a trust, 1–8 for an ICB.
    Random 128-bit keys from the same seeded generator, so every run has the same facts."""
    columns = [c.name for c in Fact.__table__.columns]
    empty = dict.fromkeys(columns)
    weights = [rng.uniform(6, 40) if kind == "trust" else rng.uniform(1, 8) for *_, kind in orgs]
    cumulative = list(itertools.accumulate(weights))
    bases = [
        {"period": quarter.key, "organisation_id": org, "system_id": system}
        for org, system, _ in orgs
    ]
    made = 0
    while made < total:
        rows: list[dict[str, Any]] = []
        concerns = 0
        while len(rows) < min(chunk, total - made):
            base = rng.choices(bases, cum_weights=cumulative)[0]
            concerns += 1
            for fact in _one_concern(rng, base):
                row = empty | fact
                row["id"] = f"{rng.getrandbits(128):032x}"
                rows.append(row)
        rows = rows[: total - made]
        made += len(rows)
        yield rows, concerns


def _insert_engine(url: str) -> Engine:
    """A separate engine for loading only: a big page cache and no fsync on SQLite. The
    app's own engine (and its per-connection settings) is what the measurements use."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA cache_size=-262144")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    return engine


def load_facts(
    url: str, orgs: list[tuple[int, int, str]], quarter: Quarter, total: int, seed: int, chunk: int
) -> Loaded:
    """Insert the facts: SQLAlchemy Core ``insert(Fact)`` executemany in chunks on SQLite;
    ``COPY`` on PostgreSQL (about 6× faster here than executemany, and loading is not what
    is measured)."""
    rng = random.Random(seed)  # noqa: S311  (made-up figures, not security)
    engine = _insert_engine(url)
    table = Fact.__table__
    columns = [c.name for c in table.columns]
    concerns = 0
    t0 = time.perf_counter()
    try:
        for rows, n in generate_facts(rng, orgs, quarter, total, chunk):
            concerns += n
            rows.sort(key=lambda r: r["id"])  # kinder to the primary-key B-tree
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    copy_sql = f"COPY fact ({', '.join(columns)}) FROM STDIN"
                    with cursor.copy(copy_sql) as copy:
                        for row in rows:
                            copy.write_row([row[c] for c in columns])
                else:
                    conn.execute(table.insert(), rows)
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return Loaded(total, concerns, time.perf_counter() - t0)


# The queries ----------------------------------------------------------------------------


def one_group_by(period: str) -> Any:
    """The baseline: one pass over the quarter's facts."""
    columns = (Fact.organisation_id, Fact.kind, Fact.route, Fact.disclosure_mode)
    return select(*columns, func.count()).where(Fact.period == period).group_by(*columns)


def catalogue_queries(period: str) -> list[Any]:
    """The SELECTs ``count_by_organisation`` issues: it is run once with
    ``catalogue._grouped`` replaced by a recorder that builds the same query.
    :func:`check_same_sql` then checks them against what a real run sends."""
    captured: list[Any] = []
    original = catalogue._grouped

    def record(family: str, period_: str, columns: list) -> list:
        captured.append(
            select(Fact.organisation_id, *columns, func.count())
            .where(Fact.kind == family, Fact.period == period_)
            .group_by(Fact.organisation_id, *columns)
        )
        return []

    catalogue._grouped = record  # type: ignore[assignment]
    try:
        catalogue.count_by_organisation(period)
    finally:
        catalogue._grouped = original  # type: ignore[assignment]
    return captured


def check_same_sql(queries: list[Any], period: str) -> None:
    """Fail if ``count_by_organisation`` no longer sends exactly these statements."""
    sent: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        catalogue.count_by_organisation(period)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    expected = [str(q.compile(dialect=db.engine.dialect)) for q in queries]
    if sent != expected:
        raise BenchError("count_by_organisation's queries differ from the bench's copy of them")


def plain_sql(query: Any) -> str:
    """A SELECT as the SQL text the database receives (constants inlined)."""
    return str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))


def run_sql(statements: list[str]) -> int:
    rows = 0
    for sql in statements:
        rows += len(db.session.execute(text(sql)).all())
    return rows


def query_plan(sql: str) -> str:
    """The scan part of the plan, on one line."""
    if db.engine.dialect.name == "sqlite":
        rows = db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all()
        return "; ".join(str(r[-1]) for r in rows)
    rows = db.session.execute(text(f"EXPLAIN {sql}")).all()
    scans = [r[0].strip(" ->") for r in rows if "Scan" in r[0]]
    scans = [re.sub(r"\s+\(cost=.*", "", s) for s in scans]
    return "; ".join(scans)


@contextmanager
def full_scan(statements: list[str]) -> Iterator[list[str]]:
    """The same statements with index use switched off."""
    if db.engine.dialect.name == "sqlite":
        yield [re.sub(r"\bFROM fact\b", "FROM fact NOT INDEXED", s) for s in statements]
        return
    for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
        db.session.execute(text(f"SET {setting} = off"))
    try:
        yield statements
    finally:
        for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            db.session.execute(text(f"RESET {setting}"))


def fact_indexes() -> list[str]:
    found = [
        f"{ix['name']}({', '.join(c for c in ix['column_names'] if c)})"
        for ix in inspect(db.engine).get_indexes("fact")
    ]
    return ["primary key(id)", *sorted(found)]


def storage_mib(instance: Path) -> float:
    if db.engine.dialect.name == "sqlite":
        path = Path(db.engine.url.database or instance / "speakup.db")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
    size = db.session.scalar(text("SELECT pg_total_relation_size('fact')"))
    return float(size or 0) / 2**20


# Releasing, phase by phase ---------------------------------------------------------------


PHASES = [
    ("count", "counting (count_by_organisation)"),
    ("cells", "cells + constraints (build_cells)"),
    ("suppress", "disclosure control: suppression"),
    ("audit", "disclosure control: audit"),
    ("charts", "charts"),
    ("write", "payloads + ORM rows"),
    ("flush", "flush (INSERT release tables)"),
    ("commit", "commit"),
    ("other", "inbox shuffle + geography"),
]


@dataclass
class ReleaseRun:
    facts: int
    total: float
    cpu: float
    #: phase → (wall-clock seconds, process CPU seconds)
    phases: dict[str, tuple[float, float]]
    cells: int
    primary: int
    complementary: int
    iterations: int
    lps: int
    charts: int
    tables: int
    svg_mib: float


def timed_release(app: Flask, quarter: Quarter, facts: int) -> ReleaseRun:
    """``release_period`` and its commit, with its parts timed by wrapping the functions it
    calls through module globals, and flushes timed by session events."""
    clock = PhaseClock()
    clock.wrap(release_mod, "shuffle_inbox", "shuffle")
    clock.wrap(release_mod, "Geography", "geography")
    clock.wrap(release_mod, "count_by_organisation", "count")
    clock.wrap(release_mod, "build_cells", "cells")
    clock.wrap(release_mod, "control", "control")
    clock.wrap(release_mod, "_chart", "charts")
    clock.wrap(disclosure, "feasible_ranges", "audit")
    clock.wrap(disclosure, "_run", "lp")  # every programme: integer, and relaxed
    results: list[Any] = []
    control = release_mod.control

    def keep_result(*args: Any, **kwargs: Any) -> Any:
        result = control(*args, **kwargs)
        results.append(result)
        return result

    release_mod.control = keep_result  # type: ignore[assignment]
    flush_started: list[tuple[float, float]] = []

    def before_flush(*_: Any) -> None:
        flush_started.append((time.perf_counter(), cpu_seconds()))

    def after_flush(*_: Any) -> None:
        clock.add("flush", *flush_started.pop())

    event.listen(Session, "before_flush", before_flush)
    event.listen(Session, "after_flush_postexec", after_flush)
    try:
        t0, c0 = time.perf_counter(), cpu_seconds()
        release = release_mod.release_period(quarter, app.config, utcnow(), force=True)
        t1, c1 = time.perf_counter(), cpu_seconds()
        db.session.commit()
        clock.add("commit", t1, c1)
        total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        event.remove(Session, "before_flush", before_flush)
        event.remove(Session, "after_flush_postexec", after_flush)
        release_mod.control = control  # type: ignore[assignment]
        clock.restore()
    phases: dict[str, tuple[float, float]] = {}
    for key, measured, whole in (("wall", clock.wall, total), ("cpu", clock.cpu, cpu)):
        parts = {
            "count": measured["count"],
            "cells": measured["cells"],
            "suppress": measured["control"] - measured["audit"],
            "audit": measured["audit"],
            "charts": measured["charts"],
            "flush": measured["flush"],
            "commit": measured["commit"],
            "other": measured["shuffle"] + measured["geography"],
        }
        parts["write"] = whole - sum(parts.values())  # the rest of release_period
        for name, value in parts.items():
            wall, cpu_ = phases.get(name, (0.0, 0.0))
            phases[name] = (value, cpu_) if key == "wall" else (wall, value)
    result = results[-1]
    statuses = list(result.status.values())
    svg = db.session.scalar(
        select(func.sum(func.length(ReleaseTable.svg))).where(ReleaseTable.release_id == release.id)
    )
    tables = db.session.scalar(
        select(func.count()).select_from(ReleaseTable).where(ReleaseTable.release_id == release.id)
    )
    return ReleaseRun(
        facts=facts,
        total=total,
        cpu=cpu,
        phases=phases,
        cells=len(statuses),
        primary=statuses.count(disclosure.PRIMARY),
        complementary=statuses.count(disclosure.COMPLEMENTARY),
        iterations=result.iterations,
        lps=clock.calls["lp"],
        charts=clock.calls["charts"],
        tables=int(tables or 0),
        svg_mib=float(svg or 0) / 2**20,
    )


def published_digest() -> str:
    """A digest of every published table (payloads, not charts), to compare databases."""
    rows = db.session.execute(
        select(
            Release.period,
            ReleaseTable.scope_kind,
            ReleaseTable.scope_id,
            ReleaseTable.table_key,
            ReleaseTable.payload,
        )
        .join(Release, Release.id == ReleaseTable.release_id)
        .order_by(
            Release.period, ReleaseTable.scope_kind, ReleaseTable.scope_id, ReleaseTable.table_key
        )
    ).all()
    blob = json.dumps([list(r) for r in rows], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# One database, start to finish -----------------------------------------------------------


@dataclass
class Result:
    name: str
    label: str
    geography: str = ""
    loaded: Loaded = None  # type: ignore[assignment]  (set before anything reads it)
    small_loaded: Loaded = None  # type: ignore[assignment]
    vacuum: float = 0.0
    storage_mib: float = 0.0
    one: Sample = field(default_factory=Sample)
    catalogue: Sample = field(default_factory=Sample)
    counting: Sample = field(default_factory=Sample)
    queries: int = 0
    groups: int = 0
    big: ReleaseRun = None  # type: ignore[assignment]
    small: ReleaseRun = None  # type: ignore[assignment]
    digest: str = ""
    pages: dict[str, Sample] = field(default_factory=dict)
    page_kib: dict[str, float] = field(default_factory=dict)
    indexes: list[str] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)
    current: Sample = field(default_factory=Sample)
    full_scan: Sample = field(default_factory=Sample)
    with_index: Sample = field(default_factory=Sample)
    index_build: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    index_plans: list[str] = field(default_factory=list)


def run_database(target: Target, instance: Path, args: argparse.Namespace) -> Result:
    result = Result(target.name, target.label)
    speakup.demo.RECOVERY_DIR = instance / "demo-recovery-keys"
    app = build_app(target.url, instance)
    say = progress(target.name)
    try:
        with app.app_context():
            # The schema as production gets it. (create_all would create the two indexes on
            # fact in an order that varies with PYTHONHASHSEED, and SQLite breaks the tie
            # between them by that order, so its query plans would vary from run to run.)
            upgrade(directory=str(ROOT / "migrations"))
            speakup.demo.load_demo()
            db.session.commit()
            leaders = make_leaders(app)
            orgs = [
                (o.id, o.system_id, o.kind)
                for o in db.session.scalars(select(Organisation).order_by(Organisation.id))
            ]
            n_systems = db.session.scalar(select(func.count()).select_from(System))
            n_regions = db.session.scalar(select(func.count()).select_from(Region))
            result.geography = (
                f"{n_regions} region, {n_systems} systems, {len(orgs)} organisations "
                f"= {n_regions + n_systems + len(orgs)} scopes"
            )
            db.session.commit()  # no read transaction open while another engine loads
            say(f"inserting {args.facts:,} facts")
            result.small_loaded = load_facts(
                target.url, orgs, SMALL, args.small_facts, args.seed + 1, args.chunk
            )
            result.loaded = load_facts(target.url, orgs, BIG, args.facts, args.seed, args.chunk)
            if db.engine.dialect.name == "postgresql":
                # What autovacuum would do within a minute of the load; done now so that it
                # does not happen in the middle of a measurement.
                t0 = time.perf_counter()
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(text("VACUUM ANALYZE fact"))
                result.vacuum = time.perf_counter() - t0
            stored = db.session.scalar(
                select(func.count()).select_from(Fact).where(Fact.period == BIG.key)
            )
            if stored != args.facts:
                raise BenchError(f"{stored} facts stored for {BIG.key}, expected {args.facts}")
            result.storage_mib = storage_mib(instance)
            gc.collect()  # not in the middle of a measurement: a million dicts were freed

            # Baseline and counting, interleaved; the first round only warms caches.
            one = plain_sql(one_group_by(BIG.key))
            captured = catalogue_queries(BIG.key)
            check_same_sql(captured, SMALL.key)  # cheap: the small quarter
            listed = [plain_sql(q) for q in captured]
            result.queries = len(listed)
            say("timing the GROUP BYs and count_by_organisation")
            for round_ in range(args.repeats + 1):
                warm = round_ == 0
                with Sample().timed() if warm else result.one.timed():
                    result.groups = run_sql([one])
                with Sample().timed() if warm else result.catalogue.timed():
                    run_sql(listed)
                with Sample().timed() if warm else result.counting.timed():
                    catalogue.count_by_organisation(BIG.key)
                db.session.commit()

            say("releasing the quarters")
            result.small = timed_release(app, SMALL, args.small_facts)
            result.big = timed_release(app, BIG, args.facts)
            result.digest = published_digest()
            db.session.remove()

        say("timing the dashboard")
        measure_dashboard(app, leaders, result, args.requests)

        with app.app_context():
            say("checking indexes")
            result.indexes = fact_indexes()
            result.plans = {
                "one": query_plan(one),
                "total": query_plan(listed[0]),
                "catalogue": query_plan(listed[5]),
            }
            # Current indexes, none, and one more, side by side in each round (the extra
            # index is built and dropped every round) so that load elsewhere on the machine
            # falls on all three alike.
            name, columns = EXTRA_INDEX
            for _ in range(args.index_rounds):
                with result.current.timed():
                    run_sql(listed)
                with full_scan(listed) as statements, result.full_scan.timed():
                    run_sql(statements)
                t0 = time.perf_counter()
                db.session.execute(text(f"CREATE INDEX {name} ON fact ({', '.join(columns)})"))
                db.session.commit()
                result.index_build.append(time.perf_counter() - t0)
                result.index_plans = [query_plan(listed[0]), query_plan(listed[5])]
                with result.with_index.timed():
                    run_sql(listed)
                db.session.execute(text(f"DROP INDEX {name}"))
                db.session.commit()
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    result.peak_rss_mib = peak_rss_mib()
    return result


def measure_dashboard(app: Flask, leaders: list[Leader], result: Result, requests: int) -> None:
    """Each page R times, round-robin, after two untimed requests each."""
    region, organisation = (signed_in_client(app, leader) for leader in leaders)
    # What each response must contain: the quarter shown is the one asked for.
    big, small = (f'<option value="{q.key}" selected>' for q in (BIG, SMALL))
    pages = {
        "region": (region, "/staff/statistics/", big),
        "region_small": (region, f"/staff/statistics/?period={SMALL.key}", small),
        "organisation": (organisation, "/staff/statistics/", big),
        "chart": (region, f"/staff/statistics/{BIG.key}/by_route.svg", "<svg"),
    }
    result.pages = {name: Sample() for name in pages}
    for round_ in range(requests + 2):
        for name, (client, path, expect) in pages.items():
            sample = result.pages[name] if round_ >= 2 else Sample()
            with sample.timed():
                response = client.get(path)
                body = response.get_data(as_text=True)
            if response.status_code != 200 or expect not in body:
                raise BenchError(f"GET {path} → {response.status_code}: {body[:200]!r}")
            result.page_kib[name] = len(body.encode()) / 1024


def progress(name: str) -> Callable[[str], None]:
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {name}: {message}", file=sys.stderr)

    return say


# Printing -------------------------------------------------------------------------------

LABEL = 56
COLUMN = 18


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def _both(wall: float, cpu: float) -> str:
    return f"{_ms(wall)} / {_ms(cpu)}"


def _ratio(a: float, b: float) -> str:
    if not b:
        return "–"
    return f"{a / b:,.2f}" if a / b >= 0.095 else f"{a / b:.2g}"


def index_rows(results: list[Result], row: Callable[[str, list[str]], None]) -> None:
    """The index check's timings: current indexes, none, and one more."""
    name, columns = EXTRA_INDEX
    ddl = f"CREATE INDEX {name} ON fact ({', '.join(columns)})"
    print(f"  extra index, in the throwaway database only: {ddl}")
    row(
        f"the {results[0].queries} GROUP BYs with the current indexes",
        [_both(r.current.median, r.current.cpu_median) for r in results],
    )
    row(
        "  with index use switched off (full scans)",
        [_both(r.full_scan.median, r.full_scan.cpu_median) for r in results],
    )
    row(
        "  with the extra index",
        [_both(r.with_index.median, r.with_index.cpu_median) for r in results],
    )
    row(
        "  full scans ÷ current indexes (wall / CPU)",
        [
            f"{_ratio(r.full_scan.median, r.current.median)} / "
            f"{_ratio(r.full_scan.cpu_median, r.current.cpu_median)}"
            for r in results
        ],
    )
    row(
        "  extra index ÷ current indexes (wall / CPU)",
        [
            f"{_ratio(r.with_index.median, r.current.median)} / "
            f"{_ratio(r.with_index.cpu_median, r.current.cpu_median)}"
            for r in results
        ],
    )
    row(
        "  building that index, wall ms",
        [_ms(statistics.median(r.index_build)) for r in results],
    )


def report(results: list[Result], args: argparse.Namespace, started: float, load: float) -> None:
    out = print

    def row(label: str, values: list[str]) -> None:
        out(f"  {label:{LABEL - 2}}" + "".join(f"{v:>{COLUMN}}" for v in values))

    first = results[0]
    big, small = first.big, first.small
    out("Speakup statistics: releasing a quarter, and its dashboard, vs a plain GROUP BY")
    out("=" * (LABEL + COLUMN * len(results)))
    load_end = os.getloadavg()[0]
    busy = "  (other work competes: noisy)" if max(load, load_end) > 1.5 else ""
    out(
        f"machine      {os.cpu_count()} CPUs, 1-min load average {load:.1f} at start, "
        f"{load_end:.1f} at end{busy}"
    )
    out(f"geography    Midlands demo: {first.geography}")
    out(
        f"quarters     {BIG.key}: {first.loaded.facts:,} facts ({first.loaded.concerns:,} "
        f"made-up concerns, seed {args.seed})"
    )
    out(
        f"             {SMALL.key}: {first.small_loaded.facts:,} facts (demo-sized, for comparison)"
    )
    for r in results:
        out(f"{r.name:13}{r.label}")
    out(
        f"timings      query sets: median of {args.repeats} interleaved runs after a warm-up "
        f"({args.index_rounds} in the index check)"
    )
    out(f"             dashboard: {args.requests} requests per page after 2 untimed")
    out(
        "             wall / CPU = wall-clock ms / this process's CPU ms (on SQLite that is all "
        "the work;"
    )
    out("             on PostgreSQL the server's CPU is not included)")
    out("")
    out(" " * LABEL + "".join(f"{r.name:>{COLUMN}}" for r in results))

    out("Setup (not measured)")
    row(f"insert {first.loaded.facts:,} facts, s", [f"{r.loaded.seconds:.1f}" for r in results])
    row("VACUUM ANALYZE fact, s", [f"{r.vacuum:.1f}" if r.vacuum else "–" for r in results])
    row("database size, MiB", [f"{r.storage_mib:,.0f}" for r in results])
    row("peak RSS of this process so far, MiB", [f"{r.peak_rss_mib:,.0f}" for r in results])
    out("")
    out(f"Baseline: plain GROUP BY over the quarter's {first.loaded.facts:,} facts, wall / CPU")
    row(
        f"one GROUP BY org, kind, route, disclosure ({first.groups} rows)",
        [_both(r.one.median, r.one.cpu_median) for r in results],
    )
    row(
        f"the {first.queries} GROUP BYs count_by_organisation issues",
        [_both(r.catalogue.median, r.catalogue.cpu_median) for r in results],
    )
    row(
        "count_by_organisation (those + its Python)",
        [_both(r.counting.median, r.counting.cpu_median) for r in results],
    )
    for title, attr in (
        (f"Release of {BIG.key}, {big.facts:,} facts (release_period + commit), wall / CPU", "big"),
        (f"Release of {SMALL.key}, {small.facts:,} facts, the same", "small"),
    ):
        runs: list[ReleaseRun] = [getattr(r, attr) for r in results]
        out("")
        out(title)
        row("total", [_both(run.total, run.cpu) for run in runs])
        for key, label in PHASES:
            row(f"  {label}", [_both(*run.phases[key]) for run in runs])
        same = all(
            (o.cells, o.primary, o.complementary, o.lps, o.tables)
            == (runs[0].cells, runs[0].primary, runs[0].complementary, runs[0].lps, runs[0].tables)
            for o in runs
        )
        for r, run in zip(results, runs[:1] if same else runs, strict=False):
            where = "" if same else f" [{r.name}]"
            out(
                f"  {run.cells:,} cells audited: {run.primary} below k, {run.complementary} "
                f"withheld to protect them; {run.lps} programmes in {run.iterations} "
                f"round(s){where}"
            )
            out(f"  {run.charts} charts, {run.tables} tables written (SVG {run.svg_mib:.1f} MiB)")
    out("")
    out(
        f"Dashboard from the frozen tables, ms over {args.requests} requests: "
        "wall mean / wall p95 / CPU mean"
    )
    labels = {
        "region": f"region leader, {BIG.key} (default)",
        "region_small": f"region leader, ?period={SMALL.key} (small one)",
        "organisation": f"organisation leader, {BIG.key}",
        "chart": f"one chart, {BIG.key}/by_route.svg",
    }
    for key, label in labels.items():
        row(
            f"{label}, {first.page_kib[key]:.0f} KiB",
            [
                f"{_ms(r.pages[key].mean)} / {_ms(r.pages[key].p95)} / "
                f"{_ms(statistics.fmean(r.pages[key].cpu))}"
                for r in results
            ],
        )
    out("")
    out("Ratios")
    row("release ÷ one GROUP BY", [_ratio(r.big.total, r.one.median) for r in results])
    row(
        f"release ÷ the {first.queries} GROUP BYs",
        [_ratio(r.big.total, r.catalogue.median) for r in results],
    )
    row(
        f"count_by_organisation ÷ the {first.queries} GROUP BYs",
        [_ratio(r.counting.median, r.catalogue.median) for r in results],
    )
    row(
        f"release of {big.facts:,} ÷ of {small.facts:,} facts",
        [_ratio(r.big.total, r.small.total) for r in results],
    )
    for key, label in (
        ("region", "dashboard, region leader ÷ one GROUP BY"),
        ("organisation", "dashboard, organisation leader ÷ one GROUP BY"),
        ("chart", "chart .svg ÷ one GROUP BY"),
    ):
        row(label, [_ratio(r.pages[key].mean, r.one.median) for r in results])
    row(
        f"dashboard {BIG.key} ÷ {SMALL.key} (region leader)",
        [_ratio(r.pages["region"].mean, r.pages["region_small"].mean) for r in results],
    )

    def by_cpu(a: Callable[[Result], float], b: Callable[[Result], float]) -> list[str]:
        return [_ratio(a(r), b(r)) if r.name == "SQLite" else "–" for r in results]

    out("  the same by this process's CPU (SQLite only: there it is all the work)")
    row("  release ÷ one GROUP BY", by_cpu(lambda r: r.big.cpu, lambda r: r.one.cpu_median))
    row(
        f"  release ÷ the {first.queries} GROUP BYs",
        by_cpu(lambda r: r.big.cpu, lambda r: r.catalogue.cpu_median),
    )
    row(
        "  dashboard, region leader ÷ one GROUP BY",
        by_cpu(lambda r: statistics.fmean(r.pages["region"].cpu), lambda r: r.one.cpu_median),
    )
    row(
        f"  dashboard {BIG.key} ÷ {SMALL.key} (region leader)",
        by_cpu(
            lambda r: statistics.fmean(r.pages["region"].cpu),
            lambda r: statistics.fmean(r.pages["region_small"].cpu),
        ),
    )
    out("")
    share = first.loaded.facts / (first.loaded.facts + first.small_loaded.facts)
    out(f"Indexes on fact ({share:.1%} of its rows are {BIG.key}'s, wall / CPU ms)")
    for r in results:
        out(f"  {r.name}: {', '.join(r.indexes)}")
        out(f"    plan, one GROUP BY:    {r.plans['one']}")
        out(f"    a family total:        {r.plans['total']}")
        if args.index_rounds:
            out(f"      with the extra index: {r.index_plans[0]}")
        out(f"    a catalogue GROUP BY:  {r.plans['catalogue']}")
        if args.index_rounds:
            out(f"      with the extra index: {r.index_plans[1]}")
    if args.index_rounds:
        index_rows(results, row)
    out("")
    if len(results) > 1:
        verdict = "identical" if same_tables(results) else "DIFFERENT"
        names = " and ".join(r.name for r in results)
        out(f"published tables of both releases: {verdict} on {names}")
    out(f"total runtime {time.perf_counter() - started:.0f} s")


def same_tables(results: list[Result]) -> bool:
    return len({r.digest for r in results}) == 1


# Main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--facts", type=int, default=1_000_000, help="facts in the quarter (default 1,000,000)"
    )
    parser.add_argument(
        "--small-facts",
        type=int,
        default=3_000,
        help="facts in the demo-sized comparison quarter (default 3,000)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL: run there, in a throwaway database created next to the one "
        "named (default: SQLite in a temporary folder)",
    )
    parser.add_argument(
        "--both",
        action="store_true",
        help=f"run on SQLite and on PostgreSQL (--database-url, default {DEFAULT_PG})",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of each query set (default 3)"
    )
    parser.add_argument(
        "--requests", type=int, default=30, help="timed requests per dashboard page (default 30)"
    )
    parser.add_argument(
        "--index-rounds",
        type=int,
        default=2,
        help="rounds of the index check: current indexes, none, one more (default 2; 0 skips)",
    )
    parser.add_argument("--chunk", type=int, default=50_000, help="facts per insert (default 50k)")
    parser.add_argument("--seed", type=int, default=2026, help="generator seed (default 2026)")
    args = parser.parse_args(argv)
    if min(args.facts, args.small_facts, args.repeats, args.requests, args.chunk) < 1:
        parser.error("counts must be at least 1")
    if args.index_rounds < 0:
        parser.error("--index-rounds must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    urls: list[str | None] = [args.database_url]
    if args.both:
        urls = [None, args.database_url or DEFAULT_PG]
    results = []
    for url in urls:
        with (
            tempfile.TemporaryDirectory(prefix="speakup-bench-") as tmp,
            database_target(url, Path(tmp)) as target,
        ):
            results.append(run_database(target, Path(tmp), args))
    report(results, args, started, load)
    if not same_tables(results):
        print("FAIL: the databases published different tables from the same facts", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        sys.exit(1)
