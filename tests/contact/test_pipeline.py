"""A stage run without Prefect: every cohort member ends in a terminal state, nothing is sent twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from campaigns.contact.cohorts import ChunkBounds
from campaigns.channels import OutboxGateway, PermanentDeliveryError, TransientDeliveryError
from campaigns.channels.agent import AgentWorklistGateway
from campaigns.channels.base import stored_in
from campaigns.db.models import AgentWorklistItem, ContactAttempt, OutboxMessage, RenderedMessage, Stage
from campaigns.delivery.deliver import DeliveryInterrupted, deliver_queued
from campaigns.ladder.config import load_ladder
from campaigns.policy import load_policy
from campaigns.attempts.log import Tally
from campaigns.contact.brand import Brand
from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks, recorded_beyond
from campaigns.contact.render import TemplateLibrary
from campaigns.runs.summaries import run_tally
from campaigns.runs.records import start_run
from campaigns.settings import PROJECT_ROOT
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.fakes import FakeGateway

BRAND = Brand("Acme", "https://pay.example.com/{account_id}", "https://pay.example.com/p/{account_id}", "+1 800")
TEMPLATES = TemplateLibrary(PROJECT_ROOT / "templates")
POLICY = load_policy(PROJECT_ROOT / "config" / "policy.yaml")


def run_stage(engine, ladder, stage, gateways, as_of=AS_OF, now=None, chunk_size=4, final=True) -> tuple[str, Tally]:
    """A stage as the flow runs it: channels of this database (the outbox, the worklist) written final in the
    chunk's one write (``final=False``: left queued for the deliverer, as a provider's are), then delivery."""
    now = now or NOW + (as_of - AS_OF)  # the same hour of the run's own day
    run = StageRun(run_id=start_run(engine, stage, as_of, now, started_at=now), stage=stage, as_of=as_of, now=now)
    enqueued = Tally()
    stores = stored_in(gateways, engine) if final else None
    for bounds in plan_stage_chunks(engine, ladder, stage, as_of, chunk_size):
        enqueued.merge(enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY, stores=stores).tally)
        deliver_queued(engine, gateways, stage=stage.value, as_of=as_of, now=now, policy=POLICY, run_id=run.run_id,
                       bounds=bounds)
    return run.run_id, enqueued


def attempts(engine):
    with engine.connect() as conn:
        return conn.execute(select(ContactAttempt).order_by(ContactAttempt.id)).all()


def mixed_portfolio(engine):
    add_account(engine, "A-ok", days_past_due=3)
    add_account(engine, "B-sms", days_past_due=3, customer={"email_opt_out": True})
    add_account(engine, "C-none", days_past_due=3, customer={"email_opt_out": True, "sms_consent": False})
    add_account(engine, "D-dispute", days_past_due=3, disputed=True)
    add_account(engine, "E-cease", days_past_due=3, cease_contact=True)
    add_account(engine, "F-paid", days_past_due=3, status="paid")
    add_account(engine, "G-zh", days_past_due=3, currency="CNY", customer={"locale": "zh-CN"})


def test_every_cohort_member_ends_in_a_terminal_state(engine, ladder):
    mixed_portfolio(engine)
    gateway = FakeGateway()
    run_id, _ = run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway, "sms": gateway})
    rows = {(a.account_id, a.channel): (a.status, a.reason) for a in attempts(engine)}
    assert rows == {
        ("A-ok", "email"): ("sent", None),
        ("B-sms", "email"): ("suppressed", "opted_out"), ("B-sms", "sms"): ("sent", None),
        ("C-none", "email"): ("suppressed", "opted_out"), ("C-none", "sms"): ("suppressed", "no_consent"),
        ("D-dispute", "email"): ("suppressed", "disputed"),
        ("E-cease", "email"): ("suppressed", "cease_and_desist"),
        ("G-zh", "email"): ("sent", None),
    }
    assert sorted(m.account_id for m in gateway.sent) == ["A-ok", "B-sms", "G-zh"]
    # Every attempt, contacted or not, carries the decision that made it.
    # An assigned account's trace starts with the strategy (segment, arm, tone, channel order and why).
    for a in attempts(engine):
        checks = [t["check"] for t in a.policy_trace]
        assert checks[0] == ("strategy" if a.variant else "enqueue")
        assert "enqueue" in checks
        if a.variant:
            assert a.policy_trace[0]["segment"] == "first_time_debtor" and a.policy_trace[0]["why"]
            assert a.experiment == "ladder-2026q4" and a.amount_due is not None
        else:
            assert a.status == "suppressed" and a.experiment is None and a.amount_due is None
    assert next(a for a in attempts(engine) if a.account_id == "D-dispute").policy_trace[0]["reason"] == "disputed"
    assert all(a.provider_message_id == f"fake-{a.id}" and a.sent_at == NOW
               for a in attempts(engine) if a.status == "sent")
    assert run_tally(engine, run_id).as_dict() == {
        "sent": 3, "suppressed:cease_and_desist": 1, "suppressed:disputed": 1,
        "suppressed:no_consent": 1, "suppressed:opted_out": 2}


def test_a_rerun_of_the_same_day_logs_and_sends_nothing_twice(engine, ladder):
    mixed_portfolio(engine)
    gateway = FakeGateway()
    gateways = {"email": gateway, "sms": gateway}
    _, first = run_stage(engine, ladder, Stage.soft_nudge, gateways)
    _, second = run_stage(engine, ladder, Stage.soft_nudge, gateways, now=NOW + timedelta(hours=3))
    assert len(gateway.sent) == 3 and len(attempts(engine)) == 8
    assert second.as_dict() == {"already_recorded": 8}
    assert first.total("already_recorded") == 0


def test_a_transient_failure_mid_chunk_then_a_retry_sends_each_message_once(engine, ladder):
    for n in range(10):
        add_account(engine, f"A{n}", days_past_due=3)
    flaky = FakeGateway(fail_on_calls={4}, error=TransientDeliveryError)
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW),
                   stage=Stage.soft_nudge, as_of=AS_OF, now=NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 100)
    enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    with pytest.raises(DeliveryInterrupted) as info:
        deliver_queued(engine, {"email": flaky}, stage="soft_nudge", as_of=AS_OF, now=NOW, policy=POLICY, bounds=bounds)
    assert info.value.tally.as_dict() == {"sent": 3}
    statuses = [a.status for a in attempts(engine)]
    # Nothing stuck in "sending": the untried rest is due again at once.
    assert statuses.count("sent") == 3 and statuses.count("deferred") == 7
    assert {a.reason for a in attempts(engine) if a.status == "deferred"} == {"provider_retry"}
    # The retry (here: the same call again) finishes the job.
    enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    deliver_queued(engine, {"email": flaky}, stage="soft_nudge", as_of=AS_OF, now=NOW, policy=POLICY, bounds=bounds)
    assert sorted(flaky.attempt_ids()) == sorted(a.id for a in attempts(engine))
    assert len(set(flaky.attempt_ids())) == 10 and {a.status for a in attempts(engine)} == {"sent"}


def test_a_permanent_refusal_fails_that_message_only(engine, ladder):
    for n in range(3):
        add_account(engine, f"A{n}", days_past_due=3)
    gateway = FakeGateway(fail_on_calls={2}, error=PermanentDeliveryError("invalid_address", "mailbox does not exist"))
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway}, chunk_size=10)
    assert [(a.status, a.reason) for a in attempts(engine)] == [
        ("sent", None), ("failed", "invalid_address"), ("sent", None)]


def test_an_unknown_outcome_is_parked_never_resent(engine, ladder):
    add_account(engine, "A", days_past_due=3)
    gateway = FakeGateway(fail_on_calls={1}, error=TimeoutError)
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway})
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway})
    [attempt] = attempts(engine)
    assert (attempt.status, attempt.reason, attempt.detail) == ("unknown", "provider_error", "TimeoutError")
    assert gateway.calls == 1


def test_the_outbox_channel_stores_each_message_once(engine, ladder):
    mixed_portfolio(engine)
    outbox = OutboxGateway(engine)
    run_stage(engine, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})
    run_stage(engine, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})
    with engine.connect() as conn:
        stored = conn.execute(select(OutboxMessage.channel, OutboxMessage.subject, OutboxMessage.body_text)).all()
        rendered = conn.execute(select(func.count()).select_from(RenderedMessage)).scalar_one()
    assert len(stored) == 3 and rendered == 0  # released to the outbox, the message moved there: one copy
    assert sorted(c for c, _, _ in stored) == ["email", "email", "sms"]
    assert all("https://pay.example.com/" in text for _, _, text in stored)


class PickyOutbox(OutboxGateway):
    """The outbox, but one account's message breaks it: storing a group with it fails (after the group's rows
    went in: they must be rolled back), and sending that message alone is refused."""

    def __init__(self, engine, refuse: str):
        super().__init__(engine)
        self.refuse, self.stored_groups, self.sent_alone = refuse, [], []

    def store(self, conn, attempt_ids, now):
        self.stored_groups.append(len(attempt_ids))
        super().store(conn, attempt_ids, now)
        if self._refused(conn, attempt_ids):
            raise RuntimeError("the outbox refused the group")

    def send(self, message, now):
        self.sent_alone.append(message.account_id)
        if message.account_id == self.refuse:
            raise PermanentDeliveryError("invalid_address", "refused by the fake")
        return super().send(message, now)

    def _refused(self, conn, attempt_ids) -> bool:
        from campaigns.db.engine import among

        return self.refuse in conn.execute(select(ContactAttempt.account_id).where(
            among(conn, ContactAttempt.id, attempt_ids))).scalars().all()


def test_a_channel_of_our_own_database_stores_a_group_at_once_and_a_bad_message_costs_only_itself(engine, ladder):
    """The outbox stores a released group in the transaction that marks it sent; when that fails the group is
    rolled back whole (nothing stored, nothing marked) and sent one by one, so the bad message costs itself."""
    for n in range(12):
        add_account(engine, f"A{n:02d}", days_past_due=3)
    outbox = PickyOutbox(engine, refuse="A05")
    run_stage(engine, ladder, Stage.soft_nudge, {"email": outbox}, chunk_size=100, final=False)  # released later
    by_account = {a.account_id: (a.status, a.reason, a.provider_message_id) for a in attempts(engine)
                  if a.status != "holdout"}
    assert by_account.pop("A05")[:2] == ("failed", "invalid_address")
    assert {status for status, _, _ in by_account.values()} == {"sent"} and len(by_account) >= 9
    assert outbox.stored_groups == [len(by_account) + 1]  # one group, then one by one
    assert sorted(outbox.sent_alone) == sorted([*by_account, "A05"])
    with engine.connect() as conn:
        stored = conn.execute(select(OutboxMessage.attempt_id)).scalars().all()
    assert len(stored) == len(set(stored)) == len(by_account)
    assert all(pid.startswith("outbox-") for _, _, pid in by_account.values())


def test_the_outbox_marks_a_group_sent_and_stores_it_in_one_transaction(engine, ladder):
    """No claim, no per-message commit: a released group is one transaction, its bodies copied in the database."""
    from sqlalchemy import event

    for n in range(30):
        add_account(engine, f"A{n:02d}", days_past_due=3)
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                   as_of=AS_OF, now=NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 100)
    enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    with engine.connect() as conn:
        rendered = dict(conn.execute(select(RenderedMessage.attempt_id, RenderedMessage.body_text)).all())
    commits = []

    def committed(conn):
        commits.append(1)

    event.listen(engine, "commit", committed)
    try:
        tally = deliver_queued(engine, {"email": OutboxGateway(engine)}, stage="soft_nudge", as_of=AS_OF, now=NOW,
                               policy=POLICY, run_id=run.run_id, bounds=bounds)
    finally:
        event.remove(engine, "commit", committed)
    sent = [a for a in attempts(engine) if a.status == "sent"]
    assert tally.total("sent") == len(sent) >= 25
    assert len(commits) <= 2  # the deferrals and suppressions, then the group
    assert not [a for a in attempts(engine) if a.status == "sending"]
    with engine.connect() as conn:
        stored = dict(conn.execute(select(OutboxMessage.attempt_id, OutboxMessage.body_text)).all())
        left = conn.execute(select(func.count()).select_from(RenderedMessage)).scalar_one()
    assert sorted(stored) == sorted(a.id for a in sent)
    assert all(stored[i] == rendered[i] for i in stored)  # moved inside the database, as rendered
    assert left == len(rendered) - len(stored)  # the outbox row is now each sent message's one copy
    assert all(a.provider_message_id == f"outbox-{a.id}" and a.policy_trace[-1]["check"] == "release"
               and a.delivered_by_run_id == run.run_id for a in sent)


def test_a_deferred_message_released_through_the_outbox_keeps_no_reason(engine, ladder):
    """Deferred before 08:00, released by the dispatcher at nine: the outbox's one-transaction send clears the
    deferral's reason as a provider's answer would (the trace keeps why it waited)."""
    add_account(engine, "EARLY", days_past_due=3)
    early = NOW.replace(hour=11)  # 06:00 in New York
    run_stage(engine, ladder, Stage.soft_nudge, {"email": OutboxGateway(engine)}, now=early, chunk_size=10)
    [waiting] = [a for a in attempts(engine) if a.channel == "email"]
    assert (waiting.status, waiting.reason) == ("deferred", "outside_contact_window")
    tally = deliver_queued(engine, {"email": OutboxGateway(engine)}, now=waiting.release_after, policy=POLICY,
                           include_queued=False)
    [sent] = [a for a in attempts(engine) if a.channel == "email"]
    assert tally.total("sent") == 1 and (sent.status, sent.reason, sent.detail) == ("sent", None, None)
    assert [t["check"] for t in sent.policy_trace][-2:] == ["enqueue", "release"]


def test_escalation_puts_accounts_on_the_worklist_with_what_was_tried(engine, ladder):
    add_account(engine, "OLD", days_past_due=46)
    outbox = OutboxGateway(engine)
    gateways = {"email": outbox, "sms": outbox, "agent": AgentWorklistGateway(engine)}
    # Earlier rungs for the same account, on earlier days.
    run_stage(engine, ladder, Stage.soft_nudge, gateways, as_of=AS_OF - timedelta(days=40))
    run_stage(engine, ladder, Stage.plan_offer, gateways, as_of=AS_OF - timedelta(days=20))
    run_stage(engine, ladder, Stage.escalation, gateways)
    run_stage(engine, ladder, Stage.escalation, gateways, as_of=AS_OF + timedelta(days=1))  # once per due date
    with engine.connect() as conn:
        [item] = conn.execute(select(AgentWorklistItem)).all()
    assert (item.account_id, item.reason, item.days_past_due, item.status) == ("OLD", "aged_debt", 46, "open")
    assert item.tried == {"attempts": 2, "recent": [
        {"on": "2026-11-02", "stage": "plan_offer", "channel": "email", "outcome": "sent"},
        {"on": "2026-10-13", "stage": "soft_nudge", "channel": "email", "outcome": "sent"}]}
    assert [a.stage for a in attempts(engine)] == ["soft_nudge", "plan_offer", "escalation"]
    [escalated] = [a for a in attempts(engine) if a.stage == "escalation"]
    assert (escalated.status, escalated.provider_message_id) == ("sent", f"worklist-{escalated.id}")
    with engine.connect() as conn:  # the worklist item is the one record of it: no rendered copy beside it
        assert not conn.execute(select(RenderedMessage).where(RenderedMessage.attempt_id == escalated.id)).all()
    from campaigns.channels.agent import describe_tried

    assert describe_tried(item.tried) == "2026-11-02 plan_offer email sent; 2026-10-13 soft_nudge email sent"


def test_the_worklist_says_what_was_tried_in_words():
    from campaigns.channels.agent import describe_tried

    assert describe_tried({}) == "nothing: no earlier contact on record"
    assert describe_tried({"attempts": 12, "recent": [
        {"on": "2026-11-02", "stage": "plan_offer", "channel": "sms", "outcome": "failed (invalid_address)"}]}) == \
        "2026-11-02 plan_offer sms failed (invalid_address); and 11 earlier"
    assert describe_tried({"soft_nudge/email/sent": 2}) == "soft_nudge email sent x2"  # kept by earlier versions


def test_a_holdout_account_is_logged_and_not_contacted(engine, ladder_file):
    ladder = load_ladder(ladder_file)
    ladder = ladder.model_copy(update={"experiment": ladder.experiment.model_copy(update={"holdout_share": 0.5})})
    for n in range(40):
        add_account(engine, f"A{n:02d}", days_past_due=3)
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway}, chunk_size=100)
    held = [a for a in attempts(engine) if a.status == "holdout"]
    assert 5 < len(held) < 35
    assert not {a.account_id for a in held} & {m.account_id for m in gateway.sent}
    assert len(gateway.sent) + len(held) == 40


def test_each_sms_carries_its_encoding_and_segments_and_an_overlong_one_fails(engine, ladder):
    from campaigns.db.models import RenderedMessage

    add_account(engine, "EN", days_past_due=3, customer={"email": None})
    add_account(engine, "ZH", days_past_due=3, currency="CNY", customer={"email": None, "locale": "zh-CN"})
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"sms": gateway})
    with engine.connect() as conn:
        payloads = dict(conn.execute(select(ContactAttempt.account_id, RenderedMessage.payload)
                                     .join(RenderedMessage, RenderedMessage.attempt_id == ContactAttempt.id)).all())
    assert payloads["EN"]["encoding"] == "GSM-7" and payloads["ZH"]["encoding"] == "UCS-2"
    assert payloads["ZH"]["segments"] >= 2  # Chinese text: 67 characters a segment

    strict = POLICY.model_copy(update={"sms_max_segments": 1})
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF + timedelta(days=3), NOW, started_at=NOW),
                   stage=Stage.soft_nudge, as_of=AS_OF + timedelta(days=3), now=NOW + timedelta(days=3))
    for bounds in plan_stage_chunks(engine, ladder, Stage.soft_nudge, run.as_of, 10):
        enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, strict)
    later = {(a.account_id, a.status, a.reason) for a in attempts(engine) if a.as_of == run.as_of}
    assert ("ZH", "failed", "sms_too_long") in later


def test_a_rerun_plans_only_what_is_left_to_decide_and_counts_and_delivers_the_rest(engine, ladder):
    """A re-run of the day reads no account twice: it plans chunks of the accounts not logged yet (none, once the
    day is done), and what lies beyond its last chunk is counted as already recorded, with what an earlier run
    that stopped left queued there delivered by this run."""
    for n in range(10):  # no email: each is logged twice, the email suppressed (invalid_address), the SMS queued
        add_account(engine, f"A{n}", days_past_due=3, customer={"email": None, "sms_consent": True})
    sms = FakeGateway()
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                   as_of=AS_OF, now=NOW)
    chunks = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 4, unlogged_only=True)
    assert [(b.after, b.upto) for b in chunks] == [(None, "A3"), ("A3", "A7"), ("A7", "A9")]
    bounds, rest = recorded_beyond(engine, run, chunks)
    assert (bounds.after, bounds.upto, rest.cohort_size, rest.tally.as_dict(), rest.queued_ids) == ("A9", None, 0, {}, [])
    # A run that stopped after logging (queued for the SMS provider, not sent) the first and the last chunk.
    for b in (chunks[0], chunks[2]):
        enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, b, POLICY)
    queued = {a.account_id: a.id for a in attempts(engine) if a.status == "queued"}
    assert sorted(queued) == ["A0", "A1", "A2", "A3", "A8", "A9"]

    again = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                     as_of=AS_OF, now=NOW)
    chunks = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 4, unlogged_only=True)
    assert [(b.after, b.upto) for b in chunks] == [(None, "A7")]  # A4..A7, and A0..A3 counted in its bounds
    bounds, rest = recorded_beyond(engine, again, chunks)
    assert (bounds.after, rest.cohort_size, rest.tally.as_dict()) == ("A7", 2, {"already_recorded": 4})
    assert rest.queued_ids == [queued["A8"], queued["A9"]]
    deliver_queued(engine, {"sms": sms}, stage="soft_nudge", as_of=AS_OF, now=NOW, policy=POLICY,
                   run_id=again.run_id, bounds=bounds, attempt_ids=rest.queued_ids)
    assert sorted(m.account_id for m in sms.sent) == ["A8", "A9"]
    result = enqueue_chunk(engine, ladder, TEMPLATES, BRAND, again, chunks[0], POLICY)
    assert result.cohort_size == 8 and result.tally.as_dict() == {"already_recorded": 8, "queued": 4,
                                                                         "suppressed:invalid_address": 4}
    assert sorted(result.queued_ids) == sorted(a.id for a in attempts(engine) if a.status == "queued")

    # The day done: nothing to plan, and all of it counted beyond the (no) last chunk.
    assert plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 4, unlogged_only=True) == []
    bounds, rest = recorded_beyond(engine, again, [])
    assert (bounds.after, rest.cohort_size, rest.tally.as_dict()) == (None, 10, {"already_recorded": 20})


def test_overlapping_runs_each_count_only_what_they_delivered(engine, ladder):
    """Two runs of the same day used to both report 'sent 19' for 19 messages in all (issue 8: 10)."""
    for n in range(6):
        add_account(engine, f"A{n}", days_past_due=-3)
    gateway = FakeGateway()
    first = StageRun(run_id=start_run(engine, Stage.pre_due, AS_OF, NOW, started_at=NOW), stage=Stage.pre_due,
                     as_of=AS_OF, now=NOW)
    second = StageRun(run_id=start_run(engine, Stage.pre_due, AS_OF, NOW, started_at=NOW), stage=Stage.pre_due,
                      as_of=AS_OF, now=NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.pre_due, AS_OF, 10)
    assert enqueue_chunk(engine, ladder, TEMPLATES, BRAND, first, bounds, POLICY).tally.total("queued") == 6
    assert enqueue_chunk(engine, ladder, TEMPLATES, BRAND, second, bounds, POLICY).tally.total("already_recorded") == 6
    # the second run's deliverer gets to four of them first; the first run's delivers the other two
    deliver_queued(engine, {"email": gateway}, stage="pre_due", as_of=AS_OF, now=NOW, policy=POLICY,
                   run_id=second.run_id, bounds=ChunkBounds(after=None, upto="A3"))
    deliver_queued(engine, {"email": gateway}, stage="pre_due", as_of=AS_OF, now=NOW, policy=POLICY,
                   run_id=first.run_id, bounds=bounds)
    assert len(gateway.sent) == 6
    mine, theirs = run_tally(engine, first.run_id), run_tally(engine, second.run_id)
    assert (mine.total("sent"), theirs.total("sent")) == (2, 4)
    assert mine.total("handled_by_other_run") == 4 and theirs.total("handled_by_other_run") == 0


def test_the_daily_summary_reads_as_a_table_not_json():
    from campaigns.runs.summaries import daily_rows

    rows = daily_rows([
        {"stage": "pre_due", "cohort": 10, "sent": 4, "deferred": 5, "suppressed": 1, "failed": 0, "holdout": 0,
         "suppressed_by_reason": {"opted_out": 1}, "deferred_by_reason": {"outside_contact_window": 5},
         "run_id": "r1"},
        {"stage": "soft_nudge", "cohort": 3, "sent": 2, "deferred": 0, "suppressed": 0, "failed": 0, "holdout": 1,
         "run_id": "r2"},
    ])
    assert list(rows[0]) == ["Stage", "Accounts", "Sent", "Deferred (wait for window)", "Suppressed", "Failed",
                             "Held out", "Reasons", "Run"]  # nothing unknown, queued... that day: not shown
    assert rows[0]["Reasons"] == "suppressed: opted_out 1; deferred: outside_contact_window 5"
    assert rows[1]["Reasons"] == "none" and rows[1]["Held out"] == 1
    assert all(isinstance(v, (int, str)) for row in rows for v in row.values())


class CountingTemplates(TemplateLibrary):
    """The project's templates, counting renders (a re-run of the day should render nothing)."""

    renders = 0

    def render(self, *args, **kwargs):
        CountingTemplates.renders += 1
        return super().render(*args, **kwargs)


def test_a_stage_writes_once_what_is_final_and_leaves_only_a_providers_messages_queued(engine, ladder):
    """Decide once, write once: the outbox's messages are logged sent with their outbox row as the one copy, in
    the chunk's one transaction; the SMS provider's wait queued with their rendered message for the deliverer."""
    mixed_portfolio(engine)
    for n in range(6):
        add_account(engine, f"H{n}", days_past_due=3, customer={"sms_consent": True})
    outbox, sms = OutboxGateway(engine), FakeGateway()
    gateways = {"email": outbox, "sms": sms}
    stores = stored_in(gateways, engine)
    assert list(stores) == ["email"]  # the provider is not a table of this database
    run = StageRun(run_id=start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), stage=Stage.soft_nudge,
                   as_of=AS_OF, now=NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 100)
    result = enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY, stores=stores)
    logged = attempts(engine)
    sent = [a for a in logged if a.status == "sent"]
    queued = [a for a in logged if a.status == "queued"]
    assert sent and queued and {a.channel for a in sent} == {"email"} and {a.channel for a in queued} == {"sms"}
    assert sorted(result.queued_ids) == [a.id for a in queued]
    assert result.tally.total("sent") == len(sent) and result.tally.total("queued") == len(queued)
    assert all(a.provider_message_id == f"outbox-{a.id}" and a.sent_at == NOW and a.delivered_by_run_id == run.run_id
               and a.policy_trace[-1]["check"] == "enqueue" and a.policy_trace[-1]["decision"] == "release"
               for a in sent)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(OutboxMessage.attempt_id, OutboxMessage.channel)).all())
        rendered = conn.execute(select(RenderedMessage.attempt_id)).scalars().all()
    assert sorted(stored) == [a.id for a in sent] and set(stored.values()) == {"email"}
    assert sorted(rendered) == [a.id for a in queued]  # each message stored once, where its sender reads it
    tally = deliver_queued(engine, gateways, stage="soft_nudge", as_of=AS_OF, now=NOW, policy=POLICY,
                           run_id=run.run_id, attempt_ids=result.queued_ids)
    assert tally.total("sent") == len(queued) == len(sms.sent)

    # The same day again: nothing rendered, nothing written, nothing left to deliver.
    CountingTemplates.renders = 0
    again = enqueue_chunk(engine, ladder, CountingTemplates(PROJECT_ROOT / "templates"), BRAND, run, bounds, POLICY,
                          stores=stores)
    assert CountingTemplates.renders == 0 and again.queued_ids == []
    assert again.tally.as_dict() == {"already_recorded": len(logged)}
    assert [(a.id, a.status) for a in attempts(engine)] == [(a.id, "sent") if a.status == "queued" else (a.id, a.status)
                                                            for a in logged]


def test_writing_final_at_once_decides_exactly_what_the_deliverer_would(engine, ladder):
    """The same portfolio, day and gateways through both paths: every account ends with the same channel,
    status and reason, and the same messages are stored."""
    mixed_portfolio(engine)
    for n in range(8):
        add_account(engine, f"H{n}", days_past_due=3 + n, customer={"sms_consent": n % 2 == 0,
                                                                    "email_opt_out": n % 3 == 0})
    outbox = OutboxGateway(engine)
    gateways = {"email": outbox, "sms": outbox}

    def outcome():
        with engine.connect() as conn:
            rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.channel, ContactAttempt.status,
                                       ContactAttempt.reason, OutboxMessage.body_text)
                                .outerjoin(OutboxMessage, OutboxMessage.attempt_id == ContactAttempt.id)).all()
        return sorted(tuple(r) for r in rows)

    run_stage(engine, ladder, Stage.soft_nudge, gateways, final=True)
    final = outcome()
    with engine.begin() as conn:
        for table in (OutboxMessage, RenderedMessage, ContactAttempt):
            conn.execute(table.__table__.delete())
    run_stage(engine, ladder, Stage.soft_nudge, gateways, final=False)
    assert outcome() == final and {status for _, _, status, _, _ in final} >= {"sent", "suppressed"}


def test_a_channel_under_a_rate_limit_is_left_to_the_deliverer(engine):
    outbox = OutboxGateway(engine)
    assert stored_in({"email": outbox, "sms": outbox}, engine, rate_limited={"outbox"}) == {}
    assert stored_in({"email": outbox}, object()) == {}  # another database's outbox: delivered, not stored here
