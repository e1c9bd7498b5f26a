"""After a crash: finish what a killed deliverer left half-done, sending nothing twice.

A deliverer claims attempts (``sending``, stamped with the wall-clock time) and
commits that before calling the provider. If the process dies before it writes
the outcome, the claim goes stale. What happens then depends on the provider:

- An *idempotent* gateway (the outbox, the agents' worklist, the push webhook,
  which all key on our attempt id) recognises a repeat, so the attempt is put
  back in the queue (``deferred``, due at once, reason ``interrupted``) and sent
  again after every rule is checked again.
- Any other provider (SendGrid, Twilio) may have taken it: the attempt becomes
  ``unknown`` (reason ``interrupted``) and waits for the provider's events
  (``provider_events``), which settle it as sent, delivered, bounced or dropped.
- An ``unknown`` attempt the provider has still said nothing about after a grace
  period (``CAMPAIGNS_RESEND_UNCONFIRMED_AFTER_HOURS``: longer than the provider
  keeps retrying its webhook) never reached it, and is queued again (reason
  ``unconfirmed``).

Stale means claimed before ``stale_before``: the dispatcher passes the wall-clock
time minus the claim lease; an operator who knows no deliverer is running can
recover at once (``campaigns recover --lease-seconds 0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, exists, or_, select, update

from campaigns.channels.base import DeliveryGateway
from campaigns.db.models import AttemptStatus, ContactAttempt, ProviderEvent
from campaigns.attempts.log import Tally
from campaigns.delivery.provider_events import settle_from_events


def is_idempotent(gateway: DeliveryGateway | None) -> bool:
    return bool(getattr(gateway, "idempotent", False))


def recover_interrupted(
    engine: Engine, gateways: Mapping[str, DeliveryGateway], *, now: datetime, stale_before: datetime
) -> Tally:
    """Settle attempts left ``sending`` by a deliverer that stopped before ``stale_before`` (wall clock)."""
    table = ContactAttempt.__table__
    stale = (table.c.status == AttemptStatus.sending.value) & or_(
        table.c.claimed_at.is_(None), table.c.claimed_at < stale_before)
    tally = Tally()
    with engine.begin() as conn:
        channels = conn.execute(select(table.c.channel).where(stale).distinct()).scalars().all()
        for channel in channels:
            if is_idempotent(gateways.get(channel)):
                values = dict(status=AttemptStatus.deferred.value, release_after=now)
            else:
                values = dict(status=AttemptStatus.unknown.value)
            moved = conn.execute(
                update(table).where(stale, table.c.channel == channel)
                .values(reason="interrupted", updated_at=now, **values).returning(table.c.id)
            ).scalars().all()
            tally.add(values["status"], "interrupted", n=len(moved))
            if values["status"] == AttemptStatus.unknown.value:
                settle_from_events(conn, moved, now)  # the provider may already have said it took them
    return tally


def resend_unconfirmed(engine: Engine, *, now: datetime, claimed_before: datetime) -> Tally:
    """Queue again the ``unknown`` attempts claimed before ``claimed_before`` that no provider event confirms."""
    table = ContactAttempt.__table__
    confirmed = exists().where(ProviderEvent.attempt_id == table.c.id)
    with engine.begin() as conn:
        moved = conn.execute(
            update(table)
            .where(table.c.status == AttemptStatus.unknown.value, table.c.claimed_at < claimed_before, ~confirmed)
            .values(status=AttemptStatus.deferred.value, reason="unconfirmed", release_after=now, updated_at=now)
        ).rowcount
    tally = Tally()
    tally.add(AttemptStatus.deferred.value, "unconfirmed", n=moved)
    return tally


def recover(
    engine: Engine, gateways: Mapping[str, DeliveryGateway], *, now: datetime, wall_now: datetime,
    lease: timedelta, unconfirmed_after: timedelta | None,
) -> Tally:
    """Both steps: stale claims first, then unconfirmed ``unknown`` attempts (when ``unconfirmed_after`` is set)."""
    tally = recover_interrupted(engine, gateways, now=now, stale_before=wall_now - lease)
    if unconfirmed_after:
        tally.merge(resend_unconfirmed(engine, now=now, claimed_before=wall_now - unconfirmed_after))
    return tally


__all__ = ["is_idempotent", "recover", "recover_interrupted", "resend_unconfirmed"]
