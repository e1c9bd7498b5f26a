"""The risk model: trained on outcomes, explained per score, stored as numbers; too little history says so."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from campaigns.customers.worklist import prioritise
from campaigns.risk.model import MIN_UNITS, features, latest_ready, score, train, train_and_store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def outcomes(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    """Assignments where paying is likelier with recent payments and less likely when later and chronic."""
    rng = np.random.default_rng(seed)
    units = pd.DataFrame({
        "days_past_due": rng.integers(1, 60, n), "amount_due_reporting": rng.gamma(2, 100, n),
        "paid_before_reporting": rng.gamma(1, 80, n) * (rng.random(n) < 0.5),
        "stage": rng.choice(["soft_nudge", "plan_offer"], n),
        "segment": rng.choice(["first_time_debtor", "chronic_late"], n),
        "assigned_at": pd.date_range("2026-05-01", periods=n, freq="h", tz="UTC")})
    logit = (-1.0 - 0.04 * units["days_past_due"] + 0.35 * np.log1p(units["paid_before_reporting"])
             - 1.0 * (units["segment"] == "chronic_late"))
    units["cured"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return units


def test_a_model_learns_the_drivers_and_is_evaluated_on_held_out_later_assignments():
    model = train(outcomes(), version=1)
    assert model.status == "ready" and model.auc > 0.7 and 0 < model.brier < 0.25
    assert len(model.calibration) == 10 and sum(c["accounts"] for c in model.calibration) == 1000  # the last quarter
    coef = dict(zip(model.params["names"], model.params["coef"]))
    assert coef["days past due"] < 0 and coef["recent payments"] > 0
    assert coef["segment chronic_late"] < coef["segment first_time_debtor"]
    # Calibrated: in every decile the observed rate is near the predicted one.
    assert all(abs(c["predicted"] - c["observed"]) < 0.08 for c in model.calibration)
    assert model.note.startswith("AUC ") and "strongest: " in model.note


def test_each_score_says_what_moved_it():
    model = train(outcomes(), version=1)
    x = features(pd.DataFrame({"days_past_due": [2, 58], "amount_due_reporting": [100.0, 100.0],
                               "paid_before_reporting": [500.0, 0.0], "stage": ["soft_nudge", "soft_nudge"],
                               "segment": ["first_time_debtor", "chronic_late"]}))
    scored = score(model.params, x)
    assert scored["pay_chance"][0] > 0.5 > scored["pay_chance"][1]
    assert "recent payments +" in scored["pay_reasons"][0] and "days past due -" in scored["pay_reasons"][1]
    unseen = features(pd.DataFrame({"days_past_due": [5], "amount_due_reporting": [50.0],
                                    "paid_before_reporting": [0.0], "stage": ["escalation"], "segment": [None]}))
    assert 0 < score(model.params, unseen)["pay_chance"][0] < 1  # a stage or segment it never saw scores anyway


def test_too_little_history_is_stored_as_insufficient_and_nothing_uses_it(engine):
    model = train_and_store(engine, outcomes(n=MIN_UNITS - 1), (date(2026, 5, 1), date(2026, 11, 1)), NOW)
    assert model.status == "insufficient" and "too little history: 399 assignments" in model.note
    assert "the rule-based segments decide" in model.note and latest_ready(engine) is None
    ready = train_and_store(engine, outcomes(), (date(2026, 5, 1), date(2026, 11, 1)), NOW)
    assert ready.version == 2 and latest_ready(engine)["version"] == 2
    assert latest_ready(engine)["coef"] == pytest.approx(ready.params["coef"])  # stored as numbers, read back


def test_the_worklist_puts_those_unlikely_to_pay_on_their_own_first():
    frame = pd.DataFrame({"account_id": ["likely", "unlikely"], "balance": [100.0, 100.0], "currency": ["USD"] * 2,
                          "days_past_due": [60, 60], "broken_plans": [0, 0], "broken_promises": [0, 0],
                          "reached": [True, True], "no_answers": [0, 0], "pay_chance": [0.9, 0.1]})
    ranked = prioritise(frame)
    assert list(ranked["account_id"]) == ["unlikely", "likely"]
    assert ranked["priority"][0] - ranked["priority"][1] == pytest.approx(8.0)  # 10 × (0.9 − 0.1)
    without = prioritise(frame.drop(columns="pay_chance"))
    assert without["priority"][0] == without["priority"][1]


def test_the_open_worklist_is_scored_by_the_ready_model_with_reasons(engine):
    from decimal import Decimal

    from sqlalchemy import insert

    from campaigns.customers.worklist import open_worklist
    from campaigns.db.models import Payment
    from campaigns.review.config import ReviewRules
    from tests.customers.test_worklist_agency import item

    item(engine, "PAYER", dpd=50)
    item(engine, "SILENT", dpd=50)
    with engine.begin() as conn:
        conn.execute(insert(Payment.__table__), {"payment_id": "p", "account_id": "PAYER", "amount": Decimal("400"),
                                                 "currency": "USD", "paid_at": NOW.replace(month=10)})
    assert open_worklist(engine)["pay_chance"].isna().all()  # no model: the rules alone
    train_and_store(engine, outcomes(), (date(2026, 5, 1), date(2026, 11, 1)), NOW)
    frame = open_worklist(engine, latest_ready(engine), ReviewRules(), now=NOW).set_index("account_id")
    assert frame.loc["PAYER", "pay_chance"] > frame.loc["SILENT", "pay_chance"]
    assert "recent payments +" in frame.loc["PAYER", "pay_reasons"]
    assert list(frame.index) == ["SILENT", "PAYER"]  # less likely to pay on its own: called first


def test_by_config_a_ready_model_chooses_the_tone_of_those_unlikely_to_pay_and_the_trace_says_so(engine):
    from sqlalchemy import select

    from campaigns.ladder.config import Experiment, RiskTone, SegmentRules
    from campaigns.contact.pipeline import StageRun, add_risk_scores
    from campaigns.contact.strategy import choose_tone
    from campaigns.db.models import ContactAttempt, Stage
    from campaigns.review.config import ReviewRules
    from tests.conftest import AS_OF
    from tests.factories import add_account
    from tests.contact.test_pipeline import run_stage

    rules = SegmentRules(tone={"on_time_payer": "warm"}, risk_tone=RiskTone(below_pay_chance=0.3, tone="gentle"))
    arms = Experiment(name="e", arms=[{"name": "control", "share": 0.5}, {"name": "firm", "share": 0.5, "tone": "x"}])
    tones = choose_tone(pd.Series(["on_time_payer"] * 4), pd.Series([False, False, True, False]),
                        np.array(["control", "control", "control", "firm"], dtype=object), arms, rules,
                        pd.Series([0.1, 0.9, 0.9, 0.1]))
    assert list(tones) == ["gentle", "warm", "gentle", "x"]  # risk, segment, vulnerable, arm

    train_and_store(engine, outcomes(), (date(2026, 5, 1), date(2026, 11, 1)), NOW, ReviewRules())
    add_account(engine, "LATE", days_past_due=58)
    from campaigns import bootstrap

    s = bootstrap.services()
    ladder = s.ladder.model_copy(update={"segments": rules})
    run = StageRun(run_id="r", stage=Stage.soft_nudge, as_of=AS_OF, now=NOW)
    with engine.connect() as conn:
        cohort = add_risk_scores(conn, pd.DataFrame({"account_id": ["LATE"], "days_past_due": [58],
                                                     "amount_due": [100.0], "currency": ["USD"],
                                                     "segment": ["chronic_late"]}), run)
    assert cohort["pay_chance"][0] < 0.3 and "days past due -" in cohort["pay_reasons"][0]
    add_account(engine, "NUDGE", days_past_due=12)
    run_stage(engine, ladder, Stage.soft_nudge, {})
    with engine.connect() as conn:
        tone, trace = conn.execute(select(ContactAttempt.tone, ContactAttempt.policy_trace)
                                   .where(ContactAttempt.account_id == "NUDGE")).one()
    assert "pay_chance" in trace[0] and trace[0]["pay_reasons"]
    assert tone == ("gentle" if trace[0]["pay_chance"] < 0.3 else None)


def test_risk_show_lists_the_stored_versions_in_one_table(engine):
    # Issue 24 item 12: `risk show` after a stored version was an AttributeError (.scalars() on a Connection).
    from typer.testing import CliRunner

    from campaigns.cli import app

    train_and_store(engine, outcomes(n=MIN_UNITS - 1), (date(2026, 5, 1), date(2026, 11, 1)), NOW)
    train_and_store(engine, outcomes(), (date(2026, 5, 1), date(2026, 11, 1)), NOW)
    result = CliRunner().invoke(app, ["risk", "show"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "insufficient" in result.output and "ready" in result.output
    assert "v2: AUC " in result.output
