"""The ladder around money: who stays out of which stage, the worklist agents work from, and agency placement."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import insert, select

from campaigns.contact.cohorts import iter_cohort
from campaigns.ladder.config import AgencyRules
from campaigns.customers.worklist import (
    WorklistError,
    export_worklist,
    open_worklist,
    prioritise,
    record_outcome,
)
from campaigns.db.models import Account, AgentWorklistItem, ContactAttempt, Dispute, PaymentPromise, Stage
from campaigns.money.agency import AgencyError, place_with_agency, recall
from campaigns.money.payments import record_payment
from campaigns.money.promises import record_promise
from campaigns.money.spreadsheet import neutralise_cell
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.contact.test_pipeline import POLICY, attempts, run_stage
from tests.money.test_payments import _attempt
from tests.fakes import FakeGateway

ZONE = ZoneInfo("America/New_York")


def cohort_ids(engine, ladder, stage: Stage, as_of: date = AS_OF) -> list[str]:
    with engine.connect() as conn:
        return [i for chunk in iter_cohort(conn, ladder.rule(stage), as_of, 100) for i in chunk["account_id"]]


def put_in_plan(engine, account_id: str, due: date, amount: str) -> None:
    with engine.begin() as conn:
        conn.execute(Account.__table__.update().where(Account.id == account_id)
                     .values(plan_due_date=due, plan_amount_due=Decimal(amount)))


def test_a_plan_keeps_the_account_out_of_dunning_but_reminds_it_of_each_instalment(engine, ladder):
    add_account(engine, "PLAN", days_past_due=20)
    add_account(engine, "LATE", days_past_due=20)
    put_in_plan(engine, "PLAN", AS_OF + timedelta(days=3), "200.00")
    assert cohort_ids(engine, ladder, Stage.plan_offer) == ["LATE"]
    with engine.connect() as conn:
        [chunk] = list(iter_cohort(conn, ladder.rule(Stage.pre_due), AS_OF, 100))
    assert chunk[["account_id", "due_date", "amount_due", "in_plan"]].to_dict("records") == [
        {"account_id": "PLAN", "due_date": AS_OF + timedelta(days=3), "amount_due": Decimal("200.0000"),
         "in_plan": True}]


def test_an_open_promise_keeps_the_account_out_of_every_stage(engine, ladder):
    add_account(engine, "P", days_past_due=5)
    record_promise(engine, "P", Decimal("50"), AS_OF + timedelta(days=2), NOW, AS_OF)
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == []
    with engine.begin() as conn:
        conn.execute(PaymentPromise.__table__.update().values(status="broken"))
    assert cohort_ids(engine, ladder, Stage.soft_nudge) == ["P"]


def test_the_thank_you_goes_once_to_accounts_paid_off_lately(engine, ladder):
    add_account(engine, "PAID", days_past_due=5)
    add_account(engine, "OLD", days_past_due=5)
    record_payment(engine, "PAID", Decimal("600.00"), NOW - timedelta(hours=2), NOW, ZONE)
    record_payment(engine, "OLD", Decimal("600.00"), NOW - timedelta(days=9), NOW, ZONE)
    assert cohort_ids(engine, ladder, Stage.thank_you) == ["PAID"]
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.thank_you, {"email": gateway})
    run_stage(engine, ladder, Stage.thank_you, {"email": gateway})  # a re-run
    assert [m.account_id for m in gateway.sent] == ["PAID"] and "paid in full" in gateway.sent[0].text
    assert cohort_ids(engine, ladder, Stage.thank_you, AS_OF + timedelta(days=1)) == []


def test_a_thank_you_follows_every_compliance_rule(engine, ladder):
    add_account(engine, "OPTED", days_past_due=5, customer={"email_opt_out": True, "sms_consent": False})
    record_payment(engine, "OPTED", Decimal("600.00"), NOW, NOW, ZONE)
    run_stage(engine, ladder, Stage.thank_you, {"email": FakeGateway(), "sms": FakeGateway()})
    assert {(a.channel, a.status, a.reason) for a in attempts(engine)} == {
        ("email", "suppressed", "opted_out"), ("sms", "suppressed", "no_consent"), ("push", "suppressed", "no_consent")}


def item(engine, account_id: str, *, dpd: int = 50, balance: str = "600.00", tried: dict | None = None) -> None:
    add_account(engine, account_id, days_past_due=dpd, balance=Decimal(balance), amount_due=Decimal("100.00"),
                customer={"name": f"=HYPERLINK(\"http://x\",\"{account_id}\")" if account_id == "EVIL" else "Ann"})
    with engine.begin() as conn:
        conn.execute(insert(AgentWorklistItem.__table__), {
            "attempt_id": _attempt(conn, account_id, "escalation", "sent"), "account_id": account_id,
            "reason": "aged_debt", "days_past_due": dpd, "amount_due": Decimal("100.00"), "currency": "USD",
            "tried": tried or {}, "status": "open", "created_at": NOW})


def test_the_worklist_puts_large_old_unreached_debts_first():
    frame = pd.DataFrame({
        "account_id": ["small", "large", "reached", "broke"], "currency": ["USD"] * 4,
        "balance": [Decimal(100), Decimal(5000), Decimal(5000), Decimal(100)], "days_past_due": [50, 50, 50, 50],
        "broken_plans": [0, 0, 0, 1], "broken_promises": [0, 0, 0, 0], "reached": [False, False, True, False],
        "no_answers": [0, 0, 0, 0]})
    ranked = prioritise(frame)
    assert ranked["account_id"].tolist() == ["large", "broke", "reached", "small"]
    # 40 x balance rank (0.875 or 0.375) + 30 x 50/180 days + 10 a broken plan + 10 never reached
    assert ranked["priority"].tolist() == [53.3, 43.3, 43.3, 33.3]


def test_the_export_neutralises_formulas_and_keeps_the_plan_history(engine, tmp_path):
    item(engine, "EVIL")
    item(engine, "PLAIN", balance="100.00")
    frame = open_worklist(engine)
    assert frame["account_id"].tolist() == ["EVIL", "PLAIN"]
    assert export_worklist(frame, tmp_path / "w.csv") == 2
    with (tmp_path / "w.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["name"] == "'=HYPERLINK(\"http://x\",\"EVIL\")" and rows[1]["name"] == "Ann"
    assert oct((tmp_path / "w.csv").stat().st_mode & 0o777) == "0o600"
    export_worklist(frame, tmp_path / "w.parquet")
    assert pd.read_parquet(tmp_path / "w.parquet")["name"][0].startswith("=HYPERLINK")  # data, in a data file
    with pytest.raises(WorklistError, match="use .csv or .parquet"):
        export_worklist(frame, tmp_path / "w.xlsx")
    assert [neutralise_cell(v) for v in ("+1", "-1", "@a", "\tx", "ok", 5)] == ["'+1", "'-1", "'@a", "'\tx", "ok", 5]


def test_an_agents_outcome_counts_toward_the_call_caps_and_opens_a_promise_or_dispute(engine):
    item(engine, "A1")
    item(engine, "A2")
    followed = record_outcome(engine, POLICY, "A1", "promise", NOW, AS_OF, amount=Decimal("50"),
                              by=AS_OF + timedelta(days=5))
    assert followed == [f"promise of 50 by {AS_OF + timedelta(days=5)} opened: no reminders while it is open"]
    record_outcome(engine, POLICY, "A2", "dispute", NOW, AS_OF)
    with engine.connect() as conn:
        calls = conn.execute(select(ContactAttempt.account_id, ContactAttempt.outcome)
                             .where(ContactAttempt.channel == "call")).all()
        assert conn.execute(select(PaymentPromise.status)).scalar_one() == "open"
        assert conn.execute(select(Dispute.account_id)).scalar_one() == "A2"
        outcomes = dict(conn.execute(select(AgentWorklistItem.account_id, AgentWorklistItem.outcome)).all())
    assert sorted(calls) == [("A1", "connected"), ("A2", "connected")]
    assert outcomes == {"A1": "promise", "A2": "dispute"}
    with pytest.raises(WorklistError, match="unknown outcome 'maybe'"):
        record_outcome(engine, POLICY, "A1", "maybe", NOW, AS_OF)
    with pytest.raises(WorklistError, match="needs --amount and --by"):
        record_outcome(engine, POLICY, "A1", "promise", NOW, AS_OF)


RULES = AgencyRules(name="Northwind", min_days_past_due=90, min_balance={"USD": 100})


def test_placement_hands_over_only_what_the_agency_needs_and_stops_all_contact(engine, tmp_path, ladder):
    add_account(engine, "OLD", days_past_due=95)
    add_account(engine, "YOUNG", days_past_due=60)
    add_account(engine, "SMALL", days_past_due=95, balance=Decimal("50.00"), amount_due=Decimal("50.00"))
    add_account(engine, "DISPUTED", days_past_due=95, disputed=True)
    add_account(engine, "VULNERABLE", days_past_due=95, customer={"vulnerable": True})
    with engine.begin() as conn:
        queued = _attempt(conn, "OLD", "escalation", "queued")
    placement = place_with_agency(engine, RULES, AS_OF, NOW, tmp_path / "agency")
    assert placement.accounts == 1
    with placement.file.open() as handle:
        [row] = list(csv.DictReader(handle))
    assert set(row) == {"account_id", "placed_on", "currency", "balance", "amount_due", "due_date", "days_past_due",
                        "name", "phone", "email", "country", "timezone", "locale", "do_not_email", "do_not_sms"}
    assert (row["account_id"], row["balance"], row["days_past_due"]) == ("OLD", "600.00", "95")
    assert oct(placement.file.stat().st_mode & 0o777) == "0o600"
    with engine.connect() as conn:
        assert conn.execute(select(ContactAttempt.status, ContactAttempt.reason)
                            .where(ContactAttempt.id == queued)).one() == ("suppressed", "placed")
    assert "OLD" not in cohort_ids(engine, ladder, Stage.escalation)
    assert place_with_agency(engine, RULES, AS_OF, NOW, tmp_path / "agency").accounts == 0  # once

    assert recall(engine, "OLD", NOW) == "Northwind"
    assert "OLD" in cohort_ids(engine, ladder, Stage.escalation)
    with pytest.raises(AgencyError, match="is open, not placed"):
        recall(engine, "OLD", NOW)


def test_a_broken_promise_or_plan_made_to_an_agent_puts_the_account_back_on_the_worklist(engine):
    from campaigns.money.offers import accept_offer, break_overdue_plans
    from campaigns.money.promises import break_overdue_promises
    from tests.money.test_plan_lifecycle import RULES as PLAN_RULES, offer

    item(engine, "PROMISED")
    item(engine, "PLANNED")
    record_outcome(engine, POLICY, "PROMISED", "promise", NOW, AS_OF, amount=Decimal("50"),
                   by=AS_OF + timedelta(days=2))
    offer(engine, "PLANNED")
    accept_offer(engine, "PLANNED", 1, NOW, AS_OF, PLAN_RULES)  # an agent takes the plan with the customer
    assert open_worklist(engine).empty
    with engine.begin() as conn:
        break_overdue_promises(conn, AS_OF + timedelta(days=3), NOW)
        break_overdue_plans(conn, AS_OF + timedelta(days=30), NOW, PLAN_RULES)
    frame = open_worklist(engine).set_index("account_id")
    assert frame.loc["PROMISED", "reason"] == "broken_promise" and "50.00 by 2026-11-24 broken" == frame.loc["PROMISED", "promises"]
    assert frame.loc["PLANNED", "reason"] == "broken_plan" and "broken" in frame.loc["PLANNED", "plans"]
    assert frame["priority"].min() > 0


def test_a_promise_above_the_balance_and_a_plan_link_without_its_token_are_refused(engine):
    from pydantic import ValidationError

    from campaigns.money.promises import PromiseError
    from campaigns.settings import Settings

    add_account(engine, "A1", days_past_due=5)
    with pytest.raises(PromiseError, match="more than the balance of account A1 \\(600.00 USD\\)"):
        record_promise(engine, "A1", Decimal("600.01"), AS_OF + timedelta(days=2), NOW, AS_OF)
    with pytest.raises(ValidationError, match="must contain \\{token\\}"):
        Settings(plan_url="https://pay.example.com/plans")


def test_a_thank_you_held_for_the_morning_is_released_not_stopped_by_being_paid(engine, ladder):
    from campaigns.delivery.deliver import deliver_queued

    add_account(engine, "PAID", days_past_due=5)
    night = NOW.replace(hour=6)  # 01:00 in New York
    record_payment(engine, "PAID", Decimal("600.00"), night, night, ZONE)
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.thank_you, {"email": gateway}, now=night)
    assert [(a.status, a.reason) for a in attempts(engine)] == [("deferred", "outside_contact_window")]
    tally = deliver_queued(engine, {"email": gateway}, now=NOW, policy=POLICY, include_queued=False)
    assert tally.total("sent") == 1 and [m.account_id for m in gateway.sent] == ["PAID"]


def test_an_offer_is_stored_once_per_day_and_a_dry_run_stores_none(engine, ladder):
    from campaigns.contact.pipeline import plan_stage_chunks, preview_chunk
    from campaigns.db.models import RepaymentPlan
    from tests.contact.test_pipeline import BRAND, TEMPLATES
    from campaigns.contact.pipeline import StageRun

    add_account(engine, "A1", days_past_due=20)
    run = StageRun("dry", Stage.plan_offer, AS_OF, NOW)
    for bounds in plan_stage_chunks(engine, ladder, Stage.plan_offer, AS_OF, 10):
        preview_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    with engine.connect() as conn:
        assert conn.execute(select(RepaymentPlan.id)).all() == []
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.plan_offer, {"email": gateway})
    run_stage(engine, ladder, Stage.plan_offer, {"email": gateway})  # a re-run of the day
    run_stage(engine, ladder, Stage.plan_offer, {"email": gateway}, as_of=AS_OF + timedelta(days=7))
    with engine.connect() as conn:
        offers = conn.execute(select(RepaymentPlan.offered_on, RepaymentPlan.status)
                              .order_by(RepaymentPlan.offered_on)).all()
    assert offers == [(AS_OF, "superseded"), (AS_OF + timedelta(days=7), "offered")]
    assert len(gateway.sent) == 2 and "Choose it: https://pay.example.com/" in gateway.sent[0].text
