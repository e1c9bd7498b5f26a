"""Experiments (champion, challengers, shares, dates) and segments: who gets which arm, tone and channel, and why."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select

from campaigns.ladder.config import HOLDOUT, Experiment, Ladder, SegmentRules, StageRule
from campaigns.contact.segments import add_segments, classify_segments
from campaigns.contact.strategy import PENDING, assign_variant, decide_contacts
from campaigns.db.models import ContactAttempt, Payment, Stage
from campaigns.contact.cohorts import ChunkBounds, select_cohort
from campaigns.attempts.log import attempt_row
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.contact.test_policy_strategy import cohort

RULE = StageRule(stage=Stage.soft_nudge, days_past_due={"min": 1, "max": 14}, channels=["email", "sms"])
CHALLENGE = Experiment(name="nudge-x", stage=Stage.soft_nudge, start=date(2026, 11, 1), end=date(2026, 11, 30),
                       holdout_share=0.1, arms=[
                           {"name": "control", "share": 0.6, "champion": True},
                           {"name": "warm", "share": 0.3, "tone": "gentle"},
                           {"name": "sms_first", "share": 0.1, "channels": ["sms", "email"]}])


def test_assignment_is_deterministic_and_follows_the_configured_shares_on_100k_accounts():
    ids = [f"ACC{i:07d}" for i in range(100_000)]
    arms = assign_variant(ids, CHALLENGE)
    assert (arms == assign_variant(list(ids), CHALLENGE.model_copy())).all()  # same inputs, same arm
    shares = pd.Series(arms).value_counts(normalize=True)
    for arm in CHALLENGE.arms:  # 100k draws: 3 standard errors of a share is at most 0.5 point
        assert abs(shares[arm.name] - arm.share) < 0.005, (arm.name, shares[arm.name])
    # Another experiment name reshuffles: about as many agree as chance allows, not all.
    other = assign_variant(ids, CHALLENGE.model_copy(update={"name": "nudge-y"}))
    assert 0.4 < (other == arms).mean() < 0.5  # 0.6² + 0.3² + 0.1² = 0.46 by chance


def test_a_known_account_always_gets_the_same_arm():
    """The hash is of the experiment's name and the account id only: a pinned value guards against drift."""
    assert list(assign_variant(["A0", "A1", "A2", "A3"], CHALLENGE)) == list(
        assign_variant(["A3", "A2", "A1", "A0"], CHALLENGE))[::-1]
    assert [assign_variant([f"A{i}"], CHALLENGE)[0] for i in range(6)] == list(
        assign_variant([f"A{i}" for i in range(6)], CHALLENGE))


def _ladder(**extra) -> Ladder:
    return Ladder.model_validate({
        "experiment": {"name": "default", "variants": ["control"], "holdout_share": 0.05},
        "stages": {"soft_nudge": {"days_past_due": {"min": 1, "max": 14}, "channels": ["email", "sms"]}},
        **extra})


def test_an_experiment_runs_from_its_start_to_its_end_then_the_stage_is_back_on_the_default():
    ladder = _ladder(experiments=[CHALLENGE.model_dump(exclude={"variants"})])
    assert ladder.experiment_for("soft_nudge", date(2026, 10, 31)).name == "default"
    assert ladder.experiment_for("soft_nudge", date(2026, 11, 1)).name == "nudge-x"
    assert ladder.experiment_for("soft_nudge", date(2026, 11, 30)).name == "nudge-x"
    assert ladder.experiment_for("soft_nudge", date(2026, 12, 1)).name == "default"  # ended: its arms are frozen


@pytest.mark.parametrize("change, message", [
    ({"experiments": [{"name": "x", "stage": "soft_nudge", "start": "2026-11-01", "end": "2026-11-30",
                       "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]}]}, "add up to 0.9"),
    ({"experiments": [{"name": "x", "stage": "soft_nudge", "start": "2026-11-01", "end": "2026-11-30",
                       "arms": [{"name": "a", "share": 0.5, "champion": True},
                                {"name": "b", "share": 0.5, "champion": True}]}]}, "one champion"),
    ({"experiments": [{"name": "x", "stage": "soft_nudge", "start": "2026-11-01", "end": "2026-11-30",
                       "arms": [{"name": "holdout", "share": 1}]}]}, "not 'holdout'"),
    ({"experiments": [{"name": "x", "stage": "soft_nudge", "variants": ["a"]}]}, "needs a stage, a start and an end"),
    ({"experiments": [{"name": "x", "stage": "soft_nudge", "start": "2026-11-30", "end": "2026-11-01",
                       "variants": ["a"]}]}, "end on or after start"),
    ({"experiments": [{"name": "x", "stage": "plan_offer", "start": "2026-11-01", "end": "2026-11-30",
                       "variants": ["a"]}]}, "not configured"),
    ({"experiments": [{"name": n, "stage": "soft_nudge", "start": s, "end": e, "variants": ["a"]}
                      for n, s, e in (("x", "2026-11-01", "2026-11-30"), ("y", "2026-11-30", "2026-12-31"))]},
     "x and y overlap"),
    ({"experiments": [{"name": "default", "stage": "soft_nudge", "start": "2026-11-01", "end": "2026-11-30",
                       "variants": ["a"]}]}, "its own name"),
    ({"segments": {"tone": {"late_payer": "gentle"}}}, "unknown segment late_payer"),
])
def test_a_wrong_experiment_or_segment_configuration_is_one_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        _ladder(**change)


def test_only_the_assigned_row_carries_the_arm_and_the_holdout_is_its_own_arm():
    frame = cohort(account_id=[f"A{i}" for i in range(400)], email_opt_out=[i % 4 == 0 for i in range(400)],
                   sms_consent=[i % 8 != 0 for i in range(400)])
    d = decide_contacts(frame, RULE, CHALLENGE)
    suppressed = d[d["status"] == "suppressed"]
    assert suppressed["variant"].isna().all() and suppressed["experiment"].isna().all()  # in no arm
    assigned = d[d["status"] != "suppressed"]
    assert assigned["account_id"].is_unique and (assigned["experiment"] == "nudge-x").all()
    held = assigned[assigned["status"] == "holdout"]
    assert len(held) > 10 and (held["variant"] == HOLDOUT).all()
    assert set(assigned.loc[assigned["status"] == PENDING, "variant"]) == {"control", "warm", "sms_first"}
    # Never-reachable accounts (email opted out and no SMS consent) were never assigned.
    never = {f"A{i}" for i in range(0, 400, 8)}
    assert never.isdisjoint(set(assigned["account_id"]))


def test_an_arm_sets_its_tone_and_channel_order_and_a_vulnerable_customer_keeps_the_arm_with_a_gentle_tone():
    frame = cohort(account_id=[f"A{i}" for i in range(300)], vulnerable=[i == 7 for i in range(300)])
    d = decide_contacts(frame, RULE, CHALLENGE.model_copy(update={"holdout_share": 0.0}))
    by_arm = {arm: group for arm, group in d.groupby("variant")}
    assert set(by_arm["sms_first"]["channel"]) == {"sms"} and set(by_arm["sms_first"]["channels"]) == {"sms,email"}
    assert set(by_arm["control"]["channel"]) == {"email"}
    assert set(by_arm["warm"]["tone"]) == {"gentle"}
    assert set(by_arm["control"].loc[by_arm["control"]["account_id"] != "A7", "tone"].map(repr)) == {"None"}
    a7 = d[d["account_id"] == "A7"].iloc[0]
    assert a7["tone"] == "gentle" and a7["variant"] == assign_variant(["A7"], CHALLENGE)[0]


def test_a_segment_picks_tone_and_channel_order_through_the_ladder():
    rules = SegmentRules(tone={"on_time_payer": "gentle"}, channels={"chronic_late": ["sms", "email"]})
    frame = cohort(account_id=["P", "C", "F"], segment=["on_time_payer", "chronic_late", "first_time_debtor"])
    d = decide_contacts(frame, RULE, Experiment(name="t"), rules).set_index("account_id")
    assert d.loc["P", "tone"] == "gentle" and d.loc["P", "channel"] == "email"
    assert d.loc["C", "tone"] is None and d.loc["C", "channel"] == "sms"
    assert d.loc["F", "tone"] is None and d.loc["F", "channel"] == "email"


def test_segments_on_hand_made_histories():
    rules = SegmentRules(chronic_from=3, high_value_balance={"USD": 1000}, long_tenure_days=730)
    frame = pd.DataFrame({
        "account_id": ["new", "good", "once", "often", "rich"],
        "balance": [100.0, 100.0, 100.0, 100.0, 1000.0], "currency": ["USD", "USD", "USD", "USD", "USD"],
        "payments_before": [0, 4, 2, 9, 0], "late_episodes": [0, 0, 2, 3, 0], "tenure_days": [10, 800, 10, 10, 10],
    })
    out = classify_segments(frame, rules)
    assert list(out["segment"]) == ["first_time_debtor", "on_time_payer", "occasional_late", "chronic_late",
                                    "first_time_debtor"]
    assert list(out["value_tier"]) == ["standard"] * 4 + ["high"]
    assert list(out["tenure"]) == ["new", "long", "new", "new", "new"]
    assert out["segment_why"][3].startswith("chronic_late: 3 late episode(s) in 365 days, 9 payment(s) before")


def _past_nudge(engine, run_id: str, account_id: str, day: date, n: int) -> None:
    at = NOW - (AS_OF - day)  # when it was sent: that day (caps count what was sent lately)
    row = attempt_row(run_id=run_id, account_id=account_id, customer_id=f"C-{account_id}", stage="soft_nudge",
                      cycle=f"old-{n}", as_of=day, channel="email", status="sent", now=at, variant="control",
                      experiment="old")
    row["sent_at"] = at
    with engine.begin() as conn:
        conn.execute(insert(ContactAttempt.__table__), row)


def test_segments_are_read_from_the_contact_log_and_the_payments(engine):
    from campaigns.runs.records import start_run

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    for account in ("NEW", "PAYER", "LATE", "CHRONIC"):
        add_account(engine, account, days_past_due=5)
    with engine.begin() as conn:
        conn.execute(insert(Payment.__table__), [
            {"payment_id": f"p{i}", "account_id": "PAYER", "amount": Decimal("10"), "currency": "USD",
             "paid_at": NOW - timedelta(days=40 * i), "source": "test"} for i in range(1, 4)])
    _past_nudge(engine, run_id, "LATE", AS_OF - timedelta(days=60), 1)
    for n, months_ago in enumerate((1, 3, 5, 7)):
        _past_nudge(engine, run_id, "CHRONIC", AS_OF - timedelta(days=30 * months_ago + 8), n)
    _past_nudge(engine, run_id, "NEW", AS_OF - timedelta(days=2), 9)  # this statement's own lateness is not history
    with engine.connect() as conn:
        frame = select_cohort(conn, RULE, AS_OF, ChunkBounds(None, "~"))
        frame = add_segments(conn, frame, AS_OF, SegmentRules())
    segments = dict(zip(frame["account_id"], frame["segment"]))
    assert segments == {"NEW": "first_time_debtor", "PAYER": "on_time_payer", "LATE": "occasional_late",
                        "CHRONIC": "chronic_late"}


def test_an_arm_with_a_send_hour_is_deferred_to_that_hour_in_the_customers_day_and_released_then(engine):
    from datetime import datetime, timezone

    from campaigns.db.models import ContactAttempt
    from campaigns.delivery.deliver import deliver_queued
    from tests.fakes import FakeGateway
    from tests.contact.test_pipeline import POLICY, run_stage

    ladder = _ladder().model_copy(update={"experiment": Experiment(
        name="late", arms=[{"name": "afternoon", "share": 1.0, "send_hour": 14}])})
    add_account(engine, "NY", days_past_due=5)  # America/New_York; NOW is 09:00 there
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway})
    with engine.connect() as conn:
        row = conn.execute(select(ContactAttempt.__table__).where(ContactAttempt.account_id == "NY")).one()
    assert (row.status, row.reason) == ("deferred", "send_hour") and gateway.sent == []
    assert row.release_after == datetime(2026, 11, 22, 19, 0, tzinfo=timezone.utc)  # 14:00 New York
    assert row.policy_trace[0]["send_hour"] == 14 and row.policy_trace[-1]["reason"] == "send_hour"
    deliver_queued(engine, {"email": gateway}, now=row.release_after, policy=POLICY, include_queued=False)
    assert [m.account_id for m in gateway.sent] == ["NY"]


def test_a_chronic_late_payer_gets_the_direct_templates_and_its_trace_says_why(engine):
    from campaigns.runs.records import start_run
    from tests.fakes import FakeGateway
    from tests.contact.test_pipeline import run_stage

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    add_account(engine, "CHRONIC", days_past_due=5)
    add_account(engine, "NEW", days_past_due=5)
    for n, months_ago in enumerate((1, 3, 5)):
        _past_nudge(engine, run_id, "CHRONIC", AS_OF - timedelta(days=30 * months_ago + 8), n)
    ladder = _ladder(segments={"tone": {"chronic_late": "direct"}})
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway})
    with engine.connect() as conn:
        rows = {r.account_id: r for r in conn.execute(
            select(ContactAttempt.account_id, ContactAttempt.template, ContactAttempt.tone,
                   ContactAttempt.segment, ContactAttempt.policy_trace).where(ContactAttempt.as_of == AS_OF))}
    assert (rows["CHRONIC"].template, rows["CHRONIC"].tone) == ("soft_nudge/email.en-US.direct.j2", "direct")
    assert rows["CHRONIC"].segment == "chronic_late"
    assert rows["CHRONIC"].policy_trace[0]["why"].startswith("chronic_late: 3 late episode(s)")
    assert (rows["NEW"].template, rows["NEW"].tone) == ("soft_nudge/email.en-US.j2", None)
    direct = next(m for m in gateway.sent if m.account_id == "CHRONIC")
    assert "overdue" in direct.subject
