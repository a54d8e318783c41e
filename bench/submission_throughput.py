"""Report submission throughput, as a ratio to the raw cost of its Argon2id work.

Every report costs exactly one deliberate Argon2id derivation (the receipt-derived reporter
key, DESIGN §4). This benchmark measures, in the same process and with the same production
parameters and concurrency cap:

1. raw ``speakup.crypto.kdf.derive_key`` calls from T threads → derivations/s;
2. real multipart ``POST /report`` requests through the Flask test client from T threads
   (one client per thread) → submissions/s;

and prints submissions/s ÷ derivations/s: 1.00 means the app adds nothing measurable beyond
its key-stretching, 0.85 means the rest of the request costs 15% on top.

It then submits a burst from 16 threads while counting how many Argon2id computations run at
once (by wrapping ``speakup.crypto.kdf.hash_secret_raw``) and exits 1 if that ever exceeds
``ARGON2_MAX_CONCURRENCY`` — the bound that keeps peak Argon2 memory at
``max_concurrency × memory_kib`` however many reports arrive together.

Run from the repository root::

    .venv/bin/python bench/submission_throughput.py [--reports N] [--threads T]
        [--database-url URL] [--attachment]

See bench/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable without an editable install
    sys.path.insert(0, str(ROOT))

from benchkit import (  # noqa: E402
    BenchError,
    app_config,
    cpu_seconds,
    peak_rss_mib,
    psycopg_url,
    throwaway_postgres,
)
from flask import Flask  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import speakup.crypto.kdf as kdf  # noqa: E402
import speakup.reporting.services as reporting_services  # noqa: E402
from speakup import create_app  # noqa: E402
from speakup.accounts.models import Role  # noqa: E402
from speakup.accounts.services import create_user  # noqa: E402
from speakup.audit.services import verify_chain  # noqa: E402
from speakup.cases.models import Case, DisclosureMode, Route  # noqa: E402
from speakup.crypto.receipt import normalise_receipt  # noqa: E402
from speakup.extensions import db  # noqa: E402
from speakup.organisations.services import (  # noqa: E402
    create_recovery_key,
    get_or_create_organisation,
    get_or_create_region,
    get_or_create_system,
)
from speakup.settings import argon2_params  # noqa: E402

RECEIPT_RE = re.compile(r'data-testid="receipt">\s*([^<\s]+)\s*<')
REPORT_TEXT = (
    "On the night shift my manager spoke to me in a way that made me feel singled out "
    "because of my background, in front of patients and colleagues."
)
GUARDIANS = 3
PRODUCTION = {"ARGON2_TIME_COST": 3, "ARGON2_MEMORY_KIB": 64 * 1024, "ARGON2_PARALLELISM": 4}


# Counting concurrent entries ------------------------------------------------------------


class ConcurrencyProbe:
    """Wrap a callable; count calls and the most that were inside it at the same time."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        try:
            return self._func(*args, **kwargs)
        finally:
            with self._lock:
                self.active -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.active
            self.calls = 0


#: Inside the Argon2id computation itself, i.e. past the semaphore: must stay ≤ the cap.
RUNNING = ConcurrencyProbe(kdf.hash_secret_raw)
#: Inside ``derive_key`` (queued at the semaphore or running): shows the cap was exercised.
ADMITTED = ConcurrencyProbe(kdf.derive_key)


def install_probes() -> None:
    """``derive_key`` looks ``hash_secret_raw`` up as a module global at call time, and the
    reporting service calls ``derive_key`` through its own module global."""
    kdf.hash_secret_raw = RUNNING  # type: ignore[assignment]
    reporting_services.derive_key = ADMITTED  # type: ignore[assignment]


class ConnectionProbe:
    """The most pooled database connections checked out at once."""

    def __init__(self, engine: Any) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        pool = engine.pool
        size = getattr(pool, "size", None)
        self.limit = size() + pool._max_overflow if callable(size) else None
        event.listen(engine, "checkout", self._out)
        event.listen(engine, "checkin", self._in)

    def _out(self, *_: Any) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _in(self, *_: Any) -> None:
        with self._lock:
            self.active -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.active


# Running N tasks on T threads -----------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    tasks: int
    threads: int
    wall: float
    cpu: float
    latencies: list[float]
    argon2_calls: int
    peak_running: int
    peak_admitted: int
    peak_rss_mib: float
    results: list[Any] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.wall

    @property
    def cpu_ms(self) -> float:
        """Process CPU time (all threads, Argon2's lanes included) per task."""
        return self.cpu / self.tasks * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


def combine(parts: list[PhaseResult]) -> PhaseResult:
    """Add up the rounds of one kind of phase."""
    return PhaseResult(
        name=parts[0].name,
        tasks=sum(p.tasks for p in parts),
        threads=parts[0].threads,
        wall=sum(p.wall for p in parts),
        cpu=sum(p.cpu for p in parts),
        latencies=[x for p in parts for x in p.latencies],
        argon2_calls=sum(p.argon2_calls for p in parts),
        peak_running=max(p.peak_running for p in parts),
        peak_admitted=max(p.peak_admitted for p in parts),
        peak_rss_mib=max(p.peak_rss_mib for p in parts),
        results=[r for p in parts for r in p.results],
    )


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive chunks."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_phase(
    name: str,
    tasks: int,
    threads: int,
    make_worker: Callable[[], Callable[[int], Any]],
) -> PhaseResult:
    """Run ``tasks`` calls spread over ``threads`` threads, all released together.

    ``make_worker`` is called once per thread (so each thread can own a test client); the
    worker it returns is called with the task number and its result is kept."""
    next_task = iter(range(tasks))
    take = threading.Lock()
    start = threading.Barrier(threads + 1)
    latencies: list[float] = []
    results: list[Any] = []
    errors: list[BaseException] = []
    keep = threading.Lock()

    def body() -> None:
        worker = make_worker()
        start.wait()
        while not errors:
            with take:
                n = next(next_task, None)
            if n is None:
                return
            t0 = time.perf_counter()
            try:
                result = worker(n)
            except BaseException as exc:  # reported after the phase
                with keep:
                    errors.append(exc)
                return
            elapsed = time.perf_counter() - t0
            with keep:
                latencies.append(elapsed)
                results.append(result)

    pool = [threading.Thread(target=body, name=f"{name}-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    RUNNING.reset()
    ADMITTED.reset()
    start.wait()
    t0, c0 = time.perf_counter(), cpu_seconds()
    for thread in pool:
        thread.join()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if errors:
        raise BenchError(f"{name}: {len(errors)} task(s) failed; first: {errors[0]!r}")
    return PhaseResult(
        name=name,
        tasks=tasks,
        threads=threads,
        wall=wall,
        cpu=cpu,
        latencies=latencies,
        argon2_calls=RUNNING.calls,
        peak_running=RUNNING.peak,
        peak_admitted=ADMITTED.peak,
        peak_rss_mib=peak_rss_mib(),
        results=results,
    )


# The app, its database and its seed data ------------------------------------------------


@dataclass
class Target:
    """Where the benchmark's database lives."""

    url: str
    label: str


@contextmanager
def database_target(arg: str | None, instance: Path, wipe: bool) -> Iterator[Target]:
    """SQLite in the temporary instance folder, a throwaway PostgreSQL database created next
    to the one named in ``arg`` (and dropped afterwards), or — with ``--wipe-database`` —
    the named database itself, emptied first."""
    if not arg:
        yield Target(f"sqlite:///{instance / 'speakup.db'}", "SQLite (temporary file)")
        return
    url = make_url(arg)
    if not url.drivername.startswith("postgresql"):
        if wipe:
            raise BenchError("--wipe-database is for PostgreSQL URLs only")
        yield Target(arg, f"{url.drivername} {url.render_as_string(hide_password=True)}")
        return
    if wipe:
        if not url.database:
            raise BenchError("--wipe-database needs a database name in --database-url")
        print(
            f"WARNING: --wipe-database: dropping and recreating every Speakup table in "
            f"{url.database!r} on {url.host}",
            file=sys.stderr,
        )
        yield Target(
            psycopg_url(url).render_as_string(hide_password=False), f"PostgreSQL {url.database}"
        )
        return
    with throwaway_postgres(url) as db_:
        yield Target(
            db_.url,
            f"PostgreSQL {db_.server_version}, throwaway database {db_.name} (dropped afterwards)",
        )


def build_app(database_url: str, instance: Path) -> Flask:
    """The real app, production Argon2id parameters from config/defaults.toml, fresh secrets."""
    return create_app(app_config(database_url, instance, TESTING=False))


def seed(app: Flask, instance: Path, wipe: bool) -> int:
    """One region, system and organisation with a recovery key and three guardians."""
    code = f"BENCH{secrets.token_hex(3).upper()}"
    with app.app_context():
        if wipe:
            db.drop_all()
        db.create_all()
        region = get_or_create_region("BENCH", "Benchmark Region")
        system = get_or_create_system(region, "BENCHSYS", "Benchmark System")
        org = get_or_create_organisation(system, code, "Benchmark Hospital NHS Trust")
        create_recovery_key(org, instance / "recovery" / f"{code}.json")
        params = argon2_params(app.config)
        for n in range(1, GUARDIANS + 1):
            create_user(
                email=f"guardian{n}.{code.lower()}@example.test",
                display_name=f"Guardian {n}",
                role=Role.GUARDIAN,
                password=secrets.token_urlsafe(18),
                params=params,
                organisation=org,
            )
        db.session.commit()
        return org.id


def small_png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48), (200, 40, 40))
    image.paste((40, 40, 200), (0, 0, 32, 48))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def report_worker(
    app: Flask, org_id: int, png: bytes | None, prefix: str
) -> Callable[[], Callable[[int], str]]:
    """A factory of per-thread workers, each with its own test client, posting one report
    per call and returning its receipt."""

    def make() -> Callable[[int], str]:
        client = app.test_client()

        def post(n: int) -> str:
            data: dict[str, Any] = {
                "organisation": str(org_id),
                "route": str(Route.ORGANISATION),
                "disclosure_mode": str(DisclosureMode.ANONYMOUS),
                "what_happened": f"{REPORT_TEXT} ({prefix} #{n})",
                "escalation_consent": "no",
                "submission_token": f"{prefix}-{n}-{secrets.token_urlsafe(16)}",
            }
            if png is not None:
                data["attachments"] = (io.BytesIO(png), "photo.png", "image/png")
            response = client.post("/report", data=data, content_type="multipart/form-data")
            body = response.get_data(as_text=True)
            if response.status_code != 200:
                raise BenchError(f"POST /report → {response.status_code}: {body[:300]!r}")
            match = RECEIPT_RE.search(body)
            if match is None or normalise_receipt(match.group(1)) is None:
                raise BenchError("POST /report → 200 but no receipt in the page")
            return match.group(1)

        return post

    return make


def derive_worker(params: kdf.Argon2Params) -> Callable[[], Callable[[int], bytes]]:
    """A factory of workers doing what submit_report does for its receipt key, and no more."""

    def make() -> Callable[[int], bytes]:
        def derive(_: int) -> bytes:
            receipt = secrets.token_hex(8).upper().encode()  # 16 characters, like a receipt
            return ADMITTED(receipt, kdf.new_salt(), params)

        return derive

    return make


# Main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=40, help="N per phase (default 40)")
    parser.add_argument("--threads", type=int, default=4, help="T for both phases (default 4)")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL; PostgreSQL gets a throwaway database created next to the one "
        "named (default: SQLite in a temporary folder)",
    )
    parser.add_argument(
        "--wipe-database",
        action="store_true",
        help="PostgreSQL only: use the named database itself, DROPPING every Speakup table "
        "in it first (for servers where you may not CREATE DATABASE)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="split each N into this many alternating rounds, A B B A… (default 4)",
    )
    parser.add_argument(
        "--attachment", action="store_true", help="attach one small PNG to every report"
    )
    parser.add_argument(
        "--burst-threads",
        type=int,
        default=16,
        help="threads for the concurrency-cap check (default 16)",
    )
    parser.add_argument(
        "--burst-reports",
        type=int,
        default=32,
        help="reports submitted in the concurrency-cap check (default 32)",
    )
    args = parser.parse_args(argv)
    if min(args.reports, args.threads, args.burst_threads, args.burst_reports, args.rounds) < 1:
        parser.error("counts must be at least 1")
    if args.wipe_database and not args.database_url:
        parser.error("--wipe-database needs --database-url")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    rss_at_start = peak_rss_mib()
    load_at_start = os.getloadavg()[0]
    install_probes()
    png = small_png() if args.attachment else None

    with (
        tempfile.TemporaryDirectory(prefix="speakup-bench-") as tmp,
        database_target(args.database_url, Path(tmp), args.wipe_database) as target,
    ):
        instance = Path(tmp)
        app = build_app(target.url, instance)
        params = argon2_params(app.config)
        with app.app_context():
            connections = ConnectionProbe(db.engine)
        for key, value in PRODUCTION.items():
            if app.config[key] != value:
                print(f"WARNING: {key}={app.config[key]} is not the production {value}")
        try:
            org_id = seed(app, instance, args.wipe_database)
            # Warm-up, untimed: template compilation, first connections, first allocations.
            run_phase("warm-up", 2, 1, report_worker(app, org_id, png, "warmup"))
            run_phase("warm-up", 2, 1, derive_worker(params))
            rss_before_phases = peak_rss_mib()

            # Alternate the two measurements (A B B A ...) in rounds, so background load on
            # a shared machine falls on both roughly alike.
            raws: list[PhaseResult] = []
            submits: list[PhaseResult] = []
            for r, tasks in enumerate(split(args.reports, args.rounds)):
                order = ("raw", "app") if r % 2 == 0 else ("app", "raw")
                for kind in order:
                    if kind == "raw":
                        raws.append(run_phase("argon2", tasks, args.threads, derive_worker(params)))
                    else:
                        worker = report_worker(app, org_id, png, f"app{r}")
                        submits.append(run_phase("submit", tasks, args.threads, worker))
            raw, app_phase = combine(raws), combine(submits)
            connections.reset()
            burst = run_phase(
                "burst",
                args.burst_reports,
                args.burst_threads,
                report_worker(app, org_id, png, "burst"),
            )
            with app.app_context():
                stored = db.session.scalar(
                    select(func.count()).select_from(Case).where(Case.organisation_id == org_id)
                )
                chain = verify_chain()
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()

    expected = 2 + args.reports + args.burst_reports
    receipts = app_phase.results + burst.results
    problems = []
    if stored != expected:
        problems.append(f"{stored} cases stored, expected {expected}")
    if len(set(receipts)) != len(receipts):
        problems.append("duplicate receipts")
    if not chain.ok:
        problems.append(f"audit chain broken at seq {chain.first_broken_seq}")
    for phase in (app_phase, burst):
        if phase.argon2_calls != phase.tasks:
            problems.append(
                f"{phase.name}: {phase.argon2_calls} Argon2id derivations for "
                f"{phase.tasks} reports (expected exactly one each)"
            )
    cap = params.max_concurrency
    peak_running = max(raw.peak_running, app_phase.peak_running, burst.peak_running)
    cap_ok = peak_running <= cap
    if not cap_ok:
        problems.append(f"{peak_running} Argon2id derivations ran at once; the cap is {cap}")

    ratio = app_phase.rate / raw.rate
    cpu_ratio = raw.cpu_ms / app_phase.cpu_ms
    mib = params.memory_kib / 1024
    out = print
    out("Speakup submission throughput vs raw Argon2id")
    out("=" * 72)
    out(f"database           {target.label}")
    load_at_end = os.getloadavg()[0]
    busy = "  (other work competes: noisy)" if max(load_at_start, load_at_end) > 1.5 else ""
    out(
        f"machine            {os.cpu_count()} CPUs, 1-min load average {load_at_start:.1f} at "
        f"start, {load_at_end:.1f} at end{busy}"
    )
    out(
        f"Argon2id           t={params.time_cost}, m={mib:g} MiB, p={params.parallelism}, "
        f"max_concurrency={cap}"
    )
    out(
        f"workload           N={args.reports} of each from T={args.threads} threads, in "
        f"{len(raws)} alternating round(s)"
    )
    attachment = f"one {len(png)}-byte PNG per report" if png else "none"
    out(f"attachment         {attachment}")
    out(f"route              organisation: sealed to {GUARDIANS} guardians, recovery, reporter")
    out("")
    out(f"{'':26}{'per second':>11}{'mean ms':>9}{'p95 ms':>8}{'wall s':>8}{'CPU ms/op':>11}")
    for label, phase in (
        ("raw Argon2id derivations", raw),
        ("POST /report submissions", app_phase),
    ):
        out(
            f"{label:26}{phase.rate:11.2f}{phase.mean_ms:9.0f}{phase.p95_ms:8.0f}"
            f"{phase.wall:8.2f}{phase.cpu_ms:11.0f}"
        )
    out("")
    out(
        f"ratio submissions/s ÷ derivations/s = {ratio:.2f}   "
        f"(app overhead beyond Argon2id ≈ {(1 - ratio) * 100:.0f}%)"
    )
    out(
        f"same ratio by CPU time per op       = {cpu_ratio:.2f}   "
        "(less sensitive to other load on the machine)"
    )
    out(f"Argon2id derivations per submission = {app_phase.argon2_calls / app_phase.tasks:.2f}")
    out("")
    out(f"Concurrency cap: {args.burst_reports} reports from {args.burst_threads} threads")
    out(
        f"  throughput                        {burst.rate:.2f} submissions/s, "
        f"{burst.cpu_ms:.0f} CPU ms each"
    )
    out(f"  latency mean / p95                {burst.mean_ms:.0f} ms / {burst.p95_ms:.0f} ms")
    out(f"  most inside derive_key at once    {burst.peak_admitted} (queued + running)")
    out(
        f"  most Argon2id running at once     {burst.peak_running} "
        f"(cap {cap}; whole run {peak_running})   {'OK' if cap_ok else 'FAIL'}"
    )
    limit = f" of the pool's {connections.limit}" if connections.limit else ""
    out(f"  most DB connections in use        {connections.peak}{limit}")
    if burst.peak_admitted <= cap:
        out("  note: nothing queued at the semaphore, so the cap was not exercised")
    out("")
    out("Memory")
    out(f"  Argon2 memory bound               {cap} × {mib:g} MiB = {cap * mib:g} MiB")
    out(
        f"  {f'without it, {args.burst_threads} threads':34}"
        f"{args.burst_threads} × {mib:g} MiB = {args.burst_threads * mib:g} MiB"
    )
    out(f"  peak RSS at start                 {rss_at_start:.0f} MiB")
    out(f"  peak RSS after setup + warm-up    {rss_before_phases:.0f} MiB   (one at a time)")
    out(f"  peak RSS after timed phases       {app_phase.peak_rss_mib:.0f} MiB")
    out(f"  peak RSS after the burst          {burst.peak_rss_mib:.0f} MiB")
    out("")
    out(
        f"checks: {stored} cases stored (2 warm-up + {args.reports} + {args.burst_reports}), "
        f"each response a receipt, all distinct; audit chain "
        f"{'intact' if chain.ok else 'BROKEN'} ({chain.events} events)"
    )
    out(f"total runtime {time.perf_counter() - started:.1f} s")
    if problems:
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        sys.exit(1)
