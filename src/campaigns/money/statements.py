"""A portfolio row is a statement: the lender's figures for an account *as of* a moment.

The moment is the row's ``balance_as_of`` (ISO 8601 with its offset; ``campaigns import
--balance-as-of`` gives one to a whole file), else the import's. Payments recorded here after that
moment apply on top of the statement's figures; those before it are taken as included in them
(``campaigns.money.derivation``). What a row does:

- **a new account**: its first statement;
- **the same statement again** (no ``balance_as_of`` and the same balance, amount due, due date and status
  as the account's latest statement; or the same ``balance_as_of`` and figures as a statement already
  recorded): nothing;
- **no ``balance_as_of``, and it would raise what the account owes** (or take away its credit) **while
  payments recorded here since its latest statement may not be in it**: refused, for its row (the row
  error names the account and how many payments, never their amounts): a lender's export often does
  not have the payment an agent or the processor's file brought here yesterday. Give the moment its
  figures were taken and the ledger puts it in its place;
- otherwise a new statement. One older than the account's latest is kept in the ledger and changes
  nothing (reported as older).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaigns.db.engine import among, in_batches
from campaigns.db.models import Account
from campaigns.money import ledger
from campaigns.money.derivation import STATEMENT


@dataclass(frozen=True)
class Statement:
    row: int
    account_id: str
    currency: str
    balance: Decimal
    amount_due: Decimal
    due_date: Any
    lender_status: str
    as_of: datetime | None  # None: as of the import


@dataclass
class Decisions:
    entries: list[dict[str, Any]] = field(default_factory=list)
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (field, message)
    unchanged: int = 0
    older: int = 0
    accounts: set[str] = field(default_factory=set)  # accounts whose ledger gets a statement


def _figures(s: Statement) -> tuple:
    return (Decimal(s.balance), Decimal(s.amount_due), s.due_date, s.lender_status)


def _key(s: Statement, moment: datetime) -> str:
    digest = hashlib.sha256(f"{moment.isoformat()}|{s.balance}|{s.amount_due}|{s.due_date}|{s.lender_status}"
                            .encode()).hexdigest()[:32]
    return f"statement|{s.account_id}|{digest}"


def decide(conn: Connection, statements: list[Statement], now: datetime, source: str = "import") -> Decisions:
    """What each statement does (module docstring): the entries to append, and the rows refused."""
    decided = Decisions()
    ids = sorted({s.account_id for s in statements})
    accounts: dict[str, Any] = {}
    for part in in_batches(ids):
        for r in conn.execute(select(Account.id, Account.currency, Account.balance, Account.credit)
                              .where(among(conn, Account.id, part))):
            accounts[r.id] = r
    latest = ledger.statement_of(conn, list(accounts))
    raising: list[Statement] = []
    for s in statements:
        if s.as_of is not None and s.as_of > now + timedelta(days=1):
            decided.refused[s.row] = ("balance_as_of", f"{s.as_of.isoformat()} is in the future")
            continue
        account = accounts.get(s.account_id)
        if account is not None and account.currency != s.currency:
            decided.refused[s.row] = ("currency", f"account {s.account_id} is kept in {account.currency}; a "
                                                  f"statement in {s.currency} cannot be added to its ledger")
            continue
        last = latest.get(s.account_id)
        if s.as_of is None and last is not None:
            if _figures(s) == (Decimal(last.balance), Decimal(last.amount_due), last.due_date, last.lender_status):
                decided.unchanged += 1
                continue
            if Decimal(s.balance) > Decimal(account.balance) - Decimal(account.credit or 0):
                raising.append(s)
                continue
        if s.as_of is not None and last is not None and s.as_of < last.effective_at:
            decided.older += 1
        _add(decided, s, now, source)
    if raising:
        since = ledger.payments_since(conn, {s.account_id: latest[s.account_id] for s in raising})
        for s in raising:
            count = since.get(s.account_id, 0)
            if count:
                decided.refused[s.row] = ("balance", (
                    f"account {s.account_id}: this statement would raise what is owed, and {count} payment(s) "
                    "recorded here since its last statement may not be in it; give the moment its figures were "
                    "taken (a balance_as_of column, or campaigns import --balance-as-of)"))
            else:
                _add(decided, s, now, source)
    return decided


def _add(decided: Decisions, s: Statement, now: datetime, source: str) -> None:
    moment = s.as_of or now
    decided.entries.append(ledger.entry_row(
        STATEMENT, _key(s, moment), s.account_id, s.currency, moment, now, source, balance=s.balance,
        amount_due=s.amount_due, due_date=s.due_date, lender_status=s.lender_status))
    decided.accounts.add(s.account_id)
