"""Who gets which channel, variant and holdout: deterministic, so a re-run decides the same.

Variants and holdout come from a hash of the account id and the experiment name:
an account keeps its arm for the life of the experiment, and changing the
experiment name reshuffles everyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from campaigns.db.models import AttemptStatus, Channel
from campaigns.ladder.config import HOLDOUT, Arm, Experiment, SegmentRules, StageRule
from campaigns.policy import account_suppression, channel_suppression

DECISION_COLUMNS = ["account_id", "channel", "status", "reason", "variant", "experiment", "tone", "channels",
                    "send_hour"]
SEND_HOUR = "send_hour"  # the deferral reason of an arm that sends later in the customer's day
PENDING = "pending"  # to be rendered and queued
GENTLE_TONE = "gentle"  # vulnerable customers get the gentle templates, whatever their arm or segment


def stable_fraction(keys: Sequence[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per key, stable across runs, machines and Python versions."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2**64
    return out


def assign_variant(account_ids: Sequence[str], experiment: Experiment) -> np.ndarray:
    """The experiment arm of each account, in the configured shares."""
    fractions = stable_fraction(account_ids, f"{experiment.name}:variant")
    edges = np.cumsum([a.share for a in experiment.arms])[:-1]
    index = np.searchsorted(edges, fractions, side="right")
    return np.asarray(experiment.variants, dtype=object)[index]


def assign_holdout(account_ids: Sequence[str], experiment: Experiment) -> np.ndarray:
    """True for the fixed share of accounts that are logged but not contacted."""
    if experiment.holdout_share <= 0:
        return np.zeros(len(account_ids), dtype=bool)
    return stable_fraction(account_ids, f"{experiment.name}:holdout") < experiment.holdout_share


def choose_tone(segments: pd.Series, vulnerable: pd.Series, variants: np.ndarray, experiment: Experiment,
                rules: SegmentRules, pay_chance: pd.Series | None = None,
                stated: pd.Series | None = None) -> np.ndarray:
    """The template variant of each account: gentle when vulnerable or when the customer told us of hardship
    (``stated``, their page), else the arm's tone, else the risk tone (a ready model scores it below
    ``risk_tone.below_pay_chance``), else the segment's."""
    if stated is not None:
        vulnerable = pd.Series(np.asarray(vulnerable, dtype=bool) | (np.asarray(stated, dtype=object) == "hardship"))
    arm_tone = {a.name: a.tone for a in experiment.arms}
    chances = pay_chance if pay_chance is not None else [None] * len(variants)
    risky = rules.risk_tone
    tones = []
    for segment, vulnerable_, variant, chance in zip(segments, vulnerable, variants, chances):
        if vulnerable_:
            tones.append(GENTLE_TONE)
        elif arm_tone.get(variant):
            tones.append(arm_tone[variant])
        elif risky is not None and chance is not None and not pd.isna(chance) and chance < risky.below_pay_chance:
            tones.append(risky.tone)
        else:
            tones.append(rules.tone.get(segment))
    return np.asarray(tones, dtype=object)


def channel_order(rule: StageRule, segment: str | None, arm: Arm | None, rules: SegmentRules) -> tuple[Channel, ...]:
    """The channels tried, in order: the arm's if it sets them, else the segment's preference among the stage's."""
    if arm is not None and arm.channels:
        return tuple(arm.channels)
    preferred = [c for c in rules.channels.get(segment or "", []) if c in rule.channels]
    return tuple(preferred + [c for c in rule.channels if c not in preferred])


def decide_contacts(cohort: pd.DataFrame, rule: StageRule, experiment: Experiment,
                    rules: SegmentRules | None = None, targeting: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per (account, channel considered), with the decision for each.

    - An account rule (dispute, cease-and-desist) gives one suppressed row on the
      stage's first channel.
    - Otherwise channels are tried in the account's order (arm, segment, stage):
      each one the customer cannot be reached on is a suppressed row with its
      reason; the first reachable one is ``pending``, or ``holdout``. If none is
      reachable, all are suppressed.
    - Only the account's ``pending`` or ``holdout`` row is *assigned*: it carries
      the experiment and arm (``variant``; ``holdout`` for the holdout). Rows
      suppressed before assignment carry neither, so the review counts them in
      no arm (intention to treat starts at assignment).
    - An arm in ``targeting`` (arm -> threshold) contacts only its accounts whose ``predicted_uplift`` (a cohort
      column) is at least the threshold: the others are assigned to the arm all the same, and suppressed
      ``low_uplift`` (after every rule above: compliance comes first).
    """
    if cohort.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    rules = rules or SegmentRules()
    ids = cohort["account_id"].tolist()
    arms = assign_variant(ids, experiment)
    holdout = assign_holdout(ids, experiment) if rule.holdout else np.zeros(len(ids), dtype=bool)
    segments = cohort["segment"] if "segment" in cohort.columns else pd.Series([None] * len(ids))
    vulnerable = cohort["vulnerable"].fillna(False).astype(bool) if "vulnerable" in cohort.columns \
        else pd.Series([False] * len(ids))
    tones = choose_tone(segments, vulnerable, arms, experiment, rules,
                        cohort["pay_chance"] if "pay_chance" in cohort.columns else None,
                        cohort["stated_reason"] if "stated_reason" in cohort.columns else None)
    account_reason = account_suppression(cohort).to_numpy(dtype=object)
    blocked = np.array([r is not None for r in account_reason])
    by_name = {a.name: a for a in experiment.arms}
    order_of: dict[tuple, tuple] = {}  # one order per (segment, arm), not one per account
    orders = []
    for seg, arm in zip(segments, arms):
        if (seg, arm) not in order_of:
            order_of[(seg, arm)] = channel_order(rule, seg, by_name.get(arm), rules)
        orders.append(order_of[(seg, arm)])
    account_ids = np.asarray(ids, dtype=object)

    frames = []
    if blocked.any():
        frames.append(pd.DataFrame({
            "account_id": account_ids[blocked],
            "channel": rule.channels[0].value,
            "status": AttemptStatus.suppressed.value,
            "reason": account_reason[blocked],
            "variant": None, "experiment": None, "tone": None,
            "channels": [",".join(c.value for c in o) for o, b in zip(orders, blocked) if b], "send_hour": None,
        }))
    for order in dict.fromkeys(orders):
        group = np.array([o == order for o in orders]) & ~blocked
        if not group.any():
            continue
        sub = cohort[group]
        channel_reasons = np.column_stack([channel_suppression(sub, ch).to_numpy(dtype=object) for ch in order])
        reachable = np.vectorize(lambda r: r is None, otypes=[bool])(channel_reasons)
        chosen = np.where(reachable.any(axis=1), reachable.argmax(axis=1), len(order))
        names = ",".join(c.value for c in order)
        for position, channel in enumerate(order):
            skipped = chosen > position
            if skipped.any():
                frames.append(pd.DataFrame({
                    "account_id": account_ids[group][skipped], "channel": channel.value,
                    "status": AttemptStatus.suppressed.value, "reason": channel_reasons[skipped, position],
                    "variant": None, "experiment": None, "tone": None, "channels": names, "send_hour": None,
                }))
            picked = chosen == position
            if picked.any():
                held = holdout[group][picked]
                status = np.where(held, AttemptStatus.holdout.value, PENDING).astype(object)
                reason = np.full(len(held), None, dtype=object)
                if targeting and "predicted_uplift" in cohort.columns:
                    floor = np.array([targeting.get(a, -np.inf) for a in arms[group][picked]], dtype=float)
                    predicted = cohort["predicted_uplift"].to_numpy(float)[group][picked]
                    low = ~held & (predicted < floor)  # NaN (not scored) is not below: contacted
                    status[low], reason[low] = AttemptStatus.suppressed.value, "low_uplift"
                frames.append(pd.DataFrame({
                    "account_id": account_ids[group][picked], "channel": channel.value,
                    "status": status, "reason": reason,
                    "variant": np.where(held, HOLDOUT, arms[group][picked]), "experiment": experiment.name,
                    "tone": tones[group][picked], "channels": names,
                    "send_hour": [None if h else (by_name[v].send_hour if v in by_name else None)
                                  for h, v in zip(held, arms[group][picked])],
                }))
    decisions = pd.concat(frames, ignore_index=True)[DECISION_COLUMNS].astype(object)
    return decisions.where(decisions.notna(), None)  # no NaN for an absent arm, tone or reason


def send_hour_release(zones: Sequence[str], now: datetime, hour: int) -> datetime | None:
    """When an arm's send hour has come in every plausible zone of the customer (None: it has, send now)."""
    latest = None
    for name in zones:
        local = now.astimezone(ZoneInfo(name))
        if local.hour < hour:
            at = local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
            latest = at if latest is None or at > latest else latest
    return latest


__all__ = ["Channel", "GENTLE_TONE", "PENDING", "SEND_HOUR", "send_hour_release", "assign_holdout", "assign_variant", "channel_order", "choose_tone",
           "decide_contacts", "stable_fraction"]
