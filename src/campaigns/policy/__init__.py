"""Compliance: for every intended contact, release now, defer until allowed, or suppress with a reason code.

- ``rules``: holds, disputes, opt-outs, consent (account and channel rules)
- ``zones``: which time zones a customer may be in
- ``window``: the local contact window, Sundays and public holidays
- ``caps``: rolling-window contact counts
- ``release``: the decision that combines them, at queue time and at release time
- ``profiles``: the jurisdiction profiles (config/policy.yaml)
- ``optout``: opt-out keywords in inbound messages
- ``content``: template checks (``campaigns templates check``)
"""

from campaigns.policy.profiles import Jurisdiction, PolicyConfig, PolicyConfigError, load_policy
from campaigns.policy.release import DEFER, RELEASE, SUPPRESS, evaluate_release
from campaigns.policy.rules import (
    ACCOUNT_RULES,
    CHANNEL_RULES,
    HOLD_KINDS,
    Rule,
    account_suppression,
    channel_suppression,
    first_reason,
    reason_codes,
)

__all__ = [
    "ACCOUNT_RULES", "CHANNEL_RULES", "DEFER", "HOLD_KINDS", "Jurisdiction", "PolicyConfig", "PolicyConfigError",
    "RELEASE", "Rule", "SUPPRESS", "account_suppression", "channel_suppression", "evaluate_release",
    "first_reason", "load_policy", "reason_codes",
]
