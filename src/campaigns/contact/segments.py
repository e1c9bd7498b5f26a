"""Segments from history, computed when the cohort is read: who the customer has been as a payer.

- ``first_time_debtor``: no payment on record and no late episode before this one;
- ``on_time_payer``: payments on record and no late episode before this one;
- ``occasional_late``: one or more earlier late episodes in the lookback, fewer than ``chronic_from``;
- ``chronic_late``: ``chronic_from`` or more.

The customer's own word counts too: the latest reason they gave on their page
(``stated_reason``: hardship, problem_paying, did_not_know, dispute, other) in the
lookback is kept with the segment, and hardship gets the gentle templates whatever
the segment or arm (as a vulnerable customer does).

A *late episode* is a calendar month in which a past-due stage (soft_nudge,
plan_offer, escalation) assigned the account, before its current due date: the
contact log is the history. The value tier is ``high`` from a balance of
``high_value_balance`` in its currency, and tenure says whether the account is
older than ``long_tenure_days``. The segment picks tone and channel order through
``segments`` in the ladder; the reason goes in each attempt's decision trace.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaigns.ladder.config import SegmentRules
from campaigns.db.engine import among, in_batches
from campaigns.db.models import Account, ContactAttempt, CustomerAction, Payment, Stage

PAST_DUE_STAGES = (Stage.soft_nudge.value, Stage.plan_offer.value, Stage.escalation.value)
SEGMENT_COLUMNS = ["segment", "value_tier", "tenure", "late_episodes", "payments_before", "stated_reason",
                   "segment_why"]


def segment_inputs(conn: Connection, cohort: pd.DataFrame, as_of: date, rules: SegmentRules) -> pd.DataFrame:
    """Per cohort account: payments before today, late episodes in the lookback, the latest reason the customer gave
    for being late (their page), and the account's age in days."""
    ids = cohort["account_id"].tolist()
    start_of_day = datetime.combine(as_of, time.min, timezone.utc)
    since = as_of - timedelta(days=rules.lookback_days)
    payments: dict[str, int] = {}
    episodes: dict[str, set[tuple[int, int]]] = {}
    stated: dict[str, tuple[datetime, int, str]] = {}
    # The cohort's own read carries each account's creation (select_cohort); else it is read here.
    read_with_cohort = "account_created_at" in cohort
    created: dict[str, datetime] = {}
    due = dict(zip(ids, cohort["due_date"]))
    for part in in_batches(ids):
        payments.update(conn.execute(
            select(Payment.account_id, func.count()).where(among(conn, Payment.account_id, part), Payment.paid_at < start_of_day)
            .group_by(Payment.account_id)).all())
        a = ContactAttempt
        for account_id, day in conn.execute(
                select(a.account_id, a.as_of).distinct()
                .where(among(conn, a.account_id, part), a.stage.in_(PAST_DUE_STAGES), a.as_of >= since, a.as_of < as_of,
                       a.variant.is_not(None))):
            if day < due[account_id]:  # an earlier statement's lateness, not this one's
                episodes.setdefault(account_id, set()).add((day.year, day.month))
        # What the customer told us on their page (the latest reason in the lookback): hardship asks for gentleness.
        for account_id, at, action_id, code in conn.execute(
                select(CustomerAction.account_id, CustomerAction.occurred_at, CustomerAction.id, CustomerAction.code)
                .where(among(conn, CustomerAction.account_id, part), CustomerAction.action == "stated_reason",
                       CustomerAction.occurred_at >= datetime.combine(since, time.min, timezone.utc),
                       CustomerAction.occurred_at < start_of_day + timedelta(days=1))):
            if account_id not in stated or (at, action_id) > stated[account_id][:2]:
                stated[account_id] = (at, action_id, code)
        if not read_with_cohort:
            created.update(conn.execute(select(Account.id, Account.created_at)
                                        .where(among(conn, Account.id, part))).all())
    return pd.DataFrame({
        "account_id": ids,
        "payments_before": [payments.get(i, 0) for i in ids],
        "late_episodes": [len(episodes.get(i, ())) for i in ids],
        "stated_reason": [stated[i][2] if i in stated else None for i in ids],
        "tenure_days": _tenure_days(cohort["account_created_at"] if read_with_cohort
                                    else pd.Series([created.get(i) for i in ids], dtype=object), start_of_day),
    })


def _tenure_days(created: pd.Series, start_of_day: datetime) -> np.ndarray:
    """Whole days from each creation to ``start_of_day`` (0 where unknown), as one array operation: a
    Timestamp subtracted per account cost more than the rest of the segment inputs."""
    created = pd.to_datetime(created, utc=True)
    days = (pd.Timestamp(start_of_day) - created).dt.days
    return days.fillna(0).astype("int64").to_numpy()


def classify_segments(frame: pd.DataFrame, rules: SegmentRules) -> pd.DataFrame:
    """Segment, value tier and tenure per row of ``frame`` (account_id, balance, currency, payments_before,
    late_episodes, tenure_days), with a one-line reason naming the facts that decided it."""
    late = frame["late_episodes"].to_numpy()
    paid = frame["payments_before"].to_numpy()
    segment = np.select(
        [late >= rules.chronic_from, late >= 1, paid > 0],
        ["chronic_late", "occasional_late", "on_time_payer"],
        default="first_time_debtor",
    )
    threshold = frame["currency"].map(rules.high_value_balance).astype("float64")
    balance = frame["balance"].astype("float64")
    high = (threshold.notna() & (balance >= threshold)).to_numpy()
    tier = np.where(high, "high", "standard")
    tenure = np.where(frame["tenure_days"].to_numpy() >= rules.long_tenure_days, "long", "new")
    stated = (frame["stated_reason"].tolist() if "stated_reason" in frame.columns else [None] * len(frame))
    stated = [None if (r is None or r != r) else r for r in stated]  # NaN (no reason) as None
    said: dict[tuple, str] = {}  # a cohort has a handful of distinct reasons: each written once
    why = [said.get(facts) or said.setdefault(
               facts, f"{facts[0]}: {int(facts[1])} late episode(s) in {rules.lookback_days} days, "
                      f"{int(facts[2])} payment(s) before; {facts[3]} value, {facts[4]} tenure"
                      + (f"; said: {facts[5]}" if facts[5] else ""))
           for facts in zip(segment.tolist(), late.tolist(), paid.tolist(), tier.tolist(), tenure.tolist(), stated)]
    return pd.DataFrame({
        "segment": segment, "value_tier": tier, "tenure": tenure, "late_episodes": late,
        "payments_before": paid, "stated_reason": pd.Series(stated, index=frame.index, dtype=object),
        "segment_why": why,
    }, index=frame.index)


def add_segments(conn: Connection, cohort: pd.DataFrame, as_of: date, rules: SegmentRules) -> pd.DataFrame:
    """The cohort with its segment columns (``SEGMENT_COLUMNS``)."""
    if cohort.empty:
        return cohort.assign(**{c: pd.Series(dtype=object) for c in SEGMENT_COLUMNS})
    inputs = segment_inputs(conn, cohort, as_of, rules)
    frame = cohort[["account_id", "balance", "currency"]].merge(inputs, on="account_id", how="left")
    segments = classify_segments(frame, rules)
    out = cohort.drop(columns=[c for c in SEGMENT_COLUMNS if c in cohort.columns])
    return pd.concat([out.reset_index(drop=True), segments.reset_index(drop=True)], axis=1)
