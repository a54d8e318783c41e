"""Fixtures of the statistics world (``tests/stats_world.py``) for the web tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.stats_world import StatsWorld, build_stats_world, sign_in_as


@pytest.fixture
def world(app: Flask) -> StatsWorld:
    return build_stats_world(app.config)


@pytest.fixture
def as_(app: Flask, world: StatsWorld) -> Callable[[str], FlaskClient]:
    """A client signed in as one of the world's accounts, by its key."""

    def factory(who: str) -> FlaskClient:
        client = app.test_client()
        sign_in_as(client, world.accounts[who])
        return client

    return factory
