"""A deterministic synthetic portfolio, built around a given day.

Same seed and day, same portfolio, byte for byte. Due dates are spread evenly
from 60 days late to 10 days ahead, so every stage of the ladder has members on
every day, including its boundary days. Addresses use reserved example domains
and fictional 555-01xx numbers in the US.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select

from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.models import Payment
from campaigns.files import ensure_private_directory, open_private

US_ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
            "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu"]
US_AREA = {"America/New_York": "212", "America/Chicago": "312", "America/Denver": "303",
           "America/Phoenix": "602", "America/Los_Angeles": "213", "America/Anchorage": "907",
           "Pacific/Honolulu": "808"}
EN_FIRST = ["Avery", "Jordan", "Maria", "James", "Priya", "Wei", "Olivia", "Diego", "Grace", "Samuel",
            "Fatima", "Noah", "Emma", "Liam", "Aisha", "Lucas", "Chloe", "Mateo", "Hannah", "Ethan"]
EN_LAST = ["Smith", "Johnson", "Garcia", "Nguyen", "Patel", "Brown", "Lee", "Martinez", "Davis", "Walker",
           "Robinson", "Clark", "Lewis", "Young", "Hall", "Allen", "King", "Wright", "Lopez", "Hill"]
ZH_SURNAME = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛"]
PRODUCTS = ["card", "bnpl", "personal_loan", "wallet_credit"]


@dataclass(frozen=True)
class DemoSpec:
    accounts: int = 3000
    seed: int = 20261122


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def generate_portfolio(as_of: date, spec: DemoSpec = DemoSpec()) -> pd.DataFrame:
    """The demo portfolio as an import file's rows (strings, like a lender's CSV export)."""
    rng = random.Random(spec.seed)
    rows = []
    customer_number = 0
    account_number = 0
    span = list(range(-10, 61))  # days past due, from 10 days ahead to 60 days late
    while account_number < spec.accounts:
        customer_number += 1
        chinese = rng.random() < 0.3
        customer_id = f"C{customer_number:06d}"
        if chinese:
            name = rng.choice(ZH_SURNAME) + rng.choice(ZH_GIVEN) + (rng.choice(ZH_GIVEN) if rng.random() < 0.6 else "")
            locale, zone, country, currency = "zh-CN", "Asia/Shanghai", "CN", "CNY"
            phone = f"+86138{rng.randrange(10**8):08d}"
            email = f"user{customer_number}@example.cn"
        else:
            name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
            locale, country, currency = "en-US", "US", "USD"
            zone = rng.choice(US_ZONES)
            phone = f"+1{US_AREA[zone]}55501{rng.randrange(100):02d}"
            email = f"customer{customer_number}@example.com"
        # Some customers come without a zone: the phone and country then tell where they are.
        stated_zone = "" if rng.random() < 0.05 else zone
        email_opt_out = rng.random() < 0.06
        if rng.random() < 0.03:
            email = ""
        sms_consent = rng.random() < 0.6
        sms_opt_out = rng.random() < 0.05
        vulnerable = rng.random() < 0.02
        employer_email = rng.random() < 0.03
        employer_consent = employer_email and rng.random() < 0.5
        for _ in range(1 if rng.random() < 0.85 else 2):
            if account_number >= spec.accounts:
                break
            account_number += 1
            days_past_due = span[(account_number * 7919) % len(span)]  # even spread, shuffled order
            due = as_of - timedelta(days=days_past_due)
            scale = 7.0 if currency == "CNY" else 1.0
            balance = _money(min(max(rng.lognormvariate(6.0, 0.8), 40.0), 9000.0) * scale)
            amount_due = min(balance, _money(max(balance * Decimal(rng.choice([0.1, 0.2, 0.25, 1.0])), 25 * scale)))
            paid = rng.random() < 0.05
            rows.append({
                "account_id": f"A{account_number:07d}",
                "customer_id": customer_id,
                "name": name,
                "email": email,
                "phone": phone,
                "locale": locale,
                "timezone": stated_zone,
                "country": country,
                "currency": currency,
                "balance": str(Decimal(0) if paid else balance),
                "amount_due": str(Decimal(0) if paid else amount_due),
                "due_date": due.isoformat(),
                "status": "paid" if paid else "open",
                "product": rng.choice(PRODUCTS),
                "email_opt_out": str(email_opt_out).lower(),
                "sms_opt_out": str(sms_opt_out).lower(),
                "sms_consent": str(sms_consent).lower(),
                "disputed": str(rng.random() < 0.03).lower(),
                "cease_contact": str(rng.random() < 0.015).lower(),
                "email_is_employer": str(employer_email).lower(),
                "email_employer_consent": str(employer_consent).lower(),
                "vulnerable": str(vulnerable).lower(),
                "time_barred": str(days_past_due > 45 and rng.random() < 0.05).lower(),
                "demo_paid_amount": str(amount_due) if paid else "",
            })
    return pd.DataFrame(rows)


def write_demo_file(frame: pd.DataFrame, path: Path) -> Path:
    """Write the portfolio as a lender's CSV export, readable by its owner only (it holds names and numbers)."""
    path = Path(path)
    ensure_private_directory(path.parent)
    with open_private(path, "w", newline="", encoding="utf-8") as handle:
        frame.drop(columns=["demo_paid_amount"]).to_csv(handle, index=False)
    return path


def record_demo_payments(engine: Engine, frame: pd.DataFrame, now: datetime, zone) -> int:
    """The payments that made the paid demo accounts paid, a day before the portfolio's statement (which
    includes them), into the ledger; once: a second demo adds none."""
    from campaigns.money import ledger

    paid = frame[frame["demo_paid_amount"] != ""]
    if paid.empty:
        return 0
    with engine.begin() as conn:
        ids = paid["account_id"].tolist()
        ledger.lock_accounts(conn, ids)
        have = set(conn.execute(select(Payment.account_id).where(Payment.account_id.in_(ids))).scalars())
        rows = [
            {"payment_id": f"demo-{r.account_id}", "account_id": r.account_id,
             "amount": Decimal(r.demo_paid_amount), "currency": r.currency, "paid_at": now - timedelta(days=1),
             "source": "demo", "method": None, "reference": None, "recorded_at": now}
            for r in paid.itertuples(index=False) if r.account_id not in have
        ]
        if rows:
            created = dict((key, row_id) for row_id, key in
                           insert_ignoring_conflicts(conn, Payment.__table__, rows, key="payment_id"))
            ledger.append(conn, [ledger.entry_row("payment", f"payment|{r['payment_id']}", r["account_id"],
                                                  r["currency"], r["paid_at"], now, "demo", amount=r["amount"],
                                                  payment_id=created[r["payment_id"]]) for r in rows])
            ledger.refresh(conn, [r["account_id"] for r in rows], now, zone)
    return len(rows)


@dataclass(frozen=True)
class DemoResponses:
    offers: int
    accepted: int
    payments_file: Path
    payments: int
    already_recorded: int
    applied: dict
    paid_off: int
    example_plan: str | None


# The demo's made-up truth: the chance that an account assigned to an arm pays within hours. Nobody
# reads these to compute anything; the review has to find the differences on its own.
DEMO_PAY_CHANCE = {
    "soft_nudge": {"holdout": 0.05, "control": 0.14, "gentle": 0.17, "sms_first": 0.11},
    "pre_due": {"holdout": 0.02, "control": 0.06},
}


def _payers(rows, day: date, stage: str) -> list:
    """The assigned accounts that pay in the simulation: a stable draw per account and day against the arm's chance."""
    from campaigns.contact.strategy import stable_fraction

    chance = DEMO_PAY_CHANCE[stage]
    draws = stable_fraction([r.account_id for r in rows], f"demo-pays:{day}:{stage}")
    return [r for r, draw in zip(rows, draws) if draw < chance.get(r.variant, chance["control"])]


def simulate_responses(engine: Engine, day: date, moment: datetime, brand, rules, zone, data_dir: Path,
                       every_nth_accepts: int = 8) -> DemoResponses:
    """Some demo customers answer the day's messages (deterministically, so a re-run adds nothing):

    every ``every_nth_accepts``-th offer made today is accepted through its signed link
    (the code path of the web page), and a payments file is written and imported: the
    first instalment of each accepted plan, the amount due of some accounts nudged
    today and the whole balance of some reminded before their due date (paid in full:
    thanked in the next daily run). Who pays is drawn from a hash of the account, with
    a chance that depends on the arm it was assigned (``DEMO_PAY_CHANCE``): the holdout
    pays least, so the demo's review has a real uplift to show.
    """
    import csv

    from campaigns.db.models import Account, ContactAttempt, RepaymentPlan
    from campaigns.money.links import make_token
    from campaigns.money.offers import accept_link
    from campaigns.money.payments import import_payments

    with engine.connect() as conn:
        offers = conn.execute(select(RepaymentPlan.account_id, RepaymentPlan.expires_at)
                              .where(RepaymentPlan.offered_on == day).order_by(RepaymentPlan.account_id)).all()
        open_offers = set(conn.execute(select(RepaymentPlan.account_id).where(
            RepaymentPlan.offered_on == day, RepaymentPlan.status == "offered")).scalars())
    accepted = []
    for n, offer in enumerate(offers):
        if n % every_nth_accepts == 0 and offer.account_id in open_offers:
            token = make_token(brand.plan_link_secret, offer.account_id, day, 1, offer.expires_at)
            accepted.append(accept_link(engine, token, moment + timedelta(hours=1), day, rules,
                                        brand.plan_link_secret, zone))
    with engine.connect() as conn:
        # Chosen from the day's attempts, not from balances a first run has already lowered: a re-run of the
        # demo writes the same file, and its import finds every payment already recorded.
        nudged = conn.execute(select(ContactAttempt.account_id, ContactAttempt.variant, ContactAttempt.amount_due,
                                     Account.currency)
                              .join(Account, Account.id == ContactAttempt.account_id)
                              .where(ContactAttempt.as_of == day, ContactAttempt.stage == "soft_nudge",
                                     ContactAttempt.variant.is_not(None))
                              .order_by(ContactAttempt.account_id)).all()
        reminded = conn.execute(select(ContactAttempt.account_id, ContactAttempt.variant, Account.balance,
                                       Account.currency)
                                .join(Account, Account.id == ContactAttempt.account_id)
                                .where(ContactAttempt.as_of == day, ContactAttempt.stage == "pre_due",
                                       ContactAttempt.variant.is_not(None))
                                .order_by(ContactAttempt.account_id)).all()
        plans = conn.execute(select(RepaymentPlan.account_id, RepaymentPlan.schedule, RepaymentPlan.currency)
                             .where(RepaymentPlan.offered_on == day, RepaymentPlan.accepted_via == "link")
                             .order_by(RepaymentPlan.account_id)).all()
        earlier = dict(conn.execute(select(Payment.payment_id, Payment.amount).where(
            Payment.payment_id.like(f"demo-%-{day:%Y%m%d}"))).all())
    paid_at = (moment + timedelta(hours=2)).isoformat()
    rows = [(f"demo-plan-{p.account_id}-{day:%Y%m%d}", p.account_id, Decimal(p.schedule[0]["amount"]), p.currency)
            for p in plans]
    rows += [(f"demo-due-{r.account_id}-{day:%Y%m%d}", r.account_id, r.amount_due, r.currency)
             for r in _payers(nudged, day, "soft_nudge")]
    rows += [(f"demo-full-{r.account_id}-{day:%Y%m%d}", r.account_id, r.balance, r.currency)
             for r in _payers(reminded, day, "pre_due")]
    rows = [(i, a, earlier.get(i, amount), c) for i, a, amount, c in rows if earlier.get(i, amount) > 0]
    from campaigns.money.currency import in_currency

    path = ensure_private_directory(data_dir / "demo") / "payments.csv"
    with open_private(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["payment_id", "account_id", "amount", "currency", "paid_at", "method", "reference"])
        for payment_id, account_id, amount, currency in rows:
            writer.writerow([payment_id, account_id, in_currency(amount, currency), currency, paid_at, "card",
                             f"demo-{day:%Y%m%d}"])
    report = import_payments(engine, path, moment + timedelta(hours=3), zone)
    return DemoResponses(offers=len(offers), accepted=len(accepted), payments_file=path,
                         payments=report.payments_loaded, already_recorded=report.already_recorded, applied=report.applied, paid_off=report.accounts_paid_off,
                         example_plan=accepted[0].account_id if accepted else None)


@dataclass(frozen=True)
class PageVisits:
    """What the demo's customers did on their pages and in their replies (counts and one account's id)."""

    reasons: int
    deferrals: int
    call_backs: int
    ratings: int
    replies: int
    already: int  # recorded by an earlier run of the demo: nothing new
    example_account: str | None


DEMO_REASONS = ("hardship", "problem_paying", "did_not_know", "other", "hardship", "did_not_know")
DEMO_REPLIES = {"en-US": ("HELP", "Can I pay half now and half next week?", "I want to make a complaint about your calls"),
                "zh-CN": ("帮助", "我下周发工资后还款，可以吗？", "我要投诉")}


def simulate_page_visits(engine: Engine, day: date, moment: datetime, zone, deferral, segments) -> PageVisits:
    """Some demo customers open their page after the day's messages (the page's own code path,
    ``campaigns.customers.self_service``) and some answer by SMS (``campaigns.customers.replies``): a few say why
    they are late, ask for more time or for a call back; those who took a plan or paid in full rate us; a few
    reply (help, a question, a complaint). Who does what is drawn from a hash of the account, and every form
    carries a key made from the day and the account: a re-run of the demo records nothing twice."""
    from zoneinfo import ZoneInfo

    from campaigns.contact.strategy import stable_fraction
    from campaigns.customers import self_service
    from campaigns.customers.replies import receive_sms_reply
    from campaigns.customers.self_service import ActionRefused, page_facts
    from campaigns.db.models import Account, ContactAttempt, Customer, RepaymentPlan

    later = moment + timedelta(hours=4)
    with engine.connect() as conn:
        nudged = conn.execute(select(ContactAttempt.account_id).distinct().where(
            ContactAttempt.as_of == day, ContactAttempt.stage.in_(("soft_nudge", "plan_offer")),
            ContactAttempt.status.in_(("sent", "delivered")))
            .order_by(ContactAttempt.account_id)).scalars().all()
        satisfied = conn.execute(select(Account.id).where(
            Account.id.in_(select(RepaymentPlan.account_id).where(RepaymentPlan.offered_on == day,
                                                                  RepaymentPlan.accepted_via == "link"))
            | (Account.paid_off_at >= moment)).order_by(Account.id)).scalars().all()
    draws = stable_fraction(list(nudged), f"demo-page:{day}")
    counts = {"reasons": 0, "deferrals": 0, "call_backs": 0, "ratings": 0, "replies": 0, "already": 0}

    def count(name: str, again: bool) -> None:
        counts["already" if again else name] += 1

    example = None
    for n, (account_id, draw) in enumerate(zip(nudged, draws)):
        if draw >= 0.045:
            continue
        facts = page_facts(engine, account_id, later, zone, deferral, segments)
        if facts is None or not facts.owes:
            continue
        key = f"demo-{day:%Y%m%d}-{account_id}"
        try:
            if draw < 0.03:
                reason = DEMO_REASONS[n % len(DEMO_REASONS)]
                count("reasons", self_service.state_reason(engine, facts, reason, None, f"{key}-why", later).again)
                example = example or account_id
                if reason == "hardship" and facts.deferral_refused in (None, "already_deferred"):
                    count("deferrals", self_service.ask_for_time(engine, facts, day + timedelta(days=7),
                                                                 f"{key}-time", later, zone, deferral).again)
            elif draw < 0.04:
                local = later.astimezone(ZoneInfo(facts.zone)).date() + timedelta(days=1)
                count("call_backs", self_service.ask_for_call(engine, facts, local, "evening", f"{key}-call",
                                                              later).again)
            else:
                with engine.connect() as conn:
                    phone, locale = conn.execute(select(Customer.phone, Customer.locale).where(
                        Customer.id == facts.customer_id)).one()
                if phone:
                    words = DEMO_REPLIES.get(locale or "en-US", DEMO_REPLIES["en-US"])
                    count("replies", receive_sms_reply(engine, phone, words[n % len(words)], later,
                                                       message_id=f"{key}-reply", provider="demo").duplicate)
        except ActionRefused:
            continue  # the page would have said why (already deferred, ...): nothing recorded
    for n, account_id in enumerate(satisfied):
        if n % 3:
            continue
        facts = page_facts(engine, account_id, later, zone, deferral, segments)
        if facts is None:
            continue
        if facts.rated:
            count("ratings", True)
        elif facts.can_rate:
            count("ratings", self_service.rate(engine, facts, (5, 4, 5, 3, 4)[n % 5], None,
                                               f"demo-{day:%Y%m%d}-{account_id}-rate", later).again)
    return PageVisits(**counts, example_account=example)


__all__ = ["DemoResponses", "DemoSpec", "PageVisits", "generate_portfolio", "record_demo_payments",
           "simulate_page_visits", "simulate_responses", "write_demo_file"]
