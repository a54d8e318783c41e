"""Operator configuration: mail settings from the environment, and demo recovery keys kept
per database."""

from __future__ import annotations

import pytest

from speakup import create_app, demo
from speakup.extensions import db
from speakup.settings import ConfigurationError
from tests.conftest import test_config as base_config


def test_mail_settings_come_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("SPEAKUP_MAIL_HOST", "smtp.trust.example.test")
    monkeypatch.setenv("SPEAKUP_MAIL_PORT", "587")
    monkeypatch.setenv("SPEAKUP_MAIL_USE_STARTTLS", "true")
    monkeypatch.setenv("SPEAKUP_MAIL_SENDER", "speakup@trust.example.test")
    monkeypatch.setenv("SPEAKUP_MAIL_BASE_URL", "https://speakup.trust.example.test")
    monkeypatch.setenv("SPEAKUP_MAIL_USERNAME", "speakup-digest")
    monkeypatch.setenv("SPEAKUP_MAIL_TIMEOUT_SECONDS", "20")
    config = make_app().config
    assert config["MAIL_HOST"] == "smtp.trust.example.test"
    assert config["MAIL_PORT"] == 587
    assert config["MAIL_USE_STARTTLS"] is True
    assert config["MAIL_SENDER"] == "speakup@trust.example.test"
    assert config["MAIL_BASE_URL"] == "https://speakup.trust.example.test"
    assert config["MAIL_USERNAME"] == "speakup-digest"
    assert config["MAIL_TIMEOUT_SECONDS"] == 20


def test_without_the_environment_the_versioned_defaults_apply(make_app):
    config = make_app().config
    assert (config["MAIL_HOST"], config["MAIL_PORT"], config["MAIL_USE_STARTTLS"]) == (
        "127.0.0.1",
        25,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPEAKUP_MAIL_PORT", "twenty-five"),
        ("SPEAKUP_MAIL_PORT", "70000"),
        ("SPEAKUP_MAIL_USE_STARTTLS", "maybe"),
    ],
)
def test_a_malformed_mail_setting_stops_the_start(make_app, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        make_app()


def test_recovery_key_folders_are_named_after_the_database():
    folder = demo.recovery_dir_for
    assert folder("sqlite:////srv/speakup/instance/speakup.db").name == "sqlite-speakup"
    assert folder("postgresql+psycopg://u:pw@db1:5432/speakup").name == "postgresql-speakup"
    assert folder("postgresql+psycopg://u:pw@db1/speakup_test").name == "postgresql-speakup_test"
    assert "pw" not in str(folder("postgresql+psycopg://u:pw@db1/x"))


def test_demo_load_for_a_second_database_keeps_the_first_ones_keys(app, cli, tmp_path, monkeypatch):
    keys = tmp_path / "demo-recovery-keys"
    monkeypatch.setattr(demo, "RECOVERY_DIR", keys)
    first = cli("demo", "load")
    assert first.exit_code == 0, first.output
    [first_dir] = list(keys.iterdir())
    before = {p.name: p.read_bytes() for p in first_dir.glob("*.json")}
    assert len(before) == 33 and f"{first_dir}/" in first.output

    second_uri = f"sqlite:///{tmp_path / 'second-demo.db'}"
    other = create_app(base_config(tmp_path, SQLALCHEMY_DATABASE_URI=second_uri))
    with other.app_context():
        db.create_all()
        result = other.test_cli_runner().invoke(args=["demo", "load"])
        assert result.exit_code == 0, result.output
        db.session.remove()
        db.engine.dispose()

    second_dir = keys / "sqlite-second-demo"
    assert len(list(second_dir.glob("*.json"))) == 33
    assert {p.name: p.read_bytes() for p in first_dir.glob("*.json")} == before


def test_the_gunicorn_config_recycles_workers_and_keeps_no_access_log(monkeypatch):
    import runpy
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"
    settings = runpy.run_path(str(path))
    assert settings["accesslog"] is None  # no reporter addresses in any log
    assert settings["worker_class"] == "sync" and settings["workers"] >= 2
    assert settings["max_requests"] > 0 and settings["max_requests_jitter"] > 0
    assert settings["timeout"] >= 30 and settings["bind"].startswith("127.0.0.1:")
    monkeypatch.setenv("SPEAKUP_GUNICORN_WORKERS", "7")
    assert runpy.run_path(str(path))["workers"] == 7
