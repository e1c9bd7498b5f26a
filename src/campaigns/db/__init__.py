"""Persistence: the typed ORM models, the engine, and Alembic migrations."""

from campaigns.db.engine import make_engine, upgrade_database
from campaigns.db.models import (
    AgentWorklistItem,
    Account,
    AttemptStatus,
    Base,
    CampaignRun,
    Channel,
    ContactAttempt,
    Customer,
    Dispute,
    Hold,
    OptOutEvent,
    OutboxMessage,
    Payment,
    ProviderEvent,
    RenderedMessage,
    RepaymentPlan,
    Stage,
)

__all__ = [
    "AgentWorklistItem",
    "Account",
    "AttemptStatus",
    "Base",
    "CampaignRun",
    "Channel",
    "ContactAttempt",
    "Customer",
    "Dispute",
    "Hold",
    "OptOutEvent",
    "OutboxMessage",
    "Payment",
    "ProviderEvent",
    "RenderedMessage",
    "RepaymentPlan",
    "Stage",
    "make_engine",
    "upgrade_database",
]
