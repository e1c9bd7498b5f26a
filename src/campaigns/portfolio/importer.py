"""Import a portfolio export (CSV or Parquet, one row per account), upserting customers and accounts.

Every bad row is reported with the file, its row number and the field, and the
good rows still load. A row number is the line a person sees in an editor: in a
CSV the header is line 1, blank lines count, and a record that spans several
lines (a quoted newline) is numbered by its first line; in Parquet the first
record is row 1. Values of personal fields (name, email, phone) are never echoed
in errors, and no cell of a file is shown as a column name.

Every value is checked against the schema's limits (lengths, NUL and other
control characters, numeric range and precision) while the row is parsed, so a
value the database would refuse is a row error like any other and costs only
its row, on SQLite (which would store it silently) and PostgreSQL (which would
refuse the whole batch) alike.

The file is read as a stream and written in batches of ``BATCH`` rows, each in
its own transaction, so memory stays flat however large the file is; what is
kept across batches is an index of the ids seen (for duplicates and customer
conflicts), about a hundred bytes a row. Re-running the same file is harmless:
every write is an upsert. A long file's rows are checked in processes beside the
one that reads and writes (``_parsed_records``), and come back in file order.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, and_, insert, select
from sqlalchemy.exc import DataError, IntegrityError

from campaigns.clock import NaiveTimestampError, parse_now
from campaigns.db.engine import among, refresh_statistics, upsert
from campaigns.intake.rows import (
    PERSONAL,
    FileReport,
    Record,
    RowError,
    RowParser,
    RowSource,
)
from campaigns.db.models import ACCOUNT_DERIVED, Account, Customer, Dispute, OptOutEvent
from campaigns.money import ledger, statements
from campaigns.privacy.lookup import INDEXED_OPT_OUTS, carry_opt_outs, spread_opt_outs, with_blind_indexes
from campaigns.policy.zones import number_zones, stored_zones
from campaigns.progress import track

REQUIRED = ["account_id", "customer_id", "currency", "balance", "amount_due", "due_date"]
OPTIONAL = [
    "name", "email", "phone", "locale", "timezone", "country", "status", "product",
    "email_opt_out", "sms_opt_out", "sms_consent", "disputed", "cease_contact",
    "email_is_employer", "email_employer_consent", "vulnerable", "time_barred", "push_enabled", "push_opt_out",
    "balance_as_of",
]
FLAGS = ("email_opt_out", "sms_opt_out", "sms_consent", "disputed", "cease_contact", "email_is_employer",
         "email_employer_consent", "vulnerable", "time_barred", "push_enabled", "push_opt_out")
COLUMNS = REQUIRED + OPTIONAL
# An opt-out we hold (from a reply, an unsubscribe, the CLI) outlives a re-import that says "false".
OPT_OUTS = ("email_opt_out", "sms_opt_out", "push_opt_out")
STATUSES = {"open", "paid", "closed"}
# The customer fields that must agree on every row of the same customer.
CUSTOMER_FIELDS = ("name", "email", "phone", "locale", "timezone", "country", "email_opt_out", "sms_opt_out",
                   "sms_consent", "email_is_employer", "email_employer_consent", "vulnerable", "push_enabled",
                   "push_opt_out")
BATCH = 1000

@dataclass
class ImportReport(FileReport):
    accounts_loaded: int = 0
    customers_loaded: int = 0
    disputes_opened: int = 0
    statements_recorded: int = 0  # new statements in the ledger
    statements_unchanged: int = 0  # the account's statement again: nothing to do
    statements_older: int = 0  # older than the account's latest: kept, no effect
    opt_outs_recorded: int = 0  # customers the file opted out of a channel they were not opted out of
    opt_outs_carried: int = 0  # customers opted out because another record of their address is
    erased_kept: list[str] = field(default_factory=list)  # accounts of erased customers: personal fields ignored


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(code for code in Locale("en").territories if len(code) == 2 and code.isalpha() and code != "ZZ")


@lru_cache(maxsize=256)
def _normal_locale(tag: str) -> str | None:
    """``zh_CN``/``zh-cn``/``zh-Hans-CN`` → ``zh-CN``; None if Babel does not know it.

    Templates are named language-TERRITORY, so a script subtag is left out.
    """
    try:
        parsed = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    return "-".join(x for x in (parsed.language, parsed.territory) if x)


def parse_row(file: str, row_number: int, values: dict[str, str], errors: list[RowError],
              undecodable: bool = False):
    """Validate one row; return (customer, account, disputed) or None if it has errors."""
    before = len(errors)
    p = RowParser(file, row_number, values, errors)
    p.screen(undecodable)
    account_id = p.identifier("account_id")
    customer_id = p.identifier("customer_id")
    currency = p.currency()
    balance = p.amount("balance", currency)
    amount_due = p.amount("amount_due", currency)
    if balance is not None and amount_due is not None and amount_due > balance:
        p.fail("amount_due", f"{amount_due} is more than the balance ({balance})")
    due_date = p.day("due_date")

    status = (p.optional("status") or "open").lower()
    if status not in STATUSES:
        p.fail("status", f"{p.shown('status')} is not one of {', '.join(sorted(STATUSES))}")
    elif status == "paid" and balance:
        p.fail("status", f"is paid, but the balance is {balance}: a paid account owes nothing")

    as_of = None
    text = p.optional("balance_as_of")
    if text is not None:
        try:
            as_of = parse_now(text).astimezone(timezone.utc)
        except NaiveTimestampError:
            p.fail("balance_as_of", f"{p.shown('balance_as_of')} has no UTC offset; write e.g. {text}+00:00")
        except ValueError:
            p.fail("balance_as_of", f"{p.shown('balance_as_of')} is not an ISO 8601 timestamp "
                                    "(e.g. 2026-11-20T23:59:59-05:00)")

    country = p.optional("country")
    if country is not None:
        country = country.upper()
        if country not in _countries():
            p.fail("country", f"{p.shown('country')} is not an ISO 3166 two-letter country code")
            country = None

    zone = p.optional("timezone")
    if zone is not None and zone not in _zones():
        p.fail("timezone", f"{p.shown('timezone')} is not an IANA time zone")

    locale = _normal_locale(p.optional("locale") or "en-US") if "locale" not in p.bad else None
    if locale is None and "locale" not in p.bad:
        p.fail("locale", f"{p.shown('locale')} is not a known locale (e.g. en-US, zh-CN)")

    email = p.optional("email")
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            p.fail("email", "is not a valid email address (value withheld: personal data)")
        else:
            if len(email) > Customer.__table__.c.email.type.length:
                p.fail("email", "is too long (value withheld: personal data)")

    phone = p.optional("phone")
    phone_zones = None
    if phone is not None:
        try:
            number = phonenumbers.parse(phone, country)
            if not phonenumbers.is_valid_number(number):
                raise phonenumbers.NumberParseException(0, "invalid")
            phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            phone_zones = stored_zones(number_zones(number))  # once here, not on every stage run
        except phonenumbers.NumberParseException:
            hint = "" if country else "; give it in +<country code> form or fill in country"
            p.fail("phone", f"is not a valid phone number (value withheld: personal data){hint}")

    flags = {f: p.flag(f) for f in FLAGS}
    if len(errors) > before:
        return None
    customer = {
        "id": customer_id, "name": p.optional("name"), "email": email, "phone": phone, "phone_zones": phone_zones,
        "locale": locale,
        "timezone": zone, "country": country, "email_opt_out": flags["email_opt_out"],
        "sms_opt_out": flags["sms_opt_out"], "sms_consent": flags["sms_consent"],
        "email_is_employer": flags["email_is_employer"], "email_employer_consent": flags["email_employer_consent"],
        "vulnerable": flags["vulnerable"], "push_enabled": flags["push_enabled"],
        "push_opt_out": flags["push_opt_out"],
    }
    account = {
        "id": account_id, "customer_id": customer_id, "currency": currency, "balance": balance,
        "amount_due": amount_due, "due_date": due_date, "status": status, "product": p.optional("product"),
        "cease_contact": flags["cease_contact"], "time_barred": flags["time_barred"], "balance_as_of": as_of,
    }
    return customer, account, flags["disputed"]


def _fingerprint(customer: dict) -> bytes:
    """A compact digest per customer field: enough to tell which fields two rows disagree on, in 56 bytes."""
    return struct.pack(f"{len(CUSTOMER_FIELDS)}I", *(hash(customer[f]) & 0xFFFFFFFF for f in CUSTOMER_FIELDS))


def _disagreeing_fields(a: bytes, b: bytes) -> list[str]:
    n = len(CUSTOMER_FIELDS)
    return [f for f, x, y in zip(CUSTOMER_FIELDS, struct.unpack(f"{n}I", a), struct.unpack(f"{n}I", b)) if x != y]


@dataclass
class _Parsed:
    row: int
    customer: dict
    account: dict
    disputed: bool


# Validating a row (its email's syntax, its phone's number plan and zones) is two thirds of an import's
# time, the same on every row and independent of the others: files this long are validated in processes
# beside the one that reads and writes, a piece of records at a time, and come back in file order.
PARSE_IN_PROCESSES_FROM = 20_000  # rows (of a CSV: its size over CSV_ROW_BYTES, a portfolio row's usual size)
CSV_ROW_BYTES = 190
PARSE_PIECE = 2_000


def import_portfolio(engine: Engine, path: Path, now: datetime | None = None,
                     processes: int | None = None, *, zone: ZoneInfo | None = None,
                     balance_as_of: datetime | None = None) -> ImportReport:
    """Validate and upsert a portfolio file; each row's figures are a statement in its account's ledger
    (``campaigns.money.statements``). File-level problems raise ``RowFileError``.

    ``processes``: how many validate rows beside this one (default: one per core, for a file of
    ``PARSE_IN_PROCESSES_FROM`` rows or more; 0: none). The report is the same either way. ``zone``: the
    lender's (promises are judged by its days). ``balance_as_of``: the moment of the file's figures, for
    rows without a ``balance_as_of`` of their own (default: the import's).
    """
    now = now or datetime.now(timezone.utc)
    zone = zone or ZoneInfo("UTC")
    source = RowSource(path, REQUIRED, OPTIONAL, row_is="account")
    report = ImportReport(file=str(path))
    accounts_seen: dict[str, int] = {}
    customers_seen: dict[str, tuple[int, bytes]] = {}
    batch: list[_Parsed] = []
    if processes is None:
        rows = source.total // CSV_ROW_BYTES if source.kind == "csv" else source.total
        processes = (os.cpu_count() or 1) if rows >= PARSE_IN_PROCESSES_FROM else 0
    with track(f"import {source.path.name}", source.total) as progress:
        for record, parsed, errors in _parsed_records(source, report.file, processes):
            report.rows_read += 1
            if record.problem:
                report.errors.append(RowError(report.file, record.row, None, record.problem))
            else:
                report.errors.extend(errors)
                unique = _unique(report, record, parsed, accounts_seen, customers_seen)
                if unique is not None:
                    batch.append(unique)
            if len(batch) >= BATCH:
                _store(engine, batch, now, report, zone, balance_as_of)
                batch = []
                progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
        _store(engine, batch, now, report, zone, balance_as_of)
        progress.update(source.completed, f"{report.rows_read:,} rows, {len(report.errors):,} errors")
    report.customers_loaded = len(customers_seen)
    refresh_statistics(engine, ("customers", "accounts", "ledger_entries"))
    return report


def _parse_piece(file: str, records: list[Record]) -> list[tuple[Any, list[RowError]]]:
    """``parse_row`` of each record (none with a problem): its result and its row errors."""
    out = []
    for record in records:
        errors: list[RowError] = []
        out.append((parse_row(file, record.row, record.values, errors, record.undecodable), errors))
    return out


def _parsed_records(source: RowSource, file: str, processes: int):
    """(record, parse_row's result, its errors) for every record of ``source``, in file order; a record
    with a problem of its own is not parsed. With ``processes``, pieces are parsed in that many processes,
    a few pieces ahead of the caller (memory stays flat in file size)."""
    if processes <= 0:
        for record in source.records():
            if record.problem:
                yield record, None, []
            else:
                yield (record, *_parse_piece(file, [record])[0])
        return
    # spawn: a fork would copy this process's threads (Prefect's, the progress bar's) mid-step.
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        pending: deque = deque()
        records = source.records()
        while True:
            piece = list(islice(records, PARSE_PIECE))
            if piece:
                pending.append((piece, pool.submit(_parse_piece, file, [r for r in piece if not r.problem])))
            if not pending:
                return
            if piece and len(pending) <= 2 * processes:
                continue
            piece, future = pending.popleft()
            results = iter(future.result())
            for record in piece:
                yield (record, None, []) if record.problem else (record, *next(results))


def _unique(report: ImportReport, record: Record, parsed, accounts_seen: dict[str, int],
            customers_seen: dict[str, tuple[int, bytes]]) -> _Parsed | None:
    """A parsed record, unless its account repeats an earlier row's or its customer differs from an earlier
    row's (a row error)."""
    if parsed is None:
        return None
    customer, account, disputed = parsed
    if account["id"] in accounts_seen:
        report.errors.append(RowError(report.file, record.row, "account_id",
                                      f"duplicate of row {accounts_seen[account['id']]}"))
        return None
    fingerprint = _fingerprint(customer)
    first = customers_seen.get(customer["id"])
    if first is not None and first[1] != fingerprint:
        for name in _disagreeing_fields(first[1], fingerprint) or ["customer_id"]:
            withheld = " (values withheld: personal data)" if name in PERSONAL else ""
            report.errors.append(RowError(report.file, record.row, name,
                                          f"customer {customer['id']} has a different {name} on row {first[0]}"
                                          f"{withheld}; one customer, one set of details"))
        return None
    accounts_seen[account["id"]] = record.row
    customers_seen.setdefault(customer["id"], (record.row, fingerprint))
    return _Parsed(record.row, customer, account, disputed)


def _store(engine: Engine, batch: list[_Parsed], now: datetime, report: ImportReport, zone: ZoneInfo,
           balance_as_of: datetime | None) -> None:
    """Write one batch in one transaction; if the database still refuses it, find the row and lose only that."""
    if not batch:
        return
    try:
        _write(engine, batch, now, report, zone, balance_as_of)
    except (DataError, IntegrityError):
        for item in batch:
            try:
                _write(engine, [item], now, report, zone, balance_as_of)
            except (DataError, IntegrityError) as exc:
                report.errors.append(RowError(report.file, item.row, None,
                                              f"the database refused the row ({type(exc.orig).__name__})"))


def _write(engine: Engine, batch: list[_Parsed], now: datetime, report: ImportReport, zone: ZoneInfo,
           balance_as_of: datetime | None) -> None:
    """One batch: its statements decided against the ledger, customers and accounts upserted, the new
    statements appended and their accounts refreshed. The report is only told once it is committed."""
    batch = sorted(batch, key=lambda p: p.account["id"])  # the order every ledger writer locks accounts in
    with engine.begin() as conn:
        ledger.lock_accounts(conn, [p.account["id"] for p in batch])
        decided = statements.decide(conn, [
            statements.Statement(p.row, a["id"], a["currency"], a["balance"], a["amount_due"], a["due_date"],
                                 a["status"], a["balance_as_of"] or balance_as_of)
            for p in batch for a in [p.account]], now)
        refused = [RowError(report.file, row, name, message) for row, (name, message) in decided.refused.items()]
        batch = [p for p in batch if p.row not in decided.refused]
        customers = {p.customer["id"]: {**p.customer, "created_at": now, "updated_at": now} for p in batch}
        accounts = [_account_row(p.account, now) for p in batch]
        # An erased customer stays erased: the file's name, email, phone and preferences for them are not
        # written again (their accounts' figures are: the ledger is the lender's to keep).
        stored = {r.id: r for r in conn.execute(select(
            Customer.id, Customer.anonymised_at, *[getattr(Customer, f) for f in OPT_OUTS]).where(
            among(conn, Customer.id, list(customers))))}
        erased = {i for i, r in stored.items() if r.anonymised_at is not None}
        erased_accounts = [p.account["id"] for p in batch if p.customer["id"] in erased]
        for i in erased:
            del customers[i]
        with_blind_indexes(conn, customers.values())
        carried = carry_opt_outs(conn, list(customers.values()))
        upsert(conn, Customer.__table__, list(customers.values()), ["id"], keep_on_update=["created_at"],
               only_set=OPT_OUTS)
        recorded, carried_count = _opt_out_events(conn, customers, stored, carried, now)
        # What an account owes is its ledger's: an update leaves the derived columns to the refresh below.
        upsert(conn, Account.__table__, accounts, ["id"], keep_on_update=["created_at", *ACCOUNT_DERIVED])
        kept = {a["id"] for a in accounts}
        entries = [e for e in decided.entries if e["account_id"] in kept]
        created = ledger.append(conn, entries)
        ledger.refresh(conn, sorted({e["account_id"] for e in entries if e["entry_key"] in created}), now, zone)
        opened = _open_disputes(conn, [p.account["id"] for p in batch if p.disputed], now)
    report.errors.extend(sorted(refused, key=lambda e: e.row))
    report.opt_outs_recorded += recorded
    report.opt_outs_carried += carried_count
    report.erased_kept.extend(erased_accounts)
    report.accounts_loaded += len(accounts)
    report.disputes_opened += opened
    report.statements_recorded += len(created)
    report.statements_unchanged += decided.unchanged + len(entries) - len(created)
    report.statements_older += decided.older


def _opt_out_events(conn, customers: dict[str, dict], stored: dict, carried: dict[str, set[str]],
                    now: datetime) -> tuple[int, int]:
    """Every opt-out the import made is an event like any other (``opt_out_events``): one that the file states
    (source ``import``) and one carried from another record of the same address (``import_carried``): in the
    batch, or a stored customer the batch's new opt-out reaches. Only a change is an event, so importing the
    same file again records nothing. Returns (customers the file opted out, customers carried)."""
    events: list[dict] = []
    fresh: dict[str, set[str]] = {}  # the batch's new opt-outs by channel: blind indexes to spread
    file_said: set[str] = set()
    for customer_id, row in customers.items():
        before = stored.get(customer_id)
        for flag in OPT_OUTS:
            channel = flag.removesuffix("_opt_out")
            if not row.get(flag) or (before is not None and getattr(before, flag)):
                continue
            by_address = channel in carried.get(customer_id, ())
            events.append({"customer_id": customer_id, "channel": channel, "received_at": now, "keyword": None,
                           "source": "import_carried" if by_address else "import"})
            if not by_address:
                file_said.add(customer_id)
            if channel in INDEXED_OPT_OUTS and row.get(INDEXED_OPT_OUTS[channel][0]):
                fresh.setdefault(channel, set()).add(row[INDEXED_OPT_OUTS[channel][0]])
    spread = spread_opt_outs(conn, fresh, now, leave_out=set(customers))
    events += [{"customer_id": customer_id, "channel": channel, "received_at": now, "keyword": None,
                "source": "import_carried"} for customer_id, channels in spread.items() for channel in sorted(channels)]
    if events:
        conn.execute(insert(OptOutEvent.__table__), events)
    carried_ids = {e["customer_id"] for e in events if e["source"] == "import_carried"}
    return len(file_said), len(carried_ids)


def _account_row(account: dict, now: datetime) -> dict:
    """An account's own columns; a new one starts owing nothing until its statement is refreshed in."""
    return {"id": account["id"], "customer_id": account["customer_id"], "currency": account["currency"],
            "product": account["product"], "cease_contact": account["cease_contact"],
            "time_barred": account["time_barred"], "created_at": now, "updated_at": now,
            "balance": Decimal(0), "amount_due": Decimal(0), "due_date": account["due_date"], "status": "open",
            "credit": Decimal(0), "paid_off_at": None, "payoff_seen_at": None, "plan_due_date": None,
            "plan_amount_due": None, "figures": None, "statement_id": None, "ledger_head": None}


def _open_disputes(conn, account_ids: list[str], now: datetime) -> int:
    """A ``disputed`` flag opens a dispute unless one is open; it never resolves one (agents do)."""
    if not account_ids:
        return 0
    already = set(conn.execute(
        select(Dispute.account_id).where(and_(among(conn, Dispute.account_id, account_ids),
                                              Dispute.resolved_at.is_(None)))
    ).scalars())
    rows = [{"account_id": a, "opened_at": now, "resolved_at": None, "source": "import"}
            for a in account_ids if a not in already]
    if rows:
        conn.execute(insert(Dispute.__table__), rows)
    return len(rows)
