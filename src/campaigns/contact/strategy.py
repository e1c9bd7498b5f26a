"""Who gets which channel, variant and holdout: deterministic, so a re-run decides the same.

Variants and holdout come from a hash of the account id and the experiment name:
an account keeps its arm for the life of the experiment, and changing the
experiment name reshuffles everyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from campaigns.db.models import AttemptStatus, Channel
from campaigns.contact.ladder import Experiment, StageRule
from campaigns.policy import account_suppression, channel_suppression

DECISION_COLUMNS = ["account_id", "channel", "status", "reason", "variant"]
PENDING = "pending"  # to be rendered and queued


def stable_fraction(keys: Sequence[str], salt: str) -> np.ndarray:
    """A number in [0, 1) per key, stable across runs, machines and Python versions."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2**64
    return out


def assign_variant(account_ids: Sequence[str], experiment: Experiment) -> np.ndarray:
    """The experiment arm of each account."""
    fractions = stable_fraction(account_ids, f"{experiment.name}:variant")
    index = np.minimum((fractions * len(experiment.variants)).astype(int), len(experiment.variants) - 1)
    return np.asarray(experiment.variants, dtype=object)[index]


def assign_holdout(account_ids: Sequence[str], experiment: Experiment) -> np.ndarray:
    """True for the fixed share of accounts that are logged but not contacted."""
    if experiment.holdout_share <= 0:
        return np.zeros(len(account_ids), dtype=bool)
    return stable_fraction(account_ids, f"{experiment.name}:holdout") < experiment.holdout_share


def decide_contacts(cohort: pd.DataFrame, rule: StageRule, experiment: Experiment) -> pd.DataFrame:
    """One row per (account, channel considered), with the decision for each.

    - An account rule (dispute, cease-and-desist) gives one suppressed row on the
      stage's first channel.
    - Otherwise channels are tried in order: each channel the customer cannot be
      reached on is a suppressed row with its reason; the first reachable one is
      ``pending`` (or ``holdout``). If none is reachable, all are suppressed.
    """
    if cohort.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    ids = cohort["account_id"].tolist()
    variants = assign_variant(ids, experiment)
    holdout = assign_holdout(ids, experiment) if rule.holdout else np.zeros(len(ids), dtype=bool)
    account_reason = account_suppression(cohort).to_numpy(dtype=object)
    blocked = np.array([r is not None for r in account_reason])

    channel_reasons = np.column_stack(
        [channel_suppression(cohort, ch).to_numpy(dtype=object) for ch in rule.channels]
    )
    reachable = np.vectorize(lambda r: r is None, otypes=[bool])(channel_reasons)
    any_reachable = reachable.any(axis=1)
    chosen = np.where(any_reachable, reachable.argmax(axis=1), len(rule.channels))

    frames = []
    account_ids = np.asarray(ids, dtype=object)
    if blocked.any():
        frames.append(pd.DataFrame({
            "account_id": account_ids[blocked],
            "channel": rule.channels[0].value,
            "status": AttemptStatus.suppressed.value,
            "reason": account_reason[blocked],
            "variant": variants[blocked],
        }))
    for position, channel in enumerate(rule.channels):
        skipped = ~blocked & (chosen > position)
        if skipped.any():
            frames.append(pd.DataFrame({
                "account_id": account_ids[skipped],
                "channel": channel.value,
                "status": AttemptStatus.suppressed.value,
                "reason": channel_reasons[skipped, position],
                "variant": variants[skipped],
            }))
        picked = ~blocked & (chosen == position)
        if picked.any():
            frames.append(pd.DataFrame({
                "account_id": account_ids[picked],
                "channel": channel.value,
                "status": np.where(holdout[picked], AttemptStatus.holdout.value, PENDING),
                "reason": None,
                "variant": variants[picked],
            }))
    decisions = pd.concat(frames, ignore_index=True)
    return decisions[DECISION_COLUMNS]


__all__ = ["Channel", "PENDING", "assign_holdout", "assign_variant", "decide_contacts", "stable_fraction"]
