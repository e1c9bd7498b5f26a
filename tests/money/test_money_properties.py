"""The money side under random sequences of events (issue 23), on both databases: hypothesis, stateful.

Each sequence starts from two accounts and draws statements (with and without ``balance_as_of``, older or
newer, lower or higher, closed), payments (some dated before the latest statement), reversals, refunds, plan
offers and acceptances, promises, placements and recalls, and daily runs (settle the day, every stage,
release what was deferred), with the clock moving forward. After every step:

- every account's cache is what its ledger derives (``campaigns ledger check``), plans and promises included;
- ``paid`` if and only if nothing is owed (placed: ``closed`` when nothing is owed);
- no accepted plan on an account that owes nothing; a completed plan has nothing left of what it covered;
- a thank-you goes only to an account paid in full, at most once per payoff;
- no dunning message is released for an account that owes nothing, or that is in a plan in good standing
  (only its instalment reminders, ``pre_due``, go);
- every message released states the ledger's figures of that moment (its fingerprint is the account's).

``CAMPAIGNS_MONEY_SEQUENCES`` sets how many sequences (default 500 per database, as CI runs them).
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete, func, select

from campaigns.channels.agent import AgentWorklistGateway
from campaigns.ladder.config import AgencyRules, load_ladder
from campaigns.contact.brand import Brand
from campaigns.contact.plan_offers import make_offer
from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
from campaigns.db.models import Account, Base, ContactAttempt, PlanInstalment, RepaymentPlan, Stage
from campaigns.delivery.deliver import deliver_queued
from campaigns.money import ledger, offers
from campaigns.money.agency import AgencyError, place_with_agency, recall
from campaigns.money.offers import PlanError
from campaigns.money.payments import PaymentError, record_payment, refund_credit, reverse_payment
from campaigns.money.promises import PromiseError, record_promise
from campaigns.money.settlement import settle_day
from campaigns.portfolio.importer import import_portfolio
from campaigns.runs.records import start_run
from tests.fakes import FakeGateway
from tests.portfolio.test_import import GOOD, write_csv
from tests.contact.test_pipeline import POLICY, TEMPLATES

ZONE = ZoneInfo("America/New_York")
START = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)  # a Monday, 09:00 in New York
SECRET = b"k" * 32
BRAND = Brand("Acme", "https://pay.example.com/{account_id}", "https://pay.example.com/p/{account_id}", "+1 800",
              plan_link_secret=SECRET, lender_timezone="America/New_York")
ACCOUNTS = ("A", "B")
SEQUENCES = int(os.environ.get("CAMPAIGNS_MONEY_SEQUENCES", "500"))
STAGES = (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer, Stage.escalation, Stage.thank_you)


def money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class MoneySequences(RuleBasedStateMachine):
    engine = None  # set by the test, per database
    ladder = None
    workdir = None
    seen: Counter = Counter()  # what the sequences did, over all of them: the test checks they did it all

    @initialize()
    def start(self):
        with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
        self.now = START
        self.files = 0
        self.payments: list[str] = []
        self.thanked: set[tuple[str, datetime]] = set()
        self.refunds = 0
        self.figures_before = self.seen["figures_changed"]  # a count kept over all sequences
        # A: 20 days late (a plan is offered); B: due in 3 days (reminded first).
        self._statement_file([
            dict(GOOD, account_id="A", customer_id="CA", balance="600.00", amount_due="120.50",
                 due_date=(self.today - timedelta(days=20)).isoformat()),
            # In Los Angeles: at 09:00 in New York its messages wait for the dispatcher, while money moves.
            dict(GOOD, account_id="B", customer_id="CB", balance="300.00", amount_due="300.00",
                 due_date=(self.today + timedelta(days=3)).isoformat(), timezone="America/Los_Angeles",
                 phone="+14155550100"),
        ])

    @property
    def today(self) -> date:
        return self.now.astimezone(ZONE).date()

    def _statement_file(self, rows: list[dict], as_of: datetime | None = None):
        self.files += 1
        path = write_csv(self.workdir / f"statement-{self.files}.csv", rows)
        report = import_portfolio(self.engine, path, now=self.now, zone=ZONE, balance_as_of=as_of)
        for error in report.errors:  # a refusal is one line naming the account, never an amount
            assert error.field == "balance" and "balance_as_of" in error.message, str(error)
        self.seen.update(statement_refused=len(report.errors), statement=report.statements_recorded,
                         statement_older=report.statements_older)
        return report

    def _account(self, account_id: str):
        with self.engine.connect() as conn:
            return conn.execute(select(Account).where(Account.id == account_id)).one()

    # --- Money events ---------------------------------------------------------------------------------------

    @rule(account=st.sampled_from(ACCOUNTS), balance=st.integers(0, 90000), due=st.sampled_from([0, 25, 100]),
          as_of=st.one_of(st.none(), st.integers(-96, 0)), new_cycle=st.booleans(),
          closed=st.sampled_from([False] * 9 + [True]))
    def statement(self, account, balance, due, as_of, new_cycle, closed):
        current = self._account(account)
        due_date = current.due_date + timedelta(days=30) if new_cycle else current.due_date
        amount = money(balance)
        self._statement_file([dict(
            GOOD, account_id=account, customer_id=f"C{account}", balance=str(amount),
            amount_due=str((amount * due / 100).quantize(Decimal("0.01"))), due_date=due_date.isoformat(),
            status="closed" if closed else "open")],
            as_of=None if as_of is None else self.now + timedelta(hours=as_of))

    @rule(account=st.sampled_from(ACCOUNTS), more=st.integers(1, 20000))
    def an_export_without_the_payments_made_here(self, account, more):
        """The lender's file of yesterday, without the payment taken here today: no ``balance_as_of`` and
        more owed than the ledger says. While payments recorded here since the latest statement may not be
        in it, it is refused for its row and changes nothing; without such payments it is a new statement."""
        before = self._account(account)
        amount = Decimal(before.balance) + money(more)
        report = self._statement_file([dict(
            GOOD, account_id=account, customer_id=f"C{account}", balance=str(amount),
            amount_due=str(min(amount, Decimal(before.amount_due) + money(more))),
            due_date=before.due_date.isoformat(), status="open")])
        if report.errors:
            after = self._account(account)
            assert (after.balance, after.amount_due, after.statement_id) == (
                before.balance, before.amount_due, before.statement_id)

    # Mostly just paid; sometimes days ago (before the latest statement, so taken as included in it).
    WHEN = st.one_of(st.just(0), st.integers(0, 3), st.integers(0, 96))

    @rule(account=st.sampled_from(ACCOUNTS), cents=st.integers(1, 70000), hours_ago=WHEN)
    def payment(self, account, cents, hours_ago):
        self._pay(account, money(cents), hours_ago)

    @rule(account=st.sampled_from(ACCOUNTS), what=st.sampled_from(["balance", "instalment", "due"]),
          extra=st.sampled_from([0, 0, 1, 5000]), hours_ago=WHEN)
    def payment_of_what_is_owed(self, account, what, extra, hours_ago):
        """What a customer usually pays: all of it, the instalment, the amount due (and now and then a little
        more: credit)."""
        a = self._account(account)
        owed = {"balance": a.balance, "instalment": a.plan_amount_due, "due": a.amount_due}[what]
        if owed:
            self._pay(account, Decimal(owed) + money(extra), hours_ago)

    @rule(extra=st.sampled_from([0, 0, 1]))
    def a_plan_paid_off(self, extra):
        """Someone in a plan pays what is left (now): the plan completes, the account is paid, thanked next day."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Account.id, Account.balance).where(Account.plan_due_date.is_not(None))
                               .order_by(Account.id)).first()
        if row is not None:
            self._pay(row.id, Decimal(row.balance) + money(extra), 0)

    def _pay(self, account: str, amount: Decimal, hours_ago: int) -> None:
        payment_id = f"P{len(self.payments)}"
        report = record_payment(self.engine, account, amount, self.now - timedelta(hours=hours_ago), self.now,
                                ZONE, payment_id=payment_id)
        self.payments.append(payment_id)
        self.seen.update(payment=1, payment_in_statement=report.in_statement, paid_off=report.accounts_paid_off,
                         plan_completed=report.plans_completed, promise_kept=report.promises_kept)

    @rule(pick=st.integers(0, 1000), reason=st.sampled_from(["chargeback", "returned", "recorded_in_error"]))
    def reversal(self, pick, reason):
        if not self.payments:
            return
        payment_id = self.payments[pick % len(self.payments)]
        report = reverse_payment(self.engine, payment_id, reason, self.now, ZONE)
        assert report.reversals_loaded + report.already_recorded == 1
        self.seen.update(reversal=report.reversals_loaded, reopened=report.accounts_reopened,
                         plan_reopened=report.plans_reopened, promise_reopened=report.promises_reopened)

    @rule(share=st.sampled_from([1, 2]), too_much=st.booleans(), account=st.sampled_from(ACCOUNTS),
          extra=st.integers(1, 20000))
    def refund(self, share, too_much, account, extra):
        """Credit (an over-payment) paid back, whole or half; more than there is is refused. With no credit
        anywhere, a customer first pays more than is owed (paid twice), then asks for it back."""
        query = select(Account.id, Account.credit).where(Account.credit > 0).order_by(Account.id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            self._pay(account, Decimal(self._account(account).balance) + money(extra), 0)
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        if row is None:  # a closed account takes no payment as credit
            return
        account, credit = row.id, Decimal(row.credit)
        self.refunds += 1
        if too_much:
            with pytest.raises(PaymentError, match="more than the credit"):
                refund_credit(self.engine, account, credit + Decimal("0.01"), f"RF{self.refunds}", self.now, ZONE)
            return
        amount = (credit / share).quantize(Decimal("0.01"))
        if amount > 0:
            self.seen.update(refund=refund_credit(self.engine, account, amount, f"RF{self.refunds}", self.now,
                                                  ZONE).refunds_loaded)

    @rule(account=st.sampled_from(ACCOUNTS), option=st.integers(1, 2), start_days=st.one_of(
        st.none(), st.integers(0, 40)))
    def plan(self, account, option, start_days):
        current = self._account(account)
        row = type("Row", (), {"account_id": account, "balance": current.balance, "currency": "USD"})()
        made = make_offer(row, self.ladder.rule(Stage.plan_offer), self.today, BRAND)
        if made is None:
            return
        with self.engine.begin() as conn:
            offers.store_offers(conn, [made.as_row(account, "USD", self.now)], self.today)
        start = None if start_days is None else self.today + timedelta(days=start_days)
        try:
            offers.accept_offer(self.engine, account, option, self.now, self.today, self.ladder.plan_rules,
                                start=start, zone=ZONE)
            self.seen["plan"] += 1
        except PlanError as exc:
            assert "\n" not in str(exc)

    @rule(account=st.sampled_from(ACCOUNTS), cents=st.integers(100, 30000), days=st.integers(0, 10))
    def promise(self, account, cents, days):
        try:
            record_promise(self.engine, account, money(cents), self.today + timedelta(days=days), self.now,
                           self.today, zone=ZONE)
            self.seen["promise"] += 1
        except PromiseError as exc:
            assert "\n" not in str(exc)

    @rule()
    def place(self):
        self.seen["placed"] += place_with_agency(self.engine, AgencyRules(name="Northwind", min_days_past_due=15),
                                                 self.today, self.now, self.workdir, ZONE).accounts

    @rule(account=st.sampled_from(ACCOUNTS))
    def take_back(self, account):
        try:
            recall(self.engine, account, self.now, ZONE)
            self.seen["recalled"] += 1
        except AgencyError as exc:
            assert "\n" not in str(exc)

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)

    @rule()
    def daily_run(self):
        """The daily run at 09:00 New York time of the next day: settle the day, every stage, then what was
        deferred is released; each message checked against the account as it is when it goes out."""
        day = self.today + timedelta(days=1)
        self.now = max(self.now, datetime.combine(day, datetime.min.time(), ZONE) + timedelta(hours=9))
        day = self.today
        settled = settle_day(self.engine, self.ladder, day, self.now, self.workdir, zone=ZONE)
        self.seen.update(plan_broken=settled.plans_broken, promise_broken=settled.promises_broken, daily_run=1)
        sent = FakeGateway()
        gateways = {"email": sent, "sms": sent, "push": sent, "agent": AgentWorklistGateway(self.engine)}
        for stage in STAGES:
            run = StageRun(run_id=start_run(self.engine, stage, day, self.now, started_at=self.now), stage=stage,
                           as_of=day, now=self.now)
            for bounds in plan_stage_chunks(self.engine, self.ladder, stage, day, 10):
                enqueue_chunk(self.engine, self.ladder, TEMPLATES, BRAND, run, bounds, POLICY)
                deliver_queued(self.engine, gateways, stage=stage.value, as_of=day, now=self.now, policy=POLICY,
                               run_id=run.run_id, bounds=bounds)
        deliver_queued(self.engine, gateways, now=self.now, policy=POLICY, include_queued=False)
        self._check_released(sent)

    @rule()
    def dispatch(self):
        """The dispatcher at 13:00 New York time (10:00 in Los Angeles): what was deferred goes out, if it may."""
        moment = datetime.combine(self.today, datetime.min.time(), ZONE) + timedelta(hours=13)
        if moment <= self.now:
            moment = datetime.combine(self.today + timedelta(days=1), datetime.min.time(), ZONE) + timedelta(hours=13)
        self.now = moment
        sent = FakeGateway()
        gateways = {"email": sent, "sms": sent, "push": sent, "agent": AgentWorklistGateway(self.engine)}
        deliver_queued(self.engine, gateways, now=self.now, policy=POLICY, include_queued=False)
        self._check_released(sent)

    def _check_released(self, sent: FakeGateway) -> None:
        """Each message released: the ledger's figures of the moment, to an account it is true for."""
        with self.engine.connect() as conn:
            released = conn.execute(
                select(ContactAttempt.account_id, ContactAttempt.stage, ContactAttempt.figures,
                       ContactAttempt.amount_due, Account.figures.label("now"), Account.balance, Account.status,
                       Account.plan_due_date, Account.payoff_seen_at, Account.amount_due.label("due_now"),
                       Account.plan_amount_due)
                .join(Account, Account.id == ContactAttempt.account_id)
                .where(ContactAttempt.id.in_([m.attempt_id for m in sent.sent]))).all()
        with self.engine.connect() as conn:
            self.seen["figures_changed"] = conn.execute(select(func.count()).where(
                ContactAttempt.reason == "figures_changed")).scalar_one() + self.figures_before

        for m in released:
            self.seen[f"sent {m.stage}"] += 1
            assert m.figures == m.now, f"{m.stage} message to {m.account_id} states figures the ledger no longer holds"
            if m.stage == "thank_you":
                assert m.balance == 0 and m.status in ("paid", "closed")
                assert (m.account_id, m.payoff_seen_at) not in self.thanked, "a second thank-you for one payoff"
                self.thanked.add((m.account_id, m.payoff_seen_at))
            else:
                assert m.balance > 0, f"{m.stage} dunning sent to {m.account_id}, which owes nothing"
                assert m.plan_due_date is None or m.stage == "pre_due", "dunning for an account in a plan"
                stated = m.plan_amount_due if m.stage == "pre_due" and m.plan_due_date else m.due_now
                assert m.amount_due is None or Decimal(m.amount_due) == Decimal(stated)

    # --- After every step -----------------------------------------------------------------------------------

    @invariant()
    def the_ledger_and_the_figures_agree(self):
        if not hasattr(self, "now"):
            return
        report = ledger.check(self.engine, ZONE, self.now)
        assert report.ok, report.mismatched
        with self.engine.connect() as conn:
            accounts = conn.execute(select(Account)).all()
            plans = conn.execute(select(RepaymentPlan.id, RepaymentPlan.account_id, RepaymentPlan.status)
                                 .where(RepaymentPlan.status.in_(("accepted", "completed")))).all()
            lefts: dict[int, Decimal] = {}
            for plan_id, amount in conn.execute(select(PlanInstalment.plan_id, PlanInstalment.amount
                                                       - PlanInstalment.paid - PlanInstalment.waived)):
                lefts[plan_id] = lefts.get(plan_id, Decimal(0)) + Decimal(amount)
        by_id = {a.id: a for a in accounts}
        for a in accounts:
            assert a.balance >= 0 and a.credit >= 0 and not (a.balance > 0 and a.credit > 0)
            assert 0 <= a.amount_due <= a.balance
            if a.status == "paid":
                assert a.balance == 0
            if a.balance == 0 and a.status not in ("closed",):
                assert a.status == "paid"
            if a.status == "placed":
                assert a.balance > 0 and a.placed_at is not None
        for plan_id, account_id, status in plans:
            owed = by_id[account_id].balance
            if status == "accepted":
                assert owed > 0, "an accepted plan on an account that owes nothing"
                assert lefts.get(plan_id, Decimal(0)) == owed, "the plan and the balance disagree"
            else:
                assert lefts.get(plan_id, Decimal(0)) == 0, "a completed plan with something of it left"


@pytest.fixture
def money_ladder(ladder_file):
    data = yaml.safe_load(ladder_file.read_text())
    data["stages"]["thank_you"]["include_placed"] = False
    ladder_file.write_text(yaml.safe_dump(data))
    return load_ladder(ladder_file)


@pytest.mark.long
def test_money_stays_true_under_any_sequence_of_events(engine, money_ladder, tmp_path):
    MoneySequences.engine, MoneySequences.ladder, MoneySequences.workdir = engine, money_ladder, tmp_path
    MoneySequences.seen = Counter()
    run_state_machine_as_test(MoneySequences, settings=settings(
        max_examples=SEQUENCES, stateful_step_count=15, deadline=None, derandomize=False,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large]))
    seen = MoneySequences.seen
    print(f"\nmoney sequences: {dict(sorted(seen.items()))}")
    # The sequences did what this test claims to check, not only the easy part of it.
    if SEQUENCES >= 500:
        wanted = ("statement", "statement_refused", "payment", "payment_in_statement", "paid_off", "reversal",
                  "reopened", "refund", "plan", "plan_completed", "promise", "promise_kept", "placed", "daily_run",
                  "sent thank_you", "sent soft_nudge", "sent pre_due")
        assert all(seen[k] for k in wanted), {k: seen[k] for k in wanted}
