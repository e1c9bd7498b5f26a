"""Channel fallback, Retry-After pauses, provider throttles, and opt-outs that survive a re-import."""

from __future__ import annotations

from sqlalchemy import select, update

from campaigns.channels import PermanentDeliveryError
from campaigns.channels.base import RateLimited
from campaigns.db.models import ContactAttempt, Customer, Stage
from campaigns.delivery.deliver import PausePolicy, deliver_queued
from campaigns.delivery.fallback import fall_back
from campaigns.ladder.config import load_ladder
from campaigns.delivery.provider_events import apply_sendgrid_events
from campaigns.runs.records import start_run
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.fakes import FakeGateway
from tests.contact.test_pipeline import BRAND, POLICY, TEMPLATES, attempts, run_stage


def rows(engine):
    return sorted((a.account_id, a.channel, a.status, a.reason) for a in attempts(engine))


def run_fallback(engine, ladder, gateways):
    run_id = start_run(engine, "dispatch", AS_OF, NOW, started_at=NOW)
    return fall_back(engine, ladder, TEMPLATES, BRAND, POLICY, gateways, run_id=run_id, now=NOW, today=AS_OF)


def test_a_hard_bounce_or_a_late_opt_out_moves_the_stage_to_the_next_channel_once(engine, ladder_file):
    ladder = load_ladder(ladder_file)
    add_account(engine, "BOUNCE", days_past_due=3)
    add_account(engine, "OPTOUT", days_past_due=3)
    add_account(engine, "SOFT", days_past_due=3)
    add_account(engine, "FINE", days_past_due=3)
    email, sms = FakeGateway(), FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": email, "sms": sms}, chunk_size=10)
    ids = {a.account_id: a.id for a in attempts(engine)}
    # OPTOUT's email was queued again (say the first send was refused for now) and the customer opts out meanwhile.
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.id == ids["OPTOUT"]).values(status="queued"))
        conn.execute(update(Customer).where(Customer.id == "C-OPTOUT").values(email_opt_out=True))
    deliver_queued(engine, {"email": email}, now=NOW, policy=POLICY)
    apply_sendgrid_events(engine, [
        {"event": "bounce", "type": "bounce", "sg_event_id": "b1", "timestamp": 1, "attempt_id": str(ids["BOUNCE"])},
        {"event": "bounce", "type": "blocked", "sg_event_id": "b2", "timestamp": 1, "attempt_id": str(ids["SOFT"])},
    ], NOW)

    tally = run_fallback(engine, ladder, {"email": email, "sms": sms})
    assert tally.total("sent") == 2
    assert sorted(m.account_id for m in sms.sent) == ["BOUNCE", "OPTOUT"]
    assert rows(engine) == [
        ("BOUNCE", "email", "bounced", "bounced"), ("BOUNCE", "sms", "sent", None),
        ("FINE", "email", "sent", None),
        ("OPTOUT", "email", "suppressed", "opted_out"), ("OPTOUT", "sms", "sent", None),
        ("SOFT", "email", "bounced", "bounced"),  # a soft bounce ("blocked") keeps the address: no fallback
    ]
    assert run_fallback(engine, ladder, {"email": email, "sms": sms}).as_dict() == {}
    assert len(sms.sent) == 2


class Refusing(FakeGateway):
    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def send(self, message, now):
        raise PermanentDeliveryError(self.reason, "refused by the fake")


def test_a_wallet_without_the_app_falls_back_from_push_to_email(engine, tmp_path, ladder_file):
    path = tmp_path / "push-ladder.yaml"
    path.write_text(ladder_file.read_text().replace("channels: [email, sms]", "channels: [push, email, sms]"))
    ladder = load_ladder(path)
    add_account(engine, "APP", days_past_due=3, customer={"push_enabled": True})
    add_account(engine, "NOAPP", days_past_due=3)
    email = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"push": Refusing("invalid_address"), "email": email}, chunk_size=10)
    assert rows(engine) == [("APP", "push", "failed", "invalid_address"),
                            ("NOAPP", "email", "sent", None), ("NOAPP", "push", "suppressed", "no_consent")]
    with engine.connect() as conn:
        assert conn.execute(select(Customer.push_enabled).where(Customer.id == "C-APP")).scalar_one() is False
    run_fallback(engine, ladder, {"push": FakeGateway(), "email": email})
    assert ("APP", "email", "sent", None) in rows(engine)
    push_attempt = next(m for m in attempts(engine) if m.channel == "push" and m.account_id == "APP")
    assert push_attempt.template == "soft_nudge/push.en-US.j2"


def test_a_stop_at_the_sms_provider_is_an_opt_out(engine, ladder_file):
    add_account(engine, "S", days_past_due=3, customer={"email": None})
    run_stage(engine, load_ladder(ladder_file), Stage.soft_nudge, {"sms": Refusing("opted_out")}, chunk_size=10)
    with engine.connect() as conn:
        assert conn.execute(select(Customer.sms_opt_out).where(Customer.id == "C-S")).scalar_one() is True


class LimitedOnce(FakeGateway):
    def send(self, message, now):
        self.calls += 1
        if self.calls == 1:
            raise RateLimited("429", retry_after=2.0)
        self.sent.append(message)
        return f"fake-{message.attempt_id}"


def enqueue_soft_nudge(engine, ladder_file, accounts: int) -> None:
    """``accounts`` accounts 3 days past due, logged and queued by a soft_nudge run (not yet delivered)."""
    from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks

    for n in range(accounts):
        add_account(engine, f"A{n}", days_past_due=3)
    ladder = load_ladder(ladder_file)
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                   as_of=AS_OF, now=NOW)
    for bounds in plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 10):
        enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)


def test_a_short_retry_after_is_waited_out_and_the_throttle_sees_each_group(engine, ladder_file):
    enqueue_soft_nudge(engine, ladder_file, 5)
    slept, throttled = [], []
    gateway = LimitedOnce()
    gateway.provider = "sendgrid"
    tally = deliver_queued(engine, {"email": gateway}, now=NOW, policy=POLICY, claim_size=2,
                           throttle=lambda provider, n: throttled.append((provider, n)),
                           pause=PausePolicy(max_wait_seconds=5, sleep=slept.append))
    assert tally.total("sent") == 5 and slept == [2.0]
    assert throttled == [("sendgrid", 2), ("sendgrid", 2), ("sendgrid", 1)]


def test_a_batch_gateway_takes_its_rate_limit_slots_a_claim_at_a_time(engine, ladder_file):
    """The outbox takes a whole batch in one group, but a provider's rate limit holds only ``claim_size``
    slots (tasks.provider_limits.ensure_provider_limits): the throttle is asked for at most that many at once."""
    from campaigns.channels import OutboxGateway

    enqueue_soft_nudge(engine, ladder_file, 7)
    throttled = []
    tally = deliver_queued(engine, {"email": OutboxGateway(engine)}, now=NOW, policy=POLICY, claim_size=3,
                           throttle=lambda provider, n: throttled.append((provider, n)))
    assert tally.total("sent") == 7
    assert throttled == [("outbox", 3), ("outbox", 3), ("outbox", 1)]


def test_an_opt_out_we_hold_survives_a_re_import_that_says_false(engine, tmp_path):
    from campaigns.portfolio.importer import import_portfolio

    path = tmp_path / "p.csv"
    path.write_text("account_id,customer_id,currency,balance,amount_due,due_date,email,email_opt_out,sms_opt_out\n"
                    "A1,C1,USD,100.00,50.00,2026-11-20,a@example.com,false,false\n")
    import_portfolio(engine, path, NOW)
    with engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == "C1").values(email_opt_out=True))
    import_portfolio(engine, path, NOW)
    with engine.connect() as conn:
        assert conn.execute(select(Customer.email_opt_out, Customer.sms_opt_out)).one() == (True, False)


class LimitedLong(FakeGateway):
    def send(self, message, now):
        raise RateLimited("429", retry_after=120.0)


def test_a_long_retry_after_defers_the_rest_until_the_provider_said(engine, ladder_file):
    from datetime import timedelta

    from campaigns.delivery.deliver import DeliveryInterrupted

    add_account(engine, "A1", days_past_due=3)
    try:
        run_stage(engine, load_ladder(ladder_file), Stage.soft_nudge, {"email": LimitedLong()}, chunk_size=10)
    except DeliveryInterrupted:
        pass
    else:
        raise AssertionError("a 429 must interrupt the delivery")
    (row,) = attempts(engine)
    assert (row.status, row.reason, row.release_after) == ("deferred", "provider_retry", NOW + timedelta(seconds=120))
