"""After a crash: stale claims are settled by what the provider can tell, nothing is sent blindly twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select, update
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.db.models import ContactAttempt, RenderedMessage
from campaigns.delivery.deliver import deliver_queued
from campaigns.delivery.provider_events import apply_sendgrid_events
from campaigns.delivery.recovery import recover, recover_interrupted, resend_unconfirmed
from tests.conftest import NOW
from tests.fakes import FakeGateway
from tests.contact.test_pipeline import POLICY
from tests.delivery.test_provider_events import attempt, event, status_of

WALL = NOW + timedelta(hours=1)  # the wall clock of the recovering process
LEASE = timedelta(minutes=15)


class IdempotentFake(FakeGateway):
    idempotent = True


def queued(engine, account_id: str, status: str = "queued") -> int:
    """An attempt with its rendered message, as a stage run leaves it."""
    a = attempt(engine, account_id, status)
    with engine.begin() as conn:
        conn.execute(insert(RenderedMessage.__table__), {"attempt_id": a, "recipient": "x@example.com",
                                                          "subject": "s", "body_text": "t", "payload": {}})
    return a


def claimed(engine, attempt_id: int, at) -> None:
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.id == attempt_id)
                     .values(status="sending", claimed_at=at))


def test_a_stale_claim_is_resent_where_the_provider_drops_repeats_and_parked_where_it_does_not(engine):
    email, sms, fresh = attempt(engine, "A1", "queued"), attempt(engine, "A2", "queued"), attempt(engine, "A3", "queued")
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.id == sms).values(channel="sms"))
    claimed(engine, email, WALL - timedelta(hours=1))
    claimed(engine, sms, WALL - timedelta(hours=1))
    claimed(engine, fresh, WALL - timedelta(minutes=1))  # a live deliverer's: left alone

    tally = recover_interrupted(engine, {"email": FakeGateway(), "sms": IdempotentFake()}, now=NOW,
                                stale_before=WALL - LEASE)
    assert tally.as_dict() == {"deferred:interrupted": 1, "unknown:interrupted": 1}
    assert status_of(engine, email)[:2] == ("unknown", "interrupted")
    assert status_of(engine, sms)[:2] == ("deferred", "interrupted")
    assert status_of(engine, fresh)[0] == "sending"


def test_events_that_arrived_while_the_attempt_was_claimed_settle_it_when_the_claim_is_recovered(engine):
    a = attempt(engine, "A1", "queued")
    claimed(engine, a, WALL - timedelta(hours=1))
    apply_sendgrid_events(engine, [event("processed", a), event("delivered", a, n=2)], NOW)
    assert status_of(engine, a)[0] == "sending"  # kept, not applied: our own answer is not written yet
    recover_interrupted(engine, {"email": FakeGateway()}, now=NOW, stale_before=WALL - LEASE)
    assert status_of(engine, a) == ("delivered", "interrupted", "msg123")


def test_an_event_that_beats_the_deliverers_own_answer_is_applied_after_it(engine):
    a = queued(engine, "A1")

    class WebhookFirst(FakeGateway):
        def send(self, message, now):  # the provider's webhook arrives before send() returns
            apply_sendgrid_events(engine, [event("delivered", message.attempt_id)], now)
            return super().send(message, now)

    deliver_queued(engine, {"email": WebhookFirst()}, now=NOW, policy=POLICY)
    assert status_of(engine, a) == ("delivered", None, "msg123")


def test_unknown_attempts_nothing_confirmed_are_sent_again_after_the_grace_period_only(engine):
    silent, confirmed, recent = (queued(engine, f"A{n}", "unknown") for n in (1, 2, 3))
    for a in (silent, confirmed):
        with engine.begin() as conn:
            conn.execute(update(ContactAttempt).where(ContactAttempt.id == a)
                         .values(claimed_at=WALL - timedelta(hours=30)))
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.id == recent).values(claimed_at=WALL))
    apply_sendgrid_events(engine, [event("deferred", confirmed)], NOW)  # the provider has it, retrying

    tally = resend_unconfirmed(engine, now=NOW, claimed_before=WALL - timedelta(hours=26))
    assert tally.as_dict() == {"deferred:unconfirmed": 1}
    assert status_of(engine, silent)[:2] == ("deferred", "unconfirmed")
    assert status_of(engine, confirmed)[0] == status_of(engine, recent)[0] == "unknown"

    gateway = FakeGateway()
    deliver_queued(engine, {"email": gateway}, now=NOW, policy=POLICY, include_queued=False)
    assert gateway.attempt_ids() == [silent]


def test_recover_without_a_grace_period_never_resends_unknown_attempts(engine):
    a = attempt(engine, "A1", "unknown")
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.id == a).values(claimed_at=NOW - timedelta(days=9)))
    assert recover(engine, {}, now=NOW, wall_now=WALL, lease=LEASE, unconfirmed_after=None).as_dict() == {}
    assert status_of(engine, a)[0] == "unknown"


def test_the_dispatcher_sends_what_a_stopped_run_left_queued_once_the_lease_is_over(engine):
    left = queued(engine, "A1")  # decided at NOW by a run that then died
    gateway = FakeGateway()
    deliver_queued(engine, {"email": gateway}, now=NOW + timedelta(minutes=5), policy=POLICY,
                   include_queued=False, queued_before=NOW + timedelta(minutes=5) - LEASE)
    assert gateway.sent == []  # it may still be that run's: wait
    deliver_queued(engine, {"email": gateway}, now=NOW + timedelta(minutes=20), policy=POLICY,
                   include_queued=False, queued_before=NOW + timedelta(minutes=20) - LEASE)
    assert gateway.attempt_ids() == [left]


def test_recover_command(engine):
    a = attempt(engine, "A1", "queued")
    claimed(engine, a, NOW - timedelta(days=1))
    result = CliRunner().invoke(app, ["recover", "--lease-seconds", "0", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert "deferred:interrupted 1" in result.output  # the outbox drops repeats: sent again by dispatch
    with engine.connect() as conn:
        assert conn.execute(select(ContactAttempt.status).where(ContactAttempt.id == a)).scalar_one() == "deferred"
    again = CliRunner().invoke(app, ["recover", "--lease-seconds", "0"])
    assert again.exit_code == 0 and "nothing to do" in again.output
