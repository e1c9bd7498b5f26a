"""Money as a ledger (issue 23): statements, payments, reversals, refunds and plans that agree with each other
and with what customers are told. The five defects the issue reproduced each have a test here, on both databases.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from campaigns.channels.agent import AgentWorklistGateway
from campaigns.ladder.config import load_ladder
from campaigns.db.models import (
    Account,
    ContactAttempt,
    LedgerEntry,
    PaymentPromise,
    PlanInstalment,
    RepaymentPlan,
    Stage,
)
from campaigns.delivery.deliver import deliver_queued
from campaigns.money import ledger
from campaigns.money.agency import AgencyError, place_with_agency, recall, report_to_agency
from campaigns.money.derivation import Entry, Instalment, derive_figures, plan_state
from campaigns.money.offers import PlanError, accept_offer, break_overdue_plans
from campaigns.money.payments import (
    PaymentError,
    import_payments,
    money_events,
    record_payment,
    refund_credit,
    reverse_payment,
)
from campaigns.money.promises import record_promise
from campaigns.ladder.config import AgencyRules
from campaigns.portfolio.importer import import_portfolio
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.fakes import FakeGateway
from tests.portfolio.test_import import GOOD, write_csv as write_portfolio
from tests.contact.test_pipeline import POLICY, run_stage
from tests.money.test_plan_lifecycle import RULES, offer, plan_row

ZONE = ZoneInfo("America/New_York")
USD = "USD"


# --- The derivation itself, pure ---------------------------------------------------------------------------

def _entry(n: int, kind: str, at: datetime, **values) -> Entry:
    return Entry(id=n, kind=kind, effective_at=at, recorded_at=at, **values)


T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@given(balance=st.integers(0, 10**6), due=st.integers(0, 10**6),
       events=st.lists(st.tuples(st.sampled_from(["payment", "fee", "refund"]), st.integers(1, 10**6),
                                 st.integers(-5, 5)), max_size=8))
def test_figures_follow_the_latest_statement_and_what_came_after_it(balance, due, events):
    due = min(due, balance)
    entries = [_entry(1, "statement", T0, balance=Decimal(balance) / 100, amount_due=Decimal(due) / 100,
                      due_date=date(2026, 11, 20), lender_status="open")]
    position, owed_due = Decimal(balance) / 100, Decimal(due) / 100
    for n, (kind, cents, days) in enumerate(events, start=2):
        at = T0 + timedelta(days=days)
        entries.append(_entry(n, kind, at, amount=Decimal(cents) / 100, payment_id=n))
        if at >= T0:  # on or after the statement's moment (ties: recorded after it): on top of it
            position += Decimal(cents) / 100 * (-1 if kind == "payment" else 1)
            owed_due -= Decimal(cents) / 100 if kind == "payment" else 0
    f = derive_figures(entries, USD)
    assert f.balance == max(position, 0) and f.credit == max(-position, 0)
    assert not (f.balance and f.credit) and 0 <= f.amount_due <= f.balance
    assert f.amount_due == min(max(owed_due, 0), f.balance)
    assert f.paid_off_at is None or f.balance == 0  # a payoff only while nothing is owed
    if balance == 0 and not any(kind in ("fee", "refund") and days >= 0 for kind, _, days in events):
        assert f.paid_off_at is None  # nothing was ever owed: nothing was paid off


def test_a_reversal_puts_its_payment_back_and_a_later_statement_includes_what_came_before_it():
    entries = [_entry(1, "statement", T0, balance=Decimal(500), amount_due=Decimal(100), due_date=date(2026, 11, 20)),
               _entry(2, "payment", T0 + timedelta(days=1), amount=Decimal(500), payment_id=7)]
    paid = derive_figures(entries, USD)
    assert (paid.balance, paid.amount_due, paid.paid_off_at) == (0, 0, T0 + timedelta(days=1))
    entries.append(_entry(3, "reversal", T0 + timedelta(days=2), amount=Decimal(500), payment_id=7))
    back = derive_figures(entries, USD)
    assert (back.balance, back.amount_due, back.paid_off_at) == (500, 100, None)
    # A statement as of after the payment but before its reversal: the payment is in it, the reversal on top.
    entries.append(_entry(4, "statement", T0 + timedelta(days=1, hours=1), balance=Decimal(0),
                          amount_due=Decimal(0), due_date=date(2026, 12, 20)))
    assert derive_figures(entries, USD).balance == 500


def test_a_plan_is_paid_oldest_first_waived_from_the_end_and_reports_what_it_does_not_cover():
    schedule = [Instalment(1, date(2026, 12, 1), Decimal(200)), Instalment(2, date(2027, 1, 1), Decimal(200)),
                Instalment(3, date(2027, 2, 1), Decimal(200))]
    entries = [_entry(1, "statement", T0, balance=Decimal(600), amount_due=Decimal(600)),
               _entry(2, "payment", T0, amount=Decimal(250), payment_id=1)]
    state = plan_state(schedule, entries, ledger_from=1, balance=Decimal(350))
    assert [(i.paid, i.waived) for i in state.instalments] == [(200, 0), (50, 0), (0, 0)]
    assert state.next_due.seq == 2 and state.next_due.left == 150 and state.excess == 0
    lower = plan_state(schedule, entries, ledger_from=1, balance=Decimal(100))  # the lender now says 100
    assert [i.left for i in lower.instalments] == [0, 100, 0] and [i.waived for i in lower.instalments] == [0, 50, 200]
    higher = plan_state(schedule, entries, ledger_from=1, balance=Decimal(500))
    assert higher.excess == 150 and not higher.settled


# --- The five defects of issue 23 --------------------------------------------------------------------------

def account(engine, account_id: str = "A1"):
    with engine.connect() as conn:
        return conn.execute(select(Account).where(Account.id == account_id)).one()


def check_ok(engine) -> None:
    report = ledger.check(engine, ZONE, NOW)
    assert report.ok, report.mismatched


def test_1_a_later_statement_without_its_moment_does_not_silently_undo_a_payment(engine, tmp_path):
    row = dict(GOOD, balance="4008.79", amount_due="4008.79", due_date="2026-12-21")
    import_portfolio(engine, write_portfolio(tmp_path / "p.csv", [row]), now=NOW, zone=ZONE)
    record_payment(engine, "A1", Decimal("4008.79"), datetime(2026, 12, 21, 15, tzinfo=timezone.utc),
                   NOW + timedelta(days=29), ZONE)
    assert account(engine).status == "paid"
    moved = write_portfolio(tmp_path / "moved.csv", [dict(row, due_date="2026-12-28")])
    report = import_portfolio(engine, moved, now=NOW + timedelta(days=30), zone=ZONE)
    [error] = report.errors
    assert error.field == "balance" and "account A1" in error.message and "1 payment(s)" in error.message
    assert "4008.79" not in error.message
    a = account(engine)
    assert (a.balance, a.status, a.paid_off_at is not None) == (0, "paid", True)
    check_ok(engine)


def _plan(engine, account_id: str = "A1", **kwargs):
    offer(engine, account_id)
    return accept_offer(engine, account_id, 1, NOW, AS_OF, RULES, zone=ZONE, **kwargs)


def _statement(engine, tmp_path, name: str, now: datetime, as_of: datetime | None = None, **changes):
    row = dict(GOOD, **changes)
    return import_portfolio(engine, write_portfolio(tmp_path / f"{name}.csv", [row]), now=now, zone=ZONE,
                            balance_as_of=as_of)


def test_2_a_lower_statement_shrinks_the_plan_and_paying_the_rest_completes_it(engine, tmp_path):
    _statement(engine, tmp_path, "first", NOW - timedelta(days=1), balance="600.00", amount_due="600.00",
               due_date="2026-11-01")
    _plan(engine)  # 3 x 200.00
    report = _statement(engine, tmp_path, "lower", NOW + timedelta(hours=1), balance="50.00", amount_due="50.00",
                        due_date="2026-11-01")
    assert report.ok and report.statements_recorded == 1
    a = account(engine)
    assert (a.balance, a.plan_amount_due, a.plan_due_date) == (Decimal("50.00"), Decimal("50.00"), date(2026, 11, 29))
    paid = record_payment(engine, "A1", Decimal("50.00"), NOW + timedelta(hours=2), NOW + timedelta(hours=2), ZONE)
    assert paid.plans_completed == 1 and paid.accounts_paid_off == 1
    plan = plan_row(engine, "A1")
    a = account(engine)
    assert (plan.status, a.status, a.plan_due_date, a.plan_amount_due) == ("completed", "paid", None, None)
    # Ten days after its first date, the daily check finds nothing to break.
    with engine.begin() as conn:
        assert break_overdue_plans(conn, date(2026, 12, 10), NOW + timedelta(days=18), RULES, ZONE) == 0
    check_ok(engine)


def test_2_a_higher_statement_adds_the_difference_to_the_plan_and_it_completes_only_when_all_is_paid(engine, tmp_path):
    _statement(engine, tmp_path, "first", NOW - timedelta(days=1), balance="600.00", amount_due="600.00",
               due_date="2026-11-01")
    _plan(engine)
    later = NOW + timedelta(hours=1)
    _statement(engine, tmp_path, "higher", later, balance="900.00", amount_due="900.00", due_date="2026-11-01")
    with engine.connect() as conn:
        rows = conn.execute(select(PlanInstalment.seq, PlanInstalment.due_date, PlanInstalment.amount,
                                   PlanInstalment.added_at).order_by(PlanInstalment.seq)).all()
    assert [(r.seq, r.amount) for r in rows] == [(1, 200), (2, 200), (3, 200), (4, 300)]
    assert rows[3].due_date == date(2027, 2, 28) and rows[3].added_at is not None  # a month after the last
    record_payment(engine, "A1", Decimal("600.00"), later + timedelta(hours=1), later + timedelta(hours=1), ZONE)
    plan, a = plan_row(engine, "A1"), account(engine)
    assert (plan.status, a.balance, a.plan_due_date, a.plan_amount_due) == (
        "accepted", Decimal("300.00"), date(2027, 2, 28), Decimal("300.00"))
    record_payment(engine, "A1", Decimal("300.00"), later + timedelta(hours=2), later + timedelta(hours=2), ZONE)
    assert (plan_row(engine, "A1").status, account(engine).status) == ("completed", "paid")
    check_ok(engine)


def test_2_after_a_reimport_a_payment_leaves_no_instalment_on_an_account_that_owes_nothing(engine, tmp_path):
    _statement(engine, tmp_path, "first", NOW - timedelta(days=1), balance="600.00", amount_due="600.00",
               due_date="2026-11-01")
    _plan(engine)
    _statement(engine, tmp_path, "lower", NOW + timedelta(hours=1), balance="173.34", amount_due="173.34",
               due_date="2026-11-01")
    record_payment(engine, "A1", Decimal("173.34"), NOW + timedelta(hours=2), NOW + timedelta(hours=2), ZONE)
    a = account(engine)
    assert (a.balance, a.plan_due_date, a.plan_amount_due, a.status) == (0, None, None, "paid")
    check_ok(engine)


def test_a_reversal_that_reopens_a_plan_adds_what_is_owed_beyond_it_with_what_was_over_paid_in_it(engine, tmp_path):
    """Found by the property test: the instalment added to a reopened plan carries the over-payment its payments
    brought (the 0.01 beyond the three instalments), so the plan and the balance agree at once and stay so."""
    _statement(engine, tmp_path, "first", NOW - timedelta(days=1), balance="600.00", amount_due="600.00",
               due_date="2026-11-01")
    _plan(engine)
    record_payment(engine, "A1", Decimal("600.01"), NOW, NOW, ZONE, payment_id="P0")
    record_payment(engine, "A1", Decimal("10.18"), NOW, NOW, ZONE, payment_id="P1")
    _statement(engine, tmp_path, "later", NOW + timedelta(days=1), as_of=NOW + timedelta(days=1), balance="0.07",
               amount_due="0.00", due_date="2026-11-01")
    assert plan_row(engine, "A1").status == "completed" and account(engine).balance == Decimal("0.07")
    assert reverse_payment(engine, "P1", "chargeback", NOW + timedelta(days=2), ZONE).plans_reopened == 1
    with engine.connect() as conn:
        added = conn.execute(select(PlanInstalment.amount, PlanInstalment.paid)
                             .where(PlanInstalment.seq == 4)).one()
    assert tuple(added) == (Decimal("10.26"), Decimal("0.01"))
    a = account(engine)
    assert (a.balance, a.plan_amount_due) == (Decimal("10.25"), Decimal("10.25"))
    check_ok(engine)


def gateways(engine):
    fake = FakeGateway()
    return fake, {"email": fake, "sms": fake, "push": fake, "agent": AgentWorklistGateway(engine)}


def thanks(engine, ladder, day: date) -> int:
    fake, gw = gateways(engine)
    run_stage(engine, ladder, Stage.thank_you, gw, as_of=day, now=datetime.combine(day, NOW.timetz()))
    return len(fake.sent)


def test_3_a_reversal_reopens_the_account_and_a_later_real_payoff_is_thanked_once(engine, ladder):
    add_account(engine, "A1", days_past_due=5)
    record_payment(engine, "A1", Decimal("600.00"), NOW, NOW, ZONE, payment_id="P1")
    assert thanks(engine, ladder, AS_OF + timedelta(days=1)) == 1
    report = reverse_payment(engine, "P1", "chargeback", NOW + timedelta(days=2), ZONE)
    assert report.reversals_loaded == 1 and report.accounts_reopened == 1
    a = account(engine)
    assert (a.status, a.balance, a.amount_due, a.paid_off_at) == ("open", Decimal("600.00"), Decimal("120.50"), None)
    assert reverse_payment(engine, "P1", "chargeback", NOW + timedelta(days=3), ZONE).already_recorded == 1
    with pytest.raises(PaymentError, match="already reversed"):
        reverse_payment(engine, "P1", "error", NOW, ZONE, reversal_id="R-other")
    assert thanks(engine, ladder, AS_OF + timedelta(days=3)) == 0  # owes again: nobody is thanked
    record_payment(engine, "A1", Decimal("600.00"), NOW + timedelta(days=3), NOW + timedelta(days=3), ZONE,
                   payment_id="P2")
    # A new payoff: thanked once (on the 27th: the 26th is Thanksgiving, when nothing goes out).
    assert thanks(engine, ladder, AS_OF + timedelta(days=5)) == 1
    assert thanks(engine, ladder, AS_OF + timedelta(days=6)) == 0
    # The review counts what stayed: the reversed payment is not recovered money.
    from campaigns.money.ledger import standing
    from campaigns.db.models import Payment
    with engine.connect() as conn:
        assert conn.execute(select(Payment.payment_id).where(standing())).scalars().all() == ["P2"]
    check_ok(engine)


def test_3_a_payment_from_long_ago_is_in_the_statement_and_can_be_undone_and_credit_refunded(engine):
    add_account(engine, "A1", days_past_due=5)
    old = record_payment(engine, "A1", Decimal("5"), datetime(1900, 1, 1, 15, tzinfo=timezone.utc), NOW, ZONE,
                         payment_id="OLD")
    assert old.in_statement == 1 and account(engine).balance == Decimal("600.00")
    assert reverse_payment(engine, "OLD", "recorded_in_error", NOW, ZONE).reversals_loaded == 1
    assert account(engine).balance == Decimal("605.00")  # the statement had it as paid: now it is owed
    record_payment(engine, "A1", Decimal("905.09"), NOW, NOW, ZONE)
    a = account(engine)
    assert (a.balance, a.credit, a.status) == (0, Decimal("300.09"), "paid")
    with pytest.raises(PaymentError, match="more than the credit"):
        refund_credit(engine, "A1", Decimal("400"), "RF-1", NOW, ZONE)
    assert refund_credit(engine, "A1", Decimal("300.09"), "RF-1", NOW, ZONE).refunds_loaded == 1
    assert refund_credit(engine, "A1", Decimal("300.09"), "RF-1", NOW + timedelta(hours=1), ZONE).already_recorded == 1
    a = account(engine)
    assert (a.balance, a.credit, a.status) == (0, 0, "paid")
    kinds = [e["kind"] for e in money_events(engine, "A1")]
    assert kinds == ["payment", "statement", "reversal", "payment", "refund"]
    check_ok(engine)


def test_3_a_reversal_reopens_a_kept_promise_before_its_day_and_breaks_it_after(engine):
    add_account(engine, "A1", days_past_due=10)
    add_account(engine, "A2", days_past_due=10)
    for account_id in ("A1", "A2"):
        record_promise(engine, account_id, Decimal("100.00"), AS_OF + timedelta(days=3), NOW, AS_OF)
        record_payment(engine, account_id, Decimal("100.00"), NOW + timedelta(hours=1), NOW + timedelta(hours=1), ZONE,
                       payment_id=f"P-{account_id}")
    reverse_payment(engine, "P-A1", "returned", NOW + timedelta(days=1), ZONE)  # before the promised day
    reverse_payment(engine, "P-A2", "returned", NOW + timedelta(days=5), ZONE)  # after it
    with engine.connect() as conn:
        promises = dict(conn.execute(select(PaymentPromise.account_id, PaymentPromise.status)).all())
    assert promises == {"A1": "open", "A2": "broken"}
    check_ok(engine)


def test_3_a_reversal_of_an_instalment_reopens_a_completed_plan_and_the_break_rule_judges_it(engine):
    add_account(engine, "A1", days_past_due=20)
    _plan(engine)  # 3 x 200.00 from 2026-11-29
    record_payment(engine, "A1", Decimal("600.00"), NOW, NOW, ZONE, payment_id="ALL")
    assert plan_row(engine, "A1").status == "completed"
    report = reverse_payment(engine, "ALL", "chargeback", NOW + timedelta(days=1), ZONE)
    assert report.plans_reopened == 1 and plan_row(engine, "A1").status == "accepted"
    a = account(engine)
    assert (a.status, a.plan_due_date, a.plan_amount_due) == ("open", date(2026, 11, 29), Decimal("200.00"))
    with engine.begin() as conn:
        assert break_overdue_plans(conn, date(2026, 12, 10), NOW + timedelta(days=18), RULES, ZONE) == 1
    assert plan_row(engine, "A1").status == "broken" and account(engine).plan_due_date is None
    check_ok(engine)


def test_4_a_plan_cannot_start_beyond_max_start_days_after_its_offer(engine):
    add_account(engine, "A1", days_past_due=20)
    offer(engine, "A1")
    with pytest.raises(PlanError, match="at most 30 days after its offer.*2026-12-22 at the latest, not 2099-01-01"):
        accept_offer(engine, "A1", 1, NOW, AS_OF, RULES, start=date(2099, 1, 1), zone=ZONE)
    plan = accept_offer(engine, "A1", 1, NOW, AS_OF, RULES, start=date(2026, 12, 22), zone=ZONE)
    assert plan.schedule[0][0] == date(2026, 12, 22)


def test_5_a_placed_account_paid_in_full_is_closed_reported_to_the_agency_and_not_thanked(engine, ladder, tmp_path):
    add_account(engine, "A1", days_past_due=95)
    rules = AgencyRules(name="Northwind", min_days_past_due=90)
    assert place_with_agency(engine, rules, AS_OF, NOW, tmp_path, ZONE).accounts == 1
    assert account(engine).status == "placed"
    record_payment(engine, "A1", Decimal("600.00"), NOW + timedelta(hours=1), NOW + timedelta(hours=1), ZONE,
                   payment_id="AGENCY-PAID")
    a = account(engine)
    assert (a.status, a.balance, a.placed_with) == ("closed", 0, "Northwind")
    assert thanks(engine, ladder, AS_OF + timedelta(days=1)) == 0
    with pytest.raises(AgencyError, match="cannot be recalled: it was paid in full on 2026-11-22 while placed with "
                                          "Northwind"):
        recall(engine, "A1", NOW + timedelta(days=1), ZONE)
    feed = report_to_agency(engine, "Northwind", NOW + timedelta(days=1), tmp_path)
    rows = list(csv.DictReader(feed.file.open()))
    assert [(r["account_id"], r["event"], r["amount"], r["payment_id"], r["status_now"]) for r in rows] == [
        ("A1", "payment", "600.00", "AGENCY-PAID", "closed")]
    assert report_to_agency(engine, "Northwind", NOW + timedelta(days=1), tmp_path).rows == 0  # each event once
    # A reversal puts it back with the agency; the next file says so.
    reverse_payment(engine, "AGENCY-PAID", "chargeback", NOW + timedelta(days=2), ZONE)
    assert account(engine).status == "placed"
    rows = list(csv.DictReader(report_to_agency(engine, "Northwind", NOW + timedelta(days=2), tmp_path).file.open()))
    assert [(r["event"], r["status_now"]) for r in rows] == [("reversal", "placed")]
    check_ok(engine)


def test_5_a_lender_may_thank_customers_who_paid_while_placed(engine, ladder_file, tmp_path):
    import yaml

    data = yaml.safe_load(ladder_file.read_text())
    data["stages"]["thank_you"]["include_placed"] = True
    ladder_file.write_text(yaml.safe_dump(data))
    add_account(engine, "A1", days_past_due=95)
    place_with_agency(engine, AgencyRules(name="Northwind", min_days_past_due=90), AS_OF, NOW, tmp_path, ZONE)
    record_payment(engine, "A1", Decimal("600.00"), NOW + timedelta(hours=1), NOW + timedelta(hours=1), ZONE)
    assert thanks(engine, load_ladder(ladder_file), AS_OF + timedelta(days=1)) == 1


# --- What customers are told ------------------------------------------------------------------------------

def test_a_queued_message_whose_figures_changed_is_not_sent_and_the_next_run_writes_it_again(engine, ladder):
    add_account(engine, "A1", days_past_due=5, customer={"timezone": "America/Los_Angeles",
                                                         "phone": "+14155550100"})
    fake, gw = gateways(engine)
    run_stage(engine, ladder, Stage.soft_nudge, gw, now=NOW)  # 06:00 in Los Angeles: deferred
    with engine.connect() as conn:
        attempt = conn.execute(select(ContactAttempt.id, ContactAttempt.status, ContactAttempt.figures)).one()
    assert attempt.status == "deferred" and attempt.figures == account(engine).figures
    record_payment(engine, "A1", Decimal("20.00"), NOW + timedelta(hours=1), NOW + timedelta(hours=1), ZONE)
    assert account(engine).amount_due == Decimal("100.50")  # not cured: the message is not stopped as paid
    later = NOW + timedelta(hours=4)  # 10:00 in Los Angeles
    deliver_queued(engine, gw, now=later, policy=POLICY, include_queued=False)
    with engine.connect() as conn:
        stopped = conn.execute(select(ContactAttempt.status, ContactAttempt.reason)
                               .where(ContactAttempt.id == attempt.id)).one()
    assert tuple(stopped) == ("suppressed", "figures_changed") and fake.sent == []
    # Three days on (every_days), the stage writes it with the ledger's figures of that moment.
    run_stage(engine, ladder, Stage.soft_nudge, gw, as_of=AS_OF + timedelta(days=3),
              now=NOW + timedelta(days=3, hours=4))
    [sent] = fake.sent
    assert "$100.50" in sent.text and "$120.50" not in sent.text


def test_nothing_but_the_ledger_writes_an_accounts_money(engine):
    """Every module that changes an account's derived columns does it through ``money.ledger.refresh``."""
    import ast

    from campaigns.db.models import ACCOUNT_DERIVED
    from campaigns.settings import PROJECT_ROOT

    root = PROJECT_ROOT
    offenders = []
    for path in [*(root / "src" / "campaigns").rglob("*.py"), *(root / "tasks").glob("*.py"),
                 *(root / "flows").glob("*.py")]:
        if path.name == "ledger.py" or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # update(Account)...values(balance=...) / Account.__table__.update().values(...)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values":
                target = ast.unparse(node.func.value)
                if "Account" in target and "AccountAttempt" not in target and (
                        "update" in target and "Account)" in target or "Account.__table__.update" in target):
                    written = {k.arg for k in node.keywords}
                    if written & set(ACCOUNT_DERIVED):
                        offenders.append(f"{path.relative_to(root)}:{node.lineno}: {sorted(written & set(ACCOUNT_DERIVED))}")
    assert offenders == []


def test_a_plan_page_shows_the_split_of_what_is_owed_now_and_accepting_it_keeps_its_word(engine):
    from starlette.testclient import TestClient

    from campaigns.delivery.webhooks import PlanLinks, create_app
    from tests.money.test_plan_lifecycle import SECRET

    add_account(engine, "A1", days_past_due=20)  # balance 600.00: the message offered 3 x $200.00
    tokens = offer(engine, "A1")["tokens"]
    record_payment(engine, "A1", Decimal("150.00"), NOW, NOW, ZONE)  # since the message: 450.00 owed
    client = TestClient(create_app(engine, plan_links=PlanLinks(SECRET, RULES, ZONE, clock=lambda: NOW)))
    page = client.get(f"/plans/{tokens[1]}")
    assert page.status_code == 200 and "3 payments of $150.00" in page.text and "$200.00" not in page.text
    assert client.post(f"/plans/{tokens[1]}").status_code == 200
    with engine.connect() as conn:
        amounts = conn.execute(select(PlanInstalment.amount).order_by(PlanInstalment.seq)).scalars().all()
    assert amounts == [Decimal("150.00")] * 3
    add_account(engine, "A2", days_past_due=20)
    other = offer(engine, "A2")["tokens"]
    record_payment(engine, "A2", Decimal("600.00"), NOW, NOW, ZONE)
    paid = client.get(f"/plans/{other[0]}")
    assert paid.status_code == 409 and "Nothing is owed" in paid.text


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"type": "reversal", "reverses": "NOPE"}, "reverses", "payment NOPE is not recorded"),
    ({"type": "reversal", "reverses": "P1", "amount": "10.00"}, "amount", "a reversal undoes its whole payment"),
    ({"type": "reversal", "reverses": "P1", "paid_at": "2026-11-20T10:00:00-05:00"}, "paid_at", "is before the payment"),
    ({"type": "reversal", "reverses": "P1", "reason": "John Smith said so"}, "reason", "a short code"),
    ({"type": "refund", "amount": "1.00"}, "amount", "more than the credit account A1 holds (0.00 USD)"),
    ({"type": "gift"}, "type", "is not one of payment, reversal, refund"),
    ({"reverses": "P1"}, "reverses", "is only for a reversal"),
])
def test_a_bad_reversal_or_refund_row_costs_only_its_row(engine, tmp_path, row, field, message):
    from tests.money.test_payments import payment, write_csv

    add_account(engine, "A1", days_past_due=5)
    good = payment(payment_id="P1", amount="100.00")
    bad = payment(**{"payment_id": "X1", "amount": "100.00", **row})
    report = import_payments(engine, write_csv(tmp_path / "p.csv", [good, bad, payment(payment_id="P2")]), NOW,
                             ZONE)
    [error] = report.errors
    assert (error.row, error.field) == (3, field) and message in error.message, str(error)
    assert "John" not in error.message
    assert report.payments_loaded == 2 and account(engine).balance == Decimal("479.50")


def test_a_file_reverses_and_refunds_in_its_own_rows_once(engine, tmp_path):
    from tests.money.test_payments import payment, write_csv

    add_account(engine, "A1", days_past_due=5)
    rows = [payment(payment_id="P1", amount="650.00"),
            payment(payment_id="R1", type="refund", amount="50.00", paid_at="2026-11-21T12:00:00-05:00"),
            payment(payment_id="CB1", type="reversal", reverses="P1", amount="650.00", reason="chargeback",
                    paid_at="2026-11-21T13:00:00-05:00")]
    path = write_csv(tmp_path / "p.csv", rows)
    report = import_payments(engine, path, NOW, ZONE)
    assert report.ok and (report.payments_loaded, report.refunds_loaded, report.reversals_loaded) == (1, 1, 1)
    a = account(engine)
    assert (a.balance, a.credit, a.status) == (Decimal("650.00"), 0, "open")  # 600 + the 50 paid back
    again = import_payments(engine, path, NOW, ZONE)
    assert again.ok and again.already_recorded == 3 and account(engine).balance == Decimal("650.00")
