"""Who each stage selects, around every boundary of the default ladder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from campaigns.contact.cohorts import FLAGS, ChunkBounds, plan_chunks, select_cohort
from campaigns.db.models import AgentWorklistItem, ContactAttempt, Stage
from campaigns.ladder.config import LadderConfigError, load_ladder
from campaigns.attempts.log import attempt_row
from campaigns.runs.records import start_run
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

# days past due -> the one stage that selects it on AS_OF (None: no stage)
BOUNDARIES = {
    -4: None, -3: Stage.pre_due, -2: None, -1: Stage.pre_due, 0: None,
    1: Stage.soft_nudge, 14: Stage.soft_nudge, 15: Stage.plan_offer, 45: Stage.plan_offer,
    46: Stage.escalation, 400: Stage.escalation,
}


def cohort_ids(engine, ladder, stage, as_of=AS_OF, chunk_size=1000):
    rule = ladder.rule(stage)
    with engine.connect() as conn:
        return [i for b in plan_chunks(conn, rule, as_of, chunk_size)
                for i in select_cohort(conn, rule, as_of, b)["account_id"]]


def test_each_boundary_day_falls_in_exactly_the_right_stage(engine, ladder):
    for dpd in BOUNDARIES:
        add_account(engine, f"A{dpd:+04d}", days_past_due=dpd)
    for stage in Stage:
        expected = {f"A{d:+04d}" for d, s in BOUNDARIES.items() if s == stage}
        assert set(cohort_ids(engine, ladder, stage)) == expected, stage


def test_paid_closed_and_nothing_due_never_enter_a_cohort(engine, ladder):
    add_account(engine, "PAID", days_past_due=5, status="paid")
    add_account(engine, "CLOSED", days_past_due=5, status="closed")
    add_account(engine, "ZERO", days_past_due=5, amount_due=0)
    add_account(engine, "OPEN", days_past_due=5)
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == ["OPEN"]


def test_the_cohort_carries_what_policy_needs(engine, ladder):
    add_account(engine, "D", days_past_due=3, disputed=True, customer={"email_opt_out": True})
    with engine.connect() as conn:
        [bounds] = plan_chunks(conn, ladder.rule(Stage.soft_nudge), AS_OF, 10)
        frame = select_cohort(conn, ladder.rule(Stage.soft_nudge), AS_OF, bounds)
    record = frame.iloc[0]
    assert record["has_open_dispute"] and record["email_opt_out"] and record["days_past_due"] == 3


def test_a_cohort_frame_reads_missing_flags_as_false_and_missing_text_as_missing(engine, ladder):
    add_account(engine, "E", days_past_due=3, customer={"email": None, "phone": None})
    add_account(engine, "F", days_past_due=4)
    rule = ladder.rule(Stage.soft_nudge)
    with engine.connect() as conn:
        [bounds] = plan_chunks(conn, rule, AS_OF, 10)
        frame = select_cohort(conn, rule, AS_OF, bounds)
        empty = select_cohort(conn, rule, AS_OF, bounds, accounts=["nobody"])
    assert list(frame["account_id"]) == ["E", "F"] and list(frame["days_past_due"]) == [3, 4]
    assert frame["email"].isna().tolist() == [True, False] and frame["phone"].isna().tolist() == [True, False]
    assert all(frame[flag].dtype == bool for flag in FLAGS)  # NULL (no row, no value) is False, never NaN
    assert not frame["has_open_dispute"].any() and not frame["in_plan"].any()
    assert list(empty.columns) == list(frame.columns) and empty.empty and empty["days_past_due"].dtype == "int64"


def test_a_rerun_plans_only_accounts_not_logged_that_day(engine, ladder):
    for n in range(5):
        add_account(engine, f"A{n}", days_past_due=3)
    rule = ladder.rule(Stage.soft_nudge)
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:
        for account_id in ("A1", "A2", "A4"):
            conn.execute(insert(ContactAttempt), attempt_row(
                run_id=run_id, account_id=account_id, customer_id=f"C-{account_id}", stage=Stage.soft_nudge,
                cycle=AS_OF.isoformat(), as_of=AS_OF, channel="email", status="sent", now=NOW))
    with engine.connect() as conn:
        every = plan_chunks(conn, rule, AS_OF, 2)
        left = plan_chunks(conn, rule, AS_OF, 2, unlogged_only=True)
        tomorrow = plan_chunks(conn, rule, AS_OF + timedelta(days=1), 2, unlogged_only=True)
    assert [(b.after, b.upto) for b in every] == [(None, "A1"), ("A1", "A3"), ("A3", "A4")]
    assert [(b.after, b.upto) for b in left] == [(None, "A3")]  # A0 and A3; A1 and A2 in its range, counted there
    assert str(ChunkBounds("A3", None)) == "accounts after A3" and str(ChunkBounds(None, None)) == "all accounts"
    # Tomorrow the contacted wait (every_days) and the others are due again: A0 and A3, one range.
    assert [(b.after, b.upto) for b in tomorrow] == [(None, "A3")]


def test_keyset_chunks_cover_the_cohort_exactly_once(engine, ladder):
    for n in range(23):
        add_account(engine, f"A{n:03d}", days_past_due=5)
    add_account(engine, "Z-late", days_past_due=30)
    with engine.connect() as conn:
        chunks = plan_chunks(conn, ladder.rule(Stage.soft_nudge), AS_OF, 5)
    assert len(chunks) == 5 and chunks[0].after is None
    assert all(a.upto == b.after for a, b in zip(chunks, chunks[1:]))
    ids = cohort_ids(engine, ladder, Stage.soft_nudge, chunk_size=5)
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 23


def _log(engine, account_id, stage, as_of, status="sent", channel="email"):
    run_id = start_run(engine, stage, as_of, NOW, started_at=NOW)
    with engine.begin() as conn:
        conn.execute(insert(ContactAttempt.__table__), attempt_row(
            run_id=run_id, account_id=account_id, customer_id=f"C-{account_id}", stage=stage,
            cycle=as_of.isoformat(), as_of=as_of, channel=channel, status=status, now=NOW))


def test_soft_nudge_waits_every_days_after_a_contact(engine, ladder):
    add_account(engine, "A", days_past_due=5)
    _log(engine, "A", Stage.soft_nudge, AS_OF - timedelta(days=2))
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == []          # 2 days ago: too soon
    assert cohort_ids(engine, ladder, Stage.soft_nudge, AS_OF + timedelta(days=1)) == ["A"]  # 3 days on


def test_the_holdout_keeps_the_same_cadence_as_the_contacted(engine, ladder):
    """Issue 11: a held-out account is assigned every 3 days like a contacted one, not every day."""
    add_account(engine, "HELD", days_past_due=5)
    _log(engine, "HELD", Stage.soft_nudge, AS_OF - timedelta(days=2), status="holdout")
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == []
    assert cohort_ids(engine, ladder, Stage.soft_nudge, AS_OF + timedelta(days=1)) == ["HELD"]


def test_a_suppressed_attempt_does_not_start_the_wait(engine, ladder):
    add_account(engine, "A", days_past_due=5)
    _log(engine, "A", Stage.soft_nudge, AS_OF - timedelta(days=1), status="suppressed")
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == ["A"]


def test_same_day_attempts_keep_the_account_in_its_own_cohort(engine, ladder):
    """A re-run must see the same cohort, so that its keys collide instead of vanishing."""
    add_account(engine, "A", days_past_due=5)
    _log(engine, "A", Stage.soft_nudge, AS_OF)
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == ["A"]


def test_an_account_is_in_at_most_one_stage_a_day(engine, ladder):
    add_account(engine, "A", days_past_due=5)
    _log(engine, "A", Stage.pre_due, AS_OF)  # e.g. its due date moved after the morning's reminder
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == []


def test_escalation_happens_once_per_due_date_and_stops_automated_stages(engine, ladder):
    add_account(engine, "A", days_past_due=50)
    _log(engine, "A", Stage.escalation, AS_OF - timedelta(days=3), channel="agent")
    assert cohort_ids(engine, ladder, Stage.escalation) == []
    add_account(engine, "B", days_past_due=10)
    with engine.begin() as conn:
        attempt_id = conn.execute(ContactAttempt.__table__.select()).first().id
        conn.execute(insert(AgentWorklistItem.__table__), {
            "attempt_id": attempt_id, "account_id": "B", "reason": "aged_debt", "days_past_due": 50,
            "amount_due": 1, "currency": "USD", "tried": {}, "status": "open", "created_at": NOW})
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == []


def test_overlapping_stages_in_the_config_are_refused(tmp_path):
    path = tmp_path / "ladder.yaml"
    path.write_text(
        "experiment: {name: x}\n"
        "stages:\n"
        "  soft_nudge: {days_past_due: {min: 1, max: 20}, channels: [email]}\n"
        "  plan_offer: {days_past_due: {min: 15, max: 45}, channels: [email]}\n"
    )
    with pytest.raises(LadderConfigError, match="both select day 15"):
        load_ladder(path)
    path.write_text("experiment: {name: x}\nstages:\n  soft_nudge: {channels: [email]}\n")
    with pytest.raises(LadderConfigError, match="exactly one of"):
        load_ladder(path)
    with pytest.raises(LadderConfigError, match="not found"):
        load_ladder(tmp_path / "nope.yaml")
