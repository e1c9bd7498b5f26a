"""Wall time and peak memory of `campaigns payments import` for a large file (issue 10: 1M payments on PostgreSQL).

    .venv/bin/python bench/payments_import.py --payments 1000000 --accounts 250000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Creates ``--accounts`` open accounts (written directly with their opening statements
in the ledger, then reconciled; not timed) in a schema of its own (PostgreSQL) or a
fresh SQLite file, writes a CSV of ``--payments``
payments spread over them (a few per account, some paying off, a few over-paying),
then imports it in a child process and imports it again (every row already recorded). Prints rows, seconds,
rows/s, the peak RSS of the import's process tree (its storing processes included, sampled every 0.1 s), and
the CPU seconds of the import's tree and of PostgreSQL's backends meanwhile.
Run by hand; the numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, insert, text

CHILD = """
import json, sys, time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from campaigns.db.engine import make_engine
from campaigns.sealing.keys import load_keys
from campaigns.settings import get_settings
from campaigns.money.payments import import_payments
engine = make_engine(sys.argv[1], keys=load_keys(get_settings()))
start = time.perf_counter()
report = import_payments(engine, sys.argv[2], datetime(2026, 11, 23, 14, tzinfo=timezone.utc),
                         ZoneInfo("America/New_York"))
seconds = time.perf_counter() - start
print(json.dumps({"rows": report.rows_read, "loaded": report.payments_loaded, "again": report.already_recorded,
                  "paid_off": report.accounts_paid_off, "errors": len(report.errors), "seconds": seconds,
                  "peak_kb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])}))
"""
NOW = datetime(2026, 11, 23, 14, tzinfo=timezone.utc)


def create_accounts(url: str, n: int) -> None:
    from zoneinfo import ZoneInfo

    from campaigns.db.engine import make_engine
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import get_settings
    from campaigns.schema_upgrade import upgrade_database
    from campaigns.db.models import Account, Customer, LedgerEntry
    from campaigns.money.ledger import reconcile

    engine = make_engine(url, keys=load_keys(get_settings()))
    upgrade_database(engine)
    due = date(2026, 11, 1)
    stated = NOW - timedelta(days=30)  # the lender's statement, before every payment of the file
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            ids = range(start, min(n, start + 10_000))
            conn.execute(insert(Customer.__table__), [
                {"id": f"C{i:08d}", "locale": "en-US", "email_opt_out": False, "sms_opt_out": False,
                 "sms_consent": False, "created_at": NOW, "updated_at": NOW} for i in ids])
            conn.execute(insert(Account.__table__), [
                {"id": f"A{i:08d}", "customer_id": f"C{i:08d}", "currency": "USD", "balance": Decimal("0"),
                 "amount_due": Decimal("0"), "due_date": due, "status": "open", "cease_contact": False,
                 "created_at": NOW, "updated_at": NOW} for i in ids])
            conn.execute(insert(LedgerEntry.__table__), [
                {"account_id": f"A{i:08d}", "kind": "statement", "entry_key": f"statement|A{i:08d}|bench",
                 "effective_at": stated, "recorded_at": stated, "currency": "USD", "balance": Decimal("400.00"),
                 "amount_due": Decimal("100.00"), "due_date": due, "lender_status": "open", "source": "bench"}
                for i in ids])
    reconcile(engine, stated, ZoneInfo("America/New_York"))  # each account's figures from its statement
    engine.dispose()


def write_payments(path: Path, payments: int, accounts: int) -> None:
    rng = random.Random(20261123)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["payment_id", "account_id", "amount", "currency", "paid_at", "method", "reference"])
        for i in range(payments):
            paid_at = NOW - timedelta(days=20) + timedelta(seconds=i % 1_700_000)
            amount = rng.choice(["25.00", "50.00", "100.00", "120.00"])
            writer.writerow([f"P{i:09d}", f"A{i % accounts:08d}", amount, "USD", paid_at.isoformat(), "card",
                             f"R{i}"])


@contextmanager
def own_schema(database_url: str | None, workdir: Path):
    """A URL for the benchmark's own database: a new schema on the given PostgreSQL (dropped afterwards), else an
    SQLite file under ``workdir``."""
    if not database_url:
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def run_sampled(command: list[str], what: str) -> tuple[dict, float, dict[str, float]]:
    """``command`` in a child process, its tree sampled: (its last line's JSON, peak RSS of the tree in MB, CPU
    seconds of the tree and of PostgreSQL, as ``tree`` and ``postgres``)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from scale import ProcSampler, communicate_sampling

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = ProcSampler([proc.pid])
    out, _ = communicate_sampling(proc, sampler.sample, 0.1)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), sampler.peak / 2**20, sampler.by_role()


def run_child(url: str, path: Path) -> dict:
    """The import in a child process, its tree sampled: its JSON, plus ``peak_tree_mb``, ``import_cpu_s`` and
    ``postgres_cpu_s``."""
    result, peak_mb, cpu = run_sampled([sys.executable, "-c", CHILD, url, str(path)], "the import")
    result.update(peak_tree_mb=peak_mb, import_cpu_s=cpu.get("tree", 0.0), postgres_cpu_s=cpu.get("postgres", 0.0))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=25_000)
    parser.add_argument("--database-url", help="PostgreSQL URL (a schema of its own is made and dropped)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-payments-"))
    with own_schema(args.database_url, workdir) as url:
        create_accounts(url, args.accounts)
        path = workdir / "payments.csv"
        write_payments(path, args.payments, args.accounts)
        mb = path.stat().st_size / 1e6
        print(f"{args.payments:,} payments over {args.accounts:,} accounts, {mb:.0f} MB CSV, "
              f"{'PostgreSQL' if args.database_url else 'SQLite'}")
        for label in ("first import", "same file again"):
            result = run_child(url, path)
            print(f"{label:>16}: {result['seconds']:7.1f} s, {result['rows'] / result['seconds']:9,.0f} rows/s, "
                  f"peak RSS {result['peak_tree_mb']:5.0f} MB (this process {result['peak_kb'] / 1024:.0f}); CPU s: "
                  f"import {result['import_cpu_s']:.1f}, PostgreSQL {result['postgres_cpu_s']:.1f}; "
                  f"loaded {result['loaded']:,}, already recorded "
                  f"{result['again']:,}, paid off {result['paid_off']:,}, errors {result['errors']}")


if __name__ == "__main__":
    main()
