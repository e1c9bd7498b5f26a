"""The outbox channel: messages are stored in ``outbox_messages`` instead of sent.

It is the default for every electronic channel, so that the whole ladder runs
anywhere without a provider account. ``campaigns outbox`` shows what is there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from campaigns.db.engine import insert_ignoring_conflicts

from campaigns.channels.base import OutgoingMessage
from campaigns.db.models import OutboxMessage


class OutboxGateway:
    provider = "outbox"
    idempotent = True  # one row per attempt_id (UNIQUE)

    def __init__(self, engine: Engine):
        self.engine = engine

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        table = OutboxMessage.__table__
        row = {
            "attempt_id": message.attempt_id,
            "channel": message.channel,
            "recipient": message.recipient,
            "subject": message.subject,
            "body_text": message.text,
            "body_html": message.html,
            "accepted_at": now,
        }
        with self.engine.begin() as conn:
            # The unique attempt_id makes a second copy impossible: a repeat returns the first one's id.
            created = insert_ignoring_conflicts(conn, table, [row], key="attempt_id")
            if created:
                return f"outbox-{created[0][0]}"
            existing = conn.execute(select(table.c.id).where(table.c.attempt_id == message.attempt_id)).scalar_one()
        return f"outbox-{existing}"
