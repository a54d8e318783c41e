"""Job leases by the database clock: a host whose clock is wrong cannot take a held lease,
a running job renews its lease, and a job whose lease was taken over stops."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from speakup.extensions import db
from speakup.jobs.leases import LeaseLostError, acquire, lease, release


def test_a_held_lease_cannot_be_taken_even_by_a_host_whose_clock_runs_a_day_ahead(
    app, time_machine
):
    held = acquire("digest", 60)
    assert held
    time_machine.move_to(datetime.now(UTC) + timedelta(days=1), tick=True)  # this host only
    assert acquire("digest", 60) is None
    release(held)
    assert acquire("digest", 60) is not None


def test_an_expired_lease_is_free_by_the_database_clock_even_if_a_host_clock_lags(
    app, time_machine
):
    assert acquire("digest", 1)
    time_machine.move_to(datetime.now(UTC) - timedelta(days=1), tick=True)
    time.sleep(1.2)
    assert acquire("digest", 1) is not None


def test_renewing_keeps_a_slow_run_from_being_taken_over(app):
    held = acquire("digest", 1)
    assert held
    for _ in range(3):  # a 1.5 s run on a 1 s lease, renewed as it goes
        time.sleep(0.5)
        held.renew()
        assert acquire("digest", 1) is None
    release(held)


def test_a_run_whose_lease_was_taken_over_stops(app):
    first = acquire("digest", 1)
    assert first
    time.sleep(1.2)  # the first run stalled past its lease
    second = acquire("digest", 60)
    assert second
    with pytest.raises(LeaseLostError):
        first.renew()
    second.renew()  # the new holder carries on


def test_a_slow_digest_renews_its_lease_while_another_host_tries(app):
    outcomes: list = []
    started = threading.Event()

    def other_host() -> None:
        with app.app_context():
            started.wait(5)
            time.sleep(1.3)  # past the first run's original expiry
            outcomes.append(acquire("digest", 1))
            db.session.remove()

    thread = threading.Thread(target=other_host)
    thread.start()
    with lease("digest", seconds=1) as mine:
        assert mine
        started.set()
        for _ in range(5):  # five slow messages, the lease renewed before each
            mine.renew()
            time.sleep(0.4)
    thread.join(10)
    assert outcomes == [None]
