"""Backup and restore as commands (issue 12): ``flask backup`` and ``flask restore``.

A backup is a directory of three files:

- the database dump (SQLite online backup, or ``pg_dump --format=custom``), mode 0600;
- ``secrets.sealed``: every secret the settings load (:data:`speakup.settings.SECRETS`),
  sealed with HPKE to an organisation's recovery public key, so only the custodian's offline
  key file opens it — the secrets are never in clear next to the dump;
- ``manifest.json``: format, time, database kind, the case count and two known-answer
  values (HMACs under the receipt pepper: one of a fixed label, one of the dump's digest).
  Nothing in it is secret.

Restoring opens the bundle in this process only, checks before changing anything that the
secrets are this backup's and match the dump (without the receipt pepper the dump was
written under, every reporter would be locked out for good), then restores the database and
writes the secrets into the instance folder, 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import subprocess  # nosec B404
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import URL, Engine

from speakup.crypto import DecryptionError, PrivateKey, PublicKey, open_sealed, seal
from speakup.db import utcnow
from speakup.db_setup import PRIVATE_MODE, make_sqlite_files_private
from speakup.errors import SpeakupError
from speakup.settings import SECRETS

FORMAT = "speakup-backup-v1"
MANIFEST = "manifest.json"
BUNDLE = "secrets.sealed"
DUMP_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
PURPOSE = "backup-secrets"
KNOWN_ANSWER_LABEL = b"speakup-backup-v1/known-answer"
DUMP_LABEL = b"speakup-backup-v1/dump/"
CASE_TABLE = "concern_case"
COUNT_CASES = "SELECT count(*) FROM concern_case"
_CHUNK = 1024 * 1024


class BackupError(SpeakupError):
    """A backup or restore that cannot go ahead; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    directory: Path
    database: str
    cases: int
    key_id: str
    backup_id: str


@dataclass(frozen=True)
class RestoreResult:
    database: str
    cases: int
    secrets_written: list[str]
    backup_id: str
    #: the restored secrets by config key, for this process only (never printed)
    values: Mapping[str, bytes] = field(default_factory=dict, repr=False)


# Helpers ---------------------------------------------------------------------------------


def database_kind(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``; anything else cannot be backed up by this command."""
    name = engine.dialect.name
    if name not in DUMP_FILES:
        raise BackupError(f"Backups of a {name} database are not supported.")
    return name


def known_answer(pepper: bytes) -> str:
    """HMAC of a fixed label under the receipt pepper: tells peppers apart, reveals nothing."""
    return hmac.new(pepper, KNOWN_ANSWER_LABEL, hashlib.sha256).hexdigest()


def dump_check(pepper: bytes, dump_sha256: str) -> str:
    """HMAC of the dump's digest under the receipt pepper: binds these secrets to this dump."""
    return hmac.new(pepper, DUMP_LABEL + dump_sha256.encode(), hashlib.sha256).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _create_private(path: Path) -> int:
    """Create ``path`` 0600, refusing to overwrite; return its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)


def _write_private(path: Path, data: bytes) -> None:
    with os.fdopen(_create_private(path), "wb") as fh:
        fh.write(data)


def _libpq(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq connection URL without the password, and an environment carrying it
    (so the password never appears in the process list)."""
    url: URL = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed on this host (PostgreSQL client tools).")
    return path


def _run(args: list[str], env: dict[str, str]) -> None:
    # A fixed argument list built here, no shell; the URL is the configured database's.
    done = subprocess.run(  # noqa: S603  # nosec B603
        args, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise BackupError(f"{Path(args[0]).name} failed: {reason}")


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("Only a SQLite database in a file can be backed up or restored.")
    return Path(database)


# Backup ----------------------------------------------------------------------------------


def _backup_sqlite(engine: Engine, dump: Path) -> int:
    source = sqlite3.connect(f"{_sqlite_path(engine).resolve().as_uri()}?mode=ro", uri=True)
    os.close(_create_private(dump))
    target = sqlite3.connect(dump)
    try:
        source.backup(target)  # the online backup API: a consistent copy while the app runs
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        row = target.execute(COUNT_CASES).fetchone()
    finally:
        target.close()
        source.close()
    return int(row[0])


def _backup_postgresql(engine: Engine, dump: Path) -> int:
    pg_dump = _tool("pg_dump")
    url, env = _libpq(engine)
    os.close(_create_private(dump))  # pg_dump writes into it and keeps the mode
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        # The count and the dump see the same snapshot, so the manifest's count is exact.
        snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
        cases = conn.scalar(text(COUNT_CASES))
        _run(
            [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={dump}",
                f"--dbname={url}",
            ],
            env,
        )
        conn.rollback()
    dump.chmod(PRIVATE_MODE)
    return int(cases or 0)


def secret_values(config: Mapping[str, Any]) -> dict[str, bytes]:
    """Every secret the settings load, by config key."""
    values: dict[str, bytes] = {}
    for _env, (key, _file, _min) in SECRETS.items():
        value = config.get(key)
        if not value:
            raise BackupError(f"{key} is not set; there is nothing to back up it with.")
        values[key] = value if isinstance(value, bytes) else str(value).encode()
    return values


def make_backup(
    engine: Engine, config: Mapping[str, Any], out_dir: Path, organisation: Any
) -> BackupResult:
    """Write dump, sealed secrets and manifest into ``out_dir`` (new or empty)."""
    public: PublicKey | None = organisation.recovery_public_key
    if public is None:
        raise BackupError(
            f"{organisation.code} has no recovery key; create one first with "
            f"`flask org recovery-key {organisation.code} --out FILE`."
        )
    kind = database_kind(engine)
    values = secret_values(config)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty; give each backup a new directory.")
    dump = out_dir / DUMP_FILES[kind]
    cases = _backup_sqlite(engine, dump) if kind == "sqlite" else _backup_postgresql(engine, dump)
    digest = file_sha256(dump)
    backup_id = secrets.token_hex(16)
    bundle = {
        "format": FORMAT,
        "backup_id": backup_id,
        "dump_sha256": digest,
        "secrets": {key: base64.b64encode(value).decode() for key, value in values.items()},
    }
    sealed = seal(public, json.dumps(bundle).encode(), purpose=PURPOSE, case_id=0)
    _write_private(out_dir / BUNDLE, sealed)
    pepper = values["RECEIPT_PEPPER"]
    manifest = {
        "format": FORMAT,
        "backup_id": backup_id,
        "created_at": utcnow().isoformat(timespec="seconds"),
        "database": kind,
        "dump_file": dump.name,
        "dump_sha256": digest,
        "cases": cases,
        "secrets_file": BUNDLE,
        "secret_names": sorted(values),
        "sealed_to": {"organisation": organisation.code, "key_id": public.key_id},
        "known_answer": known_answer(pepper),
        "dump_check": dump_check(pepper, digest),
    }
    _write_private(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return BackupResult(out_dir, kind, cases, public.key_id, backup_id)


# Restore ---------------------------------------------------------------------------------


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} holds no {MANIFEST}; is it a Speakup backup?") from None
    except ValueError:
        raise BackupError(f"{path} is not readable JSON.") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a {FORMAT} manifest.")
    return manifest


def load_key_file(key_file: Path, manifest: Mapping[str, Any]) -> PrivateKey:
    """The custodian's recovery key, checked against the key the backup was sealed to."""
    from speakup.organisations.services import RECOVERY_FORMAT

    sealed_to = manifest["sealed_to"]
    try:
        payload = json.loads(key_file.read_text())
        private = PrivateKey.from_bytes(base64.b64decode(payload["private_key"]))
    except (OSError, ValueError, KeyError, TypeError, DecryptionError):
        raise BackupError(f"{key_file} is not a Speakup recovery key file.") from None
    if payload.get("format") != RECOVERY_FORMAT:
        raise BackupError(f"{key_file} is not a Speakup recovery key file.")
    if payload.get("organisation") != sealed_to["organisation"]:
        raise BackupError(
            f"Wrong key file: it is {payload.get('organisation')}'s recovery key, but this "
            f"backup's secrets are sealed to {sealed_to['organisation']}'s."
        )
    if private.public_key().key_id != sealed_to["key_id"]:
        raise BackupError(
            f"Wrong key file: it holds recovery key {private.public_key().key_id}, but this "
            f"backup's secrets are sealed to key {sealed_to['key_id']} "
            "(an older or newer key of the same organisation?)."
        )
    return private


def open_bundle(backup_dir: Path, manifest: Mapping[str, Any], key: PrivateKey) -> dict[str, bytes]:
    """Open the sealed secrets (in this process only) and check them against the manifest
    and the dump: the known-answer check. Refuses with the reason on any mismatch."""
    try:
        sealed = (backup_dir / str(manifest["secrets_file"])).read_bytes()
        bundle = json.loads(open_sealed(key, sealed, purpose=PURPOSE, case_id=0))
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} holds no {manifest['secrets_file']}.") from None
    except (DecryptionError, ValueError):
        raise BackupError(
            "The secrets bundle did not open with this key file (damaged, or sealed to "
            "another key)."
        ) from None
    values = {key_: base64.b64decode(value) for key_, value in bundle["secrets"].items()}
    pepper = values.get("RECEIPT_PEPPER", b"")
    if (
        bundle.get("backup_id") != manifest.get("backup_id")
        or not pepper
        or not hmac.compare_digest(known_answer(pepper), str(manifest.get("known_answer")))
    ):
        raise BackupError(
            "The secrets bundle does not belong to this manifest (secrets of another backup "
            "or installation); restoring would lock out every reporter. Nothing was changed."
        )
    dump = backup_dir / str(manifest["dump_file"])
    if not dump.exists():
        raise BackupError(f"{backup_dir} holds no {dump.name}.")
    digest = file_sha256(dump)
    if digest != bundle.get("dump_sha256") or not hmac.compare_digest(
        dump_check(pepper, digest), str(manifest.get("dump_check"))
    ):
        raise BackupError(
            f"{dump.name} is not the dump these secrets were backed up with (damaged, or "
            "from another backup); restoring it would lock out every reporter. "
            "Nothing was changed."
        )
    missing = {key_ for _e, (key_, _f, _m) in SECRETS.items()} - set(values)
    if missing:
        raise BackupError(f"The secrets bundle lacks {', '.join(sorted(missing))}.")
    return values


def table_rows(engine: Engine) -> dict[str, int]:
    """Rows in each table of the target database (except the migration marker)."""
    rows: dict[str, int] = {}
    names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
    with engine.connect() as conn:
        for name in names:
            table = text(f'"{name}"')  # names come from the database's own catalogue
            rows[name] = int(conn.scalar(select(func.count()).select_from(table)) or 0)
    return rows


def check_target_empty(engine: Engine, replace: bool) -> None:
    if replace:
        return
    rows = table_rows(engine)
    busy = {name: n for name, n in rows.items() if n}
    if busy:
        cases = rows.get(CASE_TABLE, 0)
        raise BackupError(
            f"The target database is not empty ({cases} case(s), {sum(busy.values())} rows "
            "in all). Restore into an empty database, or pass --replace to overwrite it."
        )


def instance_conflicts(instance: Path, values: Mapping[str, bytes], replace: bool) -> list[str]:
    """Refusals for secrets that exist already and differ from the backup's."""
    problems = []
    for env_name, (key, file_name, _min) in SECRETS.items():
        wanted = values[key]
        if wanted != wanted.strip() or b"\n" in wanted:
            problems.append(
                f"{key} cannot be kept in a file as it is (whitespace at its ends); "
                f"set {env_name} in the environment instead"
            )
        from_env = os.environ.get(env_name)
        if from_env and from_env.encode() != wanted:
            problems.append(
                f"{env_name} is set in the environment to a different secret; unset it "
                "(the restored secret goes into the instance folder)"
            )
        path = instance / file_name
        if path.exists() and path.read_bytes().strip() != wanted and not replace:
            problems.append(
                f"instance/{file_name} holds a different secret; pass --replace to overwrite it"
            )
    return problems


def _restore_sqlite(engine: Engine, dump: Path) -> None:
    target_path = _sqlite_path(engine)
    engine.dispose()
    make_sqlite_files_private(str(target_path))
    source = sqlite3.connect(f"{dump.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)  # replaces every page of the target
    finally:
        target.close()
        source.close()
    make_sqlite_files_private(str(target_path))


def _restore_postgresql(engine: Engine, dump: Path) -> None:
    pg_restore = _tool("pg_restore")
    url, env = _libpq(engine)
    engine.dispose()
    _run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={url}",
            str(dump),
        ],
        env,
    )


def write_secrets(instance: Path, values: Mapping[str, bytes]) -> list[str]:
    """Write each secret into the instance folder, 0600 (atomically: temp file, rename)."""
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for _env, (key, file_name, _min) in SECRETS.items():
        path = instance / file_name
        if path.exists() and path.read_bytes().strip() == values[key]:
            continue
        temp = instance / f".{file_name}.{secrets.token_hex(4)}"
        _write_private(temp, values[key])
        os.replace(temp, path)
        written.append(file_name)
    return written


def restore_backup(
    engine: Engine,
    instance: Path,
    backup_dir: Path,
    key_file: Path,
    *,
    replace: bool = False,
) -> RestoreResult:
    """Check everything, then restore the database and write the secrets."""
    manifest = read_manifest(backup_dir)
    key = load_key_file(key_file, manifest)
    values = open_bundle(backup_dir, manifest, key)
    kind = database_kind(engine)
    if manifest.get("database") != kind:
        raise BackupError(
            f"This backup is of a {manifest.get('database')} database; the configured "
            f"database is {kind}. Restore it into a {manifest.get('database')} database."
        )
    problems = instance_conflicts(instance, values, replace)
    if problems:
        raise BackupError("Nothing was changed: " + "; ".join(problems) + ".")
    check_target_empty(engine, replace)
    dump = backup_dir / str(manifest["dump_file"])
    if kind == "sqlite":
        _restore_sqlite(engine, dump)
    else:
        _restore_postgresql(engine, dump)
    with engine.connect() as conn:
        cases = int(conn.scalar(text(COUNT_CASES)) or 0)
    if cases != manifest.get("cases"):
        raise BackupError(
            f"The restored database holds {cases} case(s), the manifest says "
            f"{manifest.get('cases')}; the secrets were not written."
        )
    written = write_secrets(instance, values)
    values_by_key = {key: values[key] for key, _file, _min in SECRETS.values()}
    return RestoreResult(kind, cases, written, str(manifest.get("backup_id")), values_by_key)
