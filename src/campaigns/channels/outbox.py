"""The outbox channel: messages are stored in ``outbox_messages`` instead of sent.

It is the default for every electronic channel, so that the whole ladder runs
anywhere without a provider account. ``campaigns outbox`` shows what is there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from campaigns.channels.base import OutgoingMessage
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.engine import among
from campaigns.db.models import ContactAttempt, OutboxMessage, RenderedMessage
from campaigns.db.types import UTCDateTime


class OutboxGateway:
    provider = "outbox"
    idempotent = True  # one stored message per attempt_id

    def __init__(self, engine: Engine):
        self.engine = engine

    table = OutboxMessage.__table__

    def message_id(self, attempt_id: int) -> str:
        return f"outbox-{attempt_id}"

    def stored_row(self, attempt: dict, message: dict, now: datetime) -> dict:
        # The outbox row is the message: no rendered_messages copy is kept beside it.
        return {"attempt_id": attempt["id"], "channel": attempt["channel"], "recipient": message["recipient"],
                "subject": message["subject"], "body_text": message["body_text"], "body_html": message["body_html"],
                "accepted_at": now}

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        row = {"attempt_id": message.attempt_id, "channel": message.channel, "recipient": message.recipient,
               "subject": message.subject, "body_text": message.text, "body_html": message.html, "accepted_at": now}
        with self.engine.begin() as conn:
            # The unique attempt_id makes a second copy impossible: a repeat stores nothing.
            insert_ignoring_conflicts(conn, OutboxMessage.__table__, [row], key="attempt_id")
        return self.message_id(message.attempt_id)

    def store(self, conn: Connection, attempt_ids: list[int], now: datetime) -> None:
        """Move the rendered messages of a group released later (a deferral) into the outbox inside the
        database, one statement each way: the bodies never travel through Python again, and the outbox row
        is then the one copy of each message."""
        outbox, message, attempt = OutboxMessage.__table__, RenderedMessage.__table__, ContactAttempt.__table__
        rendered = (
            select(attempt.c.id, attempt.c.channel, message.c.recipient, message.c.subject, message.c.body_text,
                   message.c.body_html, literal(now, UTCDateTime()))
            .join(message, message.c.attempt_id == attempt.c.id)
            .where(among(conn, attempt.c.id, attempt_ids))
        )
        insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert_(outbox).from_select(
            ["attempt_id", "channel", "recipient", "subject", "body_text", "body_html", "accepted_at"], rendered,
        ).on_conflict_do_nothing(index_elements=["attempt_id"]))
        conn.execute(delete(message).where(among(conn, message.c.attempt_id, attempt_ids),
                                           message.c.attempt_id.in_(select(outbox.c.attempt_id).where(
                                               among(conn, outbox.c.attempt_id, attempt_ids)))))
