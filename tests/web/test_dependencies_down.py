"""Dependencies down, clearly: health endpoints, Redis down (the reporter's Send still works,
limits fall back per process and say so loudly), and the database failing mid-request (the
app's own 503 page, never a bare 500)."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import event

from speakup.accounts.models import Role
from speakup.cases.models import Case
from speakup.extensions import db, limiter
from tests.conftest import count, recorded_queries
from tests.web.test_reporting import committed_cases, receipt_of, report

#: nothing listens on port 1: a Redis that is down, refusing at once
DEAD_REDIS = "redis://127.0.0.1:1/0"
#: the machine's Redis, on a database number no other test uses
LIVE_REDIS = "redis://127.0.0.1:6379/13"


@pytest.fixture
def org(make_org, make_staff):
    organisation = make_org()
    make_staff(Role.GUARDIAN, organisation)
    return organisation


@pytest.fixture
def fresh_limiter():
    """The limiter is one object per process; leave its 'storage dead' state as we found it."""
    yield limiter
    limiter._storage_dead = False


def live_redis_or_skip() -> None:
    try:
        redis.Redis.from_url(LIVE_REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        # .ci/run starts Redis: in CI a missing Redis is a failure, never a silent skip.
        if os.environ.get("CI"):
            pytest.fail("no Redis on 127.0.0.1:6379 (CI must have it)")
        pytest.skip("no Redis on 127.0.0.1:6379")


# Health endpoints --------------------------------------------------------------------------


def test_healthz_is_public_plain_and_touches_no_database(client):
    with recorded_queries() as queries:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "ok\n"
    assert queries == []


def test_readyz_is_public_and_ready_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ready\n"


def test_readyz_checks_a_configured_redis(make_app, fresh_limiter):
    live_redis_or_skip()
    app = make_app(RATELIMIT_STORAGE_URI=LIVE_REDIS)
    with app.app_context():
        assert app.test_client().get("/readyz").status_code == 200


def test_readyz_says_redis_is_down_and_nothing_else(make_app, fresh_limiter):
    app = make_app(RATELIMIT_STORAGE_URI=DEAD_REDIS)
    with app.app_context():
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert body == "unavailable: redis\n"
    assert "127.0.0.1" not in body and "Error" not in body


def test_a_redis_down_at_startup_is_a_clear_warning(make_app, caplog, fresh_limiter):
    with caplog.at_level(logging.WARNING):
        make_app(RATELIMIT_STORAGE_URI=DEAD_REDIS)
    startup = [r for r in caplog.records if r.getMessage().startswith("STARTUP")]
    assert len(startup) == 1 and startup[0].levelno == logging.ERROR
    assert "rate-limit storage is unreachable" in startup[0].getMessage()
    assert "127.0.0.1" not in startup[0].getMessage()


def test_no_startup_warning_when_limits_are_in_memory(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        make_app()
    assert not [r for r in caplog.records if r.getMessage().startswith("STARTUP")]


# Redis down: the reporter's Send still works -----------------------------------------------


def test_with_redis_down_a_report_is_still_received_and_limited_per_process(
    make_app, make_org, make_staff, caplog, fresh_limiter
):
    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=DEAD_REDIS,
        RATELIMIT_REPORT_SUBMIT="3 per minute",
    )
    with app.app_context():
        organisation = make_org()
        make_staff(Role.GUARDIAN, organisation)
        client = app.test_client()
        with caplog.at_level(logging.WARNING):
            responses = [client.post("/report", data=report(organisation)) for _ in range(4)]
        first, *_, fourth = responses

        assert first.status_code == 200, first.get_data(as_text=True)[:2000]
        assert receipt_of(first)
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert committed_cases() == 3
        # One loud line for the outage, not one per request.
        alarms = [r for r in caplog.records if "RATE LIMITS DEGRADED" in r.getMessage()]
        assert len(alarms) == 1 and alarms[0].levelno == logging.ERROR
        assert b"Too many attempts" in fourth.data


def test_limits_are_shared_in_redis_when_it_is_up(make_app, make_org, make_staff, fresh_limiter):
    live_redis_or_skip()
    redis.Redis.from_url(LIVE_REDIS).flushdb()
    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=LIVE_REDIS,
        RATELIMIT_REPORT_SUBMIT="2 per minute",
    )
    try:
        with app.app_context():
            organisation = make_org()
            make_staff(Role.GUARDIAN, organisation)
            client = app.test_client()
            statuses = [
                client.post("/report", data=report(organisation)).status_code for _ in "abc"
            ]
            assert statuses == [200, 200, 429]
            assert redis.Redis.from_url(LIVE_REDIS).dbsize() > 0  # counted in Redis, not memory
    finally:
        redis.Redis.from_url(LIVE_REDIS).flushdb()


# The database failing mid-request ------------------------------------------------------------


@pytest.fixture
def outage(app):
    """Break the database on demand; mend it afterwards so the test database can be reset."""
    engine = db.engine
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError
    installed: list[tuple[str, object]] = []

    def refuse_new_connections() -> None:
        """From now on every new connection fails in the driver, as when the server is down."""

        def refuse(*_args):
            raise dbapi_error("connection refused: the database is down")

        event.listen(engine, "do_connect", refuse)
        installed.append(("do_connect", refuse))
        db.session.remove()
        engine.dispose()  # drop the pooled connections, as a database restart does

    def break_after(statements: int) -> None:
        """Let ``statements`` statements through, then fail as a dropped connection does."""
        seen = {"n": 0}

        def maybe_fail(*_args):
            seen["n"] += 1
            if seen["n"] > statements:
                raise dbapi_error("server closed the connection unexpectedly")

        event.listen(engine, "before_cursor_execute", maybe_fail)
        installed.append(("before_cursor_execute", maybe_fail))

    def mend() -> None:
        while installed:
            name, fn = installed.pop()
            event.remove(engine, name, fn)
        db.session.remove()
        engine.dispose()

    yield SimpleNamespace(
        refuse_new_connections=refuse_new_connections, break_after=break_after, mend=mend
    )
    mend()


def assert_own_503_page(response) -> None:
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Sorry, the service is unavailable" in body
    assert "cannot reach its database" in body
    assert "Error code" in body and "503" in body
    assert "OperationalError" not in body and "connection refused" not in body
    assert 'data-testid="receipt"' not in body


@pytest.mark.parametrize("testing", [True, False])
def test_a_database_down_gives_our_own_503_page(app, client, org, outage, testing):
    app.testing = testing
    form = report(org)
    outage.refuse_new_connections()
    assert_own_503_page(client.post("/report", data=form))
    assert_own_503_page(client.get("/report"))
    assert_own_503_page(client.post("/staff/sign-in", data={"email": "a@b.test", "password": "x"}))
    assert client.get("/healthz").status_code == 200  # the process itself is alive
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_data(as_text=True) == "unavailable: database\n"


@pytest.mark.parametrize("statements", [1, 8, 12, 15])
def test_a_connection_dropped_mid_submission_saves_nothing_and_shows_503(
    app, client, org, outage, statements
):
    app.testing = False
    form = report(org)
    db.session.remove()
    outage.break_after(statements)  # choices read, then the insert, the keys, the audit…
    response = client.post("/report", data=form)
    assert_own_503_page(response)
    outage.mend()
    assert committed_cases() == 0 and count(Case) == 0
