"""What an account owes, derived from its ledger: pure functions over its money events, no database.

The ledger (``ledger_entries``) keeps every money event of an account and is only ever appended to:

- **statement**: the lender's figures (balance, amount due, due date, open or closed) *as of* a moment;
- **payment**: money that came back (one per ``payments`` row);
- **reversal**: a payment undone (chargeback, returned payment, recorded in error), once per payment;
- **refund**: credit paid back to the customer;
- **fee**: an amount the lender charges on top (a plan's fee when it is accepted).

Everything else is derived here, the same way every time:

- **Position** (what is owed; negative: credit). Events are read in the order of their moment
  (``effective_at``; ties in the order they were recorded). A statement sets the position to its balance:
  what happened before its moment is taken as included in it. After it, a payment lowers the position, a
  reversal puts its payment's amount back, a refund or a fee raises it. ``balance`` is the position when
  positive, ``credit`` its opposite when negative.
- **Amount due**: the statement's amount due, less the payments after it, plus the reversals after it,
  never below zero nor above the balance.
- **Paid off at**: the moment of the event that last brought the position from owed to nothing (None while
  something is owed, or if nothing was ever owed).
- **Status**: ``closed`` if the lender's latest statement says so; placed with an agency, ``placed`` while
  something is owed and ``closed`` once nothing is (paid at the agency); else ``open`` or ``paid``.

A plan's instalments are paid by the payments recorded after the plan was accepted (and not reversed),
oldest instalment first, each payment in the order it was recorded. When the balance is lower than what
the plan still lacks (a lower statement), the instalments are *waived* from the last one back until they
agree; when it is higher (a higher statement, the reversal of a payment made before the plan) the excess is
owed beyond the plan (``PlanState.excess``: the ledger's caller adds it to the plan as one more
instalment, see ``money.ledger``). A promise is kept by the payments made from its moment to the end of its
day (in the lender's zone), or when nothing is owed any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from campaigns.money.currency import in_currency
from campaigns.money.plans import allocate

STATEMENT, PAYMENT, REVERSAL, REFUND, FEE = "statement", "payment", "reversal", "refund", "fee"
KINDS = (STATEMENT, PAYMENT, REVERSAL, REFUND, FEE)
ZERO = Decimal(0)


class Entry(NamedTuple):
    """One money event of an account, as the ledger holds it (a tuple: a refresh makes one per entry read)."""

    id: int
    kind: str
    effective_at: datetime
    recorded_at: datetime
    amount: Decimal | None = None
    balance: Decimal | None = None
    amount_due: Decimal | None = None
    due_date: date | None = None
    lender_status: str | None = None
    payment_id: int | None = None  # payments.id: the payment a payment or reversal entry is about


@dataclass(frozen=True)
class Figures:
    """What the ledger says an account owes now."""

    balance: Decimal
    amount_due: Decimal
    credit: Decimal
    due_date: date | None
    closed_by_lender: bool
    paid_off_at: datetime | None
    statement_id: int | None
    statement_at: datetime | None
    head: int | None

    @property
    def owes(self) -> bool:
        return self.balance > 0


def _order(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.effective_at, e.id))


def derive_figures(entries: Sequence[Entry], currency: str) -> Figures:
    """Balance, amount due, credit, due date and payoff of an account from its entries (module docstring)."""
    position = due = ZERO
    owing = False
    paid_off_at: datetime | None = None
    statement: Entry | None = None
    for e in _order(entries):
        if e.kind == STATEMENT:
            position, due, statement = Decimal(e.balance), Decimal(e.amount_due), e
        elif e.kind == PAYMENT:
            position -= e.amount
            due -= e.amount
        elif e.kind == REVERSAL:
            position += e.amount
            due += e.amount
        elif e.kind in (REFUND, FEE):
            position += e.amount
        else:  # pragma: no cover - the table's kinds are checked when an entry is written
            raise ValueError(f"unknown ledger entry kind {e.kind!r}")
        if statement is None:
            continue  # nothing is owed, nor paid off, before the account's first statement
        if position > 0:
            owing, paid_off_at = True, None
        elif owing:
            owing, paid_off_at = False, e.effective_at
    balance = in_currency(max(position, ZERO), currency)
    return Figures(
        balance=balance,
        amount_due=in_currency(min(max(due, ZERO), balance), currency),
        credit=in_currency(max(-position, ZERO), currency),
        due_date=statement.due_date if statement else None,
        closed_by_lender=bool(statement and statement.lender_status == "closed"),
        paid_off_at=paid_off_at,
        statement_id=statement.id if statement else None,
        statement_at=statement.effective_at if statement else None,
        head=max((e.id for e in entries), default=None),
    )


def account_status(figures: Figures, placed: bool) -> str:
    if figures.closed_by_lender:
        return "closed"
    if placed:
        return "placed" if figures.owes else "closed"
    return "open" if figures.owes else "paid"


def payoff_seen_at(entries: Sequence[Entry], currency: str, *, after_id: int = 0,
                   seen: datetime | None = None, final: Figures | None = None) -> datetime | None:
    """When the current payoff was *recorded*: the ``recorded_at`` of the entry whose arrival (entries in
    the order they were recorded) left the account owing nothing, with a payoff, after it owed something.
    None while it owes.

    It tells one payoff from the next: a thank-you is sent once per payoff, and a payoff re-derived at an
    earlier moment (a late payment recorded after it) is still the same payoff. ``after_id`` and ``seen``
    go on from a known state (the entries up to ``after_id`` gave ``seen``) instead of from the start;
    ``final``: the figures of all the entries, when the caller has them already.
    """
    by_id = sorted(entries, key=lambda e: e.id)
    for n, entry in enumerate(by_id, start=1):
        if entry.id <= after_id:
            continue
        figures = final if final is not None and n == len(by_id) else derive_figures(by_id[:n], currency)
        if figures.owes:
            seen = None
        elif seen is None and figures.paid_off_at is not None:
            seen = entry.recorded_at
    return seen


def reversed_payments(entries: Iterable[Entry]) -> set[int]:
    return {e.payment_id for e in entries if e.kind == REVERSAL and e.payment_id is not None}


@dataclass(frozen=True)
class Instalment:
    seq: int
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class InstalmentState:
    seq: int
    due_date: date
    amount: Decimal
    paid: Decimal
    paid_at: datetime | None  # when it was paid in full
    waived: Decimal  # no longer owed: a lower balance took it off the plan's end

    @property
    def left(self) -> Decimal:
        return self.amount - self.paid - self.waived


@dataclass(frozen=True)
class PlanState:
    instalments: tuple[InstalmentState, ...]
    excess: Decimal  # owed beyond what the plan still lacks
    paid: Decimal  # what the plan's payments brought
    unallocated: Decimal  # what they brought beyond every instalment (it goes to an instalment added later)

    @property
    def next_due(self) -> InstalmentState | None:
        return next((i for i in self.instalments if i.left > 0), None)

    @property
    def settled(self) -> bool:
        """Nothing of the plan is left and nothing is owed beyond it."""
        return self.next_due is None and self.excess <= 0


def plan_payments(entries: Sequence[Entry], ledger_from: int, *, reversed_too: bool = False) -> list[Entry]:
    """The payments that pay a plan accepted when the ledger's newest entry was ``ledger_from``: recorded after
    that, not reversed (unless ``reversed_too``), and not already in the statement its split was made from (one
    dated before it, recorded late, was in the balance the plan split)."""
    base = max((e for e in entries if e.kind == STATEMENT and e.id <= ledger_from),
               key=lambda e: (e.effective_at, e.id), default=None)
    undone = set() if reversed_too else reversed_payments(entries)
    return [e for e in sorted(entries, key=lambda e: e.id)
            if e.kind == PAYMENT and e.id > ledger_from and e.payment_id not in undone
            and (base is None or (e.effective_at, e.id) > (base.effective_at, base.id))]


def plan_state(instalments: Sequence[Instalment], entries: Sequence[Entry], ledger_from: int,
               balance: Decimal) -> PlanState:
    """A plan's instalments as the ledger has them: paid by its payments, waived down to the balance."""
    amounts = [Decimal(i.amount) for i in instalments]
    paid = [ZERO] * len(amounts)
    paid_at: list[datetime | None] = [None] * len(amounts)
    brought = ZERO
    for e in plan_payments(entries, ledger_from):
        brought += e.amount
        shares, _ = allocate([a - p for a, p in zip(amounts, paid)], e.amount)
        for k, share in enumerate(shares):
            if share:
                paid[k] += share
                if paid[k] >= amounts[k]:
                    paid_at[k] = e.effective_at
    left = [a - p for a, p in zip(amounts, paid)]
    waived = [ZERO] * len(amounts)
    cut = sum(left, ZERO) - balance
    for k in reversed(range(len(amounts))):
        if cut <= 0:
            break
        waived[k] = min(left[k], cut)
        cut -= waived[k]
    excess = max(balance - sum(left, ZERO), ZERO)
    return PlanState(tuple(InstalmentState(i.seq, i.due_date, amounts[k], paid[k], paid_at[k], waived[k])
                           for k, i in enumerate(instalments)), excess, brought, brought - sum(paid, ZERO))


def promise_paid(entries: Sequence[Entry], promised_at: datetime, due_by: date, zone: ZoneInfo) -> Decimal:
    """What the payments made from the promise's moment to the end of its day (in ``zone``) bring, net of
    reversals."""
    undone = reversed_payments(entries)
    return sum((e.amount for e in entries if e.kind == PAYMENT and e.payment_id not in undone
                and e.effective_at >= promised_at and e.effective_at.astimezone(zone).date() <= due_by), ZERO)


def figures_digest(balance: Decimal, amount_due: Decimal, credit: Decimal, due_date: date | None,
                   plan_due_date: date | None, plan_amount_due: Decimal | None, status: str, currency: str) -> str:
    """A short fingerprint of everything a message can state about an account's money.

    Kept on the account and on each attempt when its message is rendered: a message whose fingerprint
    is not the account's any more (paid, reversed, re-stated) is not sent.
    """
    parts = [str(in_currency(balance, currency)), str(in_currency(amount_due, currency)),
             str(in_currency(credit, currency)), str(due_date), str(plan_due_date),
             "" if plan_amount_due is None else str(in_currency(plan_amount_due, currency)), status]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
