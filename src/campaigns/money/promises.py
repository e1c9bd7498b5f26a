"""Promises to pay: an amount by a date. While one is open the account is not nudged.

::

    open ──payments of at least the amount by the date──> kept
      └──the date passes without them──> broken (the day after)

Kept and broken promises stay in ``payment_promises`` for the review; a broken
one sends the account back into the ladder where its age puts it. What a promise
got, and whether it is kept, is the ledger's to say (``campaigns.money.ledger``):
the payments made from its moment to the end of its day (in the lender's zone), net
of reversals; a kept promise whose payment is reversed is open again until its day
has passed, and broken after it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, exists, insert, select, update
from sqlalchemy.engine import Connection

from campaigns.attempts.log import suppress_pending
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, PaymentPromise
from campaigns.money import ledger
from campaigns.money.currency import in_currency

# Where a promise was made: the review counts promises by it, so an unknown word is refused, not stored.
CHANNELS = ("call", "email", "sms", "web", "agent")
KINDS = ("promise", "deferral")
TRANSITIONS = {"open": {"kept", "broken"}, "kept": {"open", "broken"}, "broken": set()}


class PromiseError(ValueError):
    """A promise that cannot be recorded or moved, in one line (ids only)."""


def open_promise_exists():
    """A SQL condition: the account (``Account``, in the enclosing query) has an open promise to pay."""
    return exists().where(PaymentPromise.account_id == Account.id, PaymentPromise.status == "open")


def check_transition(current: str, wanted: str) -> None:
    if wanted not in TRANSITIONS.get(current, set()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, set()))) or "nothing: it is final"
        raise PromiseError(f"a promise that is {current} cannot become {wanted} (from {current}: {allowed})")


def record_promise(engine: Engine, account_id: str, amount: Decimal, by: date, now: datetime, today: date, *,
                   channel: str | None = None, max_days: int = 30, source: str = "cli",
                   zone: ZoneInfo | None = None, kind: str = "promise") -> int:
    """Open a promise; what is queued or deferred for the account is stopped (``promise_open``). What it has
    got so far (a payment made at the very moment) is the ledger's to say."""
    with engine.begin() as conn:
        return open_promise(conn, account_id, amount, by, now, today, channel=channel, max_days=max_days,
                            source=source, zone=zone, kind=kind)


def open_promise(conn: Connection, account_id: str, amount: Decimal, by: date, now: datetime, today: date, *,
                 channel: str | None = None, max_days: int = 30, source: str = "cli", zone: ZoneInfo | None = None,
                 kind: str = "promise") -> int:
    """``record_promise`` in the caller's transaction. ``kind`` deferral: the customer asked for more time (it
    pauses and breaks the same way)."""
    if channel is not None and channel not in CHANNELS:
        raise PromiseError(f"unknown channel {channel!r} for a promise; use one of {', '.join(CHANNELS)}")
    if kind not in KINDS:
        raise PromiseError(f"unknown kind {kind!r} of promise; use one of {', '.join(KINDS)}")
    if by < today:
        raise PromiseError(f"the promised date {by} is in the past (today is {today})")
    if (by - today).days > max_days:
        raise PromiseError(f"the promised date {by} is more than {max_days} days ahead (promises.max_days)")
    ledger.lock_accounts(conn, [account_id])
    account = conn.execute(select(Account.status, Account.currency, Account.balance)
                           .where(Account.id == account_id)).first()
    if account is None:
        raise PromiseError(f"no account {account_id!r}")
    if account.status != "open" or account.balance <= 0:
        raise PromiseError(f"account {account_id} is {account.status} with {account.balance} owed: "
                           "there is nothing to promise")
    if amount <= 0 or in_currency(amount, account.currency) != amount:
        raise PromiseError(f"the amount must be positive, with at most the decimals of {account.currency}")
    if amount > account.balance:
        raise PromiseError(f"the amount is more than the balance of account {account_id} "
                           f"({in_currency(account.balance, account.currency)} {account.currency})")
    if conn.execute(select(PaymentPromise.id).where(PaymentPromise.account_id == account_id,
                                                    PaymentPromise.status == "open")).first():
        raise PromiseError(f"account {account_id} already has an open promise")
    promise_id = conn.execute(insert(PaymentPromise).returning(PaymentPromise.id), {
        "account_id": account_id, "amount": amount, "currency": account.currency, "due_by": by,
        "channel": channel, "status": "open", "paid": Decimal(0), "promised_at": now, "resolved_at": None,
        "source": source, "kind": kind}).scalar_one()
    suppress_pending(conn, [account_id], "promise_open", now, keep_stages=("thank_you",))
    ledger.refresh(conn, [account_id], now, zone or ZoneInfo("UTC"))
    return promise_id


def break_overdue_promises(conn: Connection, as_of: date, now: datetime) -> int:
    """Promises whose date has passed unpaid are broken (the day after the date); an account whose promise
    was made to an agent goes back on the worklist, where it left off."""
    p = PaymentPromise
    broken = conn.execute(select(p.id, p.account_id).where(p.status == "open", p.due_by < as_of)).all()
    if not broken:
        return 0
    conn.execute(update(p).where(p.id.in_([b.id for b in broken])).values(status="broken", resolved_at=now))
    ledger.reopen_worklist(conn, [b.account_id for b in broken], "promise", "broken_promise", now)
    return len(broken)


def promise_history(conn: Connection, account_ids: list[str]) -> dict[str, list[dict]]:
    p = PaymentPromise
    history: dict[str, list[dict]] = {}
    for part in in_batches(account_ids):
        for r in conn.execute(select(p.account_id, p.status, p.amount, p.currency, p.due_by)
                              .where(p.account_id.in_(part))
                              .order_by(p.account_id, p.promised_at.desc())):
            history.setdefault(r.account_id, []).append(
                {"status": r.status, "amount": str(in_currency(r.amount, r.currency)), "by": r.due_by.isoformat()})
    return history
