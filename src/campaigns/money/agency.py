"""Placing accounts with a collection agency, and recalling them.

An account old and large enough (``agency`` in the ladder config) is placed:
its row goes into a placement file with only what the agency needs to collect
(minimal disclosure: who, how to reach them and what they may be contacted on,
what is owed; not the contact history, product, flags or other accounts), the
account becomes ``placed``, what was queued for it is suppressed (``placed``),
and no stage selects it again. ``campaigns agency recall`` returns it to us.

Not placed: accounts with an open dispute, a hold, a cease request, a vulnerable
customer, an open promise or a plan in good standing.

Money keeps moving after placement: a payment (or a reversal, a refund, a new
statement) on a placed account is recorded in its ledger like any other, and goes
into the next *activity file* for the agency (``activity-<day>-<time>.csv``, the
daily run writes it after placing: each event once, with the account's balance
and status after it). Paid in full while placed, the account is ``closed`` for us:
no thank-you from us (``thank_you.include_placed`` in the ladder turns one on),
and nothing to recall; a reversal puts it back with the agency (``placed``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from campaigns.money.promises import open_promise_exists
from campaigns.ladder.config import AgencyRules
from campaigns.attempts.log import suppress_pending
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, AgencyFeed, AgentWorklistItem, Customer, Dispute, Hold, LedgerEntry, Payment
from campaigns.files import ensure_private_directory, open_private
from campaigns.money import ledger
from campaigns.money.currency import in_currency
from campaigns.money.spreadsheet import neutralise

PLACEMENT_COLUMNS = ["account_id", "placed_on", "currency", "balance", "amount_due", "due_date", "days_past_due",
                     "name", "phone", "email", "country", "timezone", "locale", "do_not_email", "do_not_sms"]
ACTIVITY_COLUMNS = ["account_id", "event", "at", "amount", "currency", "payment_id", "reason", "balance_now",
                    "status_now"]


class AgencyError(ValueError):
    pass


@dataclass(frozen=True)
class Placement:
    agency: str
    accounts: int
    file: Path | None


def _candidates(rules: AgencyRules, as_of: date, now: datetime):
    open_dispute = exists().where(Dispute.account_id == Account.id, Dispute.resolved_at.is_(None))
    open_hold = exists().where(Hold.customer_id == Account.customer_id, Hold.cleared_at.is_(None),
                               Hold.opened_at <= now, or_(Hold.ends_at.is_(None), Hold.ends_at > now))
    clauses = [
        Account.status == "open", Account.balance > 0, Account.plan_due_date.is_(None),
        Account.due_date <= as_of - timedelta(days=rules.min_days_past_due),
        ~Account.cease_contact, ~Customer.vulnerable, ~open_dispute, ~open_hold, ~open_promise_exists(),
    ]
    if rules.min_balance:
        listed = list(rules.min_balance)
        clauses.append(or_(Account.currency.not_in(listed), *[
            and_(Account.currency == code, Account.balance >= Decimal(str(minimum)))
            for code, minimum in rules.min_balance.items()]))
    return and_(*clauses)


def place_with_agency(engine: Engine, rules: AgencyRules, as_of: date, now: datetime, out_dir: Path,
                      zone: ZoneInfo | None = None, *, dry_run: bool = False) -> Placement:
    """Place every account the rules select; write their placement file (0600) into ``out_dir``. ``dry_run``:
    count them, write nothing."""
    if not rules.enabled:
        return Placement(rules.name, 0, None)
    if dry_run:
        with engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(Account).join(
                Customer, Customer.id == Account.customer_id).where(_candidates(rules, as_of, now))).scalar_one()
        return Placement(rules.name, count, None)
    stmt = (select(Account.id, Account.currency, Account.balance, Account.amount_due, Account.due_date,
                   Customer.name, Customer.phone, Customer.email, Customer.country, Customer.timezone,
                   Customer.locale, Customer.email_opt_out, Customer.sms_opt_out)
            .join(Customer, Customer.id == Account.customer_id)
            .where(_candidates(rules, as_of, now)).order_by(Account.id))
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
        if not rows:
            return Placement(rules.name, 0, None)
        path = ensure_private_directory(out_dir) / f"placement-{as_of.isoformat()}-{now:%H%M%S}.csv"
        with open_private(path, newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(PLACEMENT_COLUMNS)
            for r in rows:
                writer.writerow(neutralise([
                    r.id, as_of.isoformat(), r.currency, in_currency(r.balance, r.currency),
                    in_currency(r.amount_due, r.currency), r.due_date.isoformat(), (as_of - r.due_date).days,
                    r.name or "", r.phone or "", r.email or "", r.country or "", r.timezone or "", r.locale or "",
                    bool(r.email_opt_out), bool(r.sms_opt_out)]))
        ids = [r.id for r in rows]
        _mark_placed(conn, ids, rules.name, now, zone or ZoneInfo("UTC"))
    return Placement(rules.name, len(rows), path)


def _mark_placed(conn: Connection, ids: list[str], agency: str, now: datetime, zone: ZoneInfo) -> None:
    ledger.lock_accounts(conn, ids)
    for part in in_batches(ids):
        conn.execute(update(Account).where(Account.id.in_(part), Account.status == "open")
                     .values(placed_at=now, placed_with=agency, updated_at=now))
        conn.execute(update(AgentWorklistItem).where(AgentWorklistItem.account_id.in_(part),
                                                     AgentWorklistItem.status == "open")
                     .values(status="placed", outcome="placed", outcome_at=now))
        suppress_pending(conn, part, "placed", now)
    ledger.refresh(conn, ids, now, zone)  # its status is the ledger's: placed while something is owed


def recall(engine: Engine, account_id: str, now: datetime, zone: ZoneInfo | None = None) -> str:
    """Take an account back from the agency: it is ours again (the ladder may contact it)."""
    with engine.begin() as conn:
        ledger.lock_accounts(conn, [account_id])
        account = conn.execute(select(Account.status, Account.balance, Account.placed_with, Account.placed_at,
                                      Account.paid_off_at).where(Account.id == account_id)).first()
        if account is None:
            raise AgencyError(f"no account {account_id!r}")
        if account.placed_at is None:
            raise AgencyError(f"account {account_id} is {account.status}, not placed with an agency")
        agency = account.placed_with or "the agency"
        if account.status != "placed":
            paid = (f"it was paid in full on {account.paid_off_at:%Y-%m-%d} while placed with {agency}"
                    if account.paid_off_at is not None else f"the lender closed it while placed with {agency}")
            raise AgencyError(f"account {account_id} cannot be recalled: {paid}, and is closed for us "
                              "(the agency's activity file reports it); nothing is owed to collect")
        conn.execute(update(Account).where(Account.id == account_id)
                     .values(placed_at=None, placed_with=None, updated_at=now))
        ledger.refresh(conn, [account_id], now, zone or ZoneInfo("UTC"))
    return agency


def placed_on(engine: Engine, day: date, zone: ZoneInfo) -> list[str]:
    """The accounts placed on ``day`` (in the lender's zone) and still with the agency: a placement to undo."""
    start = datetime.combine(day, datetime.min.time(), zone)
    with engine.connect() as conn:
        return list(conn.execute(select(Account.id).where(
            Account.status == "placed", Account.placed_at >= start, Account.placed_at < start + timedelta(days=1))
            .order_by(Account.id)).scalars())


def recall_many(engine: Engine, account_ids: list[str], now: datetime, zone: ZoneInfo | None = None
                ) -> tuple[list[str], list[str]]:
    """Recall each account (one transaction each): (the recalled, one line per account that could not be)."""
    recalled, refused = [], []
    for account_id in account_ids:
        try:
            recall(engine, account_id, now, zone)
            recalled.append(account_id)
        except AgencyError as exc:
            refused.append(str(exc))
    return recalled, refused


@dataclass(frozen=True)
class Feed:
    agency: str
    rows: int
    file: Path | None


def report_to_agency(engine: Engine, agency: str, now: datetime, out_dir: Path) -> Feed:
    """Write what happened to placed accounts' money since the last activity file (0600), once each.

    Only the ledger's events on accounts placed at the time (recorded after their placement), with the
    account's balance and status now: no personal data, nothing about other accounts.
    """
    e, a, p = LedgerEntry, Account, Payment
    with engine.begin() as conn:
        since = conn.execute(select(func.max(AgencyFeed.through_entry_id))
                             .where(AgencyFeed.agency == agency)).scalar() or 0
        rows = conn.execute(
            select(e.id, e.account_id, e.kind, e.effective_at, e.amount, e.balance, e.currency, e.reason,
                   p.payment_id, a.balance.label("balance_now"), a.status.label("status_now"))
            .join(a, a.id == e.account_id).outerjoin(p, p.id == e.payment_id)
            .where(e.id > since, a.placed_with == agency, a.placed_at.is_not(None), e.recorded_at > a.placed_at)
            .order_by(e.id)).all()
        if not rows:
            return Feed(agency, 0, None)
        path = ensure_private_directory(out_dir) / f"activity-{now:%Y-%m-%d-%H%M%S}.csv"
        with open_private(path, newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(ACTIVITY_COLUMNS)
            for r in rows:
                amount = r.balance if r.kind == "statement" else r.amount
                writer.writerow(neutralise([
                    r.account_id, r.kind, r.effective_at.isoformat(), in_currency(amount, r.currency), r.currency,
                    r.payment_id or "", r.reason or "", in_currency(r.balance_now, r.currency), r.status_now]))
        conn.execute(insert(AgencyFeed.__table__), {"agency": agency, "written_at": now, "file": path.name,
                                                    "rows": len(rows), "through_entry_id": rows[-1].id})
    return Feed(agency, len(rows), path)
