"""Imports every model so metadata is complete (for the app, Alembic and tests)."""

from speakup.accounts.models import AuthSession, User
from speakup.audit.models import AuditEvent, AuditHead
from speakup.cases.models import Attachment, Case, CaseKey, Exclusion, Message, PendingGrant
from speakup.jobs.models import DigestDelivery, JobLease
from speakup.organisations.models import Organisation, Region, System
from speakup.stats.models import (
    Action,
    Fact,
    FactInbox,
    Release,
    ReleaseTable,
    ReturnSignoff,
    Workforce,
)

__all__ = [
    "Action",
    "Fact",
    "FactInbox",
    "Release",
    "ReleaseTable",
    "ReturnSignoff",
    "Workforce",
    "Attachment",
    "AuditEvent",
    "AuditHead",
    "AuthSession",
    "Case",
    "CaseKey",
    "Exclusion",
    "Message",
    "Organisation",
    "PendingGrant",
    "DigestDelivery",
    "JobLease",
    "Region",
    "System",
    "User",
]
