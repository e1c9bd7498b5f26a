"""Payments: the outcome everything is measured by. Imported from a file or recorded one at a time.

A payment is kept once per ``payment_id`` (the processor's id): the same file
twice changes nothing, and a known id with different values is an error for
that row. Bad rows are reported with file, row and field like the portfolio
import, and the good rows load; a payment in another currency than its
account's is refused for its row.

Applying a payment, in the same transaction as storing it:

- the balance and the amount due go down by it, never below zero; what is paid
  beyond the balance is kept as a credit (on the payment and the account);
- a plan in good standing gets it, oldest instalment first, and is
  ``completed`` when every instalment is paid;
- an open promise counts it, and is kept once paid in full by its date;
- an account with nothing left to pay becomes ``paid`` (its thank-you follows);
- whatever was queued or deferred for the account and is now wrong to send (the
  amount due is cured, an instalment is paid, the account is paid off) is
  suppressed with reason ``paid``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from campaigns.clock import NaiveTimestampError, parse_now
from campaigns.contact.outcomes import suppress_pending
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, AgentWorklistItem, Payment, PaymentPromise
from campaigns.money.currency import in_currency
from campaigns.money.offers import allocate_to_plan
from campaigns.money.promises import count_toward_promise
from campaigns.portfolio.importer import FileReport, PortfolioSource, Record, RowError, RowParser
from campaigns.progress import track

REQUIRED = ["payment_id", "account_id", "amount", "currency", "paid_at"]
OPTIONAL = ["method", "reference"]
TEXT_LIMITS = {"method": 32, "reference": 64}
FREE_TEXT = re.compile(r"^[\w .:/#@+-]*$")
BATCH = 1000
# The values that make a payment the same payment: a known id with any of them different is an error.
IDENTITY = ("account_id", "amount", "currency", "paid_at", "method", "reference")


class PaymentError(ValueError):
    """One payment that cannot be recorded, in one line (ids only)."""


@dataclass
class PaymentReport(FileReport):
    payments_loaded: int = 0
    already_recorded: int = 0
    accounts_paid_off: int = 0
    plans_completed: int = 0
    promises_kept: int = 0
    applied: dict[str, Decimal] = field(default_factory=dict)  # per currency
    credit: dict[str, Decimal] = field(default_factory=dict)  # over-payments, per currency

    def add_money(self, which: dict[str, Decimal], currency: str, amount: Decimal) -> None:
        if amount:
            which[currency] = which.get(currency, Decimal(0)) + amount


def parse_payment(file: str, row: int, values: dict[str, str], errors: list[RowError], now: datetime,
                  undecodable: bool = False) -> dict | None:
    """One row as a payment, or None with its errors added (file, row, field)."""
    before = len(errors)
    p = RowParser(file, row, values, errors)
    p.screen(undecodable)
    payment_id = p.identifier("payment_id")
    account_id = p.identifier("account_id")
    currency = p.currency()
    amount = p.amount("amount", currency)
    if amount is not None and amount == 0:
        p.fail("amount", "is zero; a payment is a positive amount")
    paid_at = None
    text = p.required("paid_at")
    if text is not None:
        try:
            paid_at = parse_now(text)  # the run clock's parser: ISO 8601 that must carry its offset
        except NaiveTimestampError:
            p.fail("paid_at", f"{p.shown('paid_at')} has no UTC offset; write e.g. {text}+00:00")
        except ValueError:
            p.fail("paid_at", f"{p.shown('paid_at')} is not an ISO 8601 timestamp (e.g. 2026-11-20T14:03:00-05:00)")
        else:
            if paid_at > now + timedelta(days=1):
                p.fail("paid_at", f"{p.shown('paid_at')} is in the future")
                paid_at = None
    extras = {}
    for name, limit in TEXT_LIMITS.items():
        value = p.optional(name)
        if value is not None and (len(value) > limit or not FREE_TEXT.match(value)):
            p.fail(name, f"must be at most {limit} letters, digits or . : / # @ + - (value withheld)")
            value = None
        extras[name] = value
    if len(errors) > before:
        return None
    return {"payment_id": payment_id, "account_id": account_id, "amount": amount, "currency": currency,
            "paid_at": paid_at.astimezone(timezone.utc), **extras}


def import_payments(engine: Engine, path: Path, now: datetime, zone: ZoneInfo) -> PaymentReport:
    """Load a payments file (CSV or Parquet), streaming, in batches of ``BATCH`` rows, each in one transaction."""
    source = PortfolioSource(path, REQUIRED, OPTIONAL)
    report = PaymentReport(file=str(path))
    seen: dict[str, int] = {}
    batch: list[tuple[int, dict]] = []
    with track(f"payments {source.path.name}", source.total) as progress:
        for record in source.records():
            report.rows_read += 1
            parsed = _parse_record(report, record, seen, now)
            if parsed is not None:
                batch.append((record.row, parsed))
            if len(batch) >= BATCH:
                store_payments(engine, batch, now, zone, report)
                batch = []
                progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
        store_payments(engine, batch, now, zone, report)
        progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
    return report


def _parse_record(report: PaymentReport, record: Record, seen: dict[str, int], now: datetime) -> dict | None:
    if record.problem:
        report.errors.append(RowError(report.file, record.row, None, record.problem))
        return None
    parsed = parse_payment(report.file, record.row, record.values, report.errors, now, record.undecodable)
    if parsed is None:
        return None
    first = seen.get(parsed["payment_id"])
    if first is not None:
        report.errors.append(RowError(report.file, record.row, "payment_id", f"duplicate of row {first}"))
        return None
    seen[parsed["payment_id"]] = record.row
    return parsed


def record_payment(engine: Engine, account_id: str, amount: Decimal, paid_at: datetime, now: datetime,
                   zone: ZoneInfo, *, reference: str | None = None, payment_id: str | None = None,
                   method: str | None = None) -> PaymentReport:
    """Record one payment (``campaigns payments record``), in the account's currency."""
    with engine.connect() as conn:
        currency = conn.execute(select(Account.currency).where(Account.id == account_id)).scalar()
    if currency is None:
        raise PaymentError(f"no account {account_id!r}")
    # The same payment recorded twice (same account, moment and amount) is one payment.
    digest = hashlib.sha256(f"{account_id}|{paid_at.isoformat()}|{amount}".encode()).hexdigest()[:24]
    values = {"payment_id": payment_id or f"manual-{digest}",
              "account_id": account_id, "amount": str(amount), "currency": currency,
              "paid_at": paid_at.isoformat(), "method": method or "", "reference": reference or ""}
    report = PaymentReport(file="payment")
    parsed = parse_payment("payment", 1, values, report.errors, now)
    if parsed is None:
        raise PaymentError("; ".join(f"{e.field}: {e.message}" for e in report.errors))
    store_payments(engine, [(1, parsed)], now, zone, report)
    if report.errors:
        raise PaymentError(report.errors[0].message)
    return report


def store_payments(engine: Engine, batch: list[tuple[int, dict]], now: datetime, zone: ZoneInfo,
                   report: PaymentReport) -> None:
    """Store and apply one batch in one transaction; if the database refuses it, retry row by row."""
    if not batch:
        return
    try:
        with engine.begin() as conn:
            _store(conn, batch, now, zone, report.file, report)
    except (DataError, IntegrityError):
        for item in batch:
            try:
                with engine.begin() as conn:
                    _store(conn, [item], now, zone, report.file, report)
            except (DataError, IntegrityError) as exc:
                report.errors.append(RowError(report.file, item[0], None,
                                              f"the database refused the row ({type(exc.orig).__name__})"))


def _store(conn: Connection, batch: list[tuple[int, dict]], now: datetime, zone: ZoneInfo, file: str,
           report: PaymentReport) -> None:
    errors: list[RowError] = []
    accounts = _locked_accounts(conn, sorted({p["account_id"] for _, p in batch}))
    known = _known_payments(conn, [p["payment_id"] for _, p in batch])
    fresh: list[tuple[int, dict]] = []
    duplicates = 0
    for row, payment in batch:
        account = accounts.get(payment["account_id"])
        if account is None:
            errors.append(RowError(file, row, "account_id", f"{payment['account_id']!r} is not a known account"))
            continue
        if payment["currency"] != account["currency"]:
            errors.append(RowError(file, row, "currency", f"{payment['currency']} is not the account's currency "
                                                          f"({account['currency']})"))
            continue
        existing = known.get(payment["payment_id"])
        if existing is not None:
            different = [f for f in IDENTITY if existing[f] != payment[f]]
            if different:
                errors.append(RowError(file, row, different[0],
                                       f"payment {payment['payment_id']} is already recorded with a different "
                                       f"{', '.join(different)}"))
            else:
                duplicates += 1
            continue
        fresh.append((row, payment))
    # The accounts are locked and the ids checked in this transaction: every fresh payment is new. (A
    # concurrent import that slipped one in makes this batch fail its unique key; it is then retried row by
    # row, and that row is found already recorded.)
    fresh.sort(key=lambda item: (item[1]["account_id"], item[1]["paid_at"]))
    source = "import" if file != "payment" else "cli"
    outcome = apply_payments(conn, accounts, [p for _, p in fresh], now, zone)
    if fresh:
        conn.execute(insert(Payment.__table__), [
            {**p, "source": source, "recorded_at": now, "applied": applied, "credit": credit}
            for (_, p), (applied, credit) in zip(fresh, outcome.shares)])
    report.errors.extend(errors)
    report.already_recorded += duplicates
    report.payments_loaded += len(fresh)
    report.accounts_paid_off += outcome.paid_off
    report.plans_completed += outcome.plans_completed
    report.promises_kept += outcome.promises_kept
    for currency, amount in outcome.applied.items():
        report.add_money(report.applied, currency, amount)
    for currency, amount in outcome.credit.items():
        report.add_money(report.credit, currency, amount)


@dataclass
class Applied:
    paid_off: int = 0
    plans_completed: int = 0
    promises_kept: int = 0
    applied: dict[str, Decimal] = field(default_factory=dict)
    credit: dict[str, Decimal] = field(default_factory=dict)
    shares: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (applied, credit) per payment


def _locked_accounts(conn: Connection, account_ids: list[str]) -> dict[str, dict]:
    """The accounts a batch pays, locked (on PostgreSQL) so concurrent imports apply one after the other."""
    found: dict[str, dict] = {}
    for part in in_batches(account_ids):
        stmt = select(Account.id, Account.currency, Account.balance, Account.amount_due, Account.status,
                      Account.credit, Account.plan_due_date, Account.paid_off_at).where(
            Account.id.in_(part))
        if conn.dialect.name == "postgresql":
            stmt = stmt.order_by(Account.id).with_for_update()
        for r in conn.execute(stmt).mappings():
            found[r["id"]] = dict(r)
    return found


def _known_payments(conn: Connection, payment_ids: list[str]) -> dict[str, dict]:
    p = Payment
    found = {}
    for part in in_batches(payment_ids):
        for r in conn.execute(select(p.payment_id, p.account_id, p.amount, p.currency, p.paid_at, p.method,
                                     p.reference).where(p.payment_id.in_(part))).mappings():
            found[r["payment_id"]] = {**r, "amount": in_currency(r["amount"], r["currency"])}
    return found


def _with_open_promise(conn: Connection, account_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for part in in_batches(account_ids):
        found.update(conn.execute(select(PaymentPromise.account_id).where(
            PaymentPromise.account_id.in_(part), PaymentPromise.status == "open")).scalars())
    return found


def apply_payments(conn: Connection, accounts: dict[str, dict], payments: list[dict], now: datetime,
                   zone: ZoneInfo) -> Applied:
    """Apply new payments (in account and time order) to ``accounts`` (see the module's docstring).

    The arithmetic is done in memory and written once per account (``executemany``);
    only accounts in a plan or with an open promise need statements of their own.
    ``accounts`` is kept current; ``shares`` says what of each payment was applied
    and what was credit, for storing the payments.
    """
    outcome = Applied()
    if not payments:
        return outcome
    promised = _with_open_promise(conn, sorted({p["account_id"] for p in payments}))
    changed: dict[str, dict] = {}
    cured: set[str] = set()
    for payment in payments:
        account_id = payment["account_id"]
        account = accounts[account_id]
        currency = account["currency"]
        balance = in_currency(account["balance"], currency)
        applied = min(payment["amount"], balance)
        credit = payment["amount"] - applied
        due_before = in_currency(account["amount_due"], currency)
        account["balance"] = balance - applied
        account["amount_due"] = max(Decimal(0), due_before - applied)
        account["credit"] = in_currency(account["credit"] or 0, currency) + credit
        if due_before > 0 and account["amount_due"] == 0:
            cured.add(account_id)
        instalment_before = account.get("plan_due_date")
        if applied and instalment_before is not None:
            account["plan_due_date"] = allocate_to_plan(conn, account_id, applied, payment["paid_at"])
            if account["plan_due_date"] is None:
                outcome.plans_completed += 1
            if account["plan_due_date"] != instalment_before:
                cured.add(account_id)  # an instalment was paid: its reminder must not go out after
        if applied and account_id in promised and count_toward_promise(conn, account_id, applied,
                                                                       payment["paid_at"], zone):
            outcome.promises_kept += 1
            promised.discard(account_id)
        if account["balance"] == 0 and account["status"] in ("open", "placed"):
            account["status"], account["paid_off_at"] = "paid", payment["paid_at"]
            outcome.paid_off += 1
            cured.add(account_id)
        changed[account_id] = account
        outcome.shares.append((applied, credit))
        outcome.applied[currency] = outcome.applied.get(currency, Decimal(0)) + applied
        if credit:
            outcome.credit[currency] = outcome.credit.get(currency, Decimal(0)) + credit
    table = Account.__table__
    conn.execute(table.update().where(table.c.id == bindparam("id_")).values(
        balance=bindparam("balance_"), amount_due=bindparam("amount_due_"), credit=bindparam("credit_"),
        status=bindparam("status_"), paid_off_at=bindparam("paid_off_at_"), updated_at=now), [
        {"id_": a["id"], "balance_": a["balance"], "amount_due_": a["amount_due"], "credit_": a["credit"],
         "status_": a["status"], "paid_off_at_": a["paid_off_at"]} for a in changed.values()])
    paid_off = [a["id"] for a in changed.values() if a["status"] == "paid"]
    for part in in_batches(paid_off):
        conn.execute(update(AgentWorklistItem).where(AgentWorklistItem.account_id.in_(part),
                                                     AgentWorklistItem.status == "open")
                     .values(status="done", outcome="paid", outcome_at=now))
    cured_ids = sorted(cured)
    for part in in_batches(cured_ids):
        suppress_pending(conn, part, "paid", now, keep_stages=("thank_you",))
    return outcome


def payments_of(engine: Engine, account_id: str) -> list:
    p = Payment
    with engine.connect() as conn:
        return conn.execute(select(p.payment_id, p.amount, p.currency, p.paid_at, p.applied, p.credit, p.reference)
                            .where(p.account_id == account_id).order_by(p.paid_at)).all()
