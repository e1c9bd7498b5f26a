"""The effectiveness review: each metric on hand-computed fixtures, the statistics on known values and on
simulated portfolios whose true effect is known, and the review read from the database on both engines."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from campaigns.ladder.config import Ladder
from campaigns.attempts.log import attempt_row
from campaigns.db.models import ContactAttempt, Payment, PaymentPromise, ProviderEvent
from campaigns.review.effectiveness import attach_outcomes, review_units, run_review
from campaigns.review.config import ReviewRules
from campaigns.review.stats import needed_per_arm, proportion_uplift, sample_ratio, wilson
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=timezone.utc)
RULES = ReviewRules(rates_to_reporting={"USD": 1.0, "CNY": 0.5})
LADDER = Ladder.model_validate({
    "experiment": {"name": "exp", "arms": [{"name": "control", "share": 0.5, "champion": True},
                                           {"name": "warm", "share": 0.5}], "holdout_share": 0.2},
    "stages": {"soft_nudge": {"days_past_due": {"min": 1, "max": 14}, "channels": ["email", "sms"]},
               "plan_offer": {"days_past_due": {"min": 15, "max": 45}, "channels": ["email"]}}})


def unit(account, variant, *, due=100.0, at=T0, stage="soft_nudge", currency="USD", status="sent", dpd=5,
         attempt_id=None):
    return {"attempt_id": attempt_id or hash((account, stage)) % 10**6, "account_id": account,
            "customer_id": f"C-{account}", "stage": stage, "experiment": "exp", "variant": variant,
            "segment": "first_time_debtor", "channel": "email", "template": "soft_nudge/email.en-US.j2",
            "tone": None, "status": status, "as_of": at.date(), "assigned_at": at, "amount_due": due,
            "days_past_due": dpd, "currency": currency, "run_name": "daily"}


def pay(account, amount, at):
    return {"account_id": account, "paid_at": at, "amount": amount}


def hand_made():
    units = pd.DataFrame([
        unit("A", "control"),                    # paid in full two days later: cured
        unit("B", "control"),                    # paid an hour *before* assignment: not cured
        unit("C", "control"),                    # paid eight days later, after the 7-day window
        unit("D", "control"),                    # partial: 40 of 100
        unit("E", "control", status="suppressed"),  # over-paid 300: cured, recovers 100; never sent (capped at
                                                    # release) and still in its arm: intention to treat
        unit("H1", "holdout", status="holdout"),
        unit("H2", "holdout", status="holdout"),
        unit("F", "warm"),                        # two stages in one window: one payment serves both
        unit("F", "warm", stage="plan_offer", at=T0 + timedelta(days=3), dpd=20),
        unit("Y", "warm", due=200.0, currency="CNY"),  # 200 CNY due, 100 CNY paid: 50 vs 100 in USD
    ])
    payments = pd.DataFrame([
        pay("A", 100.0, T0 + timedelta(days=2)), pay("B", 100.0, T0 - timedelta(hours=1)),
        pay("C", 100.0, T0 + timedelta(days=8)), pay("D", 40.0, T0 + timedelta(days=1)),
        pay("E", 300.0, T0 + timedelta(days=6, hours=23)), pay("H1", 60.0, T0 + timedelta(hours=1)),
        pay("H1", 40.0, T0 + timedelta(days=7)),  # the window's last second still counts
        pay("F", 100.0, T0 + timedelta(days=4)), pay("Y", 100.0, T0 + timedelta(days=3)),
    ])
    return units, payments


def test_each_metric_on_a_hand_computed_fixture():
    units, payments = hand_made()
    review = review_units(attach_outcomes(units, payments, RULES), T0.date(), T0.date() + timedelta(days=3),
                          RULES, LADDER)
    arms = review.arms.set_index(["stage", "variant"])
    control = arms.loc[("soft_nudge", "control")]
    assert (control["accounts"], control["cured"]) == (5, 2)  # A and E; B paid before, C after, D partly
    assert control["cure_rate"] == pytest.approx(0.4)
    assert control["amount_due"] == pytest.approx(500.0)
    assert control["amount_recovered"] == pytest.approx(100 + 0 + 0 + 40 + 100)  # E capped at its due
    assert control["recovery_rate"] == pytest.approx(240 / 500)
    assert control["sent"] == 4  # reach counts what was sent; E is in the arm all the same
    holdout = arms.loc[("soft_nudge", "holdout")]
    assert (holdout["accounts"], holdout["cured"], holdout["amount_recovered"]) == (2, 1, 100.0)
    warm = arms.loc[("soft_nudge", "warm")]
    # F paid 100 of 100; Y paid 100 CNY of 200 CNY: cured 1 of 2, recovered 100 + 50 of 100 + 100 USD.
    assert (warm["accounts"], warm["cured"]) == (2, 1)
    assert warm["recovery_rate"] == pytest.approx(150 / 200)
    # The same payment counts for the plan_offer unit assigned three days later, in its own stage.
    assert arms.loc[("plan_offer", "warm")]["cured"] == 1
    assert review.units.set_index(["account_id", "stage"]).loc[("B", "soft_nudge"), "paid_before"] == 100.0
    # Roll rates: F at 20 days past due, cured within the window.
    rolls = review.roll_rates.set_index(["stage", "variant", "from_bucket", "to_bucket"])
    assert rolls.loc[("plan_offer", "warm", "15-30", "cured"), "share"] == 1.0
    assert rolls.loc[("soft_nudge", "control", "1-14", "1-14"), "accounts"] == 3  # 5 + 7 = 12 days: same bucket


def test_engagement_promises_opt_outs_and_complaints_count_within_the_window_after_assignment():
    units, payments = hand_made()
    units["attempt_id"] = range(1, len(units) + 1)
    events = pd.DataFrame({"attempt_id": [1, 1, 2, 4], "event": ["delivered", "open", "click", "spamreport"]})
    promises = pd.DataFrame({"account_id": ["A", "B", "C"], "status": ["kept", "broken", "kept"],
                             "promised_at": [T0 + timedelta(days=1), T0 + timedelta(days=2), T0 - timedelta(days=1)]})
    opt_outs = pd.DataFrame({"customer_id": ["C-D", "C-A"], "received_at": [T0 + timedelta(days=1),
                                                                            T0 + timedelta(days=9)]})
    disputes = pd.DataFrame({"account_id": ["C"], "opened_at": [T0 + timedelta(days=2)]})
    out = attach_outcomes(units, payments, RULES, events, promises, opt_outs, disputes)
    review = review_units(out, T0.date(), T0.date(), RULES, LADDER)
    control = review.arms.set_index(["stage", "variant"]).loc[("soft_nudge", "control")]
    assert (control["delivered"], control["opened"], control["clicked"]) == (2, 1, 1)  # a click proves delivery
    assert (control["promises_made"], control["promises_kept"], control["promise_kept_rate"]) == (2, 1, 0.5)
    assert (control["opt_outs"], control["complaints"]) == (1, 2)  # D opted out; D's spam report, C's dispute
    cost = control["message_cost"]
    assert cost == pytest.approx(4 * RULES.message_cost.get("email", 0.0))


def test_satisfaction_complaints_deferrals_and_stated_reasons_read_back_by_stage_arm_and_tone():
    units, payments = hand_made()
    units["attempt_id"] = range(1, len(units) + 1)
    units.loc[units["account_id"] == "D", "tone"] = "gentle"
    day = timedelta(days=1)
    actions = pd.DataFrame([
        {"account_id": "A", "occurred_at": T0 + 3 * day, "action": "rated", "code": "5"},
        {"account_id": "E", "occurred_at": T0 + 20 * day, "action": "rated", "code": "4"},  # after a payoff: counts
        {"account_id": "B", "occurred_at": T0 + 40 * day, "action": "rated", "code": "1"},  # past 30 days: not
        {"account_id": "D", "occurred_at": T0 + 2 * day, "action": "rated", "code": "2"},
        {"account_id": "C", "occurred_at": T0 + 1 * day, "action": "replied", "code": "complaint"},
        {"account_id": "B", "occurred_at": T0 + 1 * day, "action": "replied", "code": "help"},  # not a complaint
        {"account_id": "A", "occurred_at": T0 - day, "action": "stated_reason", "code": "did_not_know"},
        {"account_id": "D", "occurred_at": T0 + day, "action": "stated_reason", "code": "problem_paying"},
        {"account_id": "D", "occurred_at": T0 + 2 * day, "action": "stated_reason", "code": "hardship"},  # latest
        {"account_id": "C", "occurred_at": T0 + 9 * day, "action": "stated_reason", "code": "other"},  # too late
    ])
    promises = pd.DataFrame({"account_id": ["D", "C"], "status": ["kept", "broken"], "kind": ["deferral", "deferral"],
                             "promised_at": [T0 + 2 * day, T0 + 3 * day]})
    review = review_units(attach_outcomes(units, payments, RULES, None, promises, None, None, actions),
                          T0.date(), T0.date(), RULES, LADDER)
    sat = review.satisfaction.set_index(["stage", "variant", "tone"])
    control = sat.loc[("soft_nudge", "control", "default")]
    assert (control["accounts"], control["rated"], control["satisfaction"]) == (4, 2, 4.5)  # A 5, E 4
    assert (control["rated_5"], control["rated_4"], control["rated_1"]) == (1, 1, 0)
    assert control["satisfaction_ci_low"] != control["satisfaction_ci_low"]  # fewer than 10 ratings: no interval
    assert (control["complaints"], control["complaint_rate"]) == (1, 0.25)  # C's complaining reply
    gentle = sat.loc[("soft_nudge", "control", "gentle")]
    assert (gentle["accounts"], gentle["rated"], gentle["satisfaction"], gentle["complaints"]) == (1, 1, 2.0, 0)
    reasons = review.stated_reasons.set_index(["stage", "stated_reason"])
    assert reasons.loc[("soft_nudge", "hardship"), ["accounts", "deferrals_made", "deferrals_kept"]].tolist() == [1, 1, 1]
    assert reasons.loc[("soft_nudge", "did_not_know"), ["accounts", "cured"]].tolist() == [1, 1]
    assert reasons.loc[("soft_nudge", "none"), "deferrals_broken"] == 1  # C: its 'other' came after the window
    # Deferrals are not promises: the promise columns do not count them.
    assert review.arms["promises_made"].sum() == 0
    ten = pd.concat([units[units["account_id"] == "A"].assign(account_id=f"R{i}") for i in range(10)])
    rated = pd.DataFrame([{"account_id": f"R{i}", "occurred_at": T0 + day, "action": "rated", "code": str(4 + i % 2)}
                          for i in range(10)])
    many = review_units(attach_outcomes(ten, payments.iloc[:0], RULES, actions=rated), T0.date(), T0.date(), RULES,
                        LADDER).satisfaction.iloc[0]
    assert many["satisfaction"] == 4.5 and 4.1 < many["satisfaction_ci_low"] < 4.5 < many["satisfaction_ci_high"] < 4.9


def test_statistics_on_published_values():
    # Newcombe (1998), example (a): 56/70 against 48/80, method 10 gives 0.0524 to 0.3339.
    effect = proportion_uplift(56, 70, 48, 80)
    assert effect.uplift == pytest.approx(0.2)
    assert (round(effect.ci_low, 4), round(effect.ci_high, 4)) == (0.0524, 0.3339)
    low, high = wilson(81, 263)  # Wilson's interval of 81/263: 0.2553 to 0.3662
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # p0 = 0.10 to 0.12 at α 0.05 and power 0.8: (1.96 + 0.8416)² (0.09 + 0.1056) / 0.02² = 3,839.
    assert needed_per_arm(0.10, 0.02) == 3839
    assert sample_ratio({"a": 600, "b": 400}, {"a": 0.5, "b": 0.5}).mismatch
    assert not sample_ratio({"a": 510, "b": 490}, {"a": 0.5, "b": 0.5}).mismatch


def simulated(seed: int, n: int = 3000, base: float = 0.10, effect: float = 0.03) -> pd.DataFrame:
    """A portfolio where the challenger truly cures ``effect`` more than the holdout, and past payers pay more."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["holdout", "warm"], size=n)
    history = rng.gamma(1.0, 50.0, size=n) * (rng.random(n) < 0.6)  # pre-assignment payments
    lift = np.where(arm == "warm", effect, 0.0)
    cured = rng.random(n) < base + lift + 0.08 * (history > 40) - 0.08 * 0.6 * np.exp(-40 / 50)
    return pd.DataFrame({"stage": "soft_nudge", "experiment": "exp", "variant": arm, "account_id": np.arange(n),
                         "cured": cured, "paid_before_reporting": history, "rate": 1.0, "amount_due_reporting": 100.0,
                         "recovered_reporting": np.where(cured, 100.0, 0.0)})


def test_the_interval_holds_the_true_effect_in_at_least_93_in_100_simulations_and_cuped_narrows_it():
    """400 seeded portfolios rather than 100: a 95% interval covers 93 or more of 100 only 87% of the time
    (seeds 0-99 alone cover 90), while over 400 the coverage's own error is 1.1 points."""
    from campaigns.review.effectiveness import uplift_table

    covered, covered_cuped, narrower = 0, 0, 0
    for seed in range(400):
        units = simulated(seed)
        row = uplift_table(units, {"exp": "warm"}, RULES).query("metric == 'cure_rate' and baseline == 'holdout'")
        r = row.iloc[0]
        covered += r.ci_low <= 0.03 <= r.ci_high
        covered_cuped += r.cuped_ci_low <= 0.03 <= r.cuped_ci_high
        narrower += (r.cuped_ci_high - r.cuped_ci_low) < (r.ci_high - r.ci_low)
    assert covered >= 372 and covered_cuped >= 372, (covered, covered_cuped)  # 93%
    assert narrower == 400  # the covariate explains part of the outcome, so CUPED's interval is narrower


def test_the_uplift_finding_is_a_plain_sentence():
    units = simulated(1, n=8000, effect=0.05)
    review = review_units(units.assign(**{"channel": "email", "sent": True, "delivered": False, "open": False,
                                          "click": False, "opted_out": False, "complained": False,
                                          "promises_made": 0.0, "promises_kept": 0.0, "days_past_due": 5,
                                          "segment": "x", "template": "t", "week": date(2026, 11, 2),
                                          "currency": "USD"}),
                          date(2026, 11, 2), date(2026, 11, 8), RULES, None)
    [sentence] = [f for f in review.findings if "holdout" in f]
    # An experiment without an end is looked at again: the finding reads the always-valid interval, says so, and
    # gives the fixed-horizon one beside it; the verdict is corrected over the stage's two comparisons.
    assert re.fullmatch(r"soft_nudge: `warm` cures 5\.8 points more than the holdout, 95% always-valid CI 3\.5 to "
                        r"8\.0 \(fixed-horizon 4\.4 to 7\.2\), n = 3,985 and 4,015; significant after Holm's "
                        r"correction over 2 comparisons\.", sentence), sentence
    once = RULES.model_copy(update={"sequential": RULES.sequential.model_copy(update={"use": "never"})})
    fixed = review_units(review.units, date(2026, 11, 2), date(2026, 11, 8), once, None).findings
    assert [f for f in fixed if "holdout" in f][0].startswith(
        "soft_nudge: `warm` cures 5.8 points more than the holdout, 95% CI 4.4 to 7.2, n = 3,985 and 4,015; "
        "significant after Holm's")


def _assign(engine, run_id, account, variant, *, as_of=AS_OF, stage="soft_nudge", status="sent", channel="email",
            due="100", n=0):
    row = attempt_row(run_id=run_id, account_id=account, customer_id=f"C-{account}", stage=stage,
                      cycle=f"{as_of}-{n}", as_of=as_of, channel=channel, status=status, now=NOW + timedelta(days=n),
                      variant=variant, experiment="exp" if variant else None,
                      amount_due=Decimal(due) if variant else None, days_past_due=5 if variant else None)
    with engine.begin() as conn:
        return conn.execute(insert(ContactAttempt.__table__).returning(ContactAttempt.id), row).scalar_one()


def test_the_review_reads_the_log_and_the_payments_on_both_databases(engine):
    from campaigns.db.models import Stage
    from campaigns.runs.records import start_run

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW, name="daily")
    for account in ("A", "B", "H", "S"):
        add_account(engine, account, days_past_due=5)
    first = _assign(engine, run_id, "A", "control")
    _assign(engine, run_id, "A", "control", n=3)  # a later assignment of the same account: not a second unit
    _assign(engine, run_id, "B", "control")
    _assign(engine, run_id, "H", "holdout", status="holdout")
    _assign(engine, run_id, "S", None, status="suppressed")  # suppressed before assignment: in no arm
    with engine.begin() as conn:
        conn.execute(insert(Payment.__table__), [
            {"payment_id": "p1", "account_id": "A", "amount": Decimal("100"), "currency": "USD",
             "paid_at": NOW + timedelta(days=1), "source": "test"},
            {"payment_id": "p2", "account_id": "B", "amount": Decimal("30"), "currency": "USD",
             "paid_at": NOW + timedelta(days=2), "source": "test"}])
        conn.execute(insert(ProviderEvent.__table__), {
            "provider": "sendgrid", "event_id": "e1", "attempt_id": first, "event": "open", "occurred_at": NOW,
            "received_at": NOW})
        conn.execute(insert(PaymentPromise.__table__), {
            "account_id": "B", "amount": Decimal("50"), "currency": "USD", "due_by": AS_OF + timedelta(days=5),
            "channel": "agent", "status": "open", "paid": Decimal("30"), "promised_at": NOW + timedelta(hours=2)})
    review = run_review(engine, AS_OF - timedelta(days=1), AS_OF + timedelta(days=6), RULES, LADDER)
    arms = review.arms.set_index("variant")
    assert list(review.units.sort_values("account_id")["account_id"]) == ["A", "B", "H"]
    assert (arms.loc["control", "accounts"], arms.loc["control", "cured"]) == (2, 1)
    assert arms.loc["control", "amount_recovered"] == pytest.approx(130.0)
    assert (arms.loc["control", "opened"], arms.loc["control", "promises_made"]) == (1, 1)
    assert (arms.loc["holdout", "accounts"], arms.loc["holdout", "cured"]) == (1, 0)
    assert review.units["run_name"].eq("daily").all()
    # Assigned, then the run's days are over: a review of later days has no units and says so.
    empty = run_review(engine, AS_OF + timedelta(days=30), AS_OF + timedelta(days=31), RULES, LADDER)
    assert empty.units.empty and "nothing to compare yet" in empty.findings[-1]


def synthetic_review(seed: int = 7, n: int = 3000):
    """A review of a made-up portfolio with every column a real one has (two stages, three arms, three weeks)."""
    rng = np.random.default_rng(seed)
    arms = rng.choice(["control", "warm", "holdout"], p=[0.4, 0.4, 0.2], size=n)  # LADDER's shares
    stages = rng.choice(["soft_nudge", "plan_offer"], size=n)
    at = [T0 + timedelta(days=int(d), hours=int(h)) for d, h in zip(rng.integers(0, 21, n), rng.integers(0, 10, n))]
    units = pd.DataFrame([unit(f"A{i}", arms[i], stage=stages[i], at=at[i], attempt_id=i + 1,
                               status="holdout" if arms[i] == "holdout" else "sent",
                               dpd=int(rng.integers(1, 14) if stages[i] == "soft_nudge" else rng.integers(15, 45)),
                               currency="CNY" if i % 5 == 0 else "USD") for i in range(n)])
    chance = np.select([arms == "holdout", arms == "control"], [0.06, 0.11], 0.14)
    payers = rng.random(n) < chance
    payments = pd.DataFrame([pay(f"A{i}", float(rng.choice([100.0, 60.0])), at[i] + timedelta(days=int(rng.integers(0, 6))))
                             for i in np.flatnonzero(payers)])
    events = pd.DataFrame({"attempt_id": np.flatnonzero(arms != "holdout")[:n // 2] + 1, "event": "open"})
    out = attach_outcomes(units, payments, RULES, events)
    return review_units(out, T0.date(), T0.date() + timedelta(days=20), RULES, LADDER)


def test_the_files_have_the_columns_the_data_team_reads(tmp_path):
    from campaigns.review.report import write_review

    review = synthetic_review()
    written = write_review(review, tmp_path / "review")
    arms = pd.read_parquet(written["arms"])
    assert {"stage", "variant", "accounts", "cured", "cure_rate", "amount_due", "amount_recovered",
            "recovery_rate"} <= set(arms.columns)
    assert not arms.duplicated(["stage", "variant"]).any() and "holdout" in set(arms["variant"])
    assert arms["cure_rate"].between(0, 1).all() and arms["recovery_rate"].between(0, 1).all()  # fractions
    uplift = pd.read_parquet(written["uplift"])
    assert {"stage", "variant", "baseline", "uplift", "ci_low", "ci_high", "n_variant", "n_baseline"} <= set(
        uplift.columns)
    assert (uplift["ci_low"] <= uplift["uplift"]).all() and (uplift["uplift"] <= uplift["ci_high"]).all()
    assert set(uplift["baseline"]) == {"holdout", "control"}
    assert set(pd.read_parquet(written["breakdown"])["dimension"]) == {"segment", "channel", "template", "week"}
    html = written["report"].read_text()
    # Plotly is embedded, not fetched: the page opens offline (its code merely mentions a CDN for map tiles).
    assert "<script" in html and not re.search(r"<script[^>]+src=", html)
    for name in ("Customer ", "@example.com", "+1212"):
        assert name not in html


def test_a_sample_ratio_mismatch_is_flagged_at_the_top():
    review = synthetic_review()
    units = review.units
    units = pd.concat([units, units[units["variant"] == "warm"].assign(account_id=lambda f: f["account_id"] + "x")])
    flagged = review_units(units, T0.date(), T0.date() + timedelta(days=20), RULES, LADDER)
    assert flagged.findings[0].startswith("WARNING: exp on ")
    assert "trust no uplift" in flagged.findings[0]
    assert not any(f.startswith("WARNING") for f in review.findings)


# --- Issue 24 items 8 and 9: no interval looks more certain than it is ----------------------------------------

def test_cuped_does_not_apply_without_pre_period_variance_and_never_narrows_without_a_reason():
    import math

    import numpy as np

    from campaigns.review.stats import cuped_uplift, proportion_uplift

    # pre_due with a holdout of 2, no one paid before assignment: the raw interval is wide, CUPED has nothing.
    arm, holdout = np.array([1.0] * 8 + [0.0] * 107), np.zeros(2)
    raw = proportion_uplift(arm.sum(), len(arm), 0, 2)
    none = cuped_uplift(arm, np.zeros(len(arm)), holdout, np.zeros(2), raw)
    assert none.effect is None and none.note.startswith("does not apply")
    assert raw.ci_low < -0.5 and raw.ci_high > 0.1  # what the review shows instead: the raw interval only
    # With a covariate that predicts the outcome, the interval narrows by exactly √(1 - ρ²) of the raw one.
    rng = np.random.default_rng(7)
    x = rng.gamma(1.0, 50.0, 400) * (rng.random(400) < 0.5)
    y = (rng.random(400) < 0.1 + 0.5 * (x > 40)).astype(float)
    x1, y1, x0, y0 = np.log1p(x[:300]), y[:300], np.log1p(x[300:]), y[300:]
    raw = proportion_uplift(y1.sum(), 300, y0.sum(), 100)
    adjusted = cuped_uplift(y1, x1, y0, x0, raw)
    rho = np.corrcoef(np.concatenate([y1, y0]), np.concatenate([x1, x0]))[0, 1]
    width = adjusted.effect.ci_high - adjusted.effect.ci_low
    assert width == pytest.approx((raw.ci_high - raw.ci_low) * math.sqrt(1 - rho ** 2))
    assert 0 < width < raw.ci_high - raw.ci_low and f"ρ = {rho:.2f}" in adjusted.note


@pytest.mark.parametrize("n", [2, 52])
def test_a_holdout_that_recovered_nothing_has_an_interval_of_some_width(n):
    import numpy as np

    from campaigns.review.stats import ratio_interval, ratio_uplift

    due = np.full(n, 100.0)
    rate, low, high = ratio_interval(np.zeros(n), due)
    assert rate == 0 and low == 0 and high > 0.03  # not "0.0% (0.0%-0.0%)"
    effect = ratio_uplift(np.full(115, 30.0), np.full(115, 100.0), np.zeros(n), due)
    assert effect.ci_high - effect.ci_low > 0.05


def test_the_recovery_uplift_is_never_narrower_than_the_cure_uplift_of_the_same_accounts():
    import numpy as np

    from campaigns.review.stats import proportion_uplift, ratio_uplift

    rng = np.random.default_rng(3)
    due1, due0 = rng.gamma(2.0, 100.0, 300), rng.gamma(2.0, 100.0, 60)
    cured1, cured0 = rng.random(300) < 0.3, rng.random(60) < 0.2
    cure = proportion_uplift(cured1.sum(), 300, cured0.sum(), 60)
    recovery = ratio_uplift(due1 * cured1, due1, due0 * cured0, due0)  # a cure pays its amount due in full
    assert recovery.ci_high - recovery.ci_low >= cure.ci_high - cure.ci_low


@pytest.mark.parametrize(("p", "n"), [(0.02, 52), (0.3, 52), (0.05, 300)])
def test_the_recovery_interval_covers_the_true_rate_95_times_in_100(p, n):
    import numpy as np

    from campaigns.review.stats import ratio_interval

    rng = np.random.default_rng(int(p * 1000) + n)
    covered, runs = 0, 2000
    for _ in range(runs):
        due = rng.gamma(2.0, 100.0, n)
        paid_share = np.where(rng.random(n) < p, 1.0, 0.0)  # all or nothing: the largest variance a share can have
        _, low, high = ratio_interval(due * paid_share, due)
        covered += low <= p <= high
    assert covered / runs >= 0.93, covered / runs


def test_a_review_whose_attribution_window_is_open_says_so_first():
    """Issue 24 item 10: reviewing today, with the window open for a week, gave no warning."""
    units, payments = hand_made()
    outcomes = attach_outcomes(units, payments, RULES)
    during = review_units(outcomes, T0.date(), T0.date() + timedelta(days=3), RULES, LADDER,
                          now=T0 + timedelta(days=8))  # F's plan_offer (assigned at T0 + 3 days) is still open
    assert during.findings[0] == (
        "WARNING: still accruing: the attribution window of 1 of 10 assigned accounts is open until "
        "2026-11-12 (plan_offer: warm). Their cures and recoveries are still coming in: these rates are lower "
        "than they will be; review after 2026-11-12 for final figures.")
    after = review_units(outcomes, T0.date(), T0.date() + timedelta(days=3), RULES, LADDER,
                         now=T0 + timedelta(days=11))
    assert not any("still accruing" in f for f in after.findings)


TARGETING_LADDER = Ladder.model_validate({
    "experiment": {"name": "exp", "holdout_share": 0.1, "arms": [
        {"name": "control", "share": 0.5, "champion": True},
        {"name": "targeted", "share": 0.5, "targeting": {"top_share": 0.5}}]},
    "stages": {"soft_nudge": {"days_past_due": {"min": 1, "max": 14}, "channels": ["email"]}}})


def targeting_units(seed: int = 4, n: int = 2000) -> pd.DataFrame:
    """Control contacts everyone; the targeted arm skips half (the ones who would pay anyway): same cures."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        arm = ("control", "targeted", "holdout")[i % 3]
        sure = rng.random() < 0.5
        skipped = arm == "targeted" and sure
        contacted = arm != "holdout" and not skipped
        cured = rng.random() < (0.5 if sure else (0.30 if contacted else 0.05))
        rows.append({**unit(f"A{i}", arm, status="sent" if contacted else ("holdout" if arm == "holdout"
                                                                          else "suppressed"),
                            attempt_id=i + 1), "will_pay": cured})
    units = pd.DataFrame(rows)
    payments = pd.DataFrame([pay(r.account_id, 100.0, T0 + timedelta(days=1)) for r in units.itertuples()
                             if r.will_pay])
    return attach_outcomes(units.drop(columns="will_pay"), payments, RULES)


def test_the_review_compares_targeting_with_contacting_everyone_in_one_sentence():
    review = review_units(targeting_units(), T0.date(), T0.date(), RULES, TARGETING_LADDER,
                          now=T0 + timedelta(days=30))
    [row] = review.targeting.to_dict("records")
    assert (row["arm"], row["against"], row["interval"]) == ("targeted", "control", "always-valid")
    assert 0.4 < row["fewer_messages"] < 0.6  # about half the messages
    assert row["recovery_diff_ci_low"] < row["recovery_diff"] < row["recovery_diff_ci_high"]
    assert row["recovered_per_message"] > row["recovered_per_message_against"]
    finding = [f for f in review.findings if "contacting everyone" in f]
    assert len(finding) == 1 and re.fullmatch(
        r"soft_nudge: `targeted` sent \d+% fewer messages than `control` \(contacting everyone\) and recovered "
        r"\d+\.\d points of the amount due (more|less), 95% always-valid CI -?\d+\.\d to -?\d+\.\d: no worse than "
        r"contacting everyone within its interval\.", finding[0]), finding
    # Reviewed to the experiment's last day with every window closed (a dated experiment): final, fixed-horizon.
    dated = TARGETING_LADDER.model_copy(update={"experiments": [TARGETING_LADDER.experiment.model_copy(update={
        "name": "exp", "stage": "soft_nudge", "start": T0.date(), "end": T0.date()})]})
    final = review_units(review.units, T0.date(), T0.date(), RULES, dated, now=T0 + timedelta(days=30))
    assert final.targeting.iloc[0]["interval"] == "fixed-horizon"
    assert (final.uplift["interval"] == "fixed-horizon").all()
