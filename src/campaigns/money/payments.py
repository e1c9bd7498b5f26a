"""Payments, reversals and refunds: the money that came back (and went back), into the ledger.

A payments file (CSV or Parquet) has ``payment_id, account_id, amount, currency, paid_at`` and optional
``method``, ``reference``, ``type`` (``payment``, the default; ``reversal``; ``refund``), ``reverses`` (a
reversal's payment) and ``reason`` (a reversal's reason code). ``payment_id`` is each row's own id: a
second import of it is a no-op, and a known id with different values is an error for that row. Bad rows
are reported with file, row and field like the portfolio import, and the good rows load.

- A **payment** is stored in ``payments`` and appended to its account's ledger.
- A **reversal** (chargeback, returned payment, a payment recorded in error) undoes one payment, whole:
  its amount must be the payment's, it cannot be dated before it, and a payment is reversed once.
- A **refund** pays credit back: at most what the account holds as credit.

Each batch is one transaction: the accounts are locked, the events appended, and the ledger refreshes
the accounts (``campaigns.money.ledger``): balance, amount due, credit, status, plans, promises, and what
was queued that is now wrong to send.

A large file on PostgreSQL is stored by one process per core, up to four (``import_payments(processes=...)``): this
process reads and checks the rows, and each account's rows go, in file order, to the one process that holds
that account's share, which stores them in batches over a connection of its own. Shares never hold the same
account, so their locks never meet, and every account sees its events in the order a single process would.
The report is the same either way.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from campaigns.clock import NaiveTimestampError, parse_now
from campaigns.db.bulk import allocate_ids, copy_rows
from campaigns.db.engine import among, in_batches, make_engine, refresh_statistics
from campaigns.db.models import Account, LedgerEntry, Payment
from campaigns.money import ledger
from campaigns.money.currency import in_currency
from campaigns.money.derivation import PAYMENT, REFUND, REVERSAL, Entry, derive_figures
from campaigns.intake.rows import FileReport, Record, RowError, RowParser, RowSource
from campaigns.progress import track

REQUIRED = ["payment_id", "account_id", "amount", "currency", "paid_at"]
OPTIONAL = ["method", "reference", "type", "reverses", "reason"]
FIELDS = frozenset(REQUIRED + OPTIONAL)
TYPES = (PAYMENT, REVERSAL, REFUND)
TEXT_LIMITS = {"method": 32, "reference": 64}
# A method or a reference is a processor's code, never free text: no spaces (a name) and no @ (an email):
# both are stored unsealed.
FREE_TEXT = re.compile(r"^[A-Za-z0-9_.:/#+-]*$")
# A reversal's reason is a code, never free text (it is stored plain: no room for a name or a story).
REASON = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
# Rows per transaction. On PostgreSQL 5,000 took 10% less time than 1,000 (100,000 payments: fewer statements
# and commits), and a batch's accounts stay locked for about a second. On SQLite a batch holds the database's one
# write lock, which every other writer waits for, and 5,000 was no quicker than 1,000 (200,000 payments).
BATCH = 5000
SQLITE_BATCH = 1000
# From this many rows (a CSV's size over CSV_ROW_BYTES) a PostgreSQL import stores in one process per core: a
# process costs about a second to start. SQLite has one writer at a time, so it always stores in this process.
STORE_IN_PROCESSES_FROM = 50_000
CSV_ROW_BYTES = 70
# At most this many by default: each holds a connection and about 150 MB, and past a few the database's own
# writes are the limit (measured with two on two cores; ``processes=`` takes more).
STORE_PROCESSES_AT_MOST = 4
# The values that make a row the same event: a known id with any of them different is an error.
IDENTITY = ("account_id", "amount", "currency", "paid_at", "method", "reference")
EVENT_IDENTITY = ("account_id", "amount", "currency", "paid_at")


class PaymentError(ValueError):
    """One payment, reversal or refund that cannot be recorded, in one line (ids and codes only)."""


@dataclass
class PaymentReport(FileReport):
    payments_loaded: int = 0
    reversals_loaded: int = 0
    refunds_loaded: int = 0
    already_recorded: int = 0
    accounts_paid_off: int = 0
    accounts_reopened: int = 0
    plans_completed: int = 0
    plans_reopened: int = 0
    promises_kept: int = 0
    promises_reopened: int = 0
    in_statement: int = 0  # payments dated before their account's latest statement: taken as included in it
    applied: dict[str, Decimal] = field(default_factory=dict)  # what is owed went down by, per currency
    credit: dict[str, Decimal] = field(default_factory=dict)  # credit that appeared (over-payments), per currency

    def add_money(self, which: dict[str, Decimal], currency: str, amount: Decimal) -> None:
        if amount:
            which[currency] = which.get(currency, Decimal(0)) + amount

    def merge(self, other: PaymentReport) -> None:
        """Add what another process stored of the same file (its rows are counted here, as they are read)."""
        self.errors.extend(other.errors)
        for counter in fields(self):  # every count the report keeps, but the rows this process read
            if counter.name != "rows_read" and isinstance(getattr(other, counter.name), int):
                setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        for mine, theirs in ((self.applied, other.applied), (self.credit, other.credit)):
            for currency, amount in theirs.items():
                self.add_money(mine, currency, amount)

    def take(self, done: ledger.Refreshed) -> None:
        self.accounts_paid_off += len(done.paid_off)
        self.accounts_reopened += len(done.reopened)
        self.plans_completed += done.plans_completed
        self.plans_reopened += done.plans_reopened
        self.promises_kept += done.promises_kept
        self.promises_reopened += done.promises_reopened
        for currency, amount in done.applied.items():
            self.add_money(self.applied, currency, amount)
        for currency, amount in done.credit.items():
            self.add_money(self.credit, currency, amount)


def _timestamp(p: RowParser, name: str, now: datetime):
    text = p.required(name)
    if text is None:
        return None
    try:
        moment = parse_now(text)  # the run clock's parser: ISO 8601 that must carry its offset
    except NaiveTimestampError:
        p.fail(name, f"{p.shown(name)} has no UTC offset; write e.g. {text}+00:00")
    except ValueError:
        p.fail(name, f"{p.shown(name)} is not an ISO 8601 timestamp (e.g. 2026-11-20T14:03:00-05:00)")
    else:
        if moment > now + timedelta(days=1):
            p.fail(name, f"{p.shown(name)} is in the future")
            return None
        return moment.astimezone(timezone.utc)
    return None


def parse_payment(file: str, row: int, values: dict[str, str], errors: list[RowError], now: datetime,
                  undecodable: bool = False) -> dict | None:
    """One row as a payment, reversal or refund, or None with its errors added (file, row, field)."""
    before = len(errors)
    p = RowParser(file, row, values, errors)
    p.screen(undecodable)
    payment_id = p.identifier("payment_id")
    account_id = p.identifier("account_id")
    currency = p.currency()
    amount = p.amount("amount", currency)
    if amount is not None and amount == 0:
        p.fail("amount", "is zero; an amount is positive")
    kind = (p.optional("type") or PAYMENT).lower()
    if kind not in TYPES:
        p.fail("type", f"{p.shown('type')} is not one of {', '.join(TYPES)}")
    paid_at = _timestamp(p, "paid_at", now)
    reverses = None
    if kind == REVERSAL:
        reverses = p.identifier("reverses")
    elif p.optional("reverses") is not None:
        p.fail("reverses", "is only for a reversal (type reversal)")
    extras = {}
    for name, limit in TEXT_LIMITS.items():
        value = p.optional(name)
        if value is not None and (len(value) > limit or not FREE_TEXT.match(value)):
            p.fail(name, f"must be at most {limit} letters, digits or _ . : / # + - with no spaces or @ "
                         "(a processor's code, never a name or an email; value withheld)")
            value = None
        extras[name] = value
    reason = p.optional("reason")
    if reason is not None and not REASON.match(reason.lower()):
        p.fail("reason", "must be a short code of letters, digits, _ . : - (e.g. chargeback, returned, "
                         "recorded_in_error; value withheld)")
        reason = None
    extras["reason"] = reason.lower() if reason else None
    if len(errors) > before:
        return None
    return {"payment_id": payment_id, "account_id": account_id, "amount": amount, "currency": currency,
            "paid_at": paid_at, "type": kind, "reverses": reverses, **extras}


def import_payments(engine: Engine, path: Path, now: datetime, zone: ZoneInfo, *, processes: int | None = None,
                    batch: int | None = None) -> PaymentReport:
    """Load a payments file (CSV or Parquet), streaming, in batches of ``batch`` rows (None: ``BATCH``, on SQLite
    ``SQLITE_BATCH``), each in one transaction.

    ``processes``: how many processes store the rows (PostgreSQL only; None: one per core, at most
    ``STORE_PROCESSES_AT_MOST``, from ``STORE_IN_PROCESSES_FROM`` rows, else this process). The report is the
    same either way; its errors are in row order.
    """
    source = RowSource(path, REQUIRED, OPTIONAL, row_is="payment (or reversal, refund)")
    report = PaymentReport(file=str(path))
    if batch is None:
        batch = SQLITE_BATCH if engine.dialect.name == "sqlite" else BATCH
    rows = source.total // CSV_ROW_BYTES if source.kind == "csv" else source.total
    processes = store_processes(engine.dialect.name, rows, processes, os.cpu_count() or 1)
    seen: dict[Any, tuple[int, str]] = {}
    store = _SharedStore(engine, processes, now, zone, report) if processes > 1 else _Store(engine, now, zone, report)
    with track(f"payments {source.path.name}", source.total) as progress, store:
        for record in source.records():
            report.rows_read += 1
            parsed = _parse_record(report, record, seen, now)
            if parsed is not None:
                store.add(record.row, parsed, batch)
            if report.rows_read % batch == 0:
                progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
        store.finish()
        progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
    report.errors.sort(key=lambda e: e.row)
    refresh_statistics(engine, ("payments", "ledger_entries", "accounts"))
    return report


def store_processes(dialect: str, rows: int, asked: int | None, cores: int) -> int:
    """How many processes store a file of about ``rows`` rows (0 or 1: this process): ``asked`` if given, else one
    per core (at most ``STORE_PROCESSES_AT_MOST``) from ``STORE_IN_PROCESSES_FROM`` rows; SQLite always 0."""
    if dialect == "sqlite":
        return 0
    if asked is not None:
        return asked
    return min(cores, STORE_PROCESSES_AT_MOST) if rows >= STORE_IN_PROCESSES_FROM else 0


class _Store:
    """Rows stored in this process, a batch per transaction."""

    def __init__(self, engine: Engine, now: datetime, zone: ZoneInfo, report: PaymentReport) -> None:
        self.engine, self.now, self.zone, self.report = engine, now, zone, report
        self.batch: list[tuple[int, dict]] = []

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add(self, row: int, parsed: dict, size: int) -> None:
        self.batch.append((row, parsed))
        if len(self.batch) >= size:
            self.finish()

    def finish(self) -> None:
        store_payments(self.engine, self.batch, self.now, self.zone, self.report)
        self.batch = []


class _SharedStore:
    """Rows stored by ``processes`` processes, each holding the accounts of its own share (``_share``): an
    account's batches are stored one after another, in file order, by its share's one process. At most two
    batches per share wait, so memory stays flat in the file's size."""

    def __init__(self, engine: Engine, processes: int, now: datetime, zone: ZoneInfo, report: PaymentReport) -> None:
        self.url = engine.url.render_as_string(hide_password=False)
        self.processes, self.now, self.zone, self.report = processes, now, zone, report
        self.batches: list[list[tuple[int, dict]]] = [[] for _ in range(processes)]
        self.waiting: list[deque[Future]] = [deque() for _ in range(processes)]
        self.pools: list[ProcessPoolExecutor] = []

    def __enter__(self) -> _SharedStore:
        # spawn: a fork would copy this process's threads (Prefect's, the progress bar's) mid-step.
        context = get_context("spawn")
        self.pools = [ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_open_share,
                                          initargs=(self.url,)) for _ in range(self.processes)]
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        for pool in self.pools:  # after an error, what waits is not started (a re-run loads it)
            pool.shutdown(wait=True, cancel_futures=kind is not None)

    def add(self, row: int, parsed: dict, size: int) -> None:
        share = _share(parsed["account_id"], self.processes)
        self.batches[share].append((row, parsed))
        if len(self.batches[share]) >= size:
            self._submit(share)

    def _submit(self, share: int) -> None:
        batch, self.batches[share] = self.batches[share], []
        if batch:
            self.waiting[share].append(self.pools[share].submit(_store_share, batch, self.now, self.zone,
                                                                self.report.file))
        while len(self.waiting[share]) > 2:
            self._take(self.waiting[share].popleft())

    def _take(self, future: Future) -> None:
        self.report.merge(future.result())

    def finish(self) -> None:
        for share in range(self.processes):
            self._submit(share)
        for waiting in self.waiting:
            while waiting:
                self._take(waiting.popleft())


def _share(account_id: str, processes: int) -> int:
    """Which process stores this account's rows: the same for every row of the account, on every run."""
    return zlib.crc32(account_id.encode()) % processes


_SHARE_ENGINE: list[Engine] = []  # a share process's own engine (set by ``_open_share`` in that process only)


def _open_share(url: str) -> None:
    # No data keys: nothing a payment writes or reads is sealed.
    _SHARE_ENGINE.append(make_engine(url))


def _store_share(batch: list[tuple[int, dict]], now: datetime, zone: ZoneInfo, file: str) -> PaymentReport:
    report = PaymentReport(file=file)
    store_payments(_SHARE_ENGINE[0], batch, now, zone, report)
    return report


def _parse_record(report: PaymentReport, record: Record, seen: dict[Any, tuple[int, str]], now: datetime
                  ) -> dict | None:
    """A record's payment, reversal or refund, or None (its errors reported). ``seen``: the file's events so far,
    each (its row, its account) by its id: a payment's id itself, (type, id) for a reversal or a refund (a million
    rows' ids are held: a payment's key is its id, no tuple around it)."""
    if record.problem:
        report.errors.append(RowError(report.file, record.row, None, record.problem))
        return None
    parsed = parse_payment(report.file, record.row, record.values, report.errors, now, record.undecodable)
    if parsed is None:
        return None
    key = parsed["payment_id"] if parsed["type"] == PAYMENT else (parsed["type"], parsed["payment_id"])
    first = seen.get(key)
    if first is not None:
        report.errors.append(RowError(report.file, record.row, "payment_id", f"duplicate of row {first[0]}"))
        return None
    seen[key] = (record.row, parsed["account_id"])
    if parsed["type"] == REVERSAL:
        # A payment of this file for another account: said here, since that account's rows may be stored by
        # another process (for a payment the database holds, the database says so).
        target = seen.get(parsed["reverses"])
        if target is not None and target[1] != parsed["account_id"]:
            report.errors.append(RowError(report.file, record.row, "reverses",
                                          f"payment {parsed['reverses']} is for account {target[1]} (row {target[0]}), "
                                          "not this one"))
            return None
    return parsed


def record_notifications(engine: Engine, events: list[Any], now: datetime, zone: ZoneInfo) -> PaymentReport:
    """A processor's payment notifications, as they happen (the signed ``POST /webhooks/payments``).

    Each event has a payments file's fields (the same names; values as JSON strings or numbers; other fields are
    ignored) and is checked and stored as a file's row is: once per ``payment_id`` (the same notification again
    is ``already_recorded``), a reversal or a refund by its ``type``. A bad event is an error naming its place
    (1 for the first) and field; the good ones are stored, in one transaction.
    """
    report = PaymentReport(file="notification")
    seen: dict[Any, tuple[int, str]] = {}
    batch: list[tuple[int, dict]] = []
    for place, event in enumerate(events, start=1):
        report.rows_read += 1
        if isinstance(event, dict):
            values = {k: "" if v is None else str(v) for k, v in event.items() if k in FIELDS}
            record = Record(place, values)
        else:
            record = Record(place, {}, "is not an object of payment fields")
        parsed = _parse_record(report, record, seen, now)
        if parsed is not None:
            batch.append((place, parsed))
    store_payments(engine, batch, now, zone, report)
    report.errors.sort(key=lambda e: e.row)
    return report


def _one(engine: Engine, row: dict[str, Any], now: datetime, zone: ZoneInfo, what: str) -> PaymentReport:
    report = PaymentReport(file=what)
    parsed = parse_payment(what, 1, {k: "" if v is None else str(v) for k, v in row.items()}, report.errors, now)
    if parsed is None:
        raise PaymentError("; ".join(f"{e.field}: {e.message}" for e in report.errors))
    store_payments(engine, [(1, parsed)], now, zone, report)
    if report.errors:
        raise PaymentError(report.errors[0].message)
    return report


def currency_of(engine: Engine, account_id: str) -> str:
    """The account's currency, or a ``PaymentError`` naming an unknown account."""
    with engine.connect() as conn:
        currency = conn.execute(select(Account.currency).where(Account.id == account_id)).scalar()
    if currency is None:
        raise PaymentError(f"no account {account_id!r}")
    return currency


def record_payment(engine: Engine, account_id: str, amount: Decimal, paid_at: datetime, now: datetime,
                   zone: ZoneInfo, *, reference: str | None = None, payment_id: str | None = None,
                   method: str | None = None) -> PaymentReport:
    """Record one payment (``campaigns payments record``), in the account's currency."""
    currency = currency_of(engine, account_id)
    # The same payment recorded twice (same account, moment, amount and reference) is one payment; two of the
    # same amount in the same second are told apart by their references (or --payment-id).
    if payment_id is None:
        payment_id = _manual_id(engine, account_id, paid_at, amount, reference)
    return _one(engine, {"payment_id": payment_id, "account_id": account_id,
                         "amount": amount, "currency": currency, "paid_at": paid_at.isoformat(),
                         "method": method, "reference": reference}, now, zone, "payment")


def _manual_id(engine: Engine, account_id: str, paid_at: datetime, amount: Decimal, reference: str | None) -> str:
    made_from = f"{account_id}|{paid_at.isoformat()}|{amount}"
    older = f"manual-{hashlib.sha256(made_from.encode()).hexdigest()[:24]}"
    if reference is None:
        return older
    # Before issue 24 the reference was not part of the id: a payment recorded then, with this reference, is
    # found under its old id, so recording it again is still one payment.
    with engine.connect() as conn:
        if conn.execute(select(Payment.reference).where(Payment.payment_id == older)).scalar() == reference:
            return older
    return f"manual-{hashlib.sha256(f'{made_from}|{reference}'.encode()).hexdigest()[:24]}"


def _moment(engine: Engine, key: str, given: datetime | None, now: datetime) -> datetime:
    """The event's moment: as given; else, for an event recorded before, its own (asking twice is one
    event); else now."""
    if given is not None:
        return given
    with engine.connect() as conn:
        known = conn.execute(select(LedgerEntry.effective_at).where(LedgerEntry.entry_key == key)).scalar()
    return known or now


def reverse_payment(engine: Engine, payment_id: str, reason: str, now: datetime, zone: ZoneInfo, *,
                    reversed_at: datetime | None = None, reversal_id: str | None = None) -> PaymentReport:
    """Undo one recorded payment (``campaigns payments reverse``): idempotent on the reversal's id (by default
    made from the payment's, so the same reversal twice is one)."""
    with engine.connect() as conn:
        paid = conn.execute(select(Payment.account_id, Payment.amount, Payment.currency)
                            .where(Payment.payment_id == payment_id)).first()
    if paid is None:
        raise PaymentError(f"no payment {payment_id!r} is recorded")
    own_id = reversal_id or f"rev-{payment_id}"[:64]
    moment = _moment(engine, f"{REVERSAL}|{own_id}", reversed_at, now)
    return _one(engine, {"payment_id": own_id, "account_id": paid.account_id,
                         "amount": in_currency(paid.amount, paid.currency), "currency": paid.currency,
                         "paid_at": moment.isoformat(), "type": REVERSAL, "reverses": payment_id,
                         "reason": reason}, now, zone, "reversal")


def refund_credit(engine: Engine, account_id: str, amount: Decimal, reference: str, now: datetime, zone: ZoneInfo,
                  *, refunded_at: datetime | None = None) -> PaymentReport:
    """Pay back credit (``campaigns payments refund``): idempotent on ``reference`` (the refund's own id)."""
    currency = currency_of(engine, account_id)
    moment = _moment(engine, f"{REFUND}|{reference}", refunded_at, now)
    return _one(engine, {"payment_id": reference, "account_id": account_id, "amount": amount,
                         "currency": currency, "paid_at": moment.isoformat(), "type": REFUND,
                         "reference": reference}, now, zone, "refund")


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


def _known_payments(conn: Connection, payment_ids: list[str]) -> dict[str, dict]:
    p = Payment
    found = {}
    for part in in_batches(sorted(set(payment_ids))):
        for r in conn.execute(select(p.id, p.payment_id, p.account_id, p.amount, p.currency, p.paid_at, p.method,
                                     p.reference).where(among(conn, p.payment_id, part))).mappings():
            found[r["payment_id"]] = {**r, "amount": in_currency(r["amount"], r["currency"])}
    return found


def _known_events(conn: Connection, keys: list[str]) -> dict[str, dict]:
    e = LedgerEntry
    found = {}
    for part in in_batches(sorted(set(keys))):
        for r in conn.execute(select(e.entry_key, e.account_id, e.amount, e.currency, e.effective_at, e.payment_id)
                              .where(among(conn, e.entry_key, part))).mappings():
            found[r["entry_key"]] = {**r, "amount": in_currency(r["amount"], r["currency"]),
                                     "paid_at": r["effective_at"]}
    return found


def _reversals_of(conn: Connection, payment_row_ids: list[int]) -> dict[int, str]:
    e = LedgerEntry
    found: dict[int, str] = {}
    for part in in_batches(sorted(set(payment_row_ids))):
        found.update(conn.execute(select(e.payment_id, e.entry_key).where(among(conn, e.payment_id, part),
                                                                          e.kind == REVERSAL)).all())
    return found


def _key(event: dict) -> str:
    return f"{event['type']}|{event['payment_id']}"


def _store(conn: Connection, batch: list[tuple[int, dict]], now: datetime, zone: ZoneInfo, file: str,
           report: PaymentReport) -> None:
    errors: list[RowError] = []
    account_ids = sorted({p["account_id"] for _, p in batch})
    currencies = ledger.lock_accounts(conn, account_ids)
    payments = [(r, p) for r, p in batch if p["type"] == PAYMENT]
    others = [(r, p) for r, p in batch if p["type"] != PAYMENT]
    known = _known_payments(conn, [p["payment_id"] for _, p in payments] +
                            [p["reverses"] for _, p in others if p["type"] == REVERSAL])
    known_events = _known_events(conn, [_key(p) for _, p in others])
    source = "import" if file not in ("payment", "reversal", "refund") else "cli"
    duplicates = 0

    def usable(row: int, event: dict) -> bool:
        currency = currencies.get(event["account_id"])
        if currency is None:
            errors.append(RowError(file, row, "account_id", f"{event['account_id']!r} is not a known account"))
            return False
        if event["currency"] != currency:
            errors.append(RowError(file, row, "currency", f"{event['currency']} is not the account's currency "
                                                          f"({currency})"))
            return False
        return True

    def same(row: int, event: dict, existing: dict, names: tuple[str, ...], what: str) -> bool:
        different = [f for f in names if existing.get(f) != event.get(f)]
        if different:
            errors.append(RowError(file, row, different[0], f"{what} {event['payment_id']} is already recorded with "
                                                            f"a different {', '.join(different)}"))
        return not different

    fresh: list[tuple[int, dict]] = []
    for row, payment in payments:
        if not usable(row, payment):
            continue
        existing = known.get(payment["payment_id"])
        if existing is not None:
            duplicates += same(row, payment, existing, IDENTITY, "payment")
            continue
        fresh.append((row, payment))
    # The accounts are locked and the ids checked in this transaction: every fresh payment is new, so the rows
    # are copied straight in. (A concurrent import that slipped one in makes this batch fail its unique key; it
    # is then retried row by row, and that row is found already recorded.)
    row_ids = dict(zip((p["payment_id"] for _, p in fresh), allocate_ids(conn, Payment.__table__, len(fresh))))
    copy_rows(conn, Payment.__table__, [
        {"id": row_ids[p["payment_id"]], "payment_id": p["payment_id"], "account_id": p["account_id"],
         "amount": p["amount"], "currency": p["currency"], "paid_at": p["paid_at"], "source": source,
         "method": p["method"], "reference": p["reference"], "recorded_at": now} for _, p in fresh])
    rows = [ledger.entry_row(PAYMENT, _key(p), p["account_id"], p["currency"], p["paid_at"], now, source,
                             amount=p["amount"], payment_id=row_ids[p["payment_id"]], reason=None)
            for _, p in fresh]
    # Reversals: each undoes one payment (this batch's included), whole, once.
    reversed_by = _reversals_of(conn, [k["id"] for k in known.values()])
    for _, p in fresh:
        known[p["payment_id"]] = {**p, "id": row_ids[p["payment_id"]]}
    refunds: list[tuple[int, dict]] = []
    reversals = 0
    for row, event in others:
        if not usable(row, event):
            continue
        existing = known_events.get(_key(event))
        if existing is not None:
            duplicates += same(row, event, existing, EVENT_IDENTITY, event["type"])
            continue
        if event["type"] == REFUND:
            refunds.append((row, event))
            continue
        target = known.get(event["reverses"])
        problem = _reversal_problem(event, target, reversed_by)
        if problem is not None:
            errors.append(RowError(file, row, *problem))
            continue
        reversed_by[target["id"]] = _key(event)
        rows.append(ledger.entry_row(REVERSAL, _key(event), event["account_id"], event["currency"],
                                     event["paid_at"], now, source, amount=event["amount"], payment_id=target["id"],
                                     reason=event["reason"] or "reversed"))
        reversals += 1
    # Every key was checked new above, with the accounts locked (a payment's id is in ``payments`` too).
    ledger.append(conn, rows, known_new=True)
    # Only accounts whose ledger grew need deriving again (a file loaded twice touches none).
    done = ledger.refresh(conn, sorted({r["account_id"] for r in rows}), now, zone)
    report.take(done)
    refunded = 0
    if refunds:
        # A refund pays back the credit the account held at its moment (a reversal after it does not undo it).
        ledgers = ledger.entries_of(conn, sorted({e["account_id"] for _, e in refunds}))
        accepted = []
        for row, event in sorted(refunds, key=lambda item: item[1]["paid_at"]):
            entries = ledgers[event["account_id"]]
            available = derive_figures([e for e in entries if e.effective_at <= event["paid_at"]],
                                       event["currency"]).credit
            if event["amount"] > available:
                errors.append(RowError(file, row, "amount", f"is more than the credit account {event['account_id']} "
                                                            f"holds ({available} {event['currency']})"))
                continue
            entries.append(Entry(id=max((e.id for e in entries), default=0) + 1, kind=REFUND,
                                 effective_at=event["paid_at"], recorded_at=now, amount=event["amount"]))
            accepted.append(ledger.entry_row(REFUND, _key(event), event["account_id"], event["currency"],
                                             event["paid_at"], now, source, amount=event["amount"],
                                             reason=event["reference"] or event["payment_id"]))
        if accepted:
            ledger.append(conn, accepted)
            report.take(ledger.refresh(conn, sorted({r["account_id"] for r in accepted}), now, zone))
            refunded = len(accepted)
    for _, p in fresh:
        figures = done.figures.get(p["account_id"])
        if figures is not None and figures.statement_at is not None and p["paid_at"] < figures.statement_at:
            report.in_statement += 1
    report.errors.extend(errors)
    report.already_recorded += duplicates
    report.payments_loaded += len(fresh)
    report.reversals_loaded += reversals
    report.refunds_loaded += refunded


def _reversal_problem(event: dict, target: dict | None, reversed_by: dict[int, str]) -> tuple[str, str] | None:
    """Why this reversal cannot be recorded (field, message), or None."""
    if target is None:
        return "reverses", f"payment {event['reverses']} is not recorded"
    if target["account_id"] != event["account_id"]:
        return "reverses", f"payment {event['reverses']} is on account {target['account_id']}, not this one"
    if reversed_by.get(target["id"]) is not None:
        return "reverses", (f"payment {event['reverses']} is already reversed "
                            f"({reversed_by[target['id']].split('|', 1)[1]})")
    if event["amount"] != in_currency(target["amount"], event["currency"]):
        return "amount", (f"a reversal undoes its whole payment ({in_currency(target['amount'], event['currency'])}); "
                          "to keep a part, reverse it and record a new payment of that part")
    if event["paid_at"] < target["paid_at"]:
        return "paid_at", f"is before the payment it reverses ({target['paid_at']:%Y-%m-%d %H:%M} UTC)"
    return None


def money_events(engine: Engine, account_id: str) -> list[dict[str, Any]]:
    """The account's ledger for a person: each event's day, kind, amount or figures, and ids (no personal data)."""
    e, p = LedgerEntry, Payment
    with engine.connect() as conn:
        rows = conn.execute(select(e.id, e.kind, e.effective_at, e.recorded_at, e.currency, e.amount, e.balance,
                                   e.amount_due, e.due_date, e.lender_status, e.reason, e.source, p.payment_id)
                            .outerjoin(p, p.id == e.payment_id).where(e.account_id == account_id)
                            .order_by(e.effective_at, e.id)).all()
    events = []
    undone = {r.payment_id for r in rows if r.kind == REVERSAL}
    for r in rows:
        event: dict[str, Any] = {"entry": r.id, "kind": r.kind, "at": r.effective_at, "recorded_at": r.recorded_at,
                                 "source": r.source}
        if r.kind == "statement":
            event.update(balance=in_currency(r.balance, r.currency), amount_due=in_currency(r.amount_due, r.currency),
                         due_date=r.due_date, lender_status=r.lender_status)
        else:
            event["amount"] = in_currency(r.amount, r.currency)
        if r.payment_id is not None:
            event["payment_id"] = r.payment_id
        if r.kind == PAYMENT and r.payment_id in undone:
            event["reversed"] = True
        if r.reason:
            event["reason"] = r.reason
        event["currency"] = r.currency
        events.append(event)
    return events


__all__ = ["PaymentError", "PaymentReport", "import_payments", "money_events", "parse_payment", "record_payment",
           "record_notifications", "refund_credit", "reverse_payment", "store_payments", "store_processes"]
