"""Who may hold a case's keys, and sealing/opening those keys (DESIGN §3.3, §3.4, §4).

Every grant goes through :func:`grant_case_key`, which refuses an excluded guardian — the
server enforces exclusions, whatever the caller asks.
"""

from __future__ import annotations

from sqlalchemy import select

from speakup.accounts.models import Role, User
from speakup.cases.models import Case, CaseKey, Exclusion, KeyType, RecipientKind, Route
from speakup.crypto import DecryptionError, PrivateKey, PublicKey, open_sealed, seal
from speakup.errors import ForbiddenError, ValidationError
from speakup.extensions import db


class ExcludedReaderError(ForbiddenError):
    """An attempt to give case keys to a guardian the reporter named as involved."""


def excluded_user_ids(case: Case) -> set[int]:
    """Ids of the guardians the reporter said must not see this case."""
    return set(db.session.scalars(select(Exclusion.user_id).where(Exclusion.case_id == case.id)))


def route_readers(
    route: str,
    organisation_id: int,
    chosen_guardian_id: int | None,
    excluded: set[int],
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
    return [user for user in db.session.scalars(query) if user.id not in excluded]


def _purpose(key_type: str) -> str:
    return f"case-{key_type}"


def grant_case_key(case: Case, user: User, key_type: KeyType, key: bytes) -> CaseKey:
    """Seal ``key`` to a staff reader. Refuses excluded guardians and non-readers."""
    if user.id in excluded_user_ids(case):
        raise ExcludedReaderError("This guardian is excluded from this case.")
    if not user.is_reader:
        raise ForbiddenError("Only guardians and panel members can be given a case.")
    return _store(case, RecipientKind.USER, user.public_key, key_type, key, user_id=user.id)


def seal_to_reporter(case: Case, key_type: KeyType, key: bytes) -> CaseKey:
    """Seal a case key to the case's own reporter keypair."""
    return _store(case, RecipientKind.REPORTER, case.reporter_public_key, key_type, key)


def seal_to_recovery(case: Case, recovery: PublicKey, key_type: KeyType, key: bytes) -> CaseKey:
    """Seal a case key to the organisation's offline recovery key."""
    return _store(case, RecipientKind.RECOVERY, recovery, key_type, key)


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


def open_case_key(
    case: Case,
    private_key: PrivateKey,
    key_type: KeyType,
    *,
    user_id: int | None = None,
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
    return list(
        db.session.scalars(
            select(CaseKey.user_id).where(
                CaseKey.case_id == case.id,
                CaseKey.recipient_kind == str(RecipientKind.USER),
                CaseKey.key_type == str(key_type),
            )
        )
    )
