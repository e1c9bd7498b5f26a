"""Deliver queued attempts through their channel's gateway, exactly once.

An attempt is *claimed* (``queued`` → ``sending``) in its own committed UPDATE
before the provider is called, so two overlapping deliverers never take the
same row. The provider's answer then moves it to ``sent`` or ``failed``. A
transient refusal puts the row back to ``queued`` and stops the batch, so the
task's retry (with back-off) picks it up. Anything else leaves the row
``unknown``: it may have gone out, so it is never sent blindly again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy import Engine, and_, bindparam, select, update

from campaigns.channels.base import (
    DeliveryGateway,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from campaigns.cohorts import ChunkBounds
from campaigns.db.models import AttemptStatus, ContactAttempt, RenderedMessage
from campaigns.outcomes import Tally


class DeliveryInterrupted(Exception):
    """A provider refused for now; the rest of the batch went back to the queue."""

    def __init__(self, tally: Tally, cause: Exception):
        super().__init__(f"delivery interrupted by a transient provider error: {type(cause).__name__}")
        self.tally = tally


def _queued_ids(engine: Engine, stage: str, as_of: date, bounds: ChunkBounds | None, limit: int) -> list[int]:
    attempt = ContactAttempt
    stmt = select(attempt.id).where(
        attempt.stage == stage, attempt.as_of == as_of, attempt.status == AttemptStatus.queued.value
    )
    if bounds is not None:
        if bounds.after is not None:
            stmt = stmt.where(attempt.account_id > bounds.after)
        stmt = stmt.where(attempt.account_id <= bounds.upto)
    with engine.connect() as conn:
        return list(conn.execute(stmt.order_by(attempt.id).limit(limit)).scalars())


def _claim(engine: Engine, ids: list[int], now: datetime) -> list[int]:
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        return list(conn.execute(
            update(table)
            .where(and_(table.c.id.in_(ids), table.c.status == AttemptStatus.queued.value))
            .values(status=AttemptStatus.sending.value, updated_at=now)
            .returning(table.c.id)
        ).scalars())


def _messages(engine: Engine, ids: list[int]) -> list[OutgoingMessage]:
    attempt, message = ContactAttempt, RenderedMessage
    stmt = (
        select(attempt.id, attempt.account_id, attempt.channel, attempt.stage, message.recipient,
               message.subject, message.body_text, message.body_html, message.payload)
        .join(message, message.attempt_id == attempt.id)
        .where(attempt.id.in_(ids))
        .order_by(attempt.id)
    )
    with engine.connect() as conn:
        return [
            OutgoingMessage(attempt_id=r.id, account_id=r.account_id, channel=r.channel, stage=r.stage,
                            recipient=r.recipient, subject=r.subject, text=r.body_text,
                            html=r.body_html, payload=r.payload or {})
            for r in conn.execute(stmt)
        ]


def _finish(engine: Engine, outcomes: list[dict], now: datetime) -> None:
    """Write the outcomes of a batch of sends in one transaction (only rows still ``sending``)."""
    if not outcomes:
        return
    table = ContactAttempt.__table__
    columns = ("status", "reason", "detail", "sent_at", "provider_message_id", "delivered_by_run_id")
    stmt = (
        update(table)
        .where(table.c.id == bindparam("attempt_id"), table.c.status == AttemptStatus.sending.value)
        .values(updated_at=now, **{c: bindparam(f"new_{c}") for c in columns})
    )
    with engine.begin() as conn:
        conn.execute(stmt, [{"attempt_id": o["attempt_id"], **{f"new_{c}": o.get(c) for c in columns}}
                            for o in outcomes])
    outcomes.clear()


def deliver_queued(
    engine: Engine,
    gateways: Mapping[str, DeliveryGateway],
    *,
    stage: str,
    as_of: date,
    now: datetime,
    run_id: str | None = None,
    bounds: ChunkBounds | None = None,
    batch_size: int = 200,
    flush_every: int = 50,
) -> Tally:
    """Send every queued attempt of ``stage`` on ``as_of`` (within ``bounds``); return the tally.

    Outcomes are written every ``flush_every`` sends. Claimed rows are committed
    before any send, so a crash in between leaves them ``sending`` (to reconcile),
    never ``queued`` (to send again).

    Queued attempts left by an earlier run of the same day (an outage, a crash) are
    sent too, and marked as delivered by ``run_id``.

    Raises ``DeliveryInterrupted`` after a transient provider error, with what was
    done so far; the untried rows are back in the queue for the retry.
    """
    tally = Tally()
    while True:
        ids = _queued_ids(engine, stage, as_of, bounds, batch_size)
        if not ids:
            return tally
        claimed = _claim(engine, ids, now)
        messages = _messages(engine, claimed)
        outcomes: list[dict] = []
        for position, message in enumerate(messages):
            gateway = gateways.get(message.channel)
            outcome = {"attempt_id": message.attempt_id, "delivered_by_run_id": run_id}
            try:
                if gateway is None:
                    raise PermanentDeliveryError("channel_unavailable", f"no gateway for {message.channel}")
                provider_id = gateway.send(message, now)
            except TransientDeliveryError as exc:
                _finish(engine, outcomes, now)
                _release(engine, [m.attempt_id for m in messages[position:]], now)
                raise DeliveryInterrupted(tally, exc) from exc
            except PermanentDeliveryError as exc:
                outcome.update(status=AttemptStatus.failed.value, reason=exc.reason, detail=exc.detail[:500] or None)
                tally.add("failed", exc.reason)
            except Exception as exc:
                outcome.update(status=AttemptStatus.unknown.value, reason="provider_error", detail=type(exc).__name__)
                tally.add("unknown", "provider_error")
            else:
                outcome.update(status=AttemptStatus.sent.value, sent_at=now, provider_message_id=provider_id)
                tally.add("sent")
            outcomes.append(outcome)
            if len(outcomes) >= flush_every:
                _finish(engine, outcomes, now)
        _finish(engine, outcomes, now)


def _release(engine: Engine, ids: list[int], now: datetime) -> None:
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.status == AttemptStatus.sending.value)
            .values(status=AttemptStatus.queued.value, updated_at=now)
        )
