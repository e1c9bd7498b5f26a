"""The outbox channel: messages are stored in ``outbox_messages`` instead of sent.

It is the default for every electronic channel, so that the whole ladder runs
anywhere without a provider account. ``campaigns outbox`` shows what is there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from campaigns.db.bulk import insert_ignoring_conflicts

from campaigns.channels.base import OutgoingMessage
from campaigns.db.models import OutboxMessage


class OutboxGateway:
    provider = "outbox"
    idempotent = True  # one row per attempt_id (UNIQUE)

    def __init__(self, engine: Engine):
        self.engine = engine

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        return self.send_many([message], now)[0]

    def send_many(self, messages: list[OutgoingMessage], now: datetime) -> list[str]:
        """Store a claimed group in one transaction (COPY on PostgreSQL): a group, not a message, per commit."""
        table = OutboxMessage.__table__
        rows = [{"attempt_id": m.attempt_id, "channel": m.channel, "recipient": m.recipient, "subject": m.subject,
                 "body_text": m.text, "body_html": m.html, "accepted_at": now} for m in messages]
        with self.engine.begin() as conn:
            # The unique attempt_id makes a second copy impossible: a repeat returns the first one's id.
            stored = {attempt_id: row_id for row_id, attempt_id in
                      insert_ignoring_conflicts(conn, table, rows, key="attempt_id")}
            repeats = [m.attempt_id for m in messages if m.attempt_id not in stored]
            if repeats:
                stored.update((attempt_id, row_id) for row_id, attempt_id in conn.execute(
                    select(table.c.id, table.c.attempt_id).where(table.c.attempt_id.in_(repeats))))
        return [f"outbox-{stored[m.attempt_id]}" for m in messages]
