"""The ledger in the database: money events appended, and every account's figures derived from them.

Every change to money goes through here. A writer locks the accounts it touches (``lock_accounts``, in
id order on PostgreSQL), appends entries (``append``: each has a key, so a repeat adds nothing), then
calls ``refresh``, which derives each account's figures from its whole ledger
(``campaigns.money.derivation``) and writes the account's cache (balance, amount due, credit, due date,
status, payoff, next instalment, the figures' fingerprint), the plan's and the promises' state, in the
same transaction. Nothing else writes those columns; ``check`` recomputes them all and names every
account whose cache disagrees (``campaigns ledger check``, ``--fix``).

What a refresh changes is reported (``Refreshed``) and acted on at once: an account paid off leaves the
worklist, what was queued and is now wrong to send is stopped (``paid``), an account that owes again
after a payoff (a reversal) goes back on the worklist where it left it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, exists, select, update
from sqlalchemy.engine import Connection

from campaigns.attempts.log import suppress_pending
from campaigns.db.bulk import copy_rows, insert_ignoring_conflicts, update_rows
from campaigns.db.engine import among, driver_rows, in_batches
from campaigns.db.models import (
    ACCOUNT_DERIVED,
    Account,
    AgentWorklistItem,
    LedgerEntry,
    Payment,
    PaymentPromise,
    PlanInstalment,
    RepaymentPlan,
)
from campaigns.money.derivation import (
    PAYMENT,
    REVERSAL,
    STATEMENT,
    Entry,
    Figures,
    Instalment,
    account_status,
    derive_figures,
    figures_digest,
    payoff_seen_at,
    plan_payments,
    plan_state,
    promise_paid,
)
from campaigns.money.plans import add_months

ZERO = Decimal(0)
UTC = timezone.utc
ENTRY_COLUMNS = ("id", "account_id", "kind", "effective_at", "recorded_at", "amount", "balance", "amount_due",
                 "due_date", "lender_status", "payment_id")  # Entry's fields, account_id second


def lock_accounts(conn: Connection, account_ids: Iterable[str]) -> dict[str, str]:
    """Hold the accounts for this transaction: PostgreSQL row locks taken in id order, so concurrent
    writers apply one after the other and never deadlock. (SQLite has one writer at a time: its
    transaction takes the database's write lock at its first write.) Returns each existing account's
    currency (the lock's read gives it for nothing)."""
    found: dict[str, str] = {}
    for part in in_batches(sorted(set(account_ids))):
        stmt = select(Account.id, Account.currency).where(among(conn, Account.id, part)).order_by(Account.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        found.update(conn.execute(stmt).all())
    return found


def append(conn: Connection, rows: Sequence[dict[str, Any]], *, known_new: bool = False) -> set[str]:
    """Append entries (each with its ``entry_key``); a key already in the ledger adds nothing.

    Returns the keys appended. ``known_new``: the caller has checked every key is new (in this transaction,
    its accounts locked), so the rows are copied straight in; a key taken meanwhile fails the transaction
    (``IntegrityError``), as a unique key does.
    """
    if not rows:
        return set()
    if known_new:
        copy_rows(conn, LedgerEntry.__table__, list(rows))
        return {r["entry_key"] for r in rows}
    created = insert_ignoring_conflicts(conn, LedgerEntry.__table__, list(rows), key="entry_key")
    return {key for _, key in created}


def entry_row(kind: str, key: str, account_id: str, currency: str, effective_at: datetime, now: datetime,
              source: str, **values: Any) -> dict[str, Any]:
    """One ledger row with every column (bulk writes want the same keys in every row)."""
    return {"account_id": account_id, "kind": kind, "entry_key": key, "effective_at": effective_at,
            "recorded_at": now, "currency": currency, "amount": values.get("amount"),
            "balance": values.get("balance"), "amount_due": values.get("amount_due"),
            "due_date": values.get("due_date"), "lender_status": values.get("lender_status"),
            "payment_id": values.get("payment_id"), "plan_id": values.get("plan_id"),
            "reason": values.get("reason"), "source": source}


def standing():
    """SQL: the payment (``payments``) was not reversed. What came back and stayed is what the review counts."""
    return ~exists().where(LedgerEntry.payment_id == Payment.id, LedgerEntry.kind == REVERSAL)


def entries_of(conn: Connection, account_ids: Sequence[str]) -> dict[str, list[Entry]]:
    """Each account's ledger, in the order it was recorded."""
    t = LedgerEntry.__table__
    found: dict[str, list[Entry]] = defaultdict(list)
    make = Entry._make
    for part in in_batches(sorted(set(account_ids))):
        stmt = select(*(t.c[c] for c in ENTRY_COLUMNS)).where(among(conn, t.c.account_id, part)).order_by(
            t.c.account_id, t.c.id)
        if conn.dialect.name == "postgresql":
            # psycopg's tuples: SQLAlchemy's rows and timestamp processing were a third of this read, which is
            # a quarter of a payments import's Python. The two timestamps are made UTC here, as UTCDateTime does.
            for r in driver_rows(conn, stmt):
                found[r[1]].append(make((r[0], r[2], r[3].astimezone(UTC), r[4].astimezone(UTC), *r[5:])))
        else:
            for r in conn.execute(stmt):
                found[r[1]].append(make(r[:1] + r[2:]))  # every column but account_id, in Entry's order
    return found


@dataclass
class Refreshed:
    """What a refresh changed (account ids; amounts per currency)."""

    paid_off: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    cured: list[str] = field(default_factory=list)
    plans_completed: int = 0
    plans_reopened: int = 0
    plans_extended: int = 0
    promises_kept: int = 0
    promises_reopened: int = 0
    promises_broken: int = 0
    applied: dict[str, Decimal] = field(default_factory=dict)  # what is owed went down by
    credit: dict[str, Decimal] = field(default_factory=dict)  # credit that appeared
    figures: dict[str, Figures] = field(default_factory=dict)

    def add(self, which: dict[str, Decimal], currency: str, amount: Decimal) -> None:
        if amount:
            which[currency] = which.get(currency, ZERO) + amount


@dataclass
class _Plan:
    row: Any
    instalments: list[Any]


def _caches(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    a = Account.__table__
    columns = [a.c.id, a.c.currency, a.c.placed_at, *(a.c[c] for c in ACCOUNT_DERIVED)]
    found = {}
    for part in in_batches(ids):
        for r in conn.execute(select(*columns).where(among(conn, a.c.id, part))).mappings():
            found[r["id"]] = dict(r)
    return found


def _plans(conn: Connection, ids: Sequence[str]) -> dict[str, _Plan]:
    """Per account, the plan a refresh looks after: the one accepted, else the newest one completed (which
    a reversal of its payment can reopen)."""
    p, i = RepaymentPlan.__table__, PlanInstalment.__table__
    chosen: dict[str, Any] = {}
    for part in in_batches(ids):
        rows = conn.execute(select(p).where(among(conn, p.c.account_id, part), p.c.accepted_at.is_not(None))
                            .order_by(p.c.account_id, p.c.accepted_at, p.c.id)).all()
        for r in rows:  # each account's newest accepted plan (none if that one is broken)
            chosen[r.account_id] = r
    chosen = {k: r for k, r in chosen.items() if r.status in ("accepted", "completed")}
    plans = {k: _Plan(r, []) for k, r in chosen.items()}
    by_id = {plan.row.id: plan for plan in plans.values()}
    for part in in_batches(sorted(by_id)):
        for r in conn.execute(select(i).where(i.c.plan_id.in_(part)).order_by(i.c.plan_id, i.c.seq)):
            by_id[r.plan_id].instalments.append(r)
    return plans


def _promises(conn: Connection, ids: Sequence[str]) -> dict[str, list[Any]]:
    p = PaymentPromise.__table__
    found: dict[str, list[Any]] = defaultdict(list)
    for part in in_batches(ids):
        for r in conn.execute(select(p).where(among(conn, p.c.account_id, part),
                                              p.c.status.in_(("open", "kept")))):
            found[r.account_id].append(r)
    return found


def refresh(conn: Connection, account_ids: Iterable[str], now: datetime, zone: ZoneInfo, *,
            effects: bool = True) -> Refreshed:
    """Derive the accounts' figures from their ledgers and write the caches (see the module's docstring).

    Call it in the transaction that appended the entries, after ``lock_accounts``. ``effects``: also stop
    what is now wrong to send and move worklist items (off only for a dry check).
    """
    ids = sorted(set(account_ids))
    done = Refreshed()
    if not ids:
        return done
    before = _caches(conn, ids)
    ledgers = entries_of(conn, ids)
    plans = _plans(conn, ids)
    promises = _promises(conn, ids)
    today = now.astimezone(zone).date()
    account_rows, instalment_rows, new_instalments, plan_updates, promise_rows = [], [], [], [], []
    for account_id in ids:
        old = before.get(account_id)
        if old is None:
            continue
        entries = ledgers.get(account_id, [])
        currency = old["currency"]
        figures = derive_figures(entries, currency)
        done.figures[account_id] = figures
        status = account_status(figures, old["placed_at"] is not None)
        head_before = old["ledger_head"]
        if head_before is None:
            seen = payoff_seen_at(entries, currency, final=figures)
        elif figures.head != head_before:
            seen = payoff_seen_at(entries, currency, after_id=head_before, seen=old["payoff_seen_at"], final=figures)
        else:
            seen = old["payoff_seen_at"]
        plan_due: tuple[date | None, Decimal | None] = (None, None)
        plan = plans.get(account_id)
        if plan is not None and plan.row.status == "completed":
            if figures.owes and _reversed_since(entries, plan.row):
                plan_updates.append({"id": plan.row.id, "status": "accepted", "closed_at": None,
                                     "close_reason": None, "ledger_closed": None})
                done.plans_reopened += 1
            else:
                plan = None
        if plan is not None:
            plan_due = _follow_plan(plan, entries, figures, now, today, done, instalment_rows, new_instalments,
                                    plan_updates)
        for promise in promises.get(account_id, []):
            _follow_promise(promise, entries, figures, now, today, zone, done, promise_rows)
        cache = {
            "balance": figures.balance, "amount_due": figures.amount_due, "due_date": figures.due_date or
            old["due_date"], "status": status, "credit": figures.credit, "paid_off_at": figures.paid_off_at,
            "payoff_seen_at": seen, "plan_due_date": plan_due[0], "plan_amount_due": plan_due[1],
            "figures": figures_digest(figures.balance, figures.amount_due, figures.credit, figures.due_date,
                                      plan_due[0], plan_due[1], status, currency),
            "statement_id": figures.statement_id, "ledger_head": figures.head,
        }
        _note_changes(done, account_id, currency, old, cache)
        if any(_differs(old[c], cache[c]) for c in ACCOUNT_DERIVED):
            account_rows.append({"id": account_id, **cache, "updated_at": now})
    _write(conn, account_rows, instalment_rows, new_instalments, plan_updates, promise_rows)
    if effects:
        _act_on(conn, done, now)
    return done


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return a is None or b is None or Decimal(a) != Decimal(b)
    return a != b


def _reversed_since(entries: Sequence[Entry], plan: Any) -> bool:
    """A completed plan reopens when a payment that paid it is reversed after it was completed."""
    paid_it = {e.payment_id for e in plan_payments(entries, plan.ledger_from or 0, reversed_too=True)}
    return any(e.kind == REVERSAL and e.id > (plan.ledger_closed or 0) and e.payment_id in paid_it
               for e in entries)


def _follow_plan(plan: _Plan, entries: Sequence[Entry], figures: Figures, now: datetime, today: date,
                 done: Refreshed, instalment_rows: list, new_instalments: list,
                 plan_updates: list) -> tuple[date | None, Decimal | None]:
    """The accepted plan against the ledger: instalments paid and waived, one added for a balance beyond
    what it lacks, completed when nothing is owed. Returns the account's next instalment (date, what is left)."""
    rows = plan.instalments
    schedule = [Instalment(r.seq, r.due_date, Decimal(r.amount)) for r in rows]
    state = plan_state(schedule, entries, plan.row.ledger_from or 0, figures.balance)
    if figures.owes and state.excess > 0 and schedule:
        # More is owed than the plan lacks (a higher statement, the reversal of a payment made before it): the
        # difference becomes one more instalment, a period after the last one and at least a period from
        # today, reminded and judged like the others; nothing owed hides under a plan nobody reminds.
        fortnightly = len(schedule) > 1 and (schedule[-1].due_date - schedule[-2].due_date).days == 14
        step = (lambda day: day + timedelta(days=14)) if fortnightly else (lambda day: add_months(day, 1))
        due = max(step(schedule[-1].due_date), step(today))
        # What the plan's payments brought beyond its instalments goes to the new one first: it is owed
        # the excess once they are in.
        amount = state.excess + state.unallocated
        schedule.append(Instalment(schedule[-1].seq + 1, due, amount))
        state = plan_state(schedule, entries, plan.row.ledger_from or 0, figures.balance)
        last = state.instalments[-1]
        new_instalments.append({"plan_id": plan.row.id, "account_id": plan.row.account_id, "seq": last.seq,
                                "due_date": due, "amount": amount, "paid": last.paid, "paid_at": last.paid_at,
                                "waived": last.waived, "added_at": now, "added_by": figures.head})
        done.plans_extended += 1
    for r, s in zip(rows, state.instalments):
        if _differs(r.paid, s.paid) or r.paid_at != s.paid_at or _differs(r.waived, s.waived):
            instalment_rows.append({"id": r.id, "paid": s.paid, "paid_at": s.paid_at, "waived": s.waived})
    if not figures.owes:
        why = "paid off" if state.paid >= sum((i.amount for i in schedule), ZERO) else "nothing owed any more"
        plan_updates.append({"id": plan.row.id, "status": "completed", "closed_at": now, "close_reason": why,
                             "ledger_closed": figures.head})
        done.plans_completed += 1
        return None, None
    nxt = state.next_due
    return (nxt.due_date, nxt.left) if nxt is not None else (None, None)


def _follow_promise(promise: Any, entries: Sequence[Entry], figures: Figures, now: datetime, today: date,
                    zone: ZoneInfo, done: Refreshed, promise_rows: list) -> None:
    """Kept by the payments from its moment to the end of its day, or once nothing is owed; a kept promise
    whose payment is reversed is open again until its day has passed, broken after."""
    paid = promise_paid(entries, promise.promised_at, promise.due_by, zone)
    kept = paid >= promise.amount or not figures.owes
    status, resolved = promise.status, promise.resolved_at
    if kept and status == "open":
        status, resolved = "kept", now
        done.promises_kept += 1
    elif not kept and status == "kept":
        if today <= promise.due_by:
            status, resolved = "open", None
            done.promises_reopened += 1
        else:
            status, resolved = "broken", now
            done.promises_broken += 1
    if status != promise.status or _differs(promise.paid, paid):
        promise_rows.append({"id": promise.id, "paid": paid, "status": status, "resolved_at": resolved})


def _note_changes(done: Refreshed, account_id: str, currency: str, old: dict, new: dict) -> None:
    owed_before, owed_now = Decimal(old["balance"] or 0), new["balance"]
    done.add(done.applied, currency, max(owed_before - owed_now, ZERO))
    done.add(done.credit, currency, max(new["credit"] - Decimal(old["credit"] or 0), ZERO))
    if owed_before > 0 and owed_now == 0:
        done.paid_off.append(account_id)
    elif owed_now > 0 and old["paid_off_at"] is not None and owed_before == 0:
        done.reopened.append(account_id)
    if (Decimal(old["amount_due"] or 0) > 0 and new["amount_due"] == 0 and new["plan_due_date"] is None) or (
            old["plan_due_date"] is not None and old["plan_due_date"] != new["plan_due_date"]):
        done.cured.append(account_id)


def _write(conn: Connection, accounts: list, instalments: list, new_instalments: list, plans: list,
           promises: list) -> None:
    if accounts:
        update_rows(conn, Account.__table__, accounts)
    if new_instalments:
        conn.execute(PlanInstalment.__table__.insert(), new_instalments)
    if instalments:
        update_rows(conn, PlanInstalment.__table__, instalments)
    for row in plans:
        values = {k: v for k, v in row.items() if k != "id"}
        conn.execute(update(RepaymentPlan).where(RepaymentPlan.id == row["id"]).values(**values))
    if promises:
        update_rows(conn, PaymentPromise.__table__, promises)


def _act_on(conn: Connection, done: Refreshed, now: datetime) -> None:
    w = AgentWorklistItem
    for part in in_batches(done.paid_off):
        conn.execute(update(w).where(among(conn, w.account_id, part), w.status == "open")
                     .values(status="done", outcome="paid", outcome_at=now))
    stop = sorted(set(done.cured) | set(done.paid_off))
    for part in in_batches(stop):
        suppress_pending(conn, part, "paid", now, keep_stages=("thank_you",))
    if done.reopened:
        reopen_worklist(conn, done.reopened, "paid", "payment_reversed", now)


def reopen_worklist(conn: Connection, account_ids: list[str], closed_by: str, reason: str, now: datetime) -> int:
    """Put back on the worklist the items a promise or plan (``closed_by``) took off it, now that it is broken."""
    w = AgentWorklistItem
    reopened = 0
    for part in in_batches(account_ids):
        reopened += conn.execute(update(w).where(w.account_id.in_(part), w.status == "done",
                                                 w.outcome == closed_by)
                                 .values(status="open", reason=reason, outcome=reason, outcome_at=now)).rowcount
    return reopened


def reconcile(engine: Engine, now: datetime, zone: ZoneInfo, chunk: int = 2000) -> int:
    """Refresh every account, a chunk per transaction (after the migration that opened the ledger)."""
    after = ""
    total = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(select(Account.id).where(Account.id > after).order_by(Account.id)
                                    .limit(chunk)).scalars())
            if not ids:
                return total
            lock_accounts(conn, ids)
            refresh(conn, ids, now, zone)
        total += len(ids)
        after = ids[-1]


@dataclass
class CheckReport:
    accounts: int = 0
    mismatched: dict[str, list[str]] = field(default_factory=dict)  # account id -> what differs (column names)

    @property
    def ok(self) -> bool:
        return not self.mismatched


def _snapshot(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Everything a refresh derives for these accounts, by account: its cache, its plans' states and
    instalments, its promises'."""
    snap: dict[str, dict[str, Any]] = {k: dict(v) for k, v in _caches(conn, ids).items()}
    p, i, pr = RepaymentPlan.__table__, PlanInstalment.__table__, PaymentPromise.__table__
    for part in in_batches(ids):
        for r in conn.execute(select(p.c.id, p.c.account_id, p.c.status).where(among(conn, p.c.account_id, part))):
            snap[r.account_id][f"plan {r.id} status"] = r.status
        for r in conn.execute(select(i.c.plan_id, i.c.seq, i.c.account_id, i.c.amount, i.c.paid, i.c.paid_at,
                                     i.c.waived).where(among(conn, i.c.account_id, part))):
            snap[r.account_id][f"plan {r.plan_id} instalment {r.seq}"] = (
                Decimal(r.amount), Decimal(r.paid), r.paid_at, Decimal(r.waived))
        for r in conn.execute(select(pr.c.id, pr.c.account_id, pr.c.status, pr.c.paid)
                              .where(among(conn, pr.c.account_id, part))):
            snap[r.account_id][f"promise {r.id}"] = (r.status, Decimal(r.paid))
    return snap


def check(engine: Engine, zone: ZoneInfo, now: datetime, *, fix: bool = False,
          account_ids: Sequence[str] | None = None, chunk: int = 2000) -> CheckReport:
    """Derive every account's figures again from its whole ledger (the payoff replayed from the first
    entry) and compare them, its plans and its promises with what is stored; with ``fix``, keep what the
    ledger says (and act on it, as any refresh does). Without, nothing is written: each chunk's work is
    rolled back."""
    report = CheckReport()
    after = ""
    while True:
        with engine.connect() as conn:
            transaction = conn.begin()
            stmt = select(Account.id).where(Account.id > after).order_by(Account.id).limit(chunk)
            if account_ids is not None:
                stmt = stmt.where(Account.id.in_(list(account_ids)))
            ids = list(conn.execute(stmt).scalars())
            if not ids:
                transaction.rollback()
                return report
            lock_accounts(conn, ids)
            stored = _snapshot(conn, ids)
            conn.execute(update(Account).where(Account.id.in_(ids)).values(ledger_head=None))
            refresh(conn, ids, now, zone, effects=fix)
            derived = _snapshot(conn, ids)
            for account_id in ids:
                old, new = stored[account_id], derived[account_id]
                wrong = sorted(k for k in set(old) | set(new) if k not in ("updated_at",)
                               and _differs(old.get(k), new.get(k)))
                if wrong:
                    report.mismatched[account_id] = wrong
            report.accounts += len(ids)
            if fix:
                transaction.commit()
            else:
                transaction.rollback()
        after = ids[-1]


def statement_of(conn: Connection, account_ids: Sequence[str]) -> dict[str, Any]:
    """Each account's latest statement entry (through the account's cache)."""
    e, a = LedgerEntry.__table__, Account.__table__
    found = {}
    for part in in_batches(sorted(set(account_ids))):
        stmt = (select(a.c.id.label("account"), e.c.id, e.c.effective_at, e.c.balance, e.c.amount_due,
                       e.c.due_date, e.c.lender_status)
                .join(e, e.c.id == a.c.statement_id).where(among(conn, a.c.id, part)))
        for r in conn.execute(stmt):
            found[r.account] = r
    return found


def payments_since(conn: Connection, statements: dict[str, Any]) -> dict[str, int]:
    """Per account, how many payments recorded here (not reversed) are dated after its latest statement."""
    e = LedgerEntry.__table__
    ids = sorted(statements)
    counts: dict[str, int] = {}
    for part in in_batches(ids):
        rows = conn.execute(select(e.c.account_id, e.c.kind, e.c.effective_at, e.c.payment_id)
                            .where(among(conn, e.c.account_id, part), e.c.kind.in_((PAYMENT, REVERSAL)))).all()
        undone = {r.payment_id for r in rows if r.kind == REVERSAL}
        for r in rows:
            statement = statements[r.account_id]
            if r.kind == PAYMENT and r.payment_id not in undone and r.effective_at > statement.effective_at:
                counts[r.account_id] = counts.get(r.account_id, 0) + 1
    return counts


__all__ = ["CheckReport", "Refreshed", "STATEMENT", "append", "check", "entries_of", "entry_row",
           "lock_accounts", "payments_since", "reconcile", "refresh", "reopen_worklist", "standing", "statement_of"]
