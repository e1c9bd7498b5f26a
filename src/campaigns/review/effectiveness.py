"""What works: the contact log and the payments read back as arms, outcomes and uplift.

Definitions (docs/data-team.md says the same, and nothing else uses others):

- **Unit and arms (intention to treat).** An account's first assignment in a
  stage and experiment within the review's days (``since``..``until``, by the
  run's ``as_of``) is one unit. Its arm is the variant it was assigned
  (``holdout`` for the holdout), whether or not its message was then sent,
  deferred, suppressed at release or delivered. Accounts suppressed before
  assignment (opted out, disputed, unreachable) carry no arm and are in none.
- **Cured.** The amount due at assignment was paid, in payments made after
  the assignment and within the attribution window (``attribution_window_days``,
  default 7). A payment before the assignment does not count.
- **Recovered.** What was paid in that window, up to the amount due at
  assignment (an over-payment counts up to what was due, so one large payer
  cannot carry an arm). **Recovery rate**: recovered over amount due, summed
  over the arm's units, in the reporting currency.
- Units whose amount due at assignment was zero or unknown are left out.
- **The customer's side.** *Complained*: a spam report of the unit's message, a
  dispute opened, or a reply that complains (``customers.replies``), within the
  attribution window. *Satisfaction*: the ratings (1 to 5, their page) the
  unit's account gave within ``SATISFACTION_DAYS`` after assignment (a rating
  follows a payoff, a plan or a deferral, often after the attribution window);
  the mean has a normal interval (t for small samples is close enough from 10
  ratings; fewer are shown without one). *Deferrals*: the customer asked for
  more time in the window; kept when paid by the new date. *Stated reason*: the
  latest reason the customer gave on their page by the end of the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import Engine, false, func, select

from campaigns.ladder.config import HOLDOUT, Ladder
from campaigns.db.models import (
    Account,
    CampaignRun,
    ContactAttempt,
    CustomerAction,
    Dispute,
    OptOutEvent,
    Payment,
    PaymentPromise,
    ProviderEvent,
    UpliftModel,
)
from campaigns.money.ledger import standing
from campaigns.review.config import ReviewRules
from campaigns.review.stats import (
    Effect,
    always_valid_difference,
    corrected,
    difference_of_means,
    difference_of_ratios,
    cuped_uplift,
    needed_per_arm,
    proportion_uplift,
    ratio_interval,
    ratio_uplift,
    sample_ratio,
    wilson,
)

SENT = ("sent", "delivered")
SATISFACTION_DAYS = 30
SCORES = (1, 2, 3, 4, 5)
SATISFACTION_COLUMNS = ["stage", "variant", "tone", "accounts", "rated", "satisfaction", "satisfaction_ci_low",
                        "satisfaction_ci_high", *(f"rated_{n}" for n in SCORES), "complaints", "complaint_rate",
                        "complaint_ci_low", "complaint_ci_high"]
TARGETING_COLUMNS = ["stage", "experiment", "arm", "against", "accounts", "accounts_against", "messages",
                     "messages_against", "fewer_messages", "cost", "cost_against", "cure_rate", "cure_rate_against",
                     "recovery_rate", "recovery_rate_against", "recovered_per_message", "recovered_per_message_against",
                     "recovery_diff", "recovery_diff_ci_low", "recovery_diff_ci_high", "interval", "finding"]
REASON_COLUMNS = ["stage", "stated_reason", "accounts", "cured", "cure_rate", "cure_ci_low", "cure_ci_high",
                  "deferrals_made", "deferrals_kept", "deferrals_broken"]
UNIT_KEYS = ["stage", "experiment", "account_id"]
ARM_COLUMNS = ["stage", "experiment", "variant", "champion", "accounts", "cured", "cure_rate", "cure_ci_low",
               "cure_ci_high", "amount_due", "amount_recovered", "recovery_rate", "recovery_ci_low",
               "recovery_ci_high", "sent", "delivered", "opened",
               "clicked", "opt_outs", "complaints", "promises_made", "promises_kept", "promise_kept_rate",
               "message_cost", "cost_per_recovered", "currency"]
UPLIFT_COLUMNS = ["stage", "experiment", "variant", "baseline", "metric", "baseline_rate", "variant_rate", "uplift",
                  "ci_low", "ci_high", "n_variant", "n_baseline", "cuped_uplift", "cuped_ci_low", "cuped_ci_high",
                  "cuped_note", "needed_per_arm", "p_value", "always_valid_ci_low", "always_valid_ci_high",
                  "always_valid_p", "interval", "p_adjusted", "correction", "comparisons", "significant", "finding"]
ALWAYS_VALID, FIXED = "always-valid", "fixed-horizon"
CORRECTION_NAMES = {"holm": "Holm's", "bh": "Benjamini-Hochberg's", "none": "no"}


@dataclass
class Review:
    """One review: its units and the tables made of them (all plain DataFrames, for the data team)."""

    since: date
    until: date
    rules: ReviewRules
    units: pd.DataFrame
    arms: pd.DataFrame
    uplift: pd.DataFrame
    breakdown: pd.DataFrame
    roll_rates: pd.DataFrame
    weekly: pd.DataFrame
    sample_ratio: pd.DataFrame
    findings: list[str] = field(default_factory=list)
    satisfaction: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SATISFACTION_COLUMNS))
    stated_reasons: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REASON_COLUMNS))
    targeting: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TARGETING_COLUMNS))
    qini: list[dict] = field(default_factory=list)  # the ready uplift model's Qini curve (share, model, random)
    qini_note: str = ""

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"arms": self.arms, "uplift": self.uplift, "breakdown": self.breakdown,
                "roll_rates": self.roll_rates, "weekly": self.weekly, "sample_ratio": self.sample_ratio,
                "satisfaction": self.satisfaction, "stated_reasons": self.stated_reasons,
                "targeting": self.targeting, "units": self.units}


def _utc(day: date) -> datetime:
    return datetime.combine(day, time.min, timezone.utc)


def _seconds(values: pd.Series) -> np.ndarray:
    """Unix seconds of timezone-aware times (whatever resolution pandas chose)."""
    times = pd.to_datetime(values, utc=True)
    return (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


READ_CHUNK = 100_000


def load_assignments(engine: Engine, since: date, until: date, stages: Sequence[str] | None = None) -> pd.DataFrame:
    """Every account's first assignment per stage and experiment in the days: the units of the review.

    The first is found in SQL (the lowest attempt id of each account, stage and
    experiment: ids grow with time), and the rows are streamed in chunks, so a
    log of millions of attempts is never held whole in memory.
    """
    a, r = ContactAttempt, CampaignRun
    window = [a.variant.is_not(None), a.experiment.is_not(None), a.as_of >= since, a.as_of <= until]
    if stages:
        window.append(a.stage.in_(list(stages)))
    live = select(r.id).where(r.dry_run == false())
    first = (select(func.min(a.id).label("id")).where(*window, a.run_id.in_(live))
             .group_by(a.stage, a.experiment, a.account_id).subquery())
    stmt = (
        select(a.id.label("attempt_id"), a.account_id, a.customer_id, a.stage, a.experiment, a.variant, a.segment,
               a.channel, a.template, a.tone, a.status, a.as_of, a.created_at.label("assigned_at"), a.amount_due,
               a.days_past_due, Account.currency, r.name.label("run_name"))
        .join(first, first.c.id == a.id)
        .join(Account, Account.id == a.account_id)
        .join(r, r.id == a.run_id)
    )
    parts = []
    with engine.connect().execution_options(stream_results=True) as conn:
        for part in pd.read_sql(stmt, conn, chunksize=READ_CHUNK):
            part["amount_due"] = pd.to_numeric(part["amount_due"], errors="coerce").astype("float64")
            part["assigned_at"] = pd.to_datetime(part["assigned_at"], utc=True)
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[c.name for c in stmt.selected_columns])
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["assigned_at", "attempt_id"], kind="stable", ignore_index=True)


def _read(engine: Engine, stmt) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def window_sums(unit_codes: np.ndarray, unit_times: np.ndarray, codes: np.ndarray, times: np.ndarray,
                values: np.ndarray, start: int, end: int, *, include_start: bool) -> np.ndarray:
    """Per unit, the sum of ``values`` of the same code with time in the unit's time + (start, end] seconds
    (``[start, end)`` when ``include_start``), by one sort and two ``searchsorted`` calls."""
    if len(codes) == 0:
        return np.zeros(len(unit_codes))
    codes, times, values = np.asarray(codes), np.asarray(times), np.asarray(values)  # positions, not labels
    unit_times = np.asarray(unit_times)
    shift = np.int64(2**33)  # Unix seconds fit in 33 bits until the year 2242
    keys = codes.astype(np.int64) * shift + times.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys, cumulative = keys[order], np.concatenate([[0.0], np.cumsum(values.astype(float)[order])])
    base = unit_codes.astype(np.int64) * shift + unit_times.astype(np.int64)
    side = "left" if include_start else "right"
    lo = np.searchsorted(keys, base + start, side=side)
    hi = np.searchsorted(keys, base + end, side=side)
    return cumulative[hi] - cumulative[lo]


def attach_outcomes(units: pd.DataFrame, payments: pd.DataFrame, rules: ReviewRules,
                    events: pd.DataFrame | None = None, promises: pd.DataFrame | None = None,
                    opt_outs: pd.DataFrame | None = None, disputes: pd.DataFrame | None = None,
                    actions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The units with what followed each assignment: payments in the window (and before it, for CUPED),
    cure, recovery, engagement, promises, opt-outs and complaints.

    ``payments``: account_id, paid_at, amount. ``events``: attempt_id, event. ``promises``: account_id,
    promised_at, status (and kind: a deferral is the customer's request for more time). ``opt_outs``:
    customer_id, received_at. ``disputes``: account_id, opened_at. ``actions`` (the customers' own, their page
    and replies): account_id, occurred_at, action, code.
    """
    units = units.copy()
    window = rules.attribution_window_days * 86400
    codes, names = pd.factorize(pd.concat([units["account_id"], payments["account_id"]], ignore_index=True))
    unit_codes, pay_codes = codes[:len(units)], codes[len(units):]
    unit_times = _seconds(units["assigned_at"])
    pay_times = _seconds(payments["paid_at"]) if len(payments) else np.zeros(0, dtype=np.int64)
    amounts = pd.to_numeric(payments["amount"], errors="coerce").fillna(0).to_numpy(dtype=float)
    units["paid_in_window"] = window_sums(unit_codes, unit_times, pay_codes, pay_times, amounts, 0, window,
                                          include_start=False)
    units["paid_before"] = window_sums(unit_codes, unit_times, pay_codes, pay_times, amounts,
                                       -rules.pre_period_days * 86400, 0, include_start=True)
    due = units["amount_due"].to_numpy(dtype=float)
    units["cured"] = units["paid_in_window"].to_numpy() >= due - 1e-9
    rate = units["currency"].map(rules.rates_to_reporting).astype("float64").to_numpy()
    units["rate"] = rate
    units["amount_due_reporting"] = due * rate
    units["recovered_reporting"] = np.minimum(units["paid_in_window"].to_numpy(), due) * rate
    units["paid_before_reporting"] = units["paid_before"].to_numpy() * rate
    units["sent"] = units["status"].isin(SENT)

    def per_unit(frame: pd.DataFrame | None, key: str, when: str, value: pd.Series | None = None,
                 end: int = window) -> np.ndarray:
        if frame is None or frame.empty:
            return np.zeros(len(units))
        all_codes, _ = pd.factorize(pd.concat([units[key], frame[key]], ignore_index=True))
        values = np.ones(len(frame)) if value is None else value.to_numpy(dtype=float)
        return window_sums(all_codes[:len(units)], unit_times, all_codes[len(units):], _seconds(frame[when]),
                           values, 0, end, include_start=False)

    for name in ("delivered", "open", "click", "spamreport"):
        units[name] = False
    if events is not None and not events.empty:
        seen = events.groupby("event")["attempt_id"].agg(set)
        for name in ("delivered", "open", "click", "spamreport"):
            units[name] = units["attempt_id"].isin(seen.get(name, set()))
        # An open or a click proves delivery even where the provider's "delivered" was not received.
        units["delivered"] = units["delivered"] | units["open"] | units["click"]
    deferrals = None
    if promises is not None and not promises.empty and "kind" in promises.columns:
        deferrals = promises[promises["kind"] == "deferral"]
        promises = promises[promises["kind"] != "deferral"]
    units["promises_made"] = per_unit(promises, "account_id", "promised_at")
    units["promises_kept"] = per_unit(promises, "account_id", "promised_at",
                                      None if promises is None or promises.empty
                                      else (promises["status"] == "kept").astype(float))
    units["deferrals_made"] = per_unit(deferrals, "account_id", "promised_at")
    units["deferrals_kept"] = per_unit(deferrals, "account_id", "promised_at",
                                       None if deferrals is None or deferrals.empty
                                       else (deferrals["status"] == "kept").astype(float))
    units["deferrals_broken"] = per_unit(deferrals, "account_id", "promised_at",
                                         None if deferrals is None or deferrals.empty
                                         else (deferrals["status"] == "broken").astype(float))
    units["opted_out"] = per_unit(opt_outs, "customer_id", "received_at") > 0
    units["disputed"] = per_unit(disputes, "account_id", "opened_at") > 0
    acts = actions if actions is not None and not actions.empty else None
    complaints = None if acts is None else acts[(acts["action"] == "replied") & (acts["code"] == "complaint")]
    units["complaint_replies"] = per_unit(complaints, "account_id", "occurred_at") > 0
    units["complained"] = units["spamreport"] | units["disputed"] | units["complaint_replies"]
    ratings = None if acts is None else acts[acts["action"] == "rated"]
    scores = None if ratings is None else pd.to_numeric(ratings["code"], errors="coerce").fillna(0)
    rated = per_unit(ratings, "account_id", "occurred_at", end=SATISFACTION_DAYS * 86400)
    score_sum = per_unit(ratings, "account_id", "occurred_at", scores, end=SATISFACTION_DAYS * 86400)
    with np.errstate(divide="ignore", invalid="ignore"):
        units["rating"] = np.where(rated > 0, score_sum / np.maximum(rated, 1), np.nan)
    units["stated_reason"] = _stated_reasons(units, acts, window)
    units["week"] = pd.to_datetime(units["as_of"]).dt.to_period("W-SUN").dt.start_time.dt.date
    return units


def _stated_reasons(units: pd.DataFrame, actions: pd.DataFrame | None, window: int) -> pd.Series:
    """Per unit, the latest reason its account gave on its page by the end of its attribution window ('' none)."""
    none = pd.Series([""] * len(units), index=units.index, dtype=object)
    if actions is None or units.empty:
        return none
    said = actions[actions["action"] == "stated_reason"]
    if said.empty:
        return none
    left = pd.DataFrame({"row": np.arange(len(units)), "account_id": units["account_id"].to_numpy(),
                         "at": pd.to_datetime(units["assigned_at"], utc=True) + pd.Timedelta(seconds=window)})
    right = pd.DataFrame({"account_id": said["account_id"].to_numpy(),
                          "at": pd.to_datetime(said["occurred_at"], utc=True), "reason": said["code"].to_numpy()})
    left["at"], right["at"] = left["at"].astype("datetime64[ns, UTC]"), right["at"].astype("datetime64[ns, UTC]")
    joined = pd.merge_asof(left.sort_values("at"), right.sort_values("at"), on="at", by="account_id",
                           direction="backward").sort_values("row")
    return pd.Series(joined["reason"].fillna("").to_numpy(dtype=object), index=units.index, dtype=object)


def load_outcomes(engine: Engine, units: pd.DataFrame, since: date, until: date, rules: ReviewRules) -> pd.DataFrame:
    """``attach_outcomes`` with the payments, events, promises, opt-outs and disputes of the review's days."""
    first = _utc(since) - timedelta(days=rules.pre_period_days + 1)
    last = _utc(until) + timedelta(days=rules.attribution_window_days + 2)
    # A payment reversed since (a chargeback, a returned payment) did not come back: it is not counted.
    payments = _read(engine, select(Payment.account_id, Payment.paid_at, Payment.amount)
                     .where(Payment.paid_at >= first, Payment.paid_at < last, standing()))
    a = ContactAttempt
    events = _read(engine, select(ProviderEvent.attempt_id, ProviderEvent.event)
                   .join(a, a.id == ProviderEvent.attempt_id)
                   .where(a.variant.is_not(None), a.as_of >= since, a.as_of <= until,
                          ProviderEvent.event.in_(("delivered", "open", "click", "spamreport"))))
    promises = _read(engine, select(PaymentPromise.account_id, PaymentPromise.promised_at, PaymentPromise.status,
                                    PaymentPromise.kind)
                     .where(PaymentPromise.promised_at >= _utc(since), PaymentPromise.promised_at < last))
    c = CustomerAction
    actions = _read(engine, select(c.account_id, c.occurred_at, c.action, c.code)
                    .where(c.account_id.is_not(None), c.action.in_(("rated", "replied", "stated_reason")),
                           c.occurred_at >= _utc(since) - timedelta(days=rules.pre_period_days + 1),
                           c.occurred_at < _utc(until) + timedelta(days=SATISFACTION_DAYS + 2)))
    # The customer's own opt-outs: not those the lender's file stated or the import carried by address.
    opt_outs = _read(engine, select(OptOutEvent.customer_id, OptOutEvent.received_at)
                     .where(OptOutEvent.received_at >= _utc(since), OptOutEvent.received_at < last,
                            OptOutEvent.source.not_in(("import", "import_carried"))))
    disputes = _read(engine, select(Dispute.account_id, Dispute.opened_at)
                     .where(Dispute.opened_at >= _utc(since), Dispute.opened_at < last))
    return attach_outcomes(units, payments, rules, events, promises, opt_outs, disputes, actions)


def summarise(units: pd.DataFrame, by: list[str], rules: ReviewRules) -> pd.DataFrame:
    """The metrics of each group of units: reach, engagement, cure, recovery, promises, opt-outs, complaints, cost."""
    if units.empty:
        return pd.DataFrame(columns=by + ARM_COLUMNS[len(by):] if by[:3] == ARM_COLUMNS[:3] else by)
    cost = units["channel"].map(rules.message_cost).fillna(0.0) * units["sent"]
    frame = units.assign(message_cost=cost, converted=units["rate"].notna())
    grouped = frame.groupby(by, sort=True, dropna=False)
    out = grouped.agg(
        accounts=("account_id", "size"), cured=("cured", "sum"),
        amount_due=("amount_due_reporting", "sum"), amount_recovered=("recovered_reporting", "sum"),
        sent=("sent", "sum"), delivered=("delivered", "sum"), opened=("open", "sum"), clicked=("click", "sum"),
        opt_outs=("opted_out", "sum"), complaints=("complained", "sum"),
        promises_made=("promises_made", "sum"), promises_kept=("promises_kept", "sum"),
        message_cost=("message_cost", "sum"),
    ).reset_index()
    out["cure_rate"] = out["cured"] / out["accounts"]
    bounds = [wilson(c, n) for c, n in zip(out["cured"], out["accounts"])]
    out["cure_ci_low"] = [b[0] for b in bounds]
    out["cure_ci_high"] = [b[1] for b in bounds]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["recovery_rate"] = np.where(out["amount_due"] > 0, out["amount_recovered"] / out["amount_due"], np.nan)
        out["promise_kept_rate"] = np.where(out["promises_made"] > 0, out["promises_kept"] / out["promises_made"],
                                            np.nan)
        out["cost_per_recovered"] = np.where(out["amount_recovered"] > 0,
                                             out["message_cost"] / out["amount_recovered"], np.nan)
        out["opt_out_rate"] = out["opt_outs"] / out["accounts"]
        out["complaint_rate"] = out["complaints"] / out["accounts"]
    intervals = grouped.apply(_recovery_interval, include_groups=False)
    out["recovery_ci_low"] = [i[0] for i in intervals]
    out["recovery_ci_high"] = [i[1] for i in intervals]
    out["currency"] = rules.reporting_currency
    return out


def _recovery_interval(group: pd.DataFrame) -> tuple[float, float]:
    """The 95% interval of a group's recovery rate (a ratio of sums): a score interval (``ratio_interval``)."""
    known = group[group["rate"].notna()]
    _, low, high = ratio_interval(known["recovered_reporting"].to_numpy(float),
                                  known["amount_due_reporting"].to_numpy(float))
    return (low, high)


def _champions(ladder: Ladder | None) -> dict[str, str]:
    if ladder is None:
        return {}
    return {e.name: e.champion.name for e in [ladder.experiment, *ladder.experiments]}


def _shares(ladder: Ladder | None, stage: str, experiment: str) -> dict[str, float] | None:
    """The configured share of each arm, the holdout included (None: the experiment is no longer configured)."""
    if ladder is None:
        return None
    found = next((e for e in [ladder.experiment, *ladder.experiments] if e.name == experiment), None)
    if found is None or stage not in {s.value for s in ladder.stages}:
        return None
    holdout = found.holdout_share if ladder.rule(stage).holdout else 0.0
    shares = {a.name: a.share * (1 - holdout) for a in found.arms}
    if holdout:
        shares[HOLDOUT] = holdout
    return shares


def _points(x: float) -> str:
    return f"{abs(x) * 100:.1f}"


def describe(effect: Effect, variant: str, baseline: str, metric: str, row: dict | None = None,
             confidence: float = 0.95) -> str:
    """One plain sentence, e.g. "`warm` cures 2.1 points more than the holdout, 95% always-valid CI 0.3 to 4.0
    (fixed-horizon 0.8 to 3.4), n = 4,120 and 212; significant after Holm's correction over 6 comparisons"."""
    verb = {"cure_rate": "cures", "recovery_rate": "recovers"}[metric]
    against = "the holdout" if baseline == HOLDOUT else f"`{baseline}`"
    if math.isnan(effect.uplift):
        return f"`{variant}` against {against}: not enough accounts to compare"
    direction = "more" if effect.uplift >= 0 else "less"
    noun = "points" if metric == "cure_rate" else "points of the amount due"
    level = f"{confidence * 100:g}%"
    fixed = (None if math.isnan(effect.ci_low) else f"{effect.ci_low * 100:.1f} to {effect.ci_high * 100:.1f}")
    if row is not None and row["interval"] == ALWAYS_VALID and not math.isnan(row["always_valid_ci_low"]):
        interval = (f"{level} always-valid CI {row['always_valid_ci_low'] * 100:.1f} to "
                    f"{row['always_valid_ci_high'] * 100:.1f}" + (f" (fixed-horizon {fixed})" if fixed else ""))
    else:
        interval = f"{level} CI {fixed}" if fixed else "interval not computable"
    sentence = (f"`{variant}` {verb} {_points(effect.uplift)} {noun} {direction} than {against}, {interval}, "
                f"n = {effect.n_variant:,} and {effect.n_baseline:,}")
    if row is None or math.isnan(row.get("p_adjusted", math.nan)):
        if fixed and not effect.significant:
            sentence += " (not distinguishable from no difference)"
        return sentence
    if row["correction"] == "none" or row["comparisons"] <= 1:
        return sentence + ("" if row["significant"] else " (not distinguishable from no difference)")
    how = f"{CORRECTION_NAMES[row['correction']]} correction over {row['comparisons']} comparisons"
    return sentence + (f"; significant after {how}" if row["significant"]
                       else f"; not distinguishable from no difference after {how}")


def uplift_table(units: pd.DataFrame, champions: dict[str, str], rules: ReviewRules,
                 still_open: set[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Each arm against the holdout, and each challenger against its champion, on cure and recovery: the
    fixed-horizon interval, the always-valid one, and the verdict corrected over each stage's comparisons.

    ``still_open``: the (stage, experiment) pairs still running or accruing, whose findings read the always-valid
    interval (``rules.sequential.use``); None: every pair is."""
    sequential = rules.sequential
    rows = []
    for (stage, experiment), group in units.groupby(["stage", "experiment"], sort=True):
        arms = {v: g for v, g in group.groupby("variant", sort=True)}
        champion = champions.get(experiment)
        baselines = [b for b in (HOLDOUT, champion) if b and b in arms]
        for baseline in baselines:
            base = arms[baseline]
            for variant, arm in arms.items():
                if variant in (HOLDOUT, baseline):
                    continue
                cure = proportion_uplift(arm["cured"].sum(), len(arm), base["cured"].sum(), len(base))
                cuped = cuped_uplift(arm["cured"].to_numpy(float), np.log1p(arm["paid_before_reporting"].fillna(0)),
                                     base["cured"].to_numpy(float), np.log1p(base["paid_before_reporting"].fillna(0)),
                                     cure)
                armc, basec = arm[arm["rate"].notna()], base[base["rate"].notna()]
                recovery = ratio_uplift(armc["recovered_reporting"].to_numpy(), armc["amount_due_reporting"].to_numpy(),
                                        basec["recovered_reporting"].to_numpy(), basec["amount_due_reporting"].to_numpy())
                valid = {
                    "cure_rate": always_valid_difference(*difference_of_means(arm["cured"].to_numpy(float),
                                                                              base["cured"].to_numpy(float)),
                                                         len(arm) + len(base), sequential.tuned_for_accounts,
                                                         sequential.alpha),
                    "recovery_rate": always_valid_difference(
                        *difference_of_ratios(armc["recovered_reporting"].to_numpy(), armc["amount_due_reporting"].to_numpy(),
                                              basec["recovered_reporting"].to_numpy(),
                                              basec["amount_due_reporting"].to_numpy()),
                        len(armc) + len(basec), sequential.tuned_for_accounts, sequential.alpha)}
                use_valid = reads_always_valid(rules, stage, experiment, still_open)
                for metric, effect, adjusted in (("cure_rate", cure, cuped), ("recovery_rate", recovery, None)):
                    av = valid[metric]
                    rows.append({
                        "stage": stage, "experiment": experiment, "variant": variant, "baseline": baseline,
                        "metric": metric, "baseline_rate": effect.baseline, "variant_rate": effect.variant,
                        "uplift": effect.uplift, "ci_low": effect.ci_low, "ci_high": effect.ci_high,
                        "n_variant": effect.n_variant, "n_baseline": effect.n_baseline,
                        "cuped_uplift": adjusted.effect.uplift if adjusted and adjusted.effect else np.nan,
                        "cuped_ci_low": adjusted.effect.ci_low if adjusted and adjusted.effect else np.nan,
                        "cuped_ci_high": adjusted.effect.ci_high if adjusted and adjusted.effect else np.nan,
                        "cuped_note": adjusted.note if adjusted else "not for recovery",
                        "needed_per_arm": (needed_per_arm(effect.baseline, rules.minimum_detectable_effect)
                                           if metric == "cure_rate" else None),
                        "p_value": av.fixed_p_value, "always_valid_ci_low": av.ci_low,
                        "always_valid_ci_high": av.ci_high, "always_valid_p": av.p_value,
                        "interval": ALWAYS_VALID if use_valid else FIXED,
                        "_effect": effect,
                    })
    # The verdicts, corrected over each stage's comparisons (its arms, baselines and metrics): the p-value of the
    # interval each finding reads.
    for row in rows:
        row["_p"] = row["always_valid_p"] if row["interval"] == ALWAYS_VALID else row["p_value"]
    for stage in {r["stage"] for r in rows}:
        family = [r for r in rows if r["stage"] == stage]
        comparisons = sum(not math.isnan(r["_p"]) for r in family)
        for row, adjusted_p in zip(family, corrected([r["_p"] for r in family], rules.multiple_comparisons)):
            row["p_adjusted"] = adjusted_p
            row["correction"] = rules.multiple_comparisons
            row["comparisons"] = comparisons
            row["significant"] = bool(not math.isnan(adjusted_p) and adjusted_p < sequential.alpha)
            row["finding"] = describe(row.pop("_effect"), row["variant"], row["baseline"], row["metric"], row,
                                      1 - sequential.alpha)
            row.pop("_p")
    table = pd.DataFrame(rows, columns=UPLIFT_COLUMNS)
    table["needed_per_arm"] = table["needed_per_arm"].astype("Int64")
    return table


def sample_ratio_table(units: pd.DataFrame, ladder: Ladder | None) -> pd.DataFrame:
    rows = []
    for (stage, experiment), group in units.groupby(["stage", "experiment"], sort=True):
        shares = _shares(ladder, stage, experiment)
        observed = group["variant"].value_counts().to_dict()
        if shares is None:
            rows.append({"stage": stage, "experiment": experiment, "arms": len(observed), "accounts": len(group),
                         "chi_square": np.nan, "p_value": np.nan, "mismatch": False,
                         "note": "no longer configured: shares unknown, not checked"})
            continue
        check = sample_ratio(observed, shares)
        unexpected = sorted(set(observed) - set(shares))
        rows.append({"stage": stage, "experiment": experiment, "arms": len(observed), "accounts": len(group),
                     "chi_square": check.chi_square, "p_value": check.p_value,
                     "mismatch": check.mismatch or bool(unexpected),
                     "note": ("arms not configured: " + ", ".join(unexpected)) if unexpected else
                     ", ".join(f"{n} {check.observed.get(n, 0):,} (expected {s:.1%})"
                               for n, s in check.expected_share.items())})
    return pd.DataFrame(rows, columns=["stage", "experiment", "arms", "accounts", "chi_square", "p_value",
                                       "mismatch", "note"])


def bucket_labels(edges: list[int]) -> list[str]:
    labels = []
    for low, high in zip(edges, edges[1:] + [None]):
        labels.append(f"{low}+" if high is None else (f"{low}" if high - low == 1 else f"{low}-{high - 1}"))
    return labels


def roll_rate_table(units: pd.DataFrame, rules: ReviewRules) -> pd.DataFrame:
    """From the days-past-due bucket at assignment to where the account is at the end of the window:
    ``cured``, or the bucket it has aged into."""
    edges, labels = rules.dpd_buckets, bucket_labels(rules.dpd_buckets)
    frame = units[units["days_past_due"].notna()]
    if frame.empty:
        return pd.DataFrame(columns=["stage", "variant", "from_bucket", "to_bucket", "accounts", "share"])
    dpd = frame["days_past_due"].to_numpy(dtype=int)
    index = np.clip(np.searchsorted(edges, dpd, side="right") - 1, 0, None)
    later = np.clip(np.searchsorted(edges, dpd + rules.attribution_window_days, side="right") - 1, 0, None)
    start = np.where(dpd < edges[0], "before due", np.asarray(labels, dtype=object)[index])
    end = np.where(frame["cured"].to_numpy(), "cured", np.asarray(labels, dtype=object)[later])
    moves = frame[["stage", "variant"]].assign(from_bucket=start, to_bucket=end)
    out = moves.groupby(["stage", "variant", "from_bucket", "to_bucket"]).size().rename("accounts").reset_index()
    out["share"] = out["accounts"] / out.groupby(["stage", "variant", "from_bucket"])["accounts"].transform("sum")
    return out


def findings(arms: pd.DataFrame, uplift: pd.DataFrame, srm: pd.DataFrame, units: pd.DataFrame,
             rules: ReviewRules) -> list[str]:
    """Plain sentences for a collections manager, the warnings first."""
    lines = []
    for r in srm[srm["mismatch"]].itertuples():
        lines.append(f"WARNING: {r.experiment} on {r.stage}: the arm sizes do not match the configured shares "
                     f"(chi-square {r.chi_square:.1f}, p = {r.p_value:.2g}; {r.note}). The assignment is broken: "
                     "trust no uplift of this experiment.")
    missing = units[units["rate"].isna()]["currency"].dropna().unique()
    if len(missing):
        lines.append(f"Amounts in {', '.join(sorted(missing))} have no rate to {rules.reporting_currency} in the "
                     "review configuration: they count for cure, not for amounts.")
    if units.empty:
        lines.append("No account was assigned to an arm in these days: nothing to compare yet.")
        return lines
    for r in uplift[(uplift["metric"] == "cure_rate") & (uplift["baseline"] == HOLDOUT)].itertuples():
        lines.append(f"{r.stage}: {r.finding}.")
    for r in uplift[(uplift["metric"] == "cure_rate") & (uplift["baseline"] != HOLDOUT)].itertuples():
        lines.append(f"{r.stage}: {r.finding}.")
    needed = uplift[(uplift["metric"] == "cure_rate") & uplift["needed_per_arm"].notna()]
    for r in needed.drop_duplicates(["stage", "experiment"]).itertuples():
        smallest = int(min(r.n_variant, r.n_baseline))
        if smallest < int(r.needed_per_arm):
            lines.append(f"{r.stage}: to detect a change of {rules.minimum_detectable_effect * 100:g} points in the "
                         f"cure rate, each arm needs about {int(r.needed_per_arm):,} accounts; the smallest has "
                         f"{smallest:,}.")
    return lines


def review_days(since: str | None, until: str | None, today: date, window_days: int) -> tuple[date, date]:
    """The days reviewed: as given, else the four weeks whose attribution window has closed by today."""
    last = date.fromisoformat(until) if until else today - timedelta(days=window_days)
    first = date.fromisoformat(since) if since else last - timedelta(days=27)
    if since and not until:
        last = max(first, last)
    if last < first:
        raise ValueError(f"until {last} is before since {first}")
    return first, last


def run_review(engine: Engine, since: date, until: date, rules: ReviewRules, ladder: Ladder | None = None,
               stages: Sequence[str] | None = None, now: datetime | None = None) -> Review:
    """The review of the assignments made from ``since`` to ``until`` (days, both included), as of ``now``
    (default: the real clock), which says whose attribution window is still open."""
    if until < since:
        raise ValueError(f"--until {until} is before --since {since}")
    units = load_assignments(engine, since, until, stages)
    units = units[units["amount_due"] > 0].reset_index(drop=True)
    units = load_outcomes(engine, units, since, until, rules)
    review = review_units(units, since, until, rules, ladder, now)
    if not review.targeting.empty:  # the model that chose whom the targeted arms contacted: how well it ranks
        with engine.connect() as conn:
            model = conn.execute(select(UpliftModel.version, UpliftModel.curve, UpliftModel.note)
                                 .where(UpliftModel.status == "ready").order_by(UpliftModel.version.desc())
                                 .limit(1)).first()
        if model is not None and model.curve:
            review.qini, review.qini_note = model.curve, f"uplift model v{model.version}: {model.note}"
    return review


def review_units(units: pd.DataFrame, since: date, until: date, rules: ReviewRules,
                 ladder: Ladder | None = None, now: datetime | None = None) -> Review:
    """The tables of a review from units with their outcomes (``attach_outcomes``)."""
    champions = _champions(ladder)
    arms = summarise(units, ["stage", "experiment", "variant"], rules) if not units.empty else \
        pd.DataFrame(columns=ARM_COLUMNS)
    if not units.empty:
        arms.insert(3, "champion", [champions.get(e) == v for e, v in zip(arms["experiment"], arms["variant"])])
        arms = arms[ARM_COLUMNS + ["opt_out_rate", "complaint_rate"]]
    breakdown = pd.concat([
        summarise(units, ["stage", "variant", dimension], rules).rename(columns={dimension: "value"})
        .assign(dimension=dimension) for dimension in ("segment", "channel", "template", "week")
    ], ignore_index=True) if not units.empty else pd.DataFrame()
    if not breakdown.empty:
        breakdown["value"] = breakdown["value"].astype(str)
    weekly = summarise(units, ["week", "stage", "variant"], rules) if not units.empty else pd.DataFrame()
    still_open = _still_open(units, until, ladder, rules, now)
    uplift = uplift_table(units, champions, rules, still_open)
    srm = sample_ratio_table(units, ladder)
    review = Review(since, until, rules, units, arms, uplift, breakdown, roll_rate_table(units, rules), weekly, srm,
                    satisfaction=satisfaction_table(units), stated_reasons=stated_reason_table(units),
                    targeting=targeting_table(units, ladder, rules, still_open))
    review.findings = (accruing(units, rules, now or datetime.now(timezone.utc))
                       + findings(arms, uplift, srm, units, rules)
                       + [f"{r.stage}: {r.finding}." for r in review.targeting.itertuples()])
    return review


def targeting_table(units: pd.DataFrame, ladder: Ladder | None, rules: ReviewRules,
                    still_open: set[tuple[str, str]]) -> pd.DataFrame:
    """Each arm that targets by predicted uplift against the arm that contacts everyone (the champion, else the
    first arm without targeting): messages, cost, cure, recovery and recovery per message of each, and the
    difference of recovery with its interval (always-valid while the experiment is open), in one sentence."""
    if units.empty or ladder is None:
        return pd.DataFrame(columns=TARGETING_COLUMNS)
    experiments = {e.name: e for e in [ladder.experiment, *ladder.experiments]}
    cost = units["channel"].map(rules.message_cost).fillna(0.0) * units["sent"]
    frame = units.assign(_cost=cost)
    rows = []
    for (stage, name), group in frame.groupby(["stage", "experiment"], sort=True):
        experiment = experiments.get(name)
        if experiment is None:
            continue
        everyone = [a.name for a in sorted(experiment.arms, key=lambda a: not a.champion) if not a.targeting]
        for arm in (a for a in experiment.arms if a.targeting):
            t, c = group[group["variant"] == arm.name], group[group["variant"] == (everyone[0] if everyone else "")]
            if t.empty or c.empty:
                continue
            tk, ck = t[t["rate"].notna()], c[c["rate"].notna()]
            fixed = ratio_uplift(tk["recovered_reporting"].to_numpy(), tk["amount_due_reporting"].to_numpy(),
                                 ck["recovered_reporting"].to_numpy(), ck["amount_due_reporting"].to_numpy())
            valid = always_valid_difference(
                *difference_of_ratios(tk["recovered_reporting"].to_numpy(), tk["amount_due_reporting"].to_numpy(),
                                      ck["recovered_reporting"].to_numpy(), ck["amount_due_reporting"].to_numpy()),
                len(tk) + len(ck), rules.sequential.tuned_for_accounts, rules.sequential.alpha)
            use_valid = reads_always_valid(rules, stage, name, still_open)
            low, high = (valid.ci_low, valid.ci_high) if use_valid else (fixed.ci_low, fixed.ci_high)
            per_t, per_c = t["sent"].sum() / len(t), c["sent"].sum() / len(c)
            row = {"stage": stage, "experiment": name, "arm": arm.name, "against": c["variant"].iloc[0],
                   "accounts": len(t), "accounts_against": len(c), "messages": int(t["sent"].sum()),
                   "messages_against": int(c["sent"].sum()),
                   "fewer_messages": (1 - per_t / per_c) if per_c else math.nan,
                   "cost": float(t["_cost"].sum()), "cost_against": float(c["_cost"].sum()),
                   "cure_rate": float(t["cured"].mean()), "cure_rate_against": float(c["cured"].mean()),
                   "recovery_rate": fixed.variant, "recovery_rate_against": fixed.baseline,
                   "recovered_per_message": (float(tk["recovered_reporting"].sum()) / t["sent"].sum()
                                             if t["sent"].sum() else math.nan),
                   "recovered_per_message_against": (float(ck["recovered_reporting"].sum()) / c["sent"].sum()
                                                     if c["sent"].sum() else math.nan),
                   "recovery_diff": fixed.uplift, "recovery_diff_ci_low": low, "recovery_diff_ci_high": high,
                   "interval": ALWAYS_VALID if use_valid else FIXED}
            row["finding"] = _targeting_sentence(row, 1 - rules.sequential.alpha)
            rows.append(row)
    return pd.DataFrame(rows, columns=TARGETING_COLUMNS)


def _targeting_sentence(row: dict, confidence: float) -> str:
    """E.g. "`targeted` sent 46% fewer messages than `control` (contacting everyone) and recovered 0.8 points of
    the amount due less, 95% always-valid CI -3.1 to 1.5: no worse than contacting everyone within its interval"."""
    fewer = row["fewer_messages"]
    sent = (f"sent {abs(fewer) * 100:.0f}% {'fewer' if fewer >= 0 else 'more'} messages than `{row['against']}` "
            "(contacting everyone)" if not math.isnan(fewer) else f"sent no message, as `{row['against']}` did")
    diff, low, high = row["recovery_diff"], row["recovery_diff_ci_low"], row["recovery_diff_ci_high"]
    if math.isnan(diff) or math.isnan(low):
        return f"`{row['arm']}` {sent}; too few accounts to compare what they recovered"
    level = f"{confidence * 100:g}%{' always-valid' if row['interval'] == ALWAYS_VALID else ''} CI"
    how = (f"recovered {abs(diff) * 100:.1f} points of the amount due {'more' if diff >= 0 else 'less'}, "
           f"{level} {low * 100:.1f} to {high * 100:.1f}")
    verdict = ("recovering less than contacting everyone" if high < 0
               else "recovering more than contacting everyone" if low > 0
               else "no worse than contacting everyone within its interval")
    return f"`{row['arm']}` {sent} and {how}: {verdict}"


def satisfaction_table(units: pd.DataFrame) -> pd.DataFrame:
    """Per stage, arm and tone: how customers rated us (mean with its 95% interval, and how many gave each score)
    and the complaint rate (spam reports, disputes, complaining replies) with Wilson's interval."""
    if units.empty or "rating" not in units.columns:
        return pd.DataFrame(columns=SATISFACTION_COLUMNS)
    tone = units["tone"] if "tone" in units.columns else pd.Series([None] * len(units), index=units.index)
    frame = units.assign(tone=tone.fillna("default").replace("", "default"))
    rows = []
    for (stage, variant, tone), group in frame.groupby(["stage", "variant", "tone"], sort=True):
        ratings = group["rating"].dropna().to_numpy(float)
        n = len(ratings)
        mean = float(ratings.mean()) if n else math.nan
        half = 1.96 * float(ratings.std(ddof=1)) / math.sqrt(n) if n >= 10 else math.nan
        complaints = int(group["complained"].sum())
        low, high = wilson(complaints, len(group))
        rows.append({"stage": stage, "variant": variant, "tone": tone, "accounts": len(group), "rated": n,
                     "satisfaction": mean, "satisfaction_ci_low": max(mean - half, 1.0) if n >= 10 else math.nan,
                     "satisfaction_ci_high": min(mean + half, 5.0) if n >= 10 else math.nan,
                     **{f"rated_{s}": int((np.rint(ratings) == s).sum()) for s in SCORES},
                     "complaints": complaints, "complaint_rate": complaints / len(group),
                     "complaint_ci_low": low, "complaint_ci_high": high})
    return pd.DataFrame(rows, columns=SATISFACTION_COLUMNS)


def stated_reason_table(units: pd.DataFrame) -> pd.DataFrame:
    """Per stage and the reason customers gave on their page ('none' when they gave none): how many, how many
    cured, and the deferrals they asked for, kept and broken."""
    if units.empty or "stated_reason" not in units.columns:
        return pd.DataFrame(columns=REASON_COLUMNS)
    frame = units.assign(stated_reason=units["stated_reason"].replace("", "none"))
    out = frame.groupby(["stage", "stated_reason"], sort=True).agg(
        accounts=("account_id", "size"), cured=("cured", "sum"), deferrals_made=("deferrals_made", "sum"),
        deferrals_kept=("deferrals_kept", "sum"), deferrals_broken=("deferrals_broken", "sum")).reset_index()
    out["cure_rate"] = out["cured"] / out["accounts"]
    bounds = [wilson(c, n) for c, n in zip(out["cured"], out["accounts"])]
    out["cure_ci_low"], out["cure_ci_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    for column in ("cured", "deferrals_made", "deferrals_kept", "deferrals_broken"):
        out[column] = out[column].astype(int)
    return out[REASON_COLUMNS]


def reads_always_valid(rules: ReviewRules, stage: str, experiment: str,
                       still_open: set[tuple[str, str]] | None) -> bool:
    """Whether a finding on this stage's experiment reads the always-valid interval (``sequential.use``; with
    ``open``, while the pair is in ``still_open``, or always when that is not known)."""
    use = rules.sequential.use
    return use == "always" or (use == "open" and (still_open is None or (stage, experiment) in still_open))


def _still_open(units: pd.DataFrame, until: date, ladder: Ladder | None, rules: ReviewRules,
                now: datetime | None) -> set[tuple[str, str]]:
    """The (stage, experiment) pairs that will be looked at again: the experiment runs past the review's last day
    (or has no end), or some of its accounts' attribution windows are still open. An experiment reviewed to its
    last day with every window closed is final: its findings read the fixed-horizon interval."""
    if units.empty:
        return set()
    ends = {}
    if ladder is not None:
        for experiment in [ladder.experiment, *ladder.experiments]:
            ends[experiment.name] = experiment.end
    if "assigned_at" in units.columns:
        closes = pd.to_datetime(units["assigned_at"], utc=True) + pd.Timedelta(days=rules.attribution_window_days)
    else:  # units made by hand without their moments: nothing known to be accruing
        closes = pd.Series(pd.Timestamp.min.tz_localize("UTC"), index=units.index)
    moment = pd.Timestamp(now or datetime.now(timezone.utc))
    open_ = set()
    for (stage, experiment), group in units.assign(_closes=closes).groupby(["stage", "experiment"], sort=True):
        end = ends.get(experiment)
        if end is None or end > until or (group["_closes"] > moment).any():
            open_.add((stage, experiment))
    return open_


def accruing(units: pd.DataFrame, rules: ReviewRules, now: datetime) -> list[str]:
    """The warning, first in the findings, when some assignments' attribution window has not closed: their cures
    and recoveries are still coming in, so the rates are lower than they will be."""
    if units.empty or "assigned_at" not in units.columns:
        return []
    closes = units["assigned_at"] + pd.Timedelta(days=rules.attribution_window_days)
    open_ = units[closes > pd.Timestamp(now)]
    if open_.empty:
        return []
    arms = "; ".join(f"{stage}: {', '.join(sorted(group['variant'].unique()))}"
                     for stage, group in open_.groupby("stage", sort=True))
    last = closes.max().date()
    return [f"WARNING: still accruing: the attribution window of {len(open_):,} of {len(units):,} assigned accounts "
            f"is open until {last} ({arms}). Their cures and recoveries are still coming in: these rates are "
            f"lower than they will be; review after {last} for final figures."]
