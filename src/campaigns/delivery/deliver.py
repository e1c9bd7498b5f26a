"""Release and deliver attempts through their channel's gateway, exactly once.

Right before sending, every compliance rule is checked again with fresh data
(``policy.evaluate_release``): a hold, opt-out or payment that arrived since the
message was queued stops it, and a message outside the customer's contact window
is deferred until it opens (the dispatcher releases it then).

An attempt is *claimed* (``queued`` → ``sending``) in its own committed UPDATE
before the provider is called, so two overlapping deliverers never take the
same row. The provider's answer then moves it to ``sent`` or ``failed``. A
transient refusal puts the untried rows back (``deferred``, due at once) and
stops the batch, so the task's retry (with back-off) picks them up. Anything else leaves the row
``unknown``: it may have gone out, so it is never sent blindly again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import Engine, or_, select, update

from campaigns.channels.base import (
    DeliveryGateway,
    OutgoingMessage,
    StoringGateway,
    is_table_of,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from campaigns.contact.cohorts import ChunkBounds, due_condition, due_ids
from campaigns.frames import records
from campaigns.db.models import AttemptStatus, ContactAttempt, RenderedMessage
from campaigns.customers.preferences import record_unusable_channel
from campaigns.db.bulk import update_rows
from campaigns.db.engine import among
from campaigns.attempts.log import Tally
from campaigns.policy import DEFER, RELEASE, SUPPRESS, PolicyConfig, evaluate_release
from campaigns.policy.inputs import contact_history, release_frame
from campaigns.delivery.provider_events import settle_from_events


class DeliveryInterrupted(Exception):
    """A provider refused for now; the rest of the batch went back to the queue."""

    def __init__(self, tally: Tally, cause: Exception):
        super().__init__(f"delivery interrupted by a transient provider error: {type(cause).__name__}")
        self.tally = tally


def _record_decisions(engine: Engine, frame, decided, now: datetime, run_id: str | None,
                      tally: Tally) -> list[tuple[int, str, dict]]:
    """Write deferrals and suppressions (each decision's trace added to the attempt's); return (id, channel,
    trace) of those cleared for release, whose trace is added when they are claimed."""
    table = ContactAttempt.__table__
    released, updates = [], []
    for row, d in zip(records(frame), records(decided)):
        if d.decision == RELEASE:
            released.append((row.attempt_id, row.channel, d.trace))
            continue
        status = AttemptStatus.deferred.value if d.decision == DEFER else AttemptStatus.suppressed.value
        updates.append({"id": row.attempt_id, "status": status, "reason": d.reason,
                        "release_after": d.release_after if d.decision == DEFER else None,
                        "policy_trace": d.trace, "delivered_by_run_id": run_id if d.decision == SUPPRESS else None})
        tally.add(status, d.reason)
    if updates:
        with engine.begin() as conn:
            update_rows(conn, table, updates, where=[_still_due(table)], values={"updated_at": now},
                        append=["policy_trace"])
    return released


def _still_due(table):
    # (or_, not IN: an expanding IN cannot be used with executemany)
    return or_(table.c.status == AttemptStatus.queued.value, table.c.status == AttemptStatus.deferred.value)


def _claim(engine: Engine, group: list[tuple[int, str, dict]], now: datetime, claimed_at: datetime) -> list[int]:
    """``queued``/``deferred`` → ``sending``, with the release decision's trace, committed before any send;
    returns the ids this deliverer took (another may have taken some first)."""
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        return update_rows(conn, table, [{"id": i, "policy_trace": trace} for i, _, trace in group],
                           where=[_still_due(table)], returning=True, append=["policy_trace"],
                           values={"status": AttemptStatus.sending.value, "updated_at": now, "claimed_at": claimed_at})


def _store_sent(engine: Engine, gateway: StoringGateway, group: list[tuple[int, str, dict]], now: datetime,
                run_id: str | None, claimed_at: datetime) -> int:
    """One transaction for a group on a channel of our own database: the attempts still due are marked sent
    (with their trace and message id) and their messages stored together; returns how many."""
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        taken = update_rows(
            conn, table,
            [{"id": i, "policy_trace": trace, "provider_message_id": gateway.message_id(i)} for i, _, trace in group],
            where=[_still_due(table)], returning=True, append=["policy_trace"],
            # reason and detail cleared as a provider's answer clears them: a deferral's reason is history now
            values={"status": AttemptStatus.sent.value, "reason": None, "detail": None, "sent_at": now,
                    "updated_at": now, "claimed_at": claimed_at, "delivered_by_run_id": run_id})
        if taken:
            gateway.store(conn, taken, now)
    return len(taken)


def _messages(engine: Engine, ids: list[int]) -> list[OutgoingMessage]:
    attempt, message = ContactAttempt, RenderedMessage
    stmt = (
        select(attempt.id, attempt.account_id, attempt.channel, attempt.stage, message.recipient,
               message.subject, message.body_text, message.body_html, message.payload)
        .join(message, message.attempt_id == attempt.id)
        .order_by(attempt.id)
    )
    with engine.connect() as conn:
        stmt = stmt.where(among(conn, attempt.id, ids))
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
    with engine.begin() as conn:
        update_rows(conn, table, [{"id": o["attempt_id"], **{c: o.get(c) for c in columns}} for o in outcomes],
                    where=[table.c.status == AttemptStatus.sending.value], values={"updated_at": now})
        settle_from_events(conn, [o["attempt_id"] for o in outcomes], now)
        unusable: dict[tuple[str, str], list[int]] = {}
        for o in outcomes:
            if o.get("status") == AttemptStatus.failed.value and o.get("channel"):
                unusable.setdefault((o["channel"], o["reason"]), []).append(o["attempt_id"])
        record_unusable_channel(conn, unusable, now)
    outcomes.clear()


@dataclass(frozen=True)
class PausePolicy:
    """How long a provider's ``Retry-After`` may hold the sender before the batch is handed back instead."""

    max_wait_seconds: float = 30.0
    max_pauses: int = 3
    sleep: Callable[[float], None] = time.sleep


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def deliver_queued(
    engine: Engine,
    gateways: Mapping[str, DeliveryGateway],
    *,
    now: datetime,
    policy: PolicyConfig,
    stage: str | None = None,
    as_of: date | None = None,
    run_id: str | None = None,
    bounds: ChunkBounds | None = None,
    include_queued: bool = True,
    queued_before: datetime | None = None,
    batch_size: int = 1000,
    claim_size: int = 50,
    clock: Callable[[], datetime] = wall_clock,
    throttle: Callable[[str, int], None] | None = None,
    pause: PausePolicy = PausePolicy(),
    attempt_ids: Sequence[int] | None = None,
) -> Tally:
    """Release and send the due attempts of ``stage`` on ``as_of`` (within ``bounds``), or of ``attempt_ids``
    (a chunk's own, just logged: no search for them); return the tally.

    Due means queued, or deferred with its release time reached. With
    ``include_queued=False`` (the dispatcher) only deferred attempts are taken,
    of any stage and day, plus queued ones decided before ``queued_before``
    (left behind by a run that crashed).

    Rows are claimed ``claim_size`` at a time, stamped with the wall-clock time
    (``clock``), and committed before any of them is sent; their outcomes are
    written together after. A crash in between leaves them ``sending`` (for
    ``recover_interrupted``), never ``queued`` (to send again). A claim therefore
    lives at most ``claim_size`` provider timeouts. A channel that is a table of this
    database (``StoringGateway``: the outbox, the worklist) needs no claim: a group
    is marked sent and stored in one transaction, all of it or none.

    Before a claimed group is sent, ``throttle(provider, n)`` may block to keep
    the whole deployment under a provider's rate limit (the Prefect tasks pass a
    global rate limit). A 429 whose ``Retry-After`` is short is waited out
    (``pause``); a longer one hands the rest back, for the task's retry.

    Queued attempts left by an earlier run of the same day (an outage, a crash) are
    sent too, and marked as delivered by ``run_id``.

    Raises ``DeliveryInterrupted`` after a transient provider error, with what was
    done so far; the untried rows are back in the queue for the retry.
    """
    tally = Tally()
    waiting = list(attempt_ids) if attempt_ids is not None else None
    due = due_condition(now, include_queued, queued_before)
    while True:
        if waiting is None:
            with engine.connect() as conn:
                ids = due_ids(conn, now, stage=stage, as_of=as_of, bounds=bounds, limit=batch_size,
                              include_queued=include_queued, queued_before=queued_before)
        else:
            ids, waiting = waiting[:batch_size], waiting[batch_size:]
        if not ids:
            return tally
        with engine.connect() as conn:
            frame = release_frame(conn, ids, now, due=due)
            if frame.empty:  # given ids that another deliverer (or a payment) settled meanwhile
                continue
            history = contact_history(conn, frame["account_id"].tolist(), now, exclude_attempts=ids)
        decided = evaluate_release(frame, history, now, policy)
        released = _record_decisions(engine, frame, decided, now, run_id, tally)
        for channel, group in _claim_groups(released, gateways, engine, claim_size, throttled=throttle is not None):
            gateway = gateways.get(channel)
            if throttle is not None:
                # Slots are taken before the claim, so a claim never waits on a rate limit: meanwhile another
                # deliverer (a second run of the same day) claims what this one has not reached.
                throttle(provider_of(gateway, channel), len(group))
            if is_table_of(gateway, engine):
                try:
                    tally.add("sent", n=_store_sent(engine, gateway, group, now, run_id, clock()))
                    continue
                except Exception:  # noqa: BLE001 - rolled back whole; one by one below, a bad message costs itself
                    pass
            claimed = _claim(engine, group, now, clock())
            _send_claimed(engine, gateways, _messages(engine, claimed), now, run_id, tally, pause)


def _claim_groups(released: list[tuple[int, str, dict]], gateways: Mapping[str, DeliveryGateway], engine: Engine,
                  claim_size: int, throttled: bool = False) -> list[tuple[str, list[tuple[int, str, dict]]]]:
    """The released attempts in the groups they are claimed in, one channel each: a claim lives at most
    ``claim_size`` provider timeouts, but a channel stored in this database has none to wait out, so its
    attempts go in one group for the batch, unless a rate limit holds them (its bucket holds ``claim_size``
    slots: ``tasks.provider_limits.ensure_provider_limits``)."""
    by_channel: dict[str, list[tuple[int, str, dict]]] = {}
    for item in released:
        by_channel.setdefault(item[1], []).append(item)
    groups = []
    for channel, items in by_channel.items():
        size = len(items) if is_table_of(gateways.get(channel), engine) and not throttled else claim_size
        groups.extend((channel, items[i:i + size]) for i in range(0, len(items), size))
    return groups


def provider_of(gateway: DeliveryGateway | None, channel: str) -> str:
    """The name rate limits are kept under: the gateway's ``provider``, else the channel."""
    return getattr(gateway, "provider", None) or channel


def _send_claimed(engine: Engine, gateways: Mapping[str, DeliveryGateway], messages: list[OutgoingMessage],
                  now: datetime, run_id: str | None, tally: Tally, pause: PausePolicy) -> None:
    outcomes: list[dict] = []
    for position, message in enumerate(messages):
        gateway = gateways.get(message.channel)
        outcome = {"attempt_id": message.attempt_id, "delivered_by_run_id": run_id, "channel": message.channel}
        try:
            if gateway is None:
                raise PermanentDeliveryError("channel_unavailable", f"no gateway for {message.channel}")
            provider_id = _send_pausing(gateway, message, now, pause)
        except TransientDeliveryError as exc:
            _finish(engine, outcomes, now)
            wait = getattr(exc, "retry_after", None)
            _release(engine, [m.attempt_id for m in messages[position:]], now,
                     due=now + timedelta(seconds=wait) if wait else now)
            raise DeliveryInterrupted(tally, exc) from exc
        except PermanentDeliveryError as exc:
            outcome.update(status=AttemptStatus.failed.value, reason=exc.reason, detail=exc.detail[:500] or None)
            tally.add("failed", exc.reason)
        except Exception as exc:  # e.g. a timeout after the request went out: it may have been sent
            outcome.update(status=AttemptStatus.unknown.value, reason="provider_error", detail=type(exc).__name__)
            tally.add("unknown", "provider_error")
        else:
            outcome.update(status=AttemptStatus.sent.value, sent_at=now, provider_message_id=provider_id)
            tally.add("sent")
        outcomes.append(outcome)
    _finish(engine, outcomes, now)


def _send_pausing(gateway: DeliveryGateway, message: OutgoingMessage, now: datetime, pause: PausePolicy) -> str:
    """Send; when the provider says when to come back (429 with ``Retry-After``) and it is soon, wait and resend."""
    for attempt in range(pause.max_pauses + 1):
        try:
            return gateway.send(message, now)
        except TransientDeliveryError as exc:
            wait = getattr(exc, "retry_after", None)
            if wait is None or wait > pause.max_wait_seconds or attempt == pause.max_pauses:
                raise
            pause.sleep(wait)
    raise AssertionError("unreachable")


def _release(engine: Engine, ids: list[int], now: datetime, due: datetime) -> None:
    """Give back what a transient provider error left untried, due again at ``due`` (at once, or when the
    provider said to come back): the task's retry takes what is due, the dispatcher the rest."""
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.status == AttemptStatus.sending.value)
            .values(status=AttemptStatus.deferred.value, reason="provider_retry", release_after=due, updated_at=now)
        )
