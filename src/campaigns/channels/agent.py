"""The agent channel: escalation puts the account on the people's worklist, with why and what was tried."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, insert, select

from campaigns.channels.base import OutgoingMessage
from campaigns.db.models import AgentWorklistItem


def describe_tried(tried: dict | None) -> str:
    """What was tried before escalation, for a person: each contact's day, stage, channel and outcome.

    Reads both the current form (``{"attempts": n, "recent": [...]}``) and the
    counts kept by earlier versions (``{"stage/channel/status": n}``).
    """
    if not tried:
        return "nothing: no earlier contact on record"
    if "recent" in tried:
        recent = [f"{t['on']} {t['stage']} {t['channel']} {t['outcome']}" for t in tried["recent"]]
        more = tried.get("attempts", len(recent)) - len(recent)
        return "; ".join(recent) + (f"; and {more} earlier" if more > 0 else "")
    return "; ".join(f"{key.replace('/', ' ')} x{n}" for key, n in sorted(tried.items()))


class AgentWorklistGateway:
    provider = "agent"
    idempotent = True  # one worklist item per attempt_id

    def __init__(self, engine: Engine):
        self.engine = engine

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        table = AgentWorklistItem.__table__
        payload = message.payload
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(table.c.id).where(table.c.attempt_id == message.attempt_id)
            ).scalar_one_or_none()
            if existing is None:
                existing = conn.execute(
                    insert(table).returning(table.c.id),
                    {
                        "attempt_id": message.attempt_id,
                        "account_id": message.account_id,
                        "reason": payload["reason"],
                        "days_past_due": payload["days_past_due"],
                        "amount_due": Decimal(payload["amount_due"]),
                        "currency": payload["currency"],
                        "tried": payload["tried"],
                        "status": "open",
                        "created_at": now,
                    },
                ).scalar_one()
        return f"worklist-{existing}"
