"""The agent channel: escalation puts the account on the people's worklist, with why and what was tried."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from campaigns.channels.base import OutgoingMessage
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.engine import among
from campaigns.db.models import AgentWorklistItem, ContactAttempt, RenderedMessage


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

    table = AgentWorklistItem.__table__

    def message_id(self, attempt_id: int) -> str:
        return f"worklist-{attempt_id}"

    def stored_row(self, attempt: dict, message: dict, now: datetime) -> dict:
        return self._row(attempt["id"], attempt["account_id"], message["payload"], now)

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        with self.engine.begin() as conn:
            self._insert(conn, [message], now)
        return self.message_id(message.attempt_id)

    def store(self, conn: Connection, attempt_ids: list[int], now: datetime) -> None:
        """Put the group's accounts on the worklist in the deliverer's transaction (one insert for the group)."""
        attempt, rendered = ContactAttempt.__table__, RenderedMessage.__table__
        rows = conn.execute(
            select(attempt.c.id, attempt.c.account_id, rendered.c.payload)
            .join(rendered, rendered.c.attempt_id == attempt.c.id)
            .where(among(conn, attempt.c.id, attempt_ids))
        ).all()
        self._insert(conn, [OutgoingMessage(attempt_id=r.id, account_id=r.account_id, channel="agent",
                                            stage="escalation", recipient=None, subject=None, text="",
                                            html=None, payload=r.payload or {}) for r in rows], now)

    def _insert(self, conn: Connection, messages: list[OutgoingMessage], now: datetime) -> None:
        # The unique attempt_id makes a second item impossible: a repeat adds nothing.
        insert_ignoring_conflicts(conn, AgentWorklistItem.__table__,
                                  [self._row(m.attempt_id, m.account_id, m.payload, now) for m in messages],
                                  key="attempt_id")

    @staticmethod
    def _row(attempt_id: int, account_id: str, payload: dict, now: datetime) -> dict:
        return {"attempt_id": attempt_id, "account_id": account_id, "reason": payload["reason"],
                "days_past_due": payload["days_past_due"], "amount_due": Decimal(payload["amount_due"]),
                "currency": payload["currency"], "tried": payload["tried"], "status": "open", "created_at": now}
