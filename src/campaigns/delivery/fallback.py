"""Channel fallback: when the channel a stage chose turns out unusable, the next one in its order is tried.

A stage picks the first channel a customer can be reached on when it decides
(``strategy.decide_contacts``). Some things are only learnt later: the email
hard-bounces (the address is marked invalid), the customer opts out of email
between queueing and sending, the SMS provider says the number replied STOP, the
wallet says the user has no app. Each of these changes the customer's channel
state, so deciding the stage again for that account, for the same day and cycle,
picks the next allowed channel; the first attempt's idempotency key is taken, so
only the new channel's attempt is written. Every rule and the frequency caps
apply to it as to any message (a bounce is not a contact and does not count).

Candidates are attempts of the last ``days`` campaign days that were bounced,
failed because the channel is unusable, or stopped at release for a channel
reason, on accounts that have no attempt of that stage and cycle that reached
(or is on its way to) the customer.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from collections.abc import Mapping

from sqlalchemy import Engine, and_, exists, or_, select
from sqlalchemy.orm import aliased

from campaigns.channels.base import DeliveryGateway
from campaigns.contact.cohorts import ChunkBounds
from campaigns.db.models import AttemptStatus, ContactAttempt, RenderedMessage, Stage
from campaigns.delivery.deliver import deliver_queued
from campaigns.ladder.config import Ladder
from campaigns.attempts.log import Tally
from campaigns.contact.brand import Brand
from campaigns.contact.pipeline import StageRun, enqueue_chunk
from campaigns.policy import PolicyConfig
from campaigns.contact.render import TemplateLibrary

# Reasons that say "this channel cannot reach this customer", not "do not contact them".
CHANNEL_REASONS = ("invalid_address", "opted_out", "no_consent", "employer_email")
ON_ITS_WAY = (AttemptStatus.queued.value, AttemptStatus.deferred.value, AttemptStatus.sending.value,
              AttemptStatus.sent.value, AttemptStatus.unknown.value, AttemptStatus.delivered.value)


def fallback_candidates(engine: Engine, today: date, days: int = 2) -> dict[tuple[str, date], list[str]]:
    """Accounts to decide again, by (stage, campaign day)."""
    a, other = ContactAttempt, aliased(ContactAttempt)
    reached = exists().where(other.account_id == a.account_id, other.stage == a.stage, other.cycle == a.cycle,
                             other.status.in_(ON_ITS_WAY))
    was_queued = exists().where(RenderedMessage.attempt_id == a.id)  # not an enqueue-time suppression
    unusable = or_(
        a.status == AttemptStatus.bounced.value,
        and_(a.status == AttemptStatus.failed.value, a.reason.in_(CHANNEL_REASONS)),
        and_(a.status == AttemptStatus.suppressed.value, a.reason.in_(CHANNEL_REASONS), was_queued),
    )
    stmt = (select(a.stage, a.as_of, a.account_id)
            .where(a.as_of > today - timedelta(days=days), a.channel != "agent", unusable, ~reached)
            .distinct().order_by(a.stage, a.as_of, a.account_id))
    found: dict[tuple[str, date], list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            found[(row.stage, row.as_of)].append(row.account_id)
    return dict(found)


def fall_back(engine: Engine, ladder: Ladder, templates: TemplateLibrary, brand: Brand, policy: PolicyConfig,
              gateways: Mapping[str, DeliveryGateway], *, run_id: str, now: datetime, today: date,
              chunk_size: int = 1000, days: int = 2) -> Tally:
    """Decide again, and send, for every candidate account (chunked); return what was logged and sent."""
    tally = Tally()
    for (stage, as_of), accounts in fallback_candidates(engine, today, days).items():
        run = StageRun(run_id=run_id, stage=Stage(stage), as_of=as_of, now=now)
        for start in range(0, len(accounts), chunk_size):
            chunk = accounts[start:start + chunk_size]
            bounds = ChunkBounds(after=None, upto=chunk[-1])
            enqueued = enqueue_chunk(engine, ladder, templates, brand, run, bounds, policy, accounts=chunk)
            tally.merge({k: v for k, v in enqueued.tally.as_dict().items() if k != "already_recorded"})
            if enqueued.tally.total("queued"):
                tally.merge(deliver_queued(engine, gateways, now=now, policy=policy, stage=stage, as_of=as_of,
                                           run_id=run_id, bounds=bounds))
    return tally


__all__ = ["CHANNEL_REASONS", "fall_back", "fallback_candidates"]
