"""Compliance rules: for every intended contact, allow or suppress with a reason code.

Each rule is a small named function over a cohort chunk (a DataFrame) that returns
a boolean mask of the rows it suppresses. Rules run in order and the first that
matches gives the reason, so the order is the order of precedence. Account rules
stop every channel; channel rules stop one channel, and the strategy then tries
the next channel in the stage's order.

The full compliance layer (contact window, frequency caps, holidays, holds)
adds rules to these registries; nothing else has to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from campaigns.db.models import Channel

Mask = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Rule:
    reason: str
    applies: Mask
    doc: str


def _flag(column: str) -> Mask:
    def mask(frame: pd.DataFrame) -> pd.Series:
        return frame[column].fillna(False).astype(bool)

    return mask


def _missing(column: str) -> Mask:
    def mask(frame: pd.DataFrame) -> pd.Series:
        values = frame[column]
        return values.isna() | (values.astype("string").str.strip() == "")

    return mask


ACCOUNT_RULES: list[Rule] = [
    Rule("cease_and_desist", _flag("cease_contact"), "The customer asked us to stop contacting them."),
    Rule("disputed", _flag("has_open_dispute"), "An open dispute stops collection until it is resolved."),
]

CHANNEL_RULES: dict[Channel, list[Rule]] = {
    Channel.email: [
        Rule("opted_out", _flag("email_opt_out"), "The customer opted out of email."),
        Rule("invalid_address", _missing("email"), "No usable email address."),
    ],
    Channel.sms: [
        Rule("opted_out", _flag("sms_opt_out"), "The customer opted out of SMS."),
        Rule("no_consent", lambda f: ~_flag("sms_consent")(f), "No recorded consent to SMS."),
        Rule("invalid_address", _missing("phone"), "No usable phone number."),
    ],
    Channel.push: [
        Rule("no_consent", lambda f: pd.Series(True, index=f.index), "Push is not enabled yet."),
    ],
    Channel.agent: [],
}


def first_reason(frame: pd.DataFrame, rules: list[Rule]) -> pd.Series:
    """The reason of the first rule that suppresses each row, or None (allowed)."""
    if frame.empty or not rules:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    masks = [rule.applies(frame).to_numpy(dtype=bool) for rule in rules]
    reasons = np.select(masks, [rule.reason for rule in rules], default=None)
    return pd.Series(reasons, index=frame.index, dtype=object)


def account_suppression(frame: pd.DataFrame) -> pd.Series:
    """Reason that stops all contact with each account, or None."""
    return first_reason(frame, ACCOUNT_RULES)


def channel_suppression(frame: pd.DataFrame, channel: Channel) -> pd.Series:
    """Reason that stops ``channel`` for each account, or None."""
    return first_reason(frame, CHANNEL_RULES[Channel(channel)])


def reason_codes() -> dict[str, str]:
    """Every reason code and what it means (for docs and reports)."""
    codes = {r.reason: r.doc for r in ACCOUNT_RULES}
    for rules in CHANNEL_RULES.values():
        for r in rules:
            codes.setdefault(r.reason, r.doc)
    return codes
