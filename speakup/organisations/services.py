"""Creating the geography and each organisation's offline recovery keypair."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from speakup.audit.services import record
from speakup.crypto import PrivateKey, generate_keypair
from speakup.errors import ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation, Region, System

RECOVERY_FORMAT = "speakup-recovery-key-v1"


def get_or_create_region(code: str, name: str) -> Region:
    """The region with this code, created if new."""
    region = db.session.scalar(select(Region).where(Region.code == code))
    if region is None:
        region = Region(code=code, name=name)
        db.session.add(region)
        db.session.flush()
    return region


def get_or_create_system(region: Region, code: str, name: str) -> System:
    """The integrated care system with this code, created if new."""
    system = db.session.scalar(select(System).where(System.code == code))
    if system is None:
        system = System(region=region, code=code, name=name)
        db.session.add(system)
        db.session.flush()
    return system


def get_or_create_organisation(
    system: System, code: str, name: str, kind: str = "trust"
) -> Organisation:
    """The organisation with this code, created if new."""
    org = db.session.scalar(select(Organisation).where(Organisation.code == code))
    if org is None:
        org = Organisation(system=system, code=code, name=name, kind=kind)
        db.session.add(org)
        db.session.flush()
        record("organisation.created", actor_kind="system", detail=f"organisation={org.id}")
    return org


def find_organisation(code: str) -> Organisation:
    """An organisation by code, or a clear error."""
    org = db.session.scalar(select(Organisation).where(Organisation.code == code))
    if org is None:
        raise ValidationError(f"No organisation has the code {code!r}.")
    return org


def create_recovery_key(org: Organisation, out_path: Path, *, replace: bool = False) -> str:
    """Generate the organisation's recovery keypair; write the private half once to
    ``out_path`` (0600, refusing to overwrite) and keep only the public half."""
    if org.recovery_public_key is not None and not replace:
        raise ValidationError(
            f"{org.code} already has a recovery key (id {org.recovery_public_key.key_id})."
        )
    private = generate_keypair()
    public = private.public_key()
    payload = {
        "format": RECOVERY_FORMAT,
        "organisation": org.code,
        "key_id": public.key_id,
        "private_key": base64.b64encode(private.to_bytes()).decode(),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
        fh.write("\n")
    org.recovery_public_mlkem = public.mlkem
    org.recovery_public_x25519 = public.x25519
    record(
        "organisation.recovery_key_created", actor_kind="system", detail=f"organisation={org.id}"
    )
    return public.key_id


def load_recovery_key(path: Path, org: Organisation) -> PrivateKey:
    """Read a custodian's recovery key file and check it belongs to ``org``."""
    payload = json.loads(path.read_text())
    if payload.get("format") != RECOVERY_FORMAT or payload.get("organisation") != org.code:
        raise ValidationError("That file is not this organisation's recovery key.")
    private = PrivateKey.from_bytes(base64.b64decode(payload["private_key"]))
    expected = org.recovery_public_key
    if expected is None or private.public_key().key_id != expected.key_id:
        raise ValidationError("That recovery key does not match the organisation's current key.")
    return private


def find_scope(text: str) -> tuple[str, int]:
    """Parse ``region:CODE``, ``system:CODE`` or ``organisation:CODE`` into (kind, id)."""
    kind, _, code = text.partition(":")
    model = {"region": Region, "system": System, "organisation": Organisation}.get(kind)
    if model is None or not code:
        raise ValidationError(
            "A scope looks like region:MIDLANDS, system:BSOL or organisation:RRK."
        )
    row = db.session.scalar(select(model).where(model.code == code))  # type: ignore[attr-defined,arg-type]
    if row is None:
        raise ValidationError(f"No {kind} has the code {code!r}.")
    return kind, row.id


def describe_scope(kind: str | None, scope_id: int | None) -> str:
    """A leader's scope in words: "Region: …", "Integrated care system: …" or
    "Organisation: …" ("No scope" if unset or gone)."""
    row: Region | System | Organisation | None = None
    if scope_id is not None and kind == "region":
        row = db.session.get(Region, scope_id)
    elif scope_id is not None and kind == "system":
        row = db.session.get(System, scope_id)
    elif scope_id is not None and kind == "organisation":
        row = db.session.get(Organisation, scope_id)
    if row is None:
        return "No scope"
    label = {"region": "Region", "system": "Integrated care system", "organisation": "Organisation"}
    return f"{label[kind or '']}: {row.name}"


def update_service_levels(
    org: Organisation,
    *,
    reset: bool = False,
    config: Any,
    **settings: int | None,
) -> int:
    """Set (or, with ``reset``, clear) an organisation's own service levels. A new retention
    period re-dates the purge of its finished cases; returns how many were re-dated."""
    from speakup.cases.models import Case
    from speakup.cases.policy import policy_for, purge_date

    columns = {
        "acknowledge_working_days": "sla_acknowledge_working_days",
        "acknowledge_ceiling_days": "sla_acknowledge_ceiling_days",
        "feedback_days": "sla_feedback_days",
        "update_days": "sla_update_days",
        "retention_months": "retention_months",
    }
    for name, column in columns.items():
        if reset:
            setattr(org, column, None)
        elif settings.get(name) is not None:
            setattr(org, column, settings[name])
    redated = 0
    if reset or settings.get("retention_months") is not None:
        policy = policy_for(org, config)
        for case in db.session.scalars(
            select(Case).where(Case.organisation_id == org.id, Case.closed_at.is_not(None))
        ):
            if case.closed_at is not None:
                case.purge_after = purge_date(case.closed_at, policy)
                redated += 1
    record("organisation.settings_changed", actor_kind="system", detail=f"organisation={org.id}")
    return redated
