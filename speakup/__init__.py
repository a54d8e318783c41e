"""Speakup: confidential speak-up and concern reporting. Nothing happens at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader

from speakup.ids import DatabaseIntConverter
from speakup.uploads import InMemoryUploadRequest

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the application. ``overrides`` are applied last (tests use them)."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance") if overrides is None else None,
        instance_relative_config=False,
        template_folder=str(ROOT / "templates"),
    )
    if overrides and "INSTANCE_PATH" in overrides:
        app.instance_path = str(overrides["INSTANCE_PATH"])
    # Uploads are parsed into memory only: nothing unencrypted is ever spooled to disk.
    app.request_class = InMemoryUploadRequest
    # Every <int:…> in a route is bounded to what the database can hold (else a 500).
    app.url_map.converters["int"] = DatabaseIntConverter
    app.jinja_options = {
        "undefined": ChainableUndefined,
        "loader": ChoiceLoader(
            [FileSystemLoader(str(ROOT / "templates")), PackageLoader("nhsuk_frontend_jinja")]
        ),
        "autoescape": True,
    }

    from speakup.logging_setup import configure_logging
    from speakup.settings import load_settings

    load_settings(app, overrides)
    configure_logging(app)

    from speakup import models  # noqa: F401  (registers every table)
    from speakup.extensions import csrf, db, limiter, login_manager, migrate
    from speakup.ratelimit import init_proxy_hops, init_rate_limit_fallback

    init_proxy_hops(app)
    init_rate_limit_fallback(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from speakup.db_setup import configure_engines

    configure_engines(app)

    from speakup.accounts.sessions import init_staff_sessions
    from speakup.dates import init_date_filters
    from speakup.errors import register_error_handlers
    from speakup.security import init_security

    init_staff_sessions(app)
    init_security(app)
    init_date_filters(app)
    register_error_handlers(app)

    from speakup.accounts.views import bp as accounts_bp
    from speakup.admin.views import bp as admin_bp
    from speakup.cases import (
        actions,  # noqa: F401  (adds the action routes to the blueprint)
        confirm,  # noqa: F401  (their confirmation pages)
    )
    from speakup.cases.views import bp as cases_bp
    from speakup.health import bp as health_bp
    from speakup.health import check_dependencies_at_startup
    from speakup.reporting import pages  # noqa: F401  (adds the service pages to the blueprint)
    from speakup.reporting.views import bp as reporting_bp
    from speakup.stats.views import bp as stats_bp

    app.register_blueprint(reporting_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(stats_bp)
    app.register_blueprint(health_bp)
    check_dependencies_at_startup(app)

    from speakup.cli import register_cli

    register_cli(app)
    return app
