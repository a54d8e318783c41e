"""Typed configuration: versioned defaults, secrets from files or environment, validation.

Non-secret defaults live in ``config/defaults.toml``. Secrets never have a fallback: they come
from files in the instance folder (mode 0600, created for development by
``flask dev-secrets``) or from environment variables, and :func:`validate` refuses to start
without them.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask

from speakup.crypto import Argon2Params

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

#: secret name -> (config key, file name in the instance folder, minimum length in bytes)
SECRETS: dict[str, tuple[str, str, int]] = {
    "SPEAKUP_SECRET_KEY": ("SECRET_KEY", "secret_key", 32),
    "SPEAKUP_RECEIPT_PEPPER": ("RECEIPT_PEPPER", "receipt_pepper", 32),
    "SPEAKUP_RATELIMIT_SALT": ("RATELIMIT_SALT", "ratelimit_salt", 32),
    "SPEAKUP_STATS_INBOX_KEY": ("STATS_INBOX_KEY", "stats_inbox_key", 32),
    "SPEAKUP_AUDIT_KEY": ("AUDIT_KEY", "audit_key", 32),
}


#: mail settings an operator may set from the environment: env name -> (config key, type)
MAIL_ENVIRONMENT: dict[str, tuple[str, type]] = {
    "SPEAKUP_MAIL_HOST": ("MAIL_HOST", str),
    "SPEAKUP_MAIL_PORT": ("MAIL_PORT", int),
    "SPEAKUP_MAIL_USE_STARTTLS": ("MAIL_USE_STARTTLS", bool),
    "SPEAKUP_MAIL_SENDER": ("MAIL_SENDER", str),
    "SPEAKUP_MAIL_SUBJECT": ("MAIL_SUBJECT", str),
    "SPEAKUP_MAIL_BASE_URL": ("MAIL_BASE_URL", str),
    "SPEAKUP_MAIL_USERNAME": ("MAIL_USERNAME", str),
    "SPEAKUP_MAIL_TIMEOUT_SECONDS": ("MAIL_TIMEOUT_SECONDS", int),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigurationError(RuntimeError):
    """The application cannot start safely with this configuration."""


def load_defaults() -> dict[str, Any]:
    """Flatten ``config/defaults.toml`` into upper-case Flask config keys."""
    with open(CONFIG_DIR / "defaults.toml", "rb") as fh:
        raw = tomllib.load(fh)
    flat: dict[str, Any] = {}
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}_{key}".upper()] = value
        else:
            flat[section.upper()] = values
    return flat


def _mail_from_environment() -> dict[str, Any]:
    """Mail settings given in the environment, typed; a malformed one stops the start."""
    found: dict[str, Any] = {}
    for env_name, (key, kind) in MAIL_ENVIRONMENT.items():
        raw = os.environ.get(env_name)
        if raw is None or raw == "":
            continue
        if kind is bool:
            if raw.strip().lower() not in _TRUE | _FALSE:
                raise ConfigurationError(f"{env_name} must be true or false, not {raw!r}")
            found[key] = raw.strip().lower() in _TRUE
        elif kind is int:
            try:
                found[key] = int(raw)
            except ValueError:
                raise ConfigurationError(f"{env_name} must be a whole number") from None
            if found[key] <= 0 or (key == "MAIL_PORT" and found[key] > 65535):
                raise ConfigurationError(f"{env_name} is out of range")
        else:
            found[key] = raw
    return found


def _read_secret(app: Flask, env_name: str, file_name: str) -> bytes | None:
    value = os.environ.get(env_name)
    if value:
        return value.encode()
    path = Path(app.instance_path) / file_name
    if path.exists():
        return path.read_bytes().strip()
    return None


def load_settings(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Fill ``app.config`` from defaults, environment, instance secrets and overrides."""
    app.config.update(load_defaults())
    db_url = os.environ.get("SPEAKUP_DATABASE_URL")
    if db_url:
        app.config["SQLALCHEMY_DATABASE_URI"] = db_url
    else:
        db_path = Path(app.instance_path) / "speakup.db"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{db_path}"
    if os.environ.get("SPEAKUP_ENV") == "development":
        # `make run` serves plain HTTP on 127.0.0.1, where a Secure cookie may be refused.
        app.config["SESSION_COOKIE_SECURE"] = False
        app.config["AUTH_DEMO_MODE"] = True
    app.config.update(_mail_from_environment())
    hops = os.environ.get("SPEAKUP_PROXY_HOPS")
    if hops:
        try:
            app.config["WEB_PROXY_HOPS"] = int(hops)
        except ValueError:
            raise ConfigurationError("SPEAKUP_PROXY_HOPS must be a whole number") from None
    storage = os.environ.get("SPEAKUP_RATELIMIT_STORAGE_URI")
    if storage:
        app.config["RATELIMIT_STORAGE_URI"] = storage
    for env_name, (key, file_name, _) in SECRETS.items():
        secret = _read_secret(app, env_name, file_name)
        if secret is not None:
            app.config[key] = secret
    if overrides:
        app.config.update(overrides)
    if restoring_from_cli():
        app.config["RESTORE_MODE"] = True
    validate(app.config)


#: flask's own options that take a value (everything else starting with "-" is a flag)
_FLASK_VALUE_OPTIONS = {"--app", "-A", "--env-file", "-e"}


def restoring_from_cli(argv: list[str] | None = None) -> bool:
    """True when this process is ``flask … restore``: the one command allowed to start
    without its secrets, because bringing them back is what it is for."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    program = argv[0].replace("\\", "/")
    if Path(program).name != "flask" and not program.endswith("flask/__main__.py"):
        return False
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in _FLASK_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg == "restore"
    return False


def validate(config: dict[str, Any]) -> None:
    """Fail fast on a missing or weak secret, or an unsafe setting."""
    missing = []
    for env_name, (key, file_name, min_len) in SECRETS.items():
        value = config.get(key)
        if not value and config.get("RESTORE_MODE"):
            continue  # `flask restore` brings them back from the backup
        if not value or len(value) < min_len:
            missing.append(f"{key} (env {env_name} or instance/{file_name}, ≥{min_len} bytes)")
    if missing:
        raise ConfigurationError(
            "Speakup will not start without its secrets: "
            + "; ".join(missing)
            + ". For development run `python -m speakup.dev_secrets` (make run does)."
        )
    hops = config.get("WEB_PROXY_HOPS", 0)
    if not isinstance(hops, int) or isinstance(hops, bool) or not 0 <= hops <= 5:
        raise ConfigurationError("WEB_PROXY_HOPS (SPEAKUP_PROXY_HOPS) must be 0 to 5")
    if not config.get("TESTING") and config.get("ARGON2_MEMORY_KIB", 0) < 19 * 1024:
        raise ConfigurationError("ARGON2_MEMORY_KIB below 19 MiB is allowed only in tests")


def argon2_params(config: dict[str, Any]) -> Argon2Params:
    """The Argon2id cost from configuration."""
    return Argon2Params(
        time_cost=int(config["ARGON2_TIME_COST"]),
        memory_kib=int(config["ARGON2_MEMORY_KIB"]),
        parallelism=int(config["ARGON2_PARALLELISM"]),
        max_concurrency=int(config["ARGON2_MAX_CONCURRENCY"]),
    )
