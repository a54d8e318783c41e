"""DESIGN §4 "Secrets kept outside the database": the app refuses to start without them, or
with weak ones, and none of them is ever part of the repository."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from speakup import ROOT, create_app
from speakup.organisations.services import RECOVERY_FORMAT
from speakup.settings import SECRETS, ConfigurationError
from tests.conftest import test_config as base_config

SECRET_KEYS = [key for key, _file, _min in SECRETS.values()]
ENV_NAMES = list(SECRETS)


@pytest.fixture(autouse=True)
def _no_secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A full test configuration whose instance folder is empty."""
    config = base_config(tmp_path)
    assert not any(Path(config["INSTANCE_PATH"]).iterdir())
    config.update(changes)
    return config


def test_the_complete_configuration_starts(tmp_path: Path) -> None:
    """The control for the refusals below."""
    assert create_app(_config(tmp_path)).config["TESTING"]


@pytest.mark.parametrize("missing", SECRET_KEYS)
def test_refuses_to_start_without_each_secret(tmp_path: Path, missing: str) -> None:
    config = _config(tmp_path)
    del config[missing]
    with pytest.raises(ConfigurationError) as raised:
        create_app(config)
    message = str(raised.value)
    assert missing in message
    for other in set(SECRET_KEYS) - {missing}:
        assert other not in message, "only the missing secret should be named"


@pytest.mark.parametrize("missing", SECRET_KEYS)
@pytest.mark.parametrize("weak", [b"", b"x" * 31, "short"])
def test_refuses_an_empty_or_short_secret(tmp_path: Path, missing: str, weak: Any) -> None:
    with pytest.raises(ConfigurationError, match=missing):
        create_app(_config(tmp_path, **{missing: weak}))


def test_accepts_a_secret_of_exactly_the_minimum_length(tmp_path: Path) -> None:
    create_app(_config(tmp_path, **dict.fromkeys(SECRET_KEYS, b"k" * 32)))


def test_secrets_are_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    for env_name, (key, _file, _min) in SECRETS.items():
        del config[key]
        monkeypatch.setenv(env_name, secrets.token_urlsafe(32))
    app = create_app(config)
    for env_name, (key, _file, _min) in SECRETS.items():
        assert app.config[key] == os.environ[env_name].encode()


def test_secrets_are_read_from_instance_files(tmp_path: Path) -> None:
    config = _config(tmp_path)
    instance = Path(config["INSTANCE_PATH"])
    for key, file_name, _min in SECRETS.values():
        del config[key]
        (instance / file_name).write_bytes(secrets.token_hex(32).encode() + b"\n")
    app = create_app(config)
    for key, file_name, _min in SECRETS.values():
        assert app.config[key] == (instance / file_name).read_bytes().strip()


def test_refuses_low_argon2_memory_outside_tests(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ARGON2"):
        create_app(_config(tmp_path, TESTING=False, ARGON2_MEMORY_KIB=1024))
    # The same cost is allowed in tests, and a real cost is allowed outside them.
    create_app(_config(tmp_path, TESTING=True, ARGON2_MEMORY_KIB=1024))
    create_app(_config(tmp_path, TESTING=False, ARGON2_MEMORY_KIB=64 * 1024))


def test_versioned_defaults_hold_no_secret() -> None:
    with open(ROOT / "config" / "defaults.toml", "rb") as fh:
        defaults = tomllib.load(fh)
    flat = {k.upper() for k in defaults} | {
        f"{section}_{k}".upper()
        for section, values in defaults.items()
        if isinstance(values, dict)
        for k in values
    }
    assert not flat & set(SECRET_KEYS)


def _git(*args: str) -> str:
    return subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


_SECRET_SUFFIXES = (".db", ".sqlite", ".sqlite3", "-wal", "-shm", ".pem", ".key", ".p12", ".pfx")
_SECRET_DIRS = ("instance/", "demo-recovery-keys/")


def _looks_secret(path: str, secret_names: set[str]) -> bool:
    name = Path(path).name
    return (
        any(path.startswith(d) or f"/{d}" in path for d in _SECRET_DIRS)
        or name.endswith(_SECRET_SUFFIXES)
        or name in secret_names
        or name == ".env"
        or name.startswith(".env.")
    )


def test_no_secret_or_database_is_tracked_by_git() -> None:
    tracked = _git("ls-files").splitlines()
    assert "setup.cfg" in tracked, "expected to run inside the repository"
    secret_names = {file_name for _key, file_name, _min in SECRETS.values()}
    assert [path for path in tracked if _looks_secret(path, secret_names)] == []
    # The predicate itself catches what it should.
    for example in ("instance/secret_key", "a/b.db", "receipt_pepper", "x/.env", "k.pem"):
        assert _looks_secret(example, secret_names), example


def test_no_recovery_key_file_is_tracked_by_git() -> None:
    """The custodian's file holds a private key; it must never be committed."""
    tracked = _git("ls-files").splitlines()
    offenders = []
    for path in tracked:
        full = ROOT / path
        if not full.is_file() or full.stat().st_size > 1_000_000:
            continue
        try:
            payload = json.loads(full.read_bytes())
        except ValueError:
            continue
        if isinstance(payload, dict) and (
            payload.get("format") == RECOVERY_FORMAT or "private_key" in payload
        ):
            offenders.append(path)
    assert offenders == []


@pytest.mark.parametrize(
    "path",
    [
        "instance/secret_key",
        "instance/receipt_pepper",
        "instance/ratelimit_salt",
        "instance/speakup.db",
        "instance/speakup.db-wal",
        "speakup.db",
        "demo-recovery-keys/ORG.json",
        ".env",
    ],
)
def test_secret_locations_are_ignored_by_git(path: str) -> None:
    result = subprocess.run(  # noqa: S603
        ["git", "check-ignore", "--no-index", "-q", path],  # noqa: S607
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"
