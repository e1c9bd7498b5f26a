"""Suppression reasons, channel fallback, variants and holdout: pure functions on DataFrames."""

from __future__ import annotations

import pandas as pd
import pytest

from campaigns.db.models import Stage
from campaigns.ladder.config import Experiment, StageRule
from campaigns.policy import account_suppression, channel_suppression, reason_codes
from campaigns.contact.strategy import PENDING, assign_holdout, assign_variant, decide_contacts

RULE = StageRule(stage=Stage.soft_nudge, days_past_due={"min": 1, "max": 14}, channels=["email", "sms"])
NO_HOLDOUT = Experiment(name="t", variants=["control"], holdout_share=0.0)


def cohort(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values()))) if columns else 1
    base = {
        "account_id": [f"A{i}" for i in range(n)], "email": ["x@example.com"] * n, "phone": ["+12125550123"] * n,
        "email_opt_out": [False] * n, "sms_opt_out": [False] * n, "sms_consent": [True] * n,
        "cease_contact": [False] * n, "has_open_dispute": [False] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def decided(frame, rule=RULE, experiment=NO_HOLDOUT):
    d = decide_contacts(frame, rule, experiment)
    return sorted(zip(d["account_id"], d["channel"], d["status"], d["reason"].fillna("-")))


def test_account_rules_stop_every_channel_with_one_logged_reason():
    frame = cohort(cease_contact=[True, False, True], has_open_dispute=[False, True, True])
    assert list(account_suppression(frame)) == ["cease_and_desist", "disputed", "cease_and_desist"]
    assert decided(frame) == [("A0", "email", "suppressed", "cease_and_desist"),
                              ("A1", "email", "suppressed", "disputed"),
                              ("A2", "email", "suppressed", "cease_and_desist")]


def test_channel_rules_each_have_their_reason():
    frame = cohort(email=["x@example.com", None, ""], email_opt_out=[True, False, False],
                   sms_consent=[False, True, True], sms_opt_out=[False, True, False], phone=["+1", "+1", None])
    assert list(channel_suppression(frame, "email")) == ["opted_out", "invalid_address", "invalid_address"]
    assert list(channel_suppression(frame, "sms")) == ["no_consent", "opted_out", "invalid_address"]


def test_the_next_channel_is_used_when_the_first_is_not_allowed():
    frame = cohort(email_opt_out=[False, True, True], sms_consent=[True, True, False])
    assert decided(frame) == [
        ("A0", "email", PENDING, "-"),  # SMS, after the chosen channel, is not tried and not logged
        ("A1", "email", "suppressed", "opted_out"), ("A1", "sms", PENDING, "-"),
        ("A2", "email", "suppressed", "opted_out"), ("A2", "sms", "suppressed", "no_consent"),
    ]


def test_the_docs_and_the_ladder_file_say_what_the_channel_order_does():
    """They used to say the channels after the chosen one are logged as suppressed (issue 8: 17)."""
    from campaigns.settings import PROJECT_ROOT

    readme = " ".join((PROJECT_ROOT / "docs" / "concepts" / "ladder.md").read_text(encoding="utf-8").split())
    ladder = " ".join(line.lstrip("# ") for line in (PROJECT_ROOT / "config" / "ladder.yaml").read_text().splitlines())
    assert "each channel *before* it that cannot reach them is logged as suppressed with its reason; " \
           "the channels after it are not tried" in readme
    assert "each one before it that cannot reach them is logged as suppressed with its reason, " \
           "and the ones after it are not tried" in " ".join(ladder.split())
    assert "the others are logged as suppressed" not in readme + ladder


def test_holdout_is_deterministic_and_near_its_share():
    ids = [f"A{i:06d}" for i in range(20_000)]
    experiment = Experiment(name="exp", variants=["a", "b"], holdout_share=0.1)
    first, again = assign_holdout(ids, experiment), assign_holdout(ids, experiment)
    assert (first == again).all()
    assert 0.09 < first.mean() < 0.11
    other = assign_holdout(ids, Experiment(name="exp2", holdout_share=0.1))
    assert (first != other).any()  # a new experiment reshuffles


def test_variants_are_deterministic_and_balanced():
    ids = [f"A{i:06d}" for i in range(20_000)]
    experiment = Experiment(name="exp", variants=["a", "b", "c"])
    arms = pd.Series(assign_variant(ids, experiment))
    assert (arms == pd.Series(assign_variant(ids, experiment))).all()
    assert set(arms) == {"a", "b", "c"} and arms.value_counts().min() > 6_300


def test_holdout_accounts_are_logged_on_their_channel_not_contacted():
    ids = [f"A{i}" for i in range(400)]
    frame = cohort(account_id=ids, email_opt_out=[i % 2 == 0 for i in range(400)])
    d = decide_contacts(frame, RULE, Experiment(name="h", holdout_share=0.5))
    held = d[d["status"] == "holdout"]
    assert 120 < len(held) < 280
    assert set(held["reason"].fillna("-")) == {"-"}
    # An account held out on sms still has its email opt-out logged.
    assert set(d[(d["account_id"].isin(held["account_id"])) & (d["channel"] == "email")]["status"]) <= {"holdout", "suppressed"}


def test_stages_without_holdout_hold_nobody_out():
    rule = StageRule(stage=Stage.escalation, days_past_due={"min": 46}, channels=["agent"], holdout=False)
    frame = cohort(account_id=[f"A{i}" for i in range(100)])
    d = decide_contacts(frame, rule, Experiment(name="h", holdout_share=0.5))
    assert set(d["status"]) == {PENDING}


def test_an_empty_chunk_decides_nothing():
    assert decide_contacts(cohort().iloc[0:0], RULE, NO_HOLDOUT).empty


@pytest.mark.parametrize("code", ["opted_out", "disputed", "cease_and_desist", "no_consent", "invalid_address"])
def test_every_reason_code_is_documented(code):
    assert reason_codes()[code]


def test_every_reason_code_the_code_can_emit_is_in_the_catalogue_and_each_there_is_emitted():
    """The reason codes' one list (campaigns.attempts.reasons), from which docs/reference/reason-codes.md is made."""
    from campaigns.attempts.reasons import MEANING, STATUS_MEANING, Reason
    from campaigns.db.models import AttemptStatus
    from campaigns.settings import PROJECT_ROOT

    documented = {code.value for code in Reason}
    emitted = set(reason_codes()) | {
        "unknown_timezone", "frequency_cap", "expired", "outside_contact_window", "sunday", "holiday",
        "provider_retry", "template_error", "no_template", "content_incomplete", "time_barred_content",
        "channel_unavailable", "provider_error", "interrupted", "unconfirmed", "sms_too_long", "dropped",
        "in_plan", "promise_open", "not_past_due"}
    assert emitted - documented == set()
    assert set(MEANING) == set(Reason)
    assert {status for status, _ in MEANING.values()} <= {s.value for s in AttemptStatus}
    assert set(STATUS_MEANING) == {s.value for s in AttemptStatus}
    sources = "\n".join(p.read_text() for p in (PROJECT_ROOT / "src" / "campaigns").rglob("*.py")
                        if p.name != "reasons.py")
    for code in documented:
        assert f'"{code}"' in sources, f"{code} is documented but never emitted"
