"""Placing accounts with a collection agency, and recalling them.

An account old and large enough (``agency`` in the ladder config) is placed:
its row goes into a placement file with only what the agency needs to collect
(minimal disclosure: who, how to reach them and what they may be contacted on,
what is owed; not the contact history, product, flags or other accounts), the
account becomes ``placed``, what was queued for it is suppressed (``placed``),
and no stage selects it again. ``campaigns agency recall`` returns it to us.

Not placed: accounts with an open dispute, a hold, a cease request, a vulnerable
customer, an open promise or a plan in good standing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, and_, exists, or_, select, update
from sqlalchemy.engine import Connection

from campaigns.contact.cohorts import open_promise_exists
from campaigns.contact.ladder import AgencyRules
from campaigns.contact.outcomes import suppress_pending
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, AgentWorklistItem, Customer, Dispute, Hold
from campaigns.files import ensure_private_directory, open_private
from campaigns.money.currency import in_currency
from campaigns.money.spreadsheet import neutralise

PLACEMENT_COLUMNS = ["account_id", "placed_on", "currency", "balance", "amount_due", "due_date", "days_past_due",
                     "name", "phone", "email", "country", "timezone", "locale", "do_not_email", "do_not_sms"]


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


def place_with_agency(engine: Engine, rules: AgencyRules, as_of: date, now: datetime, out_dir: Path) -> Placement:
    """Place every account the rules select; write their placement file (0600) into ``out_dir``."""
    if not rules.enabled:
        return Placement(rules.name, 0, None)
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
        _mark_placed(conn, ids, rules.name, now)
    return Placement(rules.name, len(rows), path)


def _mark_placed(conn: Connection, ids: list[str], agency: str, now: datetime) -> None:
    for part in in_batches(ids):
        conn.execute(update(Account).where(Account.id.in_(part), Account.status == "open")
                     .values(status="placed", placed_at=now, placed_with=agency, updated_at=now))
        conn.execute(update(AgentWorklistItem).where(AgentWorklistItem.account_id.in_(part),
                                                     AgentWorklistItem.status == "open")
                     .values(status="placed", outcome="placed", outcome_at=now))
        suppress_pending(conn, part, "placed", now)


def recall(engine: Engine, account_id: str, now: datetime) -> str:
    """Take an account back from the agency: it is ours again (open, or paid if nothing is owed)."""
    with engine.begin() as conn:
        account = conn.execute(select(Account.status, Account.balance, Account.placed_with)
                               .where(Account.id == account_id).with_for_update()).first()
        if account is None:
            raise AgencyError(f"no account {account_id!r}")
        if account.status != "placed":
            raise AgencyError(f"account {account_id} is {account.status}, not placed with an agency")
        status = "open" if account.balance > 0 else "paid"
        conn.execute(update(Account).where(Account.id == account_id)
                     .values(status=status, placed_at=None, placed_with=None, updated_at=now))
    return account.placed_with or "the agency"
