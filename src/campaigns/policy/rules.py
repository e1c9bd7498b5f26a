"""Who may not be contacted at all, or not on a channel: named rules with reason codes.

Each rule is a small named function over a cohort chunk (a DataFrame) that returns
a boolean mask of the rows it suppresses. Rules run in order and the first that
matches gives the reason, so the order is the order of precedence. Account rules
stop every channel; channel rules stop one channel, and the strategy then tries
the next channel in the stage's order.

Time-based rules (window, holidays, caps) live in ``window`` and ``caps`` and are
combined with these in ``release.evaluate_release``.
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
        if column not in frame:
            return pd.Series(False, index=frame.index)
        return frame[column].fillna(False).astype(bool)

    return mask


# Holds that stop all collection contact (the `holds` column lists a customer's open ones).
HOLD_KINDS = {
    "cease_and_desist": "The customer asked us to stop contacting them.",
    "attorney_represented": "The customer is represented by an attorney: contact the attorney, not them.",
    "bankruptcy": "The customer is in bankruptcy proceedings.",
    "deceased": "The customer has died.",
    "mental_capacity": "The customer may lack mental capacity to deal with the debt.",
    "breathing_space": "UK Debt Respite Scheme breathing space (until its end date).",
}


def _hold(kind: str) -> Mask:
    def mask(frame: pd.DataFrame) -> pd.Series:
        if "holds" not in frame:
            return pd.Series(False, index=frame.index)
        # Most customers have no hold: only the rows with some are split into kinds.
        holds = frame["holds"].to_numpy(dtype=object)
        found = np.zeros(len(holds), dtype=bool)
        for i in np.flatnonzero([isinstance(h, str) and h != "" for h in holds.tolist()]).tolist():
            found[i] = kind in holds[i].split(",")
        return pd.Series(found, index=frame.index)

    return mask


def _after_payment(frame: pd.DataFrame) -> pd.Series:
    """Messages that exist because the account was paid (the thank-you): being paid does not stop them."""
    return _flag("after_payment")(frame)


def _placed(frame: pd.DataFrame) -> pd.Series:
    status = frame["status"] if "status" in frame else pd.Series("open", index=frame.index)
    return status.fillna("open") == "placed"


def _not_collectable(frame: pd.DataFrame) -> pd.Series:
    status = frame["status"] if "status" in frame else pd.Series("open", index=frame.index)
    owed = pd.to_numeric(frame["amount_due"], errors="coerce").fillna(0) if "amount_due" in frame else 1
    return ((status.fillna("open") != "open") | (owed <= 0)) & ~_after_payment(frame)


def _reopened(frame: pd.DataFrame) -> pd.Series:
    """A thank-you is for an account that owes nothing: one whose debt came back (a reversal) gets none."""
    if "paid_off" in frame:
        paid_off = _flag("paid_off")(frame)
    else:
        paid_off = (frame["status"] if "status" in frame else pd.Series("open", index=frame.index)) == "paid"
    return _after_payment(frame) & ~paid_off


def _figures_changed(frame: pd.DataFrame) -> pd.Series:
    """The message states figures (amount, balance, credit, instalment) the ledger no longer holds: a
    payment, a reversal or a new statement arrived after it was rendered. A worklist hand-off is not
    stopped: agents read the account's figures as they are."""
    if "figures_stated" not in frame or "figures" not in frame:
        return pd.Series(False, index=frame.index)
    stated, now = frame["figures_stated"], frame["figures"]
    changed = stated.notna() & now.notna() & (stated.astype(object) != now.astype(object))
    if "channel" in frame:
        changed &= frame["channel"].astype(str) != Channel.agent.value
    return changed


def _employer_email(frame: pd.DataFrame) -> pd.Series:
    return _flag("email_is_employer")(frame) & ~_flag("email_employer_consent")(frame)


def _missing(column: str) -> Mask:
    def mask(frame: pd.DataFrame) -> pd.Series:
        values = frame[column]
        return values.isna() | (values.astype("string").str.strip() == "")

    return mask


ACCOUNT_RULES: list[Rule] = [
    Rule("placed", _placed, "The account is placed with a collection agency: we no longer contact the customer."),
    Rule("paid", _not_collectable, "The account was paid or closed before the message went out."),
    Rule("reopened", _reopened, "The account owes again (a payment was reversed) before its thank-you went out."),
    Rule("figures_changed", _figures_changed,
         "The figures the message states are not the ledger's any more (a payment, reversal or new statement "
         "arrived after it was written): it is not sent; the next run writes it again with today's."),
    Rule("deceased", _hold("deceased"), HOLD_KINDS["deceased"]),
    Rule("cease_and_desist", lambda f: _flag("cease_contact")(f) | _hold("cease_and_desist")(f),
         HOLD_KINDS["cease_and_desist"]),
    Rule("attorney_represented", _hold("attorney_represented"), HOLD_KINDS["attorney_represented"]),
    Rule("bankruptcy", _hold("bankruptcy"), HOLD_KINDS["bankruptcy"]),
    Rule("mental_capacity", _hold("mental_capacity"), HOLD_KINDS["mental_capacity"]),
    Rule("breathing_space", _hold("breathing_space"), HOLD_KINDS["breathing_space"]),
    Rule("disputed", _flag("has_open_dispute"), "An open dispute stops collection until it is resolved."),
]

CHANNEL_RULES: dict[Channel, list[Rule]] = {
    Channel.email: [
        Rule("opted_out", _flag("email_opt_out"), "The customer opted out of email."),
        Rule("invalid_address", lambda f: _missing("email")(f) | _flag("email_invalid")(f),
             "No usable email address (missing, or it hard-bounced)."),
        Rule("employer_email", _employer_email,
             "An employer-provided address the customer has not used with us nor agreed to."),
    ],
    Channel.sms: [
        Rule("opted_out", _flag("sms_opt_out"), "The customer opted out of SMS."),
        Rule("no_consent", lambda f: ~_flag("sms_consent")(f), "No recorded consent to SMS."),
        Rule("invalid_address", _missing("phone"), "No usable phone number."),
    ],
    Channel.push: [
        Rule("opted_out", _flag("push_opt_out"), "The customer turned collection notifications off."),
        Rule("no_consent", lambda f: ~_flag("push_enabled")(f), "No wallet app with notifications on."),
    ],
    Channel.agent: [],
    Channel.call: [
        Rule("invalid_address", _missing("phone"), "No usable phone number."),
    ],
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
