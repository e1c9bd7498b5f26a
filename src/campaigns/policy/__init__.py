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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaigns.policy.profiles import Jurisdiction, PolicyConfig, PolicyConfigError, load_policy
    from campaigns.policy.release import DEFER, RELEASE, SUPPRESS, evaluate_release
    from campaigns.policy.rules import (ACCOUNT_RULES, CHANNEL_RULES, HOLD_KINDS, Rule, account_suppression,
                                        channel_suppression, first_reason, reason_codes)

# Loaded on first use (PEP 562): a process that needs one light module of the wing (the importer's checking
# processes need ``zones``) does not pay for pandas, which ``release`` brings (about 100 MB a process).
_WHERE = {
    **dict.fromkeys(("Jurisdiction", "PolicyConfig", "PolicyConfigError", "load_policy"), "profiles"),
    **dict.fromkeys(("DEFER", "RELEASE", "SUPPRESS", "evaluate_release"), "release"),
    **dict.fromkeys(("ACCOUNT_RULES", "CHANNEL_RULES", "HOLD_KINDS", "Rule", "account_suppression",
                     "channel_suppression", "first_reason", "reason_codes"), "rules"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ACCOUNT_RULES", "CHANNEL_RULES", "DEFER", "HOLD_KINDS", "Jurisdiction", "PolicyConfig", "PolicyConfigError",
    "RELEASE", "Rule", "SUPPRESS", "account_suppression", "channel_suppression", "evaluate_release",
    "first_reason", "load_policy", "reason_codes",
]
