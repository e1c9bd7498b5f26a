"""The uplift model and the targeted arm: it finds who a message helps in a portfolio whose truth is known, judges
itself out of time, and a targeted arm skips (and logs) only those it predicts are not helped, after every rule."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from campaigns.ladder.config import Targeting
from campaigns.review.config import ReviewRules
from campaigns.risk.uplift import (latest_ready, predict_uplift, qini_area, qini_curve, threshold, train,
                                   train_and_store)
from campaigns.risk.model import features

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
# Each segment's chance of paying in the window: held out, and contacted. Persuadable accounts pay only when
# contacted; sure things pay either way; lost causes never.
TRUTH = {"first_time_debtor": (0.05, 0.35), "on_time_payer": (0.60, 0.62), "chronic_late": (0.03, 0.04)}


def randomised(n: int = 6000, seed: int = 11, holdout_share: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.choice(list(TRUTH), n)
    held = rng.random(n) < holdout_share
    chance = np.array([TRUTH[s][0 if h else 1] for s, h in zip(segment, held)])
    return pd.DataFrame({
        "days_past_due": rng.integers(1, 14, n), "amount_due_reporting": rng.gamma(2, 100, n),
        "paid_before_reporting": np.zeros(n), "stage": "soft_nudge", "segment": segment,
        "variant": np.where(held, "holdout", "control"), "cured": rng.random(n) < chance,
        "assigned_at": pd.date_range("2026-05-01", periods=n, freq="h", tz="UTC")})


def test_the_model_finds_who_a_message_helps_and_judges_itself_on_later_accounts():
    model = train(randomised(), 1, ReviewRules())
    assert model.status == "ready" and model.contacted > 4000 and model.held_out > 1000
    x = features(pd.DataFrame({"days_past_due": [5] * 3, "amount_due_reporting": [200.0] * 3,
                               "paid_before_reporting": [0.0] * 3, "stage": ["soft_nudge"] * 3,
                               "segment": list(TRUTH)}))
    persuadable, sure, lost = predict_uplift(model.params, x)
    assert persuadable == pytest.approx(0.30, abs=0.06)  # the truth: 35% against 5%
    assert abs(sure) < 0.08 and abs(lost) < 0.04
    # Out of time (the latest quarter), ranking by predicted uplift beats random targeting.
    assert model.qini > 0 and "held out" in model.note
    half = next(p for p in model.curve if p["share"] == 0.5)
    assert half["model"] > half["random"] * 1.3
    assert model.params["rates"] == {"USD": 1.0} and len(model.params["quantiles"]) == 101


def test_a_qini_curve_by_hand():
    # Four treated (two cured) and four controls (one cured); the model ranks the treated cures first.
    uplift = np.array([0.9, 0.8, 0.1, 0.0, 0.5, 0.4, 0.3, 0.2])
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    cured = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    curve = qini_curve(uplift, treated, cured, points=5)
    # Everyone: 2 treated cures - 1 control cure × 4/4 = 1 extra cure over 4 treated.
    assert curve[-1] == {"share": 1.0, "model": 0.25, "random": 0.25}
    assert curve[1]["model"] == 0.5  # the top 2: both treated cures, no control yet
    assert qini_area(curve) > 0


def test_too_little_history_is_insufficient_and_a_targeted_arm_then_contacts_everyone(engine):
    model = train_and_store(engine, randomised(n=300), (date(2026, 5, 1), date(2026, 11, 1)), NOW, ReviewRules())
    assert model.status == "insufficient" and "contacts everyone" in model.note
    assert latest_ready(engine) is None


def test_thresholds_from_a_minimum_or_a_share():
    params = {"quantiles": [i / 100 for i in range(101)]}
    assert threshold(params, Targeting(min_uplift=0.02)) == 0.02
    assert threshold(params, Targeting(top_share=0.3)) == 0.70  # the top 30% lie above the 70th percentile
    with pytest.raises(ValueError):
        Targeting(min_uplift=0.02, top_share=0.5)


def test_a_targeted_arm_skips_and_logs_only_those_not_helped_after_every_rule(engine):
    """A ready model; an experiment whose `targeted` arm contacts only predicted uplift of 10 points or more: its
    first-time debtors (persuadable) are contacted, its on-time payers suppressed `low_uplift` with the prediction
    in the trace, still in the arm; the control arm and the holdout are as before; an opted-out account is
    suppressed for its opt-out first."""
    from campaigns import bootstrap
    from campaigns.db.models import ContactAttempt, Stage
    from campaigns.ladder.config import Experiment
    from tests.contact.test_pipeline import run_stage
    from tests.factories import add_account
    from tests.fakes import FakeGateway

    train_and_store(engine, randomised(), (date(2026, 5, 1), date(2026, 11, 1)), NOW, ReviewRules())
    for n in range(40):
        add_account(engine, f"A{n:02d}", days_past_due=3,
                    customer={"email_opt_out": n == 0, "sms_consent": n != 0})
    experiment = Experiment(name="targeting", holdout_share=0.2, arms=[
        {"name": "control", "share": 0.5, "champion": True},
        {"name": "targeted", "share": 0.5, "targeting": {"min_uplift": 0.10}}])
    s = bootstrap.services()
    ladder = s.ladder.model_copy(update={"experiment": experiment, "experiments": []})
    # Half of them have paid before and were never late: on-time payers (little to gain from a message).
    from datetime import timedelta
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from campaigns.money.payments import record_payment

    for n in range(20, 40):
        record_payment(engine, f"A{n:02d}", Decimal("1.00"), NOW - timedelta(days=20), NOW - timedelta(days=20),
                       ZoneInfo("America/New_York"))
    run_stage(engine, ladder, Stage.soft_nudge, {"email": FakeGateway(), "sms": FakeGateway()})
    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.variant, ContactAttempt.status,
                                   ContactAttempt.reason, ContactAttempt.policy_trace)).all()
    assigned = {r.account_id: r for r in rows if r.variant is not None}
    targeted = [r for r in assigned.values() if r.variant == "targeted"]
    assert targeted and all("predicted_uplift" in r.policy_trace[0] for r in targeted)
    for r in targeted:
        predicted = r.policy_trace[0]["predicted_uplift"]
        if predicted < 0.10:
            assert (r.status, r.reason) == ("suppressed", "low_uplift")
            assert r.policy_trace[-1]["reason"] == "low_uplift"
        else:
            assert r.status == "sent"
    assert {r.reason for r in targeted} == {None, "low_uplift"}  # some contacted, some not: the model decided
    assert all(r.reason != "low_uplift" for r in assigned.values() if r.variant in ("control", "holdout"))
    opted = [r for r in rows if r.account_id == "A00"]
    assert {r.reason for r in opted} <= {"opted_out", "no_consent", "channel_unavailable"}


def test_uplift_show_lists_the_versions_and_the_newest_curve(engine):
    from typer.testing import CliRunner

    from campaigns.cli import app

    assert "no uplift model yet" in CliRunner().invoke(app, ["uplift", "show"]).output
    train_and_store(engine, randomised(n=300), (date(2026, 5, 1), date(2026, 11, 1)), NOW, ReviewRules())
    train_and_store(engine, randomised(), (date(2026, 5, 1), date(2026, 11, 1)), NOW, ReviewRules())
    result = CliRunner().invoke(app, ["uplift", "show"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "insufficient" in result.output and "ready" in result.output and "v2: Qini area +" in result.output
    assert "Qini curve (extra cures per contacted account, by share contacted): 0%: " in result.output
