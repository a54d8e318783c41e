"""Case-key custody: the one place a sealed copy of a case key is created or deleted
(DESIGN §3 promise 9, §4).

Every copy sealed to a staff member goes through :func:`grant`, which asks
:func:`allowed_keys` — a pure function of the case's recorded consents, exclusions and the
reader's standing — whether this person may hold this key. Callers never decide that: they
say *who* should read the case and custody gives each person exactly what the reporter
agreed to. Every change of readers posts one plain message to the reporter's thread.

The consent rules, in words:

- A guardian the reporter named as involved never holds any key of the case.
- The data key (what happened) goes to the readers of the route she chose, to guardians a
  reader passes the case to later (assign, transfer, hand-over), and to the regional panel
  only if she consented to escalation.
- The identity key (who she is) goes only to readers she allowed: the route's readers if she
  spoke up confidentially or openly (or shared her identity later); readers added later only
  if she answered yes to "may they see who you are?"; the panel only with its own consent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import aliased, selectinload

from speakup.accounts.models import Role, User
from speakup.accounts.signals import staff_signed_in
from speakup.audit.services import record
from speakup.cases.content import add_message, decrypt_json, encrypt_json
from speakup.cases.models import (
    Attachment,
    Case,
    CaseKey,
    DisclosureMode,
    Exclusion,
    KeyType,
    Message,
    PendingGrant,
    RecipientKind,
    Route,
)
from speakup.crypto import (
    DecryptionError,
    PrivateKey,
    PublicKey,
    decrypt_field,
    encrypt_field,
    new_data_key,
    open_sealed,
    seal,
)
from speakup.errors import ForbiddenError, ValidationError
from speakup.extensions import db
from speakup.organisations.models import Organisation

#: the author kind of the service's own plainly worded messages in a case thread
SERVICE_AUTHOR = "service"


class ExcludedReaderError(ForbiddenError):
    """An attempt to give case keys to a guardian the reporter named as involved."""


class ConsentError(ForbiddenError):
    """An attempt to give someone a key the reporter's recorded consents do not allow."""


class Standing(enum.StrEnum):
    """How a person comes to read a case, which decides what the reporter allowed them."""

    #: a reader of the route the reporter chose (her organisation's guardians, the pool
    #: guardian she picked, or the panel when she chose the panel)
    ROUTE = "route"
    #: a guardian a reader passed the case to later (assign, transfer, hand-over)
    LATER = "later"
    #: the regional panel, reached by escalation
    PANEL = "panel"


@dataclass(frozen=True)
class Consents:
    """What the reporter agreed to, as recorded on the case."""

    has_identity: bool
    identity_to_route: bool
    identity_to_later: bool
    escalation: bool
    identity_to_panel: bool

    @classmethod
    def of(cls, case: Case) -> Consents:
        return cls(
            has_identity=case.identity_ct is not None,
            identity_to_route=case.disclosure_mode != DisclosureMode.ANONYMOUS,
            identity_to_later=bool(case.identity_later_consent),
            escalation=bool(case.escalation_consent),
            identity_to_panel=bool(case.identity_escalation_consent),
        )


def allowed_keys(standing: Standing | None, consents: Consents, *, excluded: bool) -> frozenset:
    """The key types a person of this standing may hold. Pure: the consent matrix."""
    if excluded or standing is None:
        return frozenset()
    if standing == Standing.PANEL and not consents.escalation:
        return frozenset()
    keys = {KeyType.DEK}
    identity_allowed = {
        Standing.ROUTE: consents.identity_to_route,
        Standing.LATER: consents.identity_to_later,
        Standing.PANEL: consents.identity_to_panel,
    }[standing]
    if consents.has_identity and identity_allowed:
        keys.add(KeyType.IDK)
    return frozenset(keys)


def standing_of(case: Case, user: User) -> Standing | None:
    """The user's standing on this case; ``None`` for someone who can never read it."""
    if not user.is_reader or getattr(user, "enrolment_pending", False):
        return None
    if user.role == Role.PANEL_MEMBER:
        return Standing.ROUTE if case.route == Route.PANEL else Standing.PANEL
    if case.route == Route.ORGANISATION and user.organisation_id == case.organisation_id:
        return Standing.ROUTE
    if case.route == Route.POOL and user.id == case.chosen_guardian_id:
        return Standing.ROUTE
    return Standing.LATER


def excluded_user_ids(case: Case) -> set[int]:
    """Ids of the guardians the reporter said must not see this case."""
    return set(db.session.scalars(select(Exclusion.user_id).where(Exclusion.case_id == case.id)))


def may_hold(case: Case, user: User, key_type: KeyType, excluded: set[int] | None = None) -> bool:
    """Whether the case's recorded consents and exclusions let ``user`` hold ``key_type``."""
    excluded = excluded_user_ids(case) if excluded is None else excluded
    return key_type in allowed_keys(
        standing_of(case, user), Consents.of(case), excluded=user.id in excluded
    )


# Sealing and opening ------------------------------------------------------------------------


def _purpose(key_type: str) -> str:
    return f"case-{key_type}"


def _store(
    case: Case,
    kind: RecipientKind,
    public: PublicKey,
    key_type: KeyType,
    key: bytes,
    *,
    user_id: int | None = None,
) -> CaseKey:
    sealed = seal(public, key, purpose=_purpose(key_type), case_id=case.id)
    row = CaseKey(
        case_id=case.id,
        recipient_kind=str(kind),
        user_id=user_id,
        key_type=str(key_type),
        recipient_key_id=public.key_id,
        sealed=sealed,
    )
    db.session.add(row)
    return row


def grant(case: Case, user: User, key_type: KeyType, key: bytes) -> CaseKey:
    """Seal ``key`` to a staff member — the only way a staff copy is ever made. Refuses
    anyone the reporter's consents and exclusions do not allow."""
    excluded = excluded_user_ids(case)
    if user.id in excluded:
        raise ExcludedReaderError(
            "The reporter named this person as involved: they can never see it."
        )
    if not may_hold(case, user, key_type, excluded):
        if key_type == KeyType.IDK:
            raise ConsentError(
                "The reporter has not agreed that this person may know who they are."
            )
        raise ConsentError("The reporter has not agreed that this person may read the concern.")
    # A copy given another way (say, re-assigned after a reset) settles a waiting restore.
    db.session.execute(
        delete(PendingGrant).where(
            PendingGrant.case_id == case.id,
            PendingGrant.user_id == user.id,
            PendingGrant.key_type == str(key_type),
        )
    )
    return _store(case, RecipientKind.USER, user.public_key, key_type, key, user_id=user.id)


def _seal_to_holders_of_record(case: Case, key_type: KeyType, key: bytes) -> None:
    """The copies every case key always has: the organisation's recovery key, the reporter."""
    organisation = db.session.get_one(Organisation, case.organisation_id)
    recovery = organisation.recovery_public_key
    if recovery is not None:
        _store(case, RecipientKind.RECOVERY, recovery, key_type, key)
    _store(case, RecipientKind.REPORTER, case.reporter_public_key, key_type, key)


def open_case_key(
    case: Case, private_key: PrivateKey, key_type: KeyType, *, user_id: int | None = None
) -> bytes | None:
    """Open this reader's sealed copy (``user_id`` None = the reporter); None if none."""
    kind = RecipientKind.USER if user_id is not None else RecipientKind.REPORTER
    query = select(CaseKey).where(
        CaseKey.case_id == case.id,
        CaseKey.recipient_kind == str(kind),
        CaseKey.key_type == str(key_type),
    )
    query = query.where(CaseKey.user_id == user_id) if user_id else query
    row = db.session.scalar(query)
    if row is None:
        return None
    try:
        return open_sealed(private_key, row.sealed, purpose=_purpose(key_type), case_id=case.id)
    except DecryptionError:
        return None


def reader_ids(case: Case, key_type: KeyType = KeyType.DEK) -> list[int]:
    """Ids of staff holding a sealed copy of this case key."""
    return [
        uid
        for uid in db.session.scalars(
            select(CaseKey.user_id).where(
                CaseKey.case_id == case.id,
                CaseKey.recipient_kind == str(RecipientKind.USER),
                CaseKey.key_type == str(key_type),
            )
        )
        if uid is not None
    ]


def _users(ids: Iterable[int]) -> list[User]:
    ids = list(ids)
    if not ids:
        return []
    # Their organisations come in one more query: messages and the reporter's reader list
    # name each person's organisation.
    return list(
        db.session.scalars(
            select(User)
            .where(User.id.in_(ids))
            .options(selectinload(User.organisation))
            .order_by(User.id)
        )
    )


# A new case ----------------------------------------------------------------------------------


def route_readers(
    route: str, organisation_id: int, chosen_guardian_id: int | None, excluded: set[int]
) -> list[User]:
    """The active readers a new case on this route is sealed to, minus exclusions."""
    query = select(User).where(User.disabled.is_(False)).order_by(User.id)
    if route == Route.ORGANISATION:
        query = query.where(
            User.organisation_id == organisation_id,
            User.role.in_([Role.GUARDIAN, Role.LEAD_GUARDIAN]),
        )
    elif route == Route.POOL:
        query = query.where(
            User.id == chosen_guardian_id,
            User.in_pool.is_(True),
            User.role.in_([Role.GUARDIAN, Role.LEAD_GUARDIAN]),
        )
    elif route == Route.PANEL:
        query = query.where(User.role == Role.PANEL_MEMBER)
    else:
        raise ValidationError("Choose who should receive your concern.")
    return [
        user
        for user in db.session.scalars(query)
        if user.id not in excluded and not user.enrolment_pending
    ]


def seal_new_case(case: Case, readers: Sequence[User], dek: bytes, idk: bytes | None) -> None:
    """Seal a new case's keys to its route readers (each through :func:`grant`), the
    recovery key and the reporter."""
    for reader in readers:
        grant(case, reader, KeyType.DEK, dek)
    _seal_to_holders_of_record(case, KeyType.DEK, dek)
    if idk is not None:
        for reader in readers:
            if may_hold(case, reader, KeyType.IDK):
                grant(case, reader, KeyType.IDK, idk)
        _seal_to_holders_of_record(case, KeyType.IDK, idk)


# Telling the reporter ------------------------------------------------------------------------

_ROLE_WORDS = {
    Role.GUARDIAN: "a Freedom to Speak Up guardian",
    Role.LEAD_GUARDIAN: "a lead Freedom to Speak Up guardian",
    Role.PANEL_MEMBER: "a member of the Race Equality and Inclusion Panel",
}


def _role_noun(user: User) -> str:
    """ "Freedom to Speak Up guardian", capitalised for a table cell."""
    noun = _ROLE_WORDS.get(Role(user.role), "a member of staff").split(" ", 1)[1]
    return noun[0].upper() + noun[1:]


def describe_reader(user: User) -> str:
    """ "Grace Mensah, a Freedom to Speak Up guardian at Example Hospitals"."""
    role = _ROLE_WORDS.get(Role(user.role), "a member of staff")
    where = f" at {user.organisation.name}" if user.organisation is not None else ""
    return f"{user.display_name}, {role}{where}"


def _sees_name(user: User, holders_of_identity: set[int]) -> str:
    return (
        "They can see who you are."
        if user.id in holders_of_identity
        else "They cannot see your name or contact details."
    )


def announce(
    case: Case,
    dek: bytes,
    *,
    added: Sequence[User] = (),
    removed: Sequence[User] = (),
    lead: str = "Your concern was passed to",
) -> None:
    """Post one plain message to the reporter's thread about a change of readers."""
    if not added and not removed:
        return
    identity = set(reader_ids(case, KeyType.IDK))
    parts = [f"{lead} {describe_reader(u)}. {_sees_name(u, identity)}" for u in added]
    parts += [f"{u.display_name} can no longer read your concern." for u in removed]
    parts.append("Your case page lists everyone who can read your concern.")
    add_service_message(case, dek, " ".join(parts))


def add_service_message(case: Case, dek: bytes, body: str) -> None:
    """A plainly worded message from the service itself in the reporter's thread."""
    add_message(case, dek, author_kind=SERVICE_AUTHOR, body=body)


def current_readers(case: Case) -> list[User]:
    """The staff who hold the case's data key now."""
    return _users(reader_ids(case))


def identity_readers_if_shared(case: Case) -> list[str]:
    """Descriptions of the current readers who would see her identity if she shared it now
    (as a confidential reporter: her consents otherwise as recorded)."""
    excluded = excluded_user_ids(case)
    consents = Consents.of(case)
    as_if = Consents(
        has_identity=True,
        identity_to_route=True,
        identity_to_later=consents.identity_to_later,
        escalation=consents.escalation,
        identity_to_panel=consents.identity_to_panel,
    )
    return [
        describe_reader(u)
        for u in current_readers(case)
        if KeyType.IDK in allowed_keys(standing_of(case, u), as_if, excluded=u.id in excluded)
    ]


# Readers added and removed -------------------------------------------------------------------


def add_reader(
    case: Case, dek: bytes, idk: bytes | None, target: User, *, actor: User | None
) -> bool:
    """Give ``target`` the data key, and the identity key only where the reporter allowed
    it. Returns whether they are a new reader (an existing one is left as is)."""
    excluded = excluded_user_ids(case)
    if target.id in excluded:
        # Checked here as well as in grant(), so nothing is half-granted.
        raise ForbiddenError("The reporter named this person as involved: they can never see it.")
    holders = set(reader_ids(case))
    new = target.id not in holders
    if new:
        grant(case, target, KeyType.DEK, dek)
    if (
        idk is not None
        and target.id not in set(reader_ids(case, KeyType.IDK))
        and may_hold(case, target, KeyType.IDK, excluded)
    ):
        grant(case, target, KeyType.IDK, idk)
    if new:
        record(
            "case.reader_added",
            actor_kind="user" if actor else "system",
            actor_user_id=actor.id if actor else None,
            case_id=case.id,
            detail=f"user={target.id} identity="
            + ("yes" if target.id in set(reader_ids(case, KeyType.IDK)) else "no"),
        )
    return new


def remove_reader(
    case: Case, dek: bytes, idk: bytes | None, target: User, *, actor: User
) -> tuple[bytes, bytes | None]:
    """Delete every copy ``target`` holds and rotate the case keys, so an old copy opens
    nothing written afterwards. Returns the new (data key, identity key)."""
    remaining = [uid for uid in reader_ids(case) if uid != target.id]
    if not remaining:
        raise ValidationError("A case must keep at least one reader.")
    had_idk = target.id in set(reader_ids(case, KeyType.IDK))
    _delete_user_copies(case, target.id)
    drop_pending(case, target, actor=actor)
    new_dek, new_idk = rotate_case_keys(case, dek, idk if had_idk else None)
    return new_dek, (new_idk if had_idk else idk)


def _delete_user_copies(case: Case, user_id: int, key_type: KeyType | None = None) -> None:
    query = delete(CaseKey).where(
        CaseKey.case_id == case.id,
        CaseKey.recipient_kind == str(RecipientKind.USER),
        CaseKey.user_id == user_id,
    )
    if key_type is not None:
        query = query.where(CaseKey.key_type == str(key_type))
    db.session.execute(query)


# Rotation ------------------------------------------------------------------------------------


def _reencrypt(
    old: bytes, new: bytes, blob: bytes, *, table: str, row_id: int, field: str
) -> bytes:
    plain = decrypt_field(old, blob, table=table, row_id=row_id, field=field)
    return encrypt_field(new, plain, table=table, row_id=row_id, field=field)


def rotate_case_keys(
    case: Case, old_dek: bytes, old_idk: bytes | None
) -> tuple[bytes, bytes | None]:
    """Re-encrypt the case under a fresh data key (and identity key, if given) and re-seal
    the new keys to every remaining holder, each through :func:`grant`."""
    db.session.flush()
    new_dek = new_data_key()
    case.report_ct = _reencrypt(
        old_dek, new_dek, case.report_ct, table="concern_case", row_id=case.id, field="report"
    )
    if case.triage_ct is not None:
        case.triage_ct = _reencrypt(
            old_dek, new_dek, case.triage_ct, table="concern_case", row_id=case.id, field="triage"
        )
    for message in db.session.scalars(select(Message).where(Message.case_id == case.id)):
        message.body_ct = _reencrypt(
            old_dek, new_dek, message.body_ct, table="message", row_id=message.id, field="body"
        )
    for attachment in db.session.scalars(select(Attachment).where(Attachment.case_id == case.id)):
        for field in ("meta", "data"):
            column = f"{field}_ct"
            setattr(
                attachment,
                column,
                _reencrypt(
                    old_dek,
                    new_dek,
                    getattr(attachment, column),
                    table="attachment",
                    row_id=attachment.id,
                    field=field,
                ),
            )
    _reseal(case, KeyType.DEK, new_dek)
    new_idk = None
    if old_idk is not None and case.identity_ct is not None:
        new_idk = rotate_identity_key(case, old_idk)
    return new_dek, new_idk


def rotate_identity_key(case: Case, old_idk: bytes) -> bytes:
    """Re-encrypt the identity under a fresh identity key and re-seal it to the holders the
    consents still allow (the reporter can do this alone: sealing needs public keys only)."""
    new_idk = new_data_key()
    identity = decrypt_json(
        old_idk, case.identity_ct or b"", table="concern_case", row_id=case.id, field="identity"
    )
    case.identity_ct = encrypt_json(
        new_idk, identity, table="concern_case", row_id=case.id, field="identity"
    )
    _reseal(case, KeyType.IDK, new_idk)
    return new_idk


def _reseal(case: Case, key_type: KeyType, key: bytes) -> None:
    """Replace every copy of one key type with copies of ``key``, for the same holders
    (dropping any the consents no longer allow), plus recovery and reporter."""
    holders = _users(reader_ids(case, key_type))
    db.session.execute(
        delete(CaseKey).where(CaseKey.case_id == case.id, CaseKey.key_type == str(key_type))
    )
    excluded = excluded_user_ids(case)
    for holder in holders:
        if may_hold(case, holder, key_type, excluded):
            grant(case, holder, key_type, key)
    _seal_to_holders_of_record(case, key_type, key)


# The reporter's identity ---------------------------------------------------------------------


def share_identity(case: Case, dek: bytes, name: str, contact: str) -> list[User]:
    """The reporter shares who she is after sending: a fresh identity key, sealed only to
    the current readers her consents allow. Returns who can now see it."""
    if case.disclosure_mode == DisclosureMode.ANONYMOUS:
        case.disclosure_mode = str(DisclosureMode.CONFIDENTIAL)
    db.session.execute(
        delete(CaseKey).where(CaseKey.case_id == case.id, CaseKey.key_type == str(KeyType.IDK))
    )
    idk = new_data_key()
    case.identity_ct = encrypt_json(
        idk,
        {"name": name, "contact": contact},
        table="concern_case",
        row_id=case.id,
        field="identity",
    )
    excluded = excluded_user_ids(case)
    seen_by = [u for u in _users(reader_ids(case)) if may_hold(case, u, KeyType.IDK, excluded)]
    for user in seen_by:
        grant(case, user, KeyType.IDK, idk)
    _seal_to_holders_of_record(case, KeyType.IDK, idk)
    return seen_by


def apply_identity_consents(case: Case, dek: bytes, idk: bytes | None) -> None:
    """After the reporter changed an identity consent: readers now allowed get the identity
    key; readers no longer allowed lose it and the identity key is rotated. One message
    tells her who can now see her name."""
    if idk is None or case.identity_ct is None:
        return
    excluded = excluded_user_ids(case)
    holders = set(reader_ids(case, KeyType.IDK))
    readers = _users(reader_ids(case))
    gained = [
        u for u in readers if u.id not in holders and may_hold(case, u, KeyType.IDK, excluded)
    ]
    lost = [u for u in _users(holders) if not may_hold(case, u, KeyType.IDK, excluded)]
    for user in gained:
        grant(case, user, KeyType.IDK, idk)
    if lost:
        for user in lost:
            _delete_user_copies(case, user.id, KeyType.IDK)
        rotate_identity_key(case, idk)
    if gained or lost:
        words = [f"{u.display_name} can now see who you are." for u in gained]
        words += [f"{u.display_name} can no longer see who you are." for u in lost]
        add_message(case, dek, author_kind=SERVICE_AUTHOR, body=" ".join(words))
        record(
            "case.identity_readers_changed",
            actor_kind="reporter",
            case_id=case.id,
            detail=f"gained={len(gained)} lost={len(lost)}",
        )


# Account reset and restoring access ----------------------------------------------------------


def suspend_user_access(user: User) -> int:
    """An administrator's reset: every copy the user holds is deleted (their old private key
    is gone) and remembered as a pending grant that only a reader of the case, or the
    recovery custodian, can fulfil explicitly. Returns how many keys wait."""
    held = db.session.execute(
        select(CaseKey.case_id, CaseKey.key_type).where(
            CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user.id
        )
    ).all()
    for case_id, key_type in held:
        exists = db.session.scalar(
            select(PendingGrant.id).where(
                PendingGrant.case_id == case_id,
                PendingGrant.user_id == user.id,
                PendingGrant.key_type == key_type,
            )
        )
        if exists is None:
            db.session.add(PendingGrant(case_id=case_id, user_id=user.id, key_type=key_type))
    db.session.execute(
        delete(CaseKey).where(
            CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user.id
        )
    )
    return len(held)


def pending_readers(case: Case) -> list[User]:
    """People whose access to this case waits to be restored after an account reset."""
    ids = set(
        db.session.scalars(select(PendingGrant.user_id).where(PendingGrant.case_id == case.id))
    )
    return _users(ids)


def drop_pending(case: Case, target: User, *, actor: User) -> None:
    """Remove a reader from the case's record: any restore waiting after a reset goes, they
    stop owning it, and the removal is audited. (Their sealed copies, if any, are deleted
    by :func:`remove_reader`, which calls this.)"""
    db.session.execute(
        delete(PendingGrant).where(
            PendingGrant.case_id == case.id, PendingGrant.user_id == target.id
        )
    )
    if case.owner_user_id == target.id:
        case.owner_user_id = None
    record(
        "case.reader_removed",
        actor_kind="user",
        actor_user_id=actor.id,
        case_id=case.id,
        detail=f"user={target.id}",
    )


def pending_case_references(user: User) -> list[str]:
    """The references of the cases waiting to be restored to this (reset) user: she read
    them before, so their references tell her nothing new; their content stays sealed."""
    return list(
        db.session.scalars(
            select(Case.reference)
            .where(Case.id.in_(select(PendingGrant.case_id).where(PendingGrant.user_id == user.id)))
            .order_by(Case.reference)
        )
    )


def _fulfil(case: Case, pending: PendingGrant, target: User, key: bytes) -> bool:
    """Grant one pending key if the consents allow it; the pending row goes either way."""
    key_type = KeyType(pending.key_type)
    db.session.delete(pending)
    db.session.flush()
    if (
        target.is_reader
        and target.id not in set(reader_ids(case, key_type))
        and may_hold(case, target, key_type)
    ):
        grant(case, target, key_type, key)
        return True
    return False


def restore_access(case: Case, reader: User, dek: bytes, idk: bytes | None, target: User) -> int:
    """A reader of the case restores a reset colleague's access, explicitly (audited). Each
    key is given back only if the consents still allow it. Returns how many keys."""
    if target.enrolment_pending:
        raise ValidationError(
            f"{target.display_name} has not finished setting up their account yet."
        )
    rows = db.session.scalars(
        select(PendingGrant).where(
            PendingGrant.case_id == case.id, PendingGrant.user_id == target.id
        )
    ).all()
    if not rows:
        raise ValidationError("Nothing is waiting to be restored for this person.")
    granted = 0
    for pending in rows:
        key = dek if pending.key_type == KeyType.DEK else idk
        if key is None:
            continue  # this reader cannot open that key: it stays waiting
        if _fulfil(case, pending, target, key):
            granted += 1
            record(
                "case.access_restored",
                actor_kind="user",
                actor_user_id=reader.id,
                case_id=case.id,
                detail=f"user={target.id} key={pending.key_type}",
            )
    return granted


def restore_with_recovery_key(
    organisation_id: int, recovery_key: PrivateKey, user: User | None = None
) -> int:
    """The recovery custodian's route: open each pending grant's key for the organisation's
    cases with the offline recovery key and seal it to the user's new public key."""
    query = (
        select(PendingGrant, Case)
        .join(Case, Case.id == PendingGrant.case_id)
        .where(Case.organisation_id == organisation_id)
    )
    if user is not None:
        query = query.where(PendingGrant.user_id == user.id)
    granted = 0
    for pending, case in db.session.execute(query).all():
        sealed = db.session.scalar(
            select(CaseKey.sealed).where(
                CaseKey.case_id == case.id,
                CaseKey.recipient_kind == str(RecipientKind.RECOVERY),
                CaseKey.key_type == pending.key_type,
            )
        )
        target = db.session.get(User, pending.user_id)
        if sealed is None or target is None or not target.is_reader or target.enrolment_pending:
            continue
        try:
            key = open_sealed(
                recovery_key, sealed, purpose=_purpose(pending.key_type), case_id=case.id
            )
        except DecryptionError:
            continue
        if _fulfil(case, pending, target, key):
            granted += 1
            record(
                "case.access_restored",
                actor_kind="system",
                case_id=case.id,
                detail=f"user={target.id} key={pending.key_type} via=recovery",
            )
    return granted


def reseal_recovery_copies(reader: User, private_key: PrivateKey) -> int:
    """In a reader's own request: where a case this reader holds has no recovery copy sealed
    to its organisation's *current* recovery key (the key was replaced, or created after the
    case), seal the case key to it and drop the stale copy. One query finds them, so a
    sign-in with nothing to do costs no decryption."""
    recovery_copy = aliased(CaseKey)
    rows = db.session.execute(
        select(CaseKey.key_type, Case, Organisation, recovery_copy)
        .join(Case, Case.id == CaseKey.case_id)
        .join(Organisation, Organisation.id == Case.organisation_id)
        .outerjoin(
            recovery_copy,
            (recovery_copy.case_id == CaseKey.case_id)
            & (recovery_copy.key_type == CaseKey.key_type)
            & (recovery_copy.recipient_kind == str(RecipientKind.RECOVERY)),
        )
        .where(
            CaseKey.recipient_kind == str(RecipientKind.USER),
            CaseKey.user_id == reader.id,
            Organisation.recovery_public_mlkem.is_not(None),
        )
    ).all()
    sealed = 0
    for key_type, case, organisation, existing in rows:
        recovery = organisation.recovery_public_key
        if recovery is None or (
            existing is not None and existing.recipient_key_id == recovery.key_id
        ):
            continue
        key = open_case_key(case, private_key, KeyType(key_type), user_id=reader.id)
        if key is None:
            continue
        if existing is not None:
            db.session.delete(existing)
            db.session.flush()
        _store(case, RecipientKind.RECOVERY, recovery, KeyType(key_type), key)
        record(
            "case.recovery_resealed",
            actor_kind="user",
            actor_user_id=reader.id,
            case_id=case.id,
            detail=f"key={key_type}",
        )
        sealed += 1
    return sealed


@staff_signed_in.connect
def _reseal_recovery_at_sign_in(user: User, *, private_key: PrivateKey) -> None:
    reseal_recovery_copies(user, private_key)


def shred_case_keys(case_id: int) -> None:
    """Crypto-shredding: delete every sealed copy of the case's keys (and pending grants)."""
    db.session.execute(delete(CaseKey).where(CaseKey.case_id == case_id))
    db.session.execute(delete(PendingGrant).where(PendingGrant.case_id == case_id))


# What the reporter sees ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderInfo:
    """One person who can read the concern, as the reporter's page lists them."""

    name: str
    role: str
    organisation: str
    sees_identity: bool
    paused: bool = False


def readers_for_reporter(case: Case) -> list[ReaderInfo]:
    """Everyone who can read the concern (or will again, after an account reset)."""
    identity = set(reader_ids(case, KeyType.IDK))
    paused_identity = set(
        db.session.scalars(
            select(PendingGrant.user_id).where(
                PendingGrant.case_id == case.id, PendingGrant.key_type == str(KeyType.IDK)
            )
        )
    )
    out = []
    for user, paused in [(u, False) for u in _users(reader_ids(case))] + [
        (u, True) for u in pending_readers(case)
    ]:
        out.append(
            ReaderInfo(
                name=user.display_name,
                role=_role_noun(user),
                organisation=user.organisation.name if user.organisation else "Midlands region",
                sees_identity=user.id in (paused_identity if paused else identity),
                paused=paused,
            )
        )
    return sorted(out, key=lambda r: (r.paused, r.name))
