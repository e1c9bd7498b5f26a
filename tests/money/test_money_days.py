"""Money coming back, end to end over simulated days, through the daily flow (as `campaigns daily --as-of --now`).

Five customers: one accepts a plan through the signed link, is reminded of each
instalment, pays it off and is thanked once; one accepts and breaks it and goes
to the agents with the plan on the worklist item; one promises and keeps it; one
promises and breaks it and is nudged again; one is placed with the agency and
hears nothing more. A re-run of a day sends nothing twice; every attempt is in a
final state with its reason.
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaigns.db.models import Account, AgentWorklistItem, ContactAttempt, OutboxMessage, PaymentPromise, RepaymentPlan
from campaigns.money.payments import record_payment
from campaigns.money.promises import record_promise
from tests.factories import add_account

pytestmark = pytest.mark.slow
ZONE = ZoneInfo("America/New_York")
DAY0 = date(2026, 11, 22)


def at(day: date) -> datetime:
    return datetime.combine(day, time(9, 0), ZONE).astimezone(timezone.utc)


def daily(day: date) -> dict[str, dict]:
    from flows.daily import daily_campaign

    return {s["stage"]: s for s in daily_campaign(as_of=day, now=at(day))}


def attempts(engine, account_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(ContactAttempt.as_of, ContactAttempt.stage, ContactAttempt.channel,
                                   ContactAttempt.status, ContactAttempt.reason)
                            .where(ContactAttempt.account_id == account_id).order_by(ContactAttempt.id)).all()


def contacted(engine, account_id: str) -> list[tuple[str, str]]:
    """(day, stage) of every message that went out to the account."""
    return [(a.as_of.isoformat(), a.stage) for a in attempts(engine, account_id) if a.status == "sent"]


def _traces(engine, account_id: str, stage: str) -> list[list[dict]]:
    with engine.connect() as conn:
        return list(conn.execute(select(ContactAttempt.policy_trace).where(
            ContactAttempt.account_id == account_id, ContactAttempt.stage == stage).order_by(ContactAttempt.id))
            .scalars())


def outbox_text(engine, account_id: str, stage: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(OutboxMessage.body_text).join(
            ContactAttempt, ContactAttempt.id == OutboxMessage.attempt_id).where(
            ContactAttempt.account_id == account_id, ContactAttempt.stage == stage).order_by(OutboxMessage.id))
            .scalars())


def test_plans_promises_placement_and_thanks_over_simulated_days(prefect_harness, engine, monkeypatch, tmp_path):
    from starlette.testclient import TestClient

    from campaigns import bootstrap
    from campaigns.delivery.webhooks import PlanLinks, create_app

    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))
    for account_id, dpd in (("PLAN-OK", 20), ("PLAN-BREAK", 40), ("PROMISE-KEPT", 5), ("PROMISE-BROKEN", 5),
                            ("PLACED", 95)):
        add_account(engine, account_id, due_date=DAY0 - timedelta(days=dpd))  # balance 600.00, due 120.50
    s = bootstrap.services()
    record_promise(engine, "PROMISE-KEPT", Decimal("100.00"), date(2026, 11, 25), at(DAY0), DAY0)
    record_promise(engine, "PROMISE-BROKEN", Decimal("100.00"), date(2026, 11, 24), at(DAY0), DAY0)

    day0 = daily(DAY0)
    assert day0["plan_offer"]["sent"] == 2 and day0["soft_nudge"]["cohort"] == 0  # promises: no nudge
    assert day0["escalation"]["cohort"] == 0  # PLACED went to the agency before the stages ran
    [placement] = (tmp_path / "agency").glob("placement-2026-11-22-*.csv")
    with placement.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["account_id"] for r in rows] == ["PLACED"] and "product" not in rows[0] and "tried" not in rows[0]

    # PLAN-OK takes the 3-instalment option through the link in its email; PLAN-BREAK through another one.
    client = TestClient(create_app(engine, plan_links=PlanLinks(s.brand.plan_link_secret, s.ladder.plan_rules, ZONE,
                                                                clock=lambda: at(DAY0) + timedelta(hours=2))))
    for account_id in ("PLAN-OK", "PLAN-BREAK"):
        [email] = outbox_text(engine, account_id, "plan_offer")
        links = re.findall(r"https://pay\.example\.com/plans/(\S+)", email)
        assert len(links) == 2  # 3 and 6 instalments of a $600.00 balance
        assert client.post(f"/plans/{links[0]}").status_code == 200
        again = client.post(f"/plans/{links[0]}")  # the same link again: the plan chosen, not an error
        assert again.status_code == 200 and "You already chose this plan" in again.text

    daily(date(2026, 11, 25))  # PROMISE-BROKEN's date passed yesterday: back in the ladder
    record_payment(engine, "PROMISE-KEPT", Decimal("120.50"), at(date(2026, 11, 25)), at(date(2026, 11, 25)), ZONE)
    from flows.dispatch import dispatch

    daily(date(2026, 11, 26))  # 3 days before the first instalment
    dispatch(now=at(date(2026, 11, 27)))  # what Thanksgiving held goes out the next morning
    daily(date(2026, 11, 28))  # 1 day before
    reminders = [(a.as_of.isoformat(), a.status, a.reason) for a in attempts(engine, "PLAN-OK") if a.stage == "pre_due"]
    # Same rules as any reminder: Thanksgiving (26 November 2026) held the first one for the dispatcher.
    assert reminders == [("2026-11-26", "sent", None), ("2026-11-28", "sent", None)]
    assert ["holiday"] == [t["reason"] for a in _traces(engine, "PLAN-OK", "pre_due") for t in a
                           if t.get("reason")][:1]
    assert "$200.00" in outbox_text(engine, "PLAN-OK", "pre_due")[0]  # the instalment, not the old amount due


    record_payment(engine, "PLAN-OK", Decimal("200.00"), at(date(2026, 11, 28)), at(date(2026, 11, 28)), ZONE)
    record_payment(engine, "PLAN-OK", Decimal("400.00"), at(date(2026, 12, 1)), at(date(2026, 12, 1)), ZONE)
    first = daily(date(2026, 12, 2))
    assert first["thank_you"]["sent"] == 1
    again = daily(date(2026, 12, 2))  # a re-run of the day sends nothing twice
    assert all(stage["sent"] == 0 for stage in again.values())
    daily(date(2026, 12, 3))
    thanks = outbox_text(engine, "PLAN-OK", "thank_you")
    assert len(thanks) == 1 and "paid in full" in thanks[0]

    daily(date(2026, 12, 10))  # 11 days after PLAN-BREAK's first instalment: broken, and 58 days late
    with engine.connect() as conn:
        plans = dict(conn.execute(select(RepaymentPlan.account_id, RepaymentPlan.status)
                                  .where(RepaymentPlan.accepted_at.is_not(None))).all())
        promises = dict(conn.execute(select(PaymentPromise.account_id, PaymentPromise.status)).all())
        item = conn.execute(select(AgentWorklistItem).where(AgentWorklistItem.account_id == "PLAN-BREAK")).one()
        statuses = dict(conn.execute(select(Account.id, Account.status)).all())
    assert plans == {"PLAN-OK": "completed", "PLAN-BREAK": "broken"}
    assert promises == {"PROMISE-KEPT": "kept", "PROMISE-BROKEN": "broken"}
    assert item.reason == "broken_plan" and item.tried["plans"][0]["status"] == "broken"
    assert statuses == {"PLAN-OK": "paid", "PLAN-BREAK": "open", "PROMISE-KEPT": "open", "PROMISE-BROKEN": "open",
                        "PLACED": "placed"}

    assert contacted(engine, "PLACED") == []
    assert ("2026-11-25", "soft_nudge") in contacted(engine, "PROMISE-BROKEN")
    assert [d for d, stage in contacted(engine, "PROMISE-KEPT") if d <= "2026-11-25"] == []
    assert [stage for _, stage in contacted(engine, "PLAN-BREAK")] == ["plan_offer", "pre_due", "pre_due",
                                                                       "escalation"]
    every = [a for account_id in statuses for a in attempts(engine, account_id)]
    assert every and all(a.status in ("sent", "suppressed", "holdout", "failed") for a in every)
    assert all(a.reason for a in every if a.status != "sent")
